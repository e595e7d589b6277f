"""Peak memory of `flowvq generate` against audio length: it must stay flat (frames stream to ffmpeg).

    python benchmarks/bench_memory.py [--weights BUNDLE] [--lengths 30 120 600] [--phones]

Each length runs in a fresh Python process (examples/face.png, examples/speech.wav repeated); the figure is
that process's peak resident set size (ffmpeg's own, constant memory is not included). Prints the ratio of
the longest to the shortest. ``--phones``: ``generate --phones`` (pocketsphinx's phone recogniser, then the
phones lead the lips).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_generate import long_audio
from common import REPO, machine, run

CHILD = """
import resource, sys
from flowvq_cli.api import FlowVQ
weights = sys.argv[3] if sys.argv[3] != "-" else None
fv = FlowVQ.from_pretrained(weights, device="cpu")
r = fv.generate(sys.argv[1], sys.argv[2], emotion="happy", seed=0, out=sys.argv[2] + ".mp4", phones=sys.argv[4] == "1")
print(r.n_frames, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=None)
    ap.add_argument("--lengths", type=float, nargs="+", default=[30.0, 120.0, 600.0])
    ap.add_argument("--phones", action="store_true", help="generate --phones (needs pocketsphinx)")
    args = ap.parse_args()
    peaks = {}
    with tempfile.TemporaryDirectory() as tmp:
        for seconds in args.lengths:
            audio = long_audio(Path(tmp) / f"speech_{int(seconds)}.wav", seconds)
            out = subprocess.run([sys.executable, "-c", CHILD, str(REPO / "examples" / "face.png"), str(audio),
                                  args.weights or "-", "1" if args.phones else "0"], capture_output=True, text=True,
                                 check=True)
            frames, kib = out.stdout.split()[-2:]
            peaks[seconds] = int(kib) / 1024
            print(f"{seconds:.0f} s of audio ({frames} frames): peak RSS {peaks[seconds]:.0f} MiB", flush=True)
    lo, hi = min(args.lengths), max(args.lengths)
    print(f"machine: {machine()}")
    print(f"peak RSS ratio {hi:.0f} s / {lo:.0f} s: {peaks[hi] / peaks[lo]:.2f}")


if __name__ == "__main__":
    run(main)
