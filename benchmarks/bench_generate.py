"""End-to-end speed of `flowvq generate`: seconds of compute per second of video, per stage.

    python benchmarks/bench_generate.py [--weights BUNDLE] [--seconds 20] [--renderer warp]

The audio is examples/speech.wav repeated to --seconds; the photo is examples/face.png. Stages: photo
analysis, audio features, ExpFlow+PoseFlow sampling, rendering (incl. paste-back), H.264 encoding.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, machine, run


def long_audio(path: Path, seconds: float) -> Path:
    from flowvq_cli.audio.load import load_audio, save_wav

    speech = load_audio(REPO / "examples" / "speech.wav").samples
    reps = int(np.ceil(seconds * 16000 / len(speech)))
    return save_wav(path, np.tile(speech, reps)[: int(seconds * 16000)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=None)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--renderer", default="auto")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()

    from flowvq_cli.api import FlowVQ

    fv = FlowVQ.from_pretrained(args.weights, device=args.device, renderer=args.renderer)
    with tempfile.TemporaryDirectory() as tmp:
        audio = long_audio(Path(tmp) / "speech.wav", args.seconds)
        t0 = time.perf_counter()
        result = fv.generate(REPO / "examples" / "face.png", audio, emotion="happy", seed=0, out=Path(tmp) / "o.mp4")
        total = time.perf_counter() - t0
    video_s = result.n_frames / result.fps
    print(f"machine: {machine()}")
    print(f"video: {video_s:.1f} s ({result.n_frames} frames), renderer {result.renderer}, device {fv.device}")
    for stage, sec in result.timings.items():
        print(f"  {stage}: {sec / video_s:.3f} s per second of video")
    print(f"total: {total / video_s:.3f} s of compute per second of video")


if __name__ == "__main__":
    run(main)
