"""Does the requested emotion reach the picture? `generate` per emotion, read by fer and by the expression reader.

    python benchmarks/eval_emotion.py [--weights weights/flowvq-mini] [--seeds 0 1]
        [--face examples/face.png --face examples/face2.png --face BIDEN] [--speech examples/speech2.wav]
        [--out runs/eval-emotion]

For each face, seed and emotion (neutral, angry, happy, sad, surprised) one video is made with `generate`'s
defaults from a voice the training never heard (``examples/speech2.wav``: espeak-ng's en-gb+m6, a voice the
synthetic corpus never uses) and measured:

- fer: the `fer` classifier's accuracy per emotion (`flowvq evaluate`'s "emotion accuracy");
- the expression reader (Blendshape V2, ``flowvq_cli.face.reader``) on the video's FaceMesh landmarks: the
  mean reading of each emotion's key blendshapes, against the neutral video of the same face and seed
  (angry browDown, happy mouthSmile, sad browInnerUp + mouthFrown, surprised browOuterUp / eyeWide / jawOpen),
  and the neutral video's mouthSmile against the photo's own (with its browDown and eyeSquint, and the angry
  video's browDown: the baseline angry's rise is measured from);
- no regressions: dlib identity distance, sharpness ratio (output / photo), the energy lip-sync figure
  (`evaluate`'s best-offset correlation), seconds of compute per second of video.

The default faces are the two example photos (``face2.png``, Grace Hopper, is in no training or calibration
set) and, when given with ``--face``, the public-domain White House portrait ``biden.jpg`` among the test
images of the ``face_recognition`` 1.3.0 source package (``pip download --no-deps --no-binary :all:
face_recognition==1.3.0``), which nothing in FlowVQ is trained or calibrated on. Needs the ``[eval]`` extras
(dlib, fer). Prints one line per
video, per-emotion and per-face summaries, and the figure: fer's mean accuracy over the five emotions.
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

from common import machine, run

ROOT = Path(__file__).resolve().parents[1]
EMOTIONS = ("neutral", "angry", "happy", "sad", "surprised")
KEYS = {  # emotion -> blendshape groups whose reading must rise above the neutral video's (each group averaged)
    "angry": (("browDownLeft", "browDownRight"),),
    "happy": (("mouthSmileLeft", "mouthSmileRight"),),
    "sad": (("browInnerUp",), ("mouthFrownLeft", "mouthFrownRight")),
    "surprised": (("browOuterUpLeft", "browOuterUpRight"), ("eyeWideLeft", "eyeWideRight"), ("jawOpen",)),
}
SMILE = ("mouthSmileLeft", "mouthSmileRight")
SQUINT = ("eyeSquintLeft", "eyeSquintRight")  # with the neutral video's browDown: what angry rises from


def metric(report, name: str) -> float:
    result = report.metric(name)
    return float(result.value) if result.available and result.value is not None else float("nan")


def default_faces() -> list[Path]:
    return [ROOT / "examples" / "face.png", ROOT / "examples" / "face2.png"]


def mean_reading(landmarks: np.ndarray, names: tuple[str, ...]) -> float:
    """The reader's mean reading of ``names`` over the frames of (T, 478, 3) landmarks."""
    from flowvq_cli.face.reader import read_blendshapes
    from flowvq_cli.face.rig import ARKIT_NAMES

    scores = read_blendshapes(landmarks)
    return float(np.nanmean(scores[:, [ARKIT_NAMES.index(n) for n in names]]))


def video_args(description: str, *, seeds: list[int], out: str) -> argparse.Namespace:
    """The options of the per-emotion video benchmarks: weights, seeds, faces, speech, output folder."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--weights", type=Path, default=ROOT / "weights" / "flowvq-mini")
    ap.add_argument("--seeds", type=int, nargs="+", default=seeds)
    ap.add_argument("--face", type=Path, action="append")
    ap.add_argument("--speech", type=Path, default=ROOT / "examples" / "speech2.wav")
    ap.add_argument("--out", type=Path, default=Path(out))
    return ap.parse_args()


def main() -> None:
    args = video_args(__doc__.splitlines()[0], seeds=[0, 1], out="runs/eval-emotion")

    from flowvq_cli.api import FlowVQ
    from flowvq_cli.eval.run import evaluate_clip, load_extras, load_source
    from flowvq_cli.face.analyze import analyze

    model = FlowVQ.from_pretrained(args.weights)
    extras = load_extras()
    print(f"machine: {machine()}")
    print(f"weights: {args.weights}  renderer: {model.renderer}  speech: {args.speech.name}  seeds: {args.seeds}")
    fer = {e: [] for e in EMOTIONS}
    rises = {e: [] for e in KEYS}
    others = {"identity": [], "sharpness": [], "sync": [], "smile drop": []}
    compute, video_s = 0.0, 0.0
    for photo in args.face or default_faces():
        source = load_source(photo, extras)
        photo_smile = mean_reading(analyze(photo).landmarks, SMILE)
        for seed in args.seeds:
            readings = {}
            for emotion in EMOTIONS:
                video = args.out / photo.stem / f"{photo.stem}_{args.speech.stem}_{emotion}_s{seed}.mp4"
                video.parent.mkdir(parents=True, exist_ok=True)
                start = time.perf_counter()
                result = model.generate(photo, args.speech, emotion=emotion, seed=seed, out=video, force=True)
                compute += time.perf_counter() - start
                video_s += len(result.coeffs) / result.fps
                report, _, _ = evaluate_clip(video, audio=args.speech, source=source, emotion_label=emotion,
                                             extras=extras)
                lm = analyze(video).landmarks
                groups = [g for e in KEYS for g in KEYS[e]] + [SMILE, SQUINT]
                readings[emotion] = {g: mean_reading(lm, g) for g in groups}
                fer[emotion].append(metric(report, "emotion accuracy"))
                others["identity"].append(metric(report, "identity distance"))
                others["sharpness"].append(metric(report, "sharpness ratio"))
                others["sync"].append(metric(report, "sync correlation (best offset)"))
                print(f"{photo.name} s{seed} {emotion:9s}: fer {fer[emotion][-1]:.2f}, identity "
                      f"{others['identity'][-1]:.3f}, sharpness {others['sharpness'][-1]:.3f}, sync "
                      f"{others['sync'][-1]:.3f}", flush=True)
            for emotion, groups in KEYS.items():
                rise = [readings[emotion][g] - readings["neutral"][g] for g in groups]
                rises[emotion].append(rise)
                print(f"{photo.name} s{seed} {emotion} vs neutral: " + ", ".join(
                    f"{'+'.join(g)} {r:+.3f}" for g, r in zip(groups, rise, strict=True)))
            drop = photo_smile - readings["neutral"][SMILE]
            others["smile drop"].append(drop)
            print(f"{photo.name} s{seed} neutral video's mouthSmile {readings['neutral'][SMILE]:.3f} "
                  f"(photo {photo_smile:.3f}, drop {drop:+.3f}); its browDown "
                  f"{readings['neutral'][KEYS['angry'][0]]:.3f}, eyeSquint {readings['neutral'][SQUINT]:.3f}, "
                  f"angry video's browDown {readings['angry'][KEYS['angry'][0]]:.3f}")
    print("fer accuracy per emotion: " + ", ".join(f"{e} {np.nanmean(v):.2f}" for e, v in fer.items()))
    for emotion, groups in KEYS.items():
        r = np.mean(rises[emotion], axis=0)
        print(f"reader rise over neutral, {emotion}: " + ", ".join(
            f"{'+'.join(g)} {x:+.3f}" for g, x in zip(groups, r, strict=True)))
    print(f"no regressions: identity distance {np.nanmean(others['identity']):.3f}, sharpness ratio "
          f"{np.nanmean(others['sharpness']):.3f}, sync {np.nanmean(others['sync']):.3f}, "
          f"neutral smile drop {np.mean(others['smile drop']):+.3f}, compute {compute / video_s:.2f} s per s of video")
    print(f"fer mean accuracy: {np.nanmean([np.nanmean(v) for v in fer.values()]):.3f}")


if __name__ == "__main__":
    run(main)
