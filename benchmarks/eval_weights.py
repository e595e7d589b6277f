"""Does a weights bundle make convincing videos? `generate` with default settings, measured on the output.

    python benchmarks/eval_weights.py --weights weights/flowvq-mini [--out runs/eval-weights] [--seed 0]
        [--renderer auto|vqig|warp]
        [--pair examples/face.png examples/speech.wav] [--pair examples/face2.png examples/speech2.wav]

For every (photo, speech) pair and each of neutral, angry, happy, sad and surprised, one video is made with
`flowvq generate`'s defaults (the bundle's renderer unless ``--renderer``, generated head motion, temperature 1)
and measured:

- lip sync: `flowvq evaluate`'s substitute, the correlation of the re-analysed mouth opening (jawOpen) with the
  audio's energy envelope at the best audio-video offset (±5 frames), and that offset;
- emotion: the output is re-analysed with the photo's own identity mesh (so a clip-long expression is not
  absorbed into the face shape) and its mean blendshapes compared with the neutral video's: angry must
  lower the brows (browDown), happy smile (mouthSmile), sad raise the inner brows and frown (browInnerUp,
  mouthFrown), surprised raise the brows and widen the eyes (browOuter/InnerUp, eyeWide); plus the `fer`
  classifier's accuracy per emotion (`flowvq evaluate`);
- blinks per minute (`flowvq evaluate`'s blink detector on the identity-given re-analysis) and the head
  pose's spread (std of pitch/yaw/roll in degrees) of the re-analysis;
- identity: dlib face distance between the photo and the output frames (< 0.6 = same person);
- speed: seconds of compute per second of video (`generate`, wall time, files written).
One line per video, then a summary per pair. The `[eval]` extras (dlib, fer) are needed for identity and
emotion accuracy; without them those columns read n/a.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("GLOG_minloglevel", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, precision, run

ROOT = Path(__file__).resolve().parents[1]
EMOTIONS = ("neutral", "angry", "happy", "sad", "surprised")
DIRECTIONS = {  # emotion -> blendshapes whose mean must rise above the neutral video's
    "angry": ("browDownLeft", "browDownRight"),
    "happy": ("mouthSmileLeft", "mouthSmileRight"),
    "sad": ("browInnerUp", "mouthFrownLeft", "mouthFrownRight"),
    "surprised": ("browInnerUp", "browOuterUpLeft", "browOuterUpRight", "eyeWideLeft", "eyeWideRight"),
}
DEFAULT_PAIRS = [(ROOT / "examples" / "face.png", ROOT / "examples" / "speech.wav"),
                 (ROOT / "examples" / "face2.png", ROOT / "examples" / "speech2.wav")]


def metric(report, name: str) -> float:
    result = report.metric(name)
    return float(result.value) if result.available and result.value is not None else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", type=Path, default=ROOT / "weights" / "flowvq-mini")
    ap.add_argument("--out", type=Path, default=Path("runs/eval-weights"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pair", nargs=2, type=Path, action="append", metavar=("PHOTO", "SPEECH"))
    ap.add_argument("--renderer", default="auto", choices=("auto", "vqig", "warp"))
    args = ap.parse_args()

    from flowvq_cli.api import FlowVQ
    from flowvq_cli.eval.motion import blink_openness, detect_blinks
    from flowvq_cli.eval.run import BLINK_THRESHOLD, SourceInfo, evaluate_clip, load_extras, load_source
    from flowvq_cli.face import rig
    from flowvq_cli.face.analyze import analyze
    from flowvq_cli.face.source import prepare_face

    model = FlowVQ.from_pretrained(args.weights, renderer=args.renderer)
    extras = load_extras()
    names = rig.ARKIT_NAMES
    blink = [names.index("eyeBlinkLeft"), names.index("eyeBlinkRight")]
    print(f"machine: {machine()}")
    dtype = f" ({precision(model.vqig)})" if model.renderer == "vqig" else ""
    print(f"weights: {args.weights}  renderer: {model.renderer}{dtype}  seed: {args.seed}")
    for photo, speech in args.pair or DEFAULT_PAIRS:
        out = args.out / photo.stem
        out.mkdir(parents=True, exist_ok=True)
        identity = prepare_face(photo).identity
        try:
            source = load_source(photo, extras)
        except Exception as exc:  # measured without identity then, and said so
            print(f"  (source photo not loadable for identity: {exc})")
            source = SourceInfo()
        means, rows, seconds_compute, seconds_video = {}, [], 0.0, 0.0
        for emotion in EMOTIONS:
            video = out / f"{photo.stem}_{speech.stem}_{emotion}_s{args.seed}.mp4"
            start = time.perf_counter()
            result = model.generate(photo, speech, emotion=emotion, seed=args.seed, out=video, force=True)
            seconds_compute += time.perf_counter() - start
            seconds_video += len(result.coeffs) / result.fps
            report, _, coeffs = evaluate_clip(video, audio=speech, source=source, emotion_label=emotion,
                                              extras=extras)
            exp = analyze(video, identity=identity).coeffs
            means[emotion] = exp[:, : rig.N_EXP].mean(axis=0)
            blinks = detect_blinks(blink_openness(exp[:, blink].mean(axis=1), result.fps), threshold=BLINK_THRESHOLD,
                                   fps=result.fps).rate_per_minute
            pose_std = np.degrees(coeffs[:, rig.N_EXP : rig.N_EXP + 3].std(axis=0))
            row = {"emotion": emotion, "sync": metric(report, "sync correlation (best offset)"),
                   "offset": metric(report, "A/V offset"), "blinks": blinks, "pose_std": pose_std,
                   "identity": metric(report, "identity distance"), "fer": metric(report, "emotion accuracy")}
            rows.append(row)
            print(f"{photo.name} + {speech.name} {emotion:9s}: sync {row['sync']:.3f} at offset {row['offset']:+.0f}, "
                  f"blinks {blinks:.1f}/min, pose std pitch/yaw/roll {pose_std[0]:.2f}/{pose_std[1]:.2f}/"
                  f"{pose_std[2]:.2f} deg, identity distance {row['identity']:.3f}, fer accuracy {row['fer']:.2f}")
        for emotion, shapes in DIRECTIONS.items():
            idx = [names.index(s) for s in shapes]
            delta = means[emotion][idx] - means["neutral"][idx]
            detail = ", ".join(f"{s} {d:+.3f}" for s, d in zip(shapes, delta, strict=True))
            verdict = "as expected" if delta.mean() > 0 else "NOT as expected"
            print(f"{photo.name} direction {emotion} vs neutral: mean {delta.mean():+.3f} ({verdict}): {detail}")
        print(f"{photo.name} + {speech.name} summary: sync {np.nanmean([r['sync'] for r in rows]):.3f}, "
              f"|offset| max {np.nanmax(np.abs([r['offset'] for r in rows])):.0f}, "
              f"blinks {np.mean([r['blinks'] for r in rows]):.1f}/min, "
              f"identity distance {np.nanmean([r['identity'] for r in rows]):.3f}, "
              f"compute {seconds_compute / seconds_video:.2f} s per s of video")


if __name__ == "__main__":
    run(main)
