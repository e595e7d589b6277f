"""Putting rendered faces back into the photo: milliseconds per frame, and how sharp the result stays.

    python benchmarks/bench_paste.py [--frames 100] [--photo PHOTO ...]

For each photo (default: both example photos), the mesh-warp renderer renders frames whose jaw opens and
closes, head turns and lids blink (as ``bench_meshwarp.py``), and each frame goes into the photo

- ``WarpPaste`` (what ``generate`` does): the renderer's flow, mapped into photo pixels, resamples the photo
  itself; only the painted mouth and lids come from the 256² frame;
- ``PasteBack`` (the 256² frame resampled into the photo), for comparison.

Prints the time per frame of each (the rendering itself not included), and the face's sharpness in the
result: the aligned crop of the output frames against the photo's own crop (variance of the Laplacian,
``flowvq_cli.eval.sharpness_ratio``, as ``flowvq evaluate`` measures it, without the H.264 encode).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, machine, run


def talking(coeffs: np.ndarray, frames: int) -> np.ndarray:
    """(frames, 58) from one coefficient vector (58,): jaw, blink and head turn in motion."""
    from flowvq_cli.face import rig

    t = np.arange(frames) / 25.0
    out = np.repeat(coeffs[None].astype(np.float32), frames, axis=0)
    out[:, rig.ARKIT_NAMES.index("jawOpen")] = 0.25 + 0.25 * np.sin(2 * np.pi * 3 * t)
    out[:, rig.ARKIT_NAMES.index("eyeBlinkLeft")] = (np.sin(2 * np.pi * 0.5 * t) > 0.9).astype(np.float32)
    out[:, rig.N_EXP + 1] += np.radians(10) * np.sin(2 * np.pi * 0.3 * t)
    return out


def measure(photo: Path, frames: int) -> None:
    """Render ``frames`` talking frames of ``photo``; print each paste's time per frame and sharpness."""
    from flowvq_cli.api import mesh_renderer, prepare_face
    from flowvq_cli.eval import sharpness_ratio
    from flowvq_cli.face import align, rig
    from flowvq_cli.face.paste import PasteBack, WarpPaste
    from flowvq_cli.render.meshwarp import INTERPOLATIONS

    source = prepare_face(photo)
    renderer, _ = mesh_renderer(source)
    rendered = renderer.render(rig.synthesize(source.identity, talking(source.coeffs, frames)))
    alignment = align.Alignment.from_matrix(source.crop_matrix)
    warp_paste = WarpPaste.build(source.image, source.crop_matrix, renderer.source,
                                 INTERPOLATIONS[renderer.config.interpolation])
    paste_back = PasteBack.build(source.image, source.crop_matrix)
    pastes = {"WarpPaste": lambda i: warp_paste(rendered.frames[i], rendered.flow[i], rendered.paint[i]),
              "PasteBack": lambda i: paste_back(rendered.frames[i])}
    h, w = source.image.shape[:2]
    print(f"{photo.name} ({w}x{h}, the crop {1 / alignment.scale:.2f} photo pixels per crop pixel):")
    for name, paste in pastes.items():
        start = time.perf_counter()
        outputs = [paste(i) for i in range(frames)]
        ms = 1000 * (time.perf_counter() - start) / frames
        crops = np.stack([align.crop(frame, alignment) for frame in outputs])
        sharp = float(np.mean(sharpness_ratio(crops, source.crop)))
        print(f"  {name}: {ms:.2f} ms per frame, sharpness {sharp:.3f} of the photo's ({frames} frames)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--photo", type=Path, nargs="+",
                    default=[REPO / "examples" / "face.png", REPO / "examples" / "face2.png"])
    args = ap.parse_args()
    print(f"machine: {machine()}")
    for photo in args.photo:
        measure(photo, args.frames)


if __name__ == "__main__":
    run(main)
