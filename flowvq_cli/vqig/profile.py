"""Cost of VQIG's per-frame render path: parameters, FLOPs per frame (torch's FLOP counter: matmuls,
convolutions, attention; not norms, activations or ``grid_sample``) and wall time per frame.

    python -m flowvq_cli.vqig.profile --preset mini --batch 1 8 --threads 2

Random weights; the cost does not depend on them. The source is prepared once (as when rendering a
video from one photo) and excluded from the per-frame figures; its own cost is printed separately.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from flowvq_cli.vqig.config import VQIGConfig
from flowvq_cli.vqig.generator import VQIG

PRESETS = {"tiny": VQIGConfig.tiny, "mini": VQIGConfig.mini, "base": VQIGConfig.base}


@dataclass
class RenderCost:
    """Per-frame cost of :meth:`VQIG.render_prepared` at one batch size (and the once-per-photo cost)."""

    batch: int
    params_vqig: int
    params_codebook: int
    gflop_per_frame: float
    gflop_decoder_per_frame: float
    gflop_source: float
    ms_per_frame: float


def _gflop(fn: object) -> float:
    with FlopCounterMode(display=False) as counter:
        fn()  # type: ignore[operator]
    return counter.get_total_flops() / 1e9


def measure(config: VQIGConfig, batch: int, repeats: int = 3, seed: int = 0) -> RenderCost:
    """FLOPs and best-of-``repeats`` wall time per frame for rendering ``batch`` frames of one photo."""
    torch.manual_seed(seed)
    model = VQIG(config).eval()
    size = config.codebook.image_size
    source = torch.rand(1, 3, size, size) * 2 - 1
    coeffs = torch.zeros(1, config.coeff_dim)
    windows = torch.randn(batch, config.window_frames, config.coeff_dim) * 0.1
    gflop_source = _gflop(lambda: model.prepare_source(source, coeffs))
    cache = model.prepare_source(source, coeffs)
    gflop = _gflop(lambda: model.render_prepared(cache, windows)) / batch
    with torch.inference_mode():
        z_q = torch.randn(1, config.codebook.latent_dim, config.codebook.latent_size, config.codebook.latent_size)
        gflop_decoder = _gflop(lambda: model.codebook.decoder(z_q))
    model.render_prepared(cache, windows)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        model.render_prepared(cache, windows)
        best = min(best, time.perf_counter() - start)
    return RenderCost(batch=batch, params_vqig=sum(p.numel() for p in model.trainable_parameters()),
                      params_codebook=sum(p.numel() for p in model.codebook.parameters()),
                      gflop_per_frame=gflop, gflop_decoder_per_frame=gflop_decoder, gflop_source=gflop_source,
                      ms_per_frame=1e3 * best / batch)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="mini")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    config = PRESETS[args.preset]()
    for batch in args.batch:
        cost = measure(config, batch, args.repeats)
        print(f"{args.preset} batch {cost.batch}: VQIG {cost.params_vqig / 1e6:.2f} M params (+ codebook "
              f"{cost.params_codebook / 1e6:.2f} M), {cost.gflop_per_frame:.2f} GFLOP/frame (decoder "
              f"{cost.gflop_decoder_per_frame:.2f}), source once {cost.gflop_source:.2f} GFLOP, "
              f"{cost.ms_per_frame:.1f} ms/frame on {args.threads} threads")


if __name__ == "__main__":
    main()
