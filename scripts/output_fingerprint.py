"""Fingerprint of what `flowvq generate` makes: sha256 of the coefficients and of every rendered frame.

    python scripts/output_fingerprint.py [--face examples/face.png] [--speech examples/speech.wav]
        [--emotion angry] [--seed 3] [--weights BUNDLE]

A refactor must not change the output (issue 27's "Behaviour"). Run this in two checkouts (e.g. one made with
`git worktree add ../before COMMIT`, run there with `PYTHONPATH=.` so that its own package is imported) and
compare the two lines: equal digests mean bit-identical coefficients and frames. The frames are the default
renderer's, pasted into the photo, before the H.264 encode (which is deterministic given them).
"""

from __future__ import annotations

import argparse
import hashlib
import os

import numpy as np

os.environ.setdefault("GLOG_minloglevel", "2")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--face", default="examples/face.png")
    ap.add_argument("--speech", default="examples/speech.wav")
    ap.add_argument("--emotion", default="angry")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--weights", default=None, help="bundle folder (default: the shipped one)")
    args = ap.parse_args()

    import flowvq_cli
    from flowvq_cli.api import FlowVQ

    model = FlowVQ.from_pretrained(args.weights, device="cpu")
    result = model.generate(args.face, args.speech, emotion=args.emotion, seed=args.seed, write=False)
    coeffs = np.ascontiguousarray(result.coeffs)
    frames = hashlib.sha256()
    n = 0
    for frame in model.render(model.prepare_face(args.face), coeffs):
        frames.update(np.ascontiguousarray(frame).tobytes())
        n += 1
    print(f"package {os.path.dirname(flowvq_cli.__file__)}")
    print(f"coefficients {coeffs.shape} sha256 {hashlib.sha256(coeffs.tobytes()).hexdigest()}, "
          f"{n} frames sha256 {frames.hexdigest()}")


if __name__ == "__main__":
    main()
