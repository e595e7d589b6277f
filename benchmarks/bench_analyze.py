"""Face analysis speed: seconds for one photo (cold, model load included) and frames/s on a video.

    python benchmarks/bench_analyze.py [--seconds 10] [--size 512]

The video is made here from examples/face.png (small head motion by similarity warps), written with
the real ffmpeg binary; its analysis time includes decoding, tracking, alignment and the fit.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, machine, run


def make_video(path: Path, seconds: float, size: int, fps: int = 25) -> None:
    import cv2
    import numpy as np

    from flowvq_cli.image import load_image
    from flowvq_cli.video import VideoWriter

    src = cv2.resize(load_image(REPO / "examples" / "face.png"), (size, size), interpolation=cv2.INTER_AREA)
    n = round(seconds * fps)
    with VideoWriter(path, fps=fps, size=(size, size)) as writer:
        for t in range(n):
            angle = 6.0 * np.sin(2 * np.pi * t / 50)
            shift = 0.02 * size * np.sin(2 * np.pi * t / 80)
            m = cv2.getRotationMatrix2D((size / 2, size / 2), angle, 1.0)
            m[0, 2] += shift
            writer.write(cv2.warpAffine(src, m, (size, size), borderMode=cv2.BORDER_REFLECT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="length of the test video")
    ap.add_argument("--size", type=int, default=512, help="video frame size (square)")
    args = ap.parse_args()

    from flowvq_cli.face.analyze import analyze_image, analyze_video

    t0 = time.perf_counter()
    analyze_image(REPO / "examples" / "face.png")
    photo_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    analyze_image(REPO / "examples" / "face.png")
    photo_warm_s = time.perf_counter() - t0

    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "bench.mp4"
        make_video(video, args.seconds, args.size)
        t0 = time.perf_counter()
        result = analyze_video(video)
        video_s = time.perf_counter() - t0
    fps = len(result.coeffs) / video_s
    print(f"machine: {machine()}")
    print(f"photo analysis: {photo_s:.3f} s cold (model load included), {photo_warm_s:.3f} s warm")
    print(f"video analysis: {fps:.1f} frames/s ({len(result.coeffs)} frames of {args.size}x{args.size})")


if __name__ == "__main__":
    run(main)
