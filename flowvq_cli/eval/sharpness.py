"""Variance-of-the-Laplacian sharpness, and the ratio output / source over the face region.

The Laplacian is the 4-neighbour kernel ``[[0, 1, 0], [1, -4, 1], [0, 1, 0]]`` (OpenCV's
``ksize=1``) applied to the BT.601 luma (0..255, float64); borders are mirrored without repeating
the edge pixel (OpenCV's default, ``BORDER_REFLECT_101``). Its variance is high for crisp detail
and drops with blur. A ratio near 1 says the generated face keeps the source
photo's detail; below 1, the render is softer than the source.
"""

from __future__ import annotations

import cv2
import numpy as np

from flowvq_cli.errors import InputError
from flowvq_cli.eval._arrays import as_frames, to_gray

Box = tuple[int, int, int, int]
"""A face region ``(x0, y0, x1, y1)`` in pixels, end-exclusive."""


def _crop(image: np.ndarray, box: Box | None) -> np.ndarray:
    """Crop ``(H, W, ...)`` to ``box``; the whole image when ``box`` is None."""
    if box is None:
        return image
    x0, y0, x1, y1 = box
    h, w = image.shape[:2]
    if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
        raise InputError(f"face box {box} is empty or outside the {w}x{h} image; "
                         "pass (x0, y0, x1, y1) with 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height")
    return image[y0:y1, x0:x1]


def laplacian_variance(image: np.ndarray, box: Box | None = None) -> float:
    """Variance of the Laplacian of one image (or of its ``box`` region).

    Args:
        image: ``(H, W, 3)`` RGB or ``(H, W)`` gray, on the 0..255 scale.
        box: optional region ``(x0, y0, x1, y1)``.

    Returns:
        The variance (luma units squared), ≥ 0.
    """
    gray = to_gray(_crop(np.asarray(image), box))
    if min(gray.shape) < 3:
        raise InputError(f"region of {gray.shape[1]}x{gray.shape[0]} pixels is too small for a "
                         "Laplacian; pass a face region of at least 3x3")
    lap = cv2.Laplacian(gray, cv2.CV_64F, ksize=1, borderType=cv2.BORDER_REFLECT_101)
    return float(lap.var())


def sharpness_ratio(frames: np.ndarray, source: np.ndarray, frame_box: Box | None = None,
                    source_box: Box | None = None) -> np.ndarray:
    """Laplacian-variance sharpness of each output frame relative to the source photo.

    Args:
        frames: ``(T, H, W, 3)`` uint8 generated frames.
        source: ``(H', W', 3)`` uint8 source photo (or its aligned crop).
        frame_box: face region in the frames (the whole frame when None).
        source_box: face region in the source (the whole image when None).

    Returns:
        ``(T,)`` float64 ratios ``var(∇² frame_t) / var(∇² source)``.
    """
    arr = as_frames(frames, "generated frames")
    src = as_frames(source, "source image")[0]
    reference = laplacian_variance(src, source_box)
    if reference == 0.0:
        raise InputError("the source face region is perfectly flat (Laplacian variance 0), so a "
                         "sharpness ratio is undefined; check the face box")
    return np.array([laplacian_variance(frame, frame_box) / reference for frame in arr])
