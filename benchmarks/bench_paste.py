"""Putting rendered faces back into the photo: milliseconds per frame, and how sharp the result stays.

    python benchmarks/bench_paste.py [--frames 100] [--photo PHOTO ...]

For each photo (default: both example photos), the mesh-warp renderer renders frames whose jaw opens and
closes, head turns and lids blink (as ``bench_meshwarp.py``), and each frame goes into the photo

- ``WarpPaste`` (what ``generate`` does): the renderer's flow, mapped into photo pixels, resamples the photo
  itself; the mouth interior and closing lids are drawn again at the photo's resolution;
- ``WarpPaste, paint from the frame``: the same with the painted mouth interior and lids resampled from
  the 256² frame;
- ``PasteBack`` (the 256² frame resampled into the photo), for comparison.

Prints the time per frame of each (the rendering itself not included); the face's sharpness in the result:
the aligned crop of the output frames against the photo's own crop (variance of the Laplacian,
``flowvq_cli.eval.sharpness_ratio``, as ``flowvq evaluate`` measures it, without the H.264 encode); and the
mouth's detail at the photo's resolution: the variance of the Laplacian over the box of the painted mouth
interior in the photo, averaged over the frames with an open mouth (at 256² the three look alike when the
photo's face is larger than the crop: the crop cannot hold the difference).
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
    from flowvq_cli.api import mesh_renderer
    from flowvq_cli.eval import sharpness_ratio
    from flowvq_cli.face import align, rig
    from flowvq_cli.face.paste import PasteBack, WarpPaste
    from flowvq_cli.face.source import prepare_face

    source = prepare_face(photo)
    renderer, _ = mesh_renderer(source)
    meshes = rig.synthesize(source.identity, talking(source.coeffs, frames))
    rendered = renderer.render(meshes)
    alignment = align.Alignment.from_matrix(source.crop_matrix)
    warp_paste = WarpPaste.from_renderer(source.image, source.crop_matrix, renderer, draw=True)
    paste_back = PasteBack.build(source.image, source.crop_matrix)
    pastes = {"WarpPaste": lambda i: warp_paste(rendered.frames[i], rendered.flow[i], rendered.paint[i],
                                                rendered.mouth_paint[i], meshes[i]),
              "WarpPaste, paint from the frame": lambda i: warp_paste(rendered.frames[i], rendered.flow[i],
                                                                      rendered.paint[i]),
              "PasteBack": lambda i: paste_back(rendered.frames[i])}
    to_photo = np.linalg.inv(np.vstack([source.crop_matrix, [0.0, 0.0, 1.0]]))[:2]
    open_mouth = [i for i in range(frames) if rendered.mouth_paint[i].any()]
    h, w = source.image.shape[:2]
    print(f"{photo.name} ({w}x{h}, the crop {1 / alignment.scale:.2f} photo pixels per crop pixel):")
    for name, paste in pastes.items():
        start = time.perf_counter()
        outputs = [paste(i) for i in range(frames)]
        ms = 1000 * (time.perf_counter() - start) / frames
        crops = np.stack([align.crop(frame, alignment) for frame in outputs])
        sharp = float(np.mean(sharpness_ratio(crops, source.crop)))
        mouth = np.mean([mouth_detail(outputs[i], rendered.mouth_paint[i], to_photo) for i in open_mouth])
        print(f"  {name}: {ms:.2f} ms per frame, sharpness {sharp:.3f} of the photo's, mouth detail {mouth:.1f} "
              f"({frames} frames, {len(open_mouth)} with an open mouth)")


def mouth_detail(photo_frame: np.ndarray, mouth_paint: np.ndarray, to_photo: np.ndarray) -> float:
    """Variance of the Laplacian (grey levels²) over the photo box of a frame's painted mouth interior."""
    import cv2

    ys, xs = np.nonzero(mouth_paint > 0)
    corners = np.array([[xs.min(), ys.min()], [xs.max(), ys.min()], [xs.max(), ys.max()], [xs.min(), ys.max()]])
    box = corners @ to_photo[:, :2].T + to_photo[:, 2]  # (4, 2) photo pixels
    x0, y0 = np.maximum(np.floor(box.min(axis=0)).astype(int), 0)
    x1, y1 = np.ceil(box.max(axis=0)).astype(int) + 1
    grey = cv2.cvtColor(np.ascontiguousarray(photo_frame[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


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
