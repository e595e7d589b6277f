"""How far MediaPipe's eyelid landmarks follow a closing eye (the constant ``LID_GAIN`` of face/analyze.py).

    python benchmarks/lid_gain.py [--face examples/face.png]

Renders the photo with eyeBlink 0, 0.1, …, 1.0 (mesh-warp renderer, which closes the lids completely at 1),
analyses the frames as a video and as single photos with the photo's identity and *without* the lid
calibration, and prints the least-squares slope of the read eyeBlink (minus its reading at 0) on the true
value, per mode and both together: the gain.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, run

FRAMES_PER_LEVEL = 4


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--face", type=Path, default=Path("examples/face.png"))
    args = ap.parse_args()

    from flowvq_cli import api
    from flowvq_cli.face import analyze as analyze_module
    from flowvq_cli.video import VideoWriter

    print(f"machine: {machine()}")
    src = api.prepare_face(args.face)
    blink = list(analyze_module.BLINK_INDICES)
    levels = np.linspace(0.0, 1.0, 11)
    coeffs = np.repeat(src.coeffs[None], len(levels) * FRAMES_PER_LEVEL, axis=0)
    truth = np.repeat(levels, FRAMES_PER_LEVEL)
    coeffs[:, blink] = truth[:, None]
    frames = list(api.warp_frames(src, coeffs, paste_back=True))
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "ramp.mp4"
        with VideoWriter(video, fps=25, size=(frames[0].shape[1], frames[0].shape[0])) as writer:
            for f in frames:
                writer.write(f)
        fit = analyze_module.analyze_video(video, identity=src.identity, calibrate=False)
        read_video = fit.coeffs[:, blink].mean(axis=1)
    step = FRAMES_PER_LEVEL
    read_image = np.array([analyze_module.analyze_rgb(f, identity=src.identity, calibrate=False).coeffs[0, blink].mean()
                           for f in frames[::step]]).repeat(step)
    gains = {}
    for name, read in (("video", read_video), ("photo", read_image)):
        rest = read[truth == 0].mean()
        gains[name] = float(np.dot(truth, read - rest) / np.dot(truth, truth))
        print(f"{name}: eyeBlink read at 0 / 0.5 / 1: {rest:.2f} / {read[truth == 0.5].mean():.2f} / "
              f"{read[truth == 1.0].mean():.2f}; gain {gains[name]:.2f}")
    print(f"lid gain (mean of both modes): {np.mean(list(gains.values())):.2f}")


if __name__ == "__main__":
    run(main)
