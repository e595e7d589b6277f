"""Mesh-warp renderer speed: frames per second at 256² on the example photo (warp + mouth interior).

    python benchmarks/bench_meshwarp.py [--frames 200] [--interpolation cubic|linear]

The target coefficients open and close the jaw, turn the head and blink, so the mouth-interior painting
and self-occlusion paths are exercised.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, machine, run


def main() -> None:
    from flowvq_cli.face import rig
    from flowvq_cli.face.source import prepare_face
    from flowvq_cli.render.meshwarp import INTERPOLATIONS, MeshWarpConfig, MeshWarpRenderer

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--interpolation", choices=tuple(INTERPOLATIONS), default=MeshWarpConfig.interpolation,
                    help="how the photo is sampled (MeshWarpConfig.interpolation; default %(default)s)")
    args = ap.parse_args()

    source = prepare_face(REPO / "examples" / "face.png")
    t = np.arange(args.frames) / 25.0
    coeffs = np.repeat(source.coeffs[None], args.frames, axis=0)
    coeffs[:, rig.ARKIT_NAMES.index("jawOpen")] = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)
    coeffs[:, rig.ARKIT_NAMES.index("eyeBlinkLeft")] = (np.sin(2 * np.pi * 0.5 * t) > 0.9).astype(np.float32)
    coeffs[:, rig.N_EXP + 1] += np.radians(15) * np.sin(2 * np.pi * 0.3 * t)
    renderer = MeshWarpRenderer(source.crop, rig.synthesize(source.identity, source.coeffs[None])[0],
                                MeshWarpConfig(interpolation=args.interpolation))
    meshes = rig.synthesize(source.identity, coeffs)
    start = time.perf_counter()
    renderer.render(meshes)
    seconds = time.perf_counter() - start
    print(f"machine: {machine()}")
    print(f"mesh-warp renderer: {args.frames / seconds:.1f} frames/s at 256x256, {args.interpolation} sampling "
          f"({args.frames} frames)")


if __name__ == "__main__":
    run(main)
