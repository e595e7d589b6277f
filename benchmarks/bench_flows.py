"""Sampling speed of ExpFlow + PoseFlow: seconds to generate the coefficients of 60 s of audio (25 fps).

    python benchmarks/bench_flows.py [--weights BUNDLE] [--seconds 60] [--device cpu]

Without --weights, freshly initialised `mini` models are timed (same cost as trained ones).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=None)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    from flowvq_cli.audio.features import AudioFeatureConfig
    from flowvq_cli.flow import ExpFlow, PoseFlow
    from flowvq_cli.flow.config import ExpFlowConfig, PoseFlowConfig

    if args.weights:
        from flowvq_cli.bundle import read_bundle
        from flowvq_cli.hub import resolve_weights

        bundle = read_bundle(resolve_weights(args.weights))
        exp = ExpFlow.from_pretrained(bundle.component("expflow"), device=args.device)
        pose = PoseFlow.from_pretrained(bundle.component("poseflow"), device=args.device)
    else:
        exp, pose = ExpFlow(ExpFlowConfig.mini()).eval(), PoseFlow(PoseFlowConfig.mini()).eval()
    frames = round(args.seconds * 25)
    audio = torch.randn(1, frames, AudioFeatureConfig().video_feature_dim, device=args.device)
    source = torch.rand(1, 52, device=args.device) * 0.2
    gen = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    with torch.inference_mode():
        exp.sample(audio, source, "happy", 2, generator=gen, project=exp.has_latents("happy"))
        pose.sample(audio, generator=gen)
    seconds = time.perf_counter() - t0
    print(f"machine: {machine()}")
    print(f"parameters: ExpFlow {sum(p.numel() for p in exp.parameters()):,} "
          f"(+ latent bank {tuple(exp.latent_bank.shape)}), PoseFlow {sum(p.numel() for p in pose.parameters()):,}")
    print(f"ExpFlow+PoseFlow sampling: {seconds:.2f} s for {args.seconds:.0f} s of audio ({frames} frames), "
          f"{seconds / args.seconds:.3f} s per second of video")


if __name__ == "__main__":
    run(main)
