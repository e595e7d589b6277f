"""Eye motion in generated coefficients, with ExpFlow's samples only (``--eyes model``) and by default.

    python benchmarks/eye_motion.py [--weights BUNDLE] [--seeds 10] [--temperature 1] [--pair PHOTO SPEECH ...]
                                    [--corpus DATA]

For each photo + speech pair (default: both example pairs) and each of neutral, angry, happy, sad and
surprised, ``--seeds`` seeds are sampled (no rendering). Printed per pair and mode:

- blinks per minute in the mean eyeBlink track with ``flowvq evaluate``'s detector (a closure to below
  half open, 2-12 frames, not touching the clip's ends), the share of clips without a blink, blink lengths;
- gaze per emotion: the mean eyeLookUp and eyeLookDown (left eye) over the clips. The synthetic corpus the
  weights were trained on averages 0.01-0.15 on both, except sad's look down (0.31); ``--corpus DATA``
  prints a corpus's own figures per emotion (e.g. the `flowvq synth --no-frames` corpus of the recipe).

Then the machine. The rendered, re-analysed blink figure is benchmarks/eval_weights.py's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, machine, run

EMOTIONS = ("neutral", "angry", "happy", "sad", "surprised")
PAIRS = (("examples/face.png", "examples/speech.wav"), ("examples/face2.png", "examples/speech2.wav"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", type=Path, default=REPO / "weights" / "flowvq-mini")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--fps", type=float, default=25.0)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--corpus", type=Path, help="also print the gaze of this dataset's clips per emotion")
    ap.add_argument("--pair", nargs=2, type=Path, action="append", metavar=("PHOTO", "SPEECH"))
    args = ap.parse_args()

    from flowvq_cli.api import FlowVQ
    from flowvq_cli.eval.motion import detect_blinks
    from flowvq_cli.face import rig
    from flowvq_cli.flow.eyes import EYE_INDICES, EYE_MODES

    model = FlowVQ.from_pretrained(args.weights, device="cpu", renderer="warp")
    pairs = args.pair or [(REPO / p, REPO / s) for p, s in PAIRS]
    up, down = rig.ARKIT_NAMES.index("eyeLookUpLeft"), rig.ARKIT_NAMES.index("eyeLookDownLeft")
    print(f"weights: {args.weights}  seeds: {args.seeds}  temperature: {args.temperature}  "
          f"emotions: {', '.join(EMOTIONS)}")
    if args.corpus is not None:
        corpus_gaze(args.corpus, up, down)
    for photo, speech in pairs:
        source = model.prepare_face(photo)
        feats, _ = model.audio_features(speech, args.fps)
        for mode in EYE_MODES:
            count, minutes, empty, lengths, gaze = 0, 0.0, 0, [], []
            for emotion in EMOTIONS:
                looks = []
                for seed in range(args.seeds):
                    coeffs = model.motion(source, feats, emotion=emotion, intensity=2, seed=seed, eyes=mode,
                                          fps=args.fps, temperature=args.temperature)
                    looks.append(coeffs[:, [up, down]].mean(axis=0))
                    found = detect_blinks(1.0 - coeffs[:, list(EYE_INDICES)].mean(axis=1), 0.5, args.fps)
                    count += found.count
                    minutes += len(coeffs) / args.fps / 60.0
                    empty += found.count == 0
                    lengths += [e - s for s, e in found.events]
                gaze.append(f"{emotion} {np.mean(looks, axis=0)[0]:.2f}/{np.mean(looks, axis=0)[1]:.2f}")
            clips = len(EMOTIONS) * args.seeds
            hist = np.bincount(lengths, minlength=3)[2:] if lengths else np.zeros(0, int)
            print(f"{Path(photo).name} + {Path(speech).name} --eyes {mode:5s}: {count / minutes:.1f} blinks/min "
                  f"({count} in {minutes * 60:.0f} s), clips without a blink {empty}/{clips}, "
                  f"lengths (frames 2, 3, ...) {hist.tolist()}")
            print(f"    gaze up/down: {', '.join(gaze)}")
    print(f"machine: {machine()}")


def corpus_gaze(root: Path, up: int, down: int) -> None:
    """Mean eyeLookUp / eyeLookDown (left eye) of a dataset's clips per emotion."""
    from flowvq_cli.data.manifest import read_manifest

    looks: dict[str, list[np.ndarray]] = {}
    for clip in read_manifest(root):
        coeffs = np.load(clip.path(root, "coeffs"))
        looks.setdefault(clip.emotion, []).append(coeffs[:, [up, down]].mean(axis=0))
    parts = [f"{e} {np.mean(v, axis=0)[0]:.2f}/{np.mean(v, axis=0)[1]:.2f}" for e, v in sorted(looks.items())]
    print(f"corpus {root} gaze up/down ({sum(map(len, looks.values()))} clips): {', '.join(parts)}")


if __name__ == "__main__":
    run(main)
