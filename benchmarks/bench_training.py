"""Training throughput per component: windows (flows) or images (codebook, VQIG) per second.

    python benchmarks/bench_training.py DATA [--steps 20] [--device auto] [--config mini] [--crop 128]

DATA must have frames (e.g. `flowvq synth DATA --clips 40`). Each component trains for --steps in a
temporary run folder (the first step, which builds caches and initialises, is not timed). The flows run
without audio augmentation here (augmentation costs CPU per window and is on in the shipped recipe).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, run


def throughput(run_dir: Path, batch: int, stage: int | None = None) -> float:
    """Items per second between the first and the last logged training step (of one VQIG ``stage``)."""
    events = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    train = [e for e in events if e["event"] == "train" and (stage is None or e["stage"] == stage)]
    first, last = train[0], train[-1]
    return (last["step"] - first["step"]) * batch / max(last["time"] - first["time"], 1e-9)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--config", default="mini")
    ap.add_argument("--crop", type=int, default=None, help="also time the codebook on random crop² squares")
    args = ap.parse_args()

    from flowvq_cli.train import TrainConfig, train_codebook, train_expflow, train_poseflow, train_vqig

    def cfg(batch: int) -> TrainConfig:
        return TrainConfig(steps=args.steps, batch_size=batch, warmup=1, eval_every=0, save_every=0, log_every=1,
                           device=args.device)

    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        train_expflow(args.data, root / "exp", config=args.config, train=cfg(16), quiet=True, export=False)
        print(f"expflow ({args.config}): {throughput(root / 'exp', 16):.1f} windows/s (50 frames each)")
        train_poseflow(args.data, root / "pose", config=args.config, train=cfg(16), quiet=True, export=False)
        print(f"poseflow ({args.config}): {throughput(root / 'pose', 16):.1f} windows/s (50 frames each)")
        train_codebook(args.data, root / "cb", config=args.config, train=cfg(4), quiet=True)
        print(f"codebook ({args.config}, 256²): {throughput(root / 'cb', 4):.2f} images/s")
        if args.crop:
            train_codebook(args.data, root / "cb-crop", config=args.config, train=cfg(8), crop=args.crop, quiet=True,
                           export=False)
            rate = throughput(root / "cb-crop", 8)
            print(f"codebook ({args.config}, random {args.crop}² crops): {rate:.2f} images/s")
        third = max(2, args.steps // 3)
        train_vqig(args.data, root / "vqig", codebook=root / "cb" / "export" / "codebook", config=args.config,
                   train=cfg(4), stage="both", warm_start_steps=third, code_steps=third, quiet=True, export=False)
        rates = ", ".join(f"{name} {throughput(root / 'vqig', 4, stage):.2f}"
                          for stage, name in enumerate(("warm start", "code level", "image level")))
        print(f"vqig ({args.config}, 256², batch 4) images/s: {rates}")


if __name__ == "__main__":
    run(main)
