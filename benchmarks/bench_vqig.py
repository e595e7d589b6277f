"""VQIG rendering speed: frames per second at the preset's resolution, rendered in batches.

    python benchmarks/bench_vqig.py [--config mini] [--frames 64] [--batch 8] [--device auto]
                                    [--weights-codebook C --weights-vqig V] [--compose] [--mesh-prior]
                                    [--prior-frame] [--fp32]

The source photo is encoded once (``prepare_source``), then ``--frames`` coefficient windows are rendered
``--batch`` at a time with ``render_prepared`` (``torch.inference_mode``), as ``flowvq generate --renderer
vqig`` does: in bf16 on a GPU and on a CPU that computes bf16 in hardware (AVX512-BF16 or AMX), else in
float32 (``--fp32``: float32 everywhere; the precision is printed). Speed does not depend on the weights, so
without ``--weights-*`` the preset's architecture is timed with random weights (``--compose`` switches the
composition on, ``--mesh-prior`` the mesh-warp motion prior, ``--prior-frame`` the composition on the
mesh-warp frame). The source is a random image, except with the mesh prior: then it is ``examples/face.png``'s
aligned crop, and the timed loop includes the mesh-warp renderer that computes each frame's motion, as in
``generate``. One warm-up batch is not timed. Prints frames per second, how many of the frames ran through the
networks (with ``prior_frame`` a frame whose mouth the mesh warp does not paint is its frame as it is; the
random windows here open the mouth in nearly all of them: 63 of 64 with the shipped weights), and the machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, precision, run

from flowvq_cli.face import rig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="mini", choices=("tiny", "mini", "base"))
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--weights-codebook", type=Path)
    ap.add_argument("--weights-vqig", type=Path)
    ap.add_argument("--compose", action="store_true")
    ap.add_argument("--mesh-prior", action="store_true", help="implies --compose")
    ap.add_argument("--prior-frame", action="store_true", help="implies --mesh-prior, without its residual")
    ap.add_argument("--fp32", action="store_true", help="render in float32 even where bf16 is native")
    args = ap.parse_args()

    from flowvq_cli.api import resolve_device
    from flowvq_cli.vq import VQGAN, VQGANConfig
    from flowvq_cli.vqig import VQIG, VQIGConfig

    device = resolve_device(args.device)
    torch.manual_seed(0)
    if args.weights_vqig is not None:
        codebook = VQGAN.from_pretrained(args.weights_codebook)
        model = VQIG.from_pretrained(args.weights_vqig, codebook=codebook, device=device)
        what = f"weights {args.weights_vqig}"
    else:
        config = getattr(VQIGConfig, args.config)()
        config = dataclasses.replace(config, codebook=getattr(VQGANConfig, args.config)(),
                                     compose=args.compose or args.mesh_prior or args.prior_frame,
                                     mesh_prior=args.mesh_prior or args.prior_frame,
                                     prior_residual=not args.prior_frame, prior_frame=args.prior_frame)
        model = VQIG(config, VQGAN(config.codebook)).to(device).eval()
        what = f"preset {args.config}, random weights"
    model.half_precision = not args.fp32
    cfg = model.config
    size = cfg.codebook.image_size
    source = torch.rand(1, 3, size, size) * 2 - 1
    coeffs = torch.rand(1, cfg.coeff_dim) * 0.3
    motion = None
    if cfg.mesh_prior:
        source, coeffs, motion = mesh_motion(size, cfg.prior_frame)
    windows = coeffs[:, None] + 0.05 * torch.randn(args.frames, cfg.window_frames, cfg.coeff_dim)
    windows[..., : rig.N_EXP].clamp_(0.0, 1.0)
    cache = model.prepare_source(source, coeffs)

    networked = []  # frames the networks rendered (with prior_frame, not those whose mouth is not painted)

    def render(batch: torch.Tensor) -> None:
        prior = motion(batch[:, cfg.window].numpy()) if motion is not None else None
        model.render_prepared(cache, batch, prior=prior)
        networked.append(int(prior.painted().sum()) if prior is not None and cfg.prior_frame else len(batch))

    render(windows[: args.batch])  # warm-up (allocations, cuDNN autotuning)
    networked.clear()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for i in range(0, args.frames, args.batch):
        render(windows[i : i + args.batch])
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    print(f"VQIG ({what}; compose {cfg.compose}, mesh prior {cfg.mesh_prior}, "
          f"prior frame {cfg.prior_frame}) at {size}², batch {args.batch}, "
          f"{device}, {precision(model)}: "
          f"{args.frames / seconds:.1f} frames/s ({args.frames} frames in {seconds:.2f} s, threads "
          f"{torch.get_num_threads()}; {sum(networked)} of them through the networks)")
    print(f"machine: {machine()}")


def mesh_motion(size: int, frame: bool):
    """examples/face.png's crop (1, 3, S, S) and coefficients (1, 58), and a function from frame coefficients
    (B, 58) to their :class:`MeshPrior` (``flowvq_cli.api.mesh_motion``, as ``generate`` computes it)."""
    import numpy as np

    from flowvq_cli.api import mesh_motion, vqig_source
    from flowvq_cli.face.source import prepare_face

    face = prepare_face(Path(__file__).resolve().parents[1] / "examples" / "face.png")
    crop, source = vqig_source(face, size)
    return source, torch.from_numpy(face.coeffs[None].astype(np.float32)), mesh_motion(face, crop, frame=frame)


if __name__ == "__main__":
    run(main)
