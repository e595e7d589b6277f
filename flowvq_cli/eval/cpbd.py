"""CPBD: no-reference sharpness by the cumulative probability of blur detection.

Implemented from the description in Narvekar & Karam, "A No-Reference Image Blur Metric Based on
the Cumulative Probability of Blur Detection (CPBD)", IEEE TIP 20(9), 2011. Higher = sharper,
in [0, 1]. Steps, on the BT.601 luma of the image (0..255 scale):

1. **Edges whose width is measured**: Sobel gradient (3×3) of the unsmoothed image; an edge pixel
   has magnitude above ``2 × RMS(magnitude)`` (MATLAB's automatic Sobel threshold,
   ``sqrt(4 · mean(mag²))``) and is a local maximum of the magnitude along its dominant gradient
   axis (thinning).
2. **Edge width along the gradient**: the gradient direction is quantised to the dominant axis
   (horizontal when ``|gx| ≥ |gy|``, else vertical — the common "horizontal edges" approach of
   Marziliano et al., extended to both axes so horizontal edges count too). Along that axis we walk
   from the edge pixel, in both directions, while the intensity keeps strictly rising (resp.
   falling) in the gradient's sense; the width is the distance between the local extremum reached
   on one side and the one reached on the other. Because a straight edge at angle θ to the axis is
   ``1 / cos θ`` wider along the axis than across it, the width is multiplied by
   ``cos θ = |g_axis| / |g|`` to measure it along the gradient direction.
3. **Edge blocks**: the image is cut into 64×64 blocks (a partial block at the right or bottom
   border is dropped, as in the paper; an image under 64 pixels in a dimension is one block in that
   dimension). A block is an edge block when more than 0.2 % (0.002) of its pixels are Canny edges
   (Gaussian σ = 1 pre-smoothing, hysteresis thresholds 20 / 50 on OpenCV's L2 Sobel magnitude).
   Only edge pixels inside edge blocks are used.
4. **JNB width** per block from its contrast (max − min luma): 5 for contrast ≤ 50, 3 otherwise.
5. **Probability of blur detection** per edge: ``P = 1 − exp(−|w / w_JNB|^β)``, β = 3.6.
6. **CPBD** = the fraction of edges with ``P ≤ P_JNB``, where ``P_JNB = 1 − e^{−1} ≈ 63 %`` is the
   probability at ``w = w_JNB``. The paper reads this off the normalised histogram of P; we
   evaluate the empirical CDF exactly (no histogram bins), so an edge exactly at the JNB width
   counts as not blurred — as in the 1 %-bin histogram reading.

An image without any measurable edge in an edge block has no CPBD: ``nan`` is returned (summaries
skip it, see :mod:`flowvq_cli.eval.report`).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from flowvq_cli.eval._arrays import as_frames, to_gray

CPBD_BETA = 3.6
"""Slope β of the psychometric function."""
CPBD_BLOCK = 64
"""Block side in pixels."""
EDGE_BLOCK_RATIO = 0.002
"""A block with more than this fraction of Canny edge pixels is an edge block."""
JNB_CONTRAST_SPLIT = 50.0
"""Block contrast (luma, 0..255) at or below which the JNB width is the low-contrast one."""
JNB_WIDTH_LOW_CONTRAST = 5.0
JNB_WIDTH_HIGH_CONTRAST = 3.0
P_JNB = 1.0 - math.exp(-1.0)
"""Probability of blur detection at the just-noticeable width (≈ 63 %)."""
SOBEL_RMS_FACTOR = 2.0
"""Edge threshold = this × RMS of the Sobel magnitude (MATLAB's ``sqrt(4 · mean(mag²))``)."""
CANNY_SIGMA = 1.0
CANNY_LOW = 20.0
CANNY_HIGH = 50.0


def _walk_lengths(steps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """How far one can walk right / left from each pixel while ``steps`` holds.

    Args:
        steps: ``(H, W - 1)`` bool, ``steps[:, c]`` = the move between columns c and c+1 is allowed.

    Returns:
        ``(right, left)``, each ``(H, W)`` int: the number of consecutive allowed moves to the
        right of column c, and to its left.
    """
    h, w1 = steps.shape
    right = np.zeros((h, w1 + 1), dtype=np.int64)
    left = np.zeros((h, w1 + 1), dtype=np.int64)
    for c in range(w1 - 1, -1, -1):
        right[:, c] = np.where(steps[:, c], right[:, c + 1] + 1, 0)
    for c in range(1, w1 + 1):
        left[:, c] = np.where(steps[:, c - 1], left[:, c - 1] + 1, 0)
    return right, left


def edge_widths_along_rows(gray: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """Marziliano edge width of every pixel, measured along its row.

    Args:
        gray: ``(H, W)`` float64 image.
        grad: ``(H, W)`` horizontal derivative; its sign says which way the edge rises.

    Returns:
        ``(H, W)`` float64: distance (pixels) between the local minimum and maximum that enclose
        the pixel, following the rise (``grad > 0``) or the fall (``grad < 0``); 0 (= not
        measurable) where ``grad == 0`` or where a walk reached the image border before an extremum.
    """
    diff = np.diff(gray, axis=1)  # (H, W-1)
    up_right, up_left = _walk_lengths(diff > 0)
    down_right, down_left = _walk_lengths(diff < 0)
    rising = grad > 0
    right = np.where(rising, up_right, down_right)
    left = np.where(rising, up_left, down_left)
    cols = np.arange(gray.shape[1])[None, :]  # (1, W)
    open_ended = (cols + right >= gray.shape[1] - 1) | (cols - left <= 0)  # walk hit the border
    return np.where((grad == 0) | open_ended, 0, right + left).astype(np.float64)


def _sobel_edges(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Thinned Sobel edges and the gradient.

    Returns:
        ``(edges, gx, gy)``: ``(H, W)`` bool edge map and the two ``(H, W)`` derivatives.
    """
    gx = cv2.Sobel(gray, cv2.CV_64F, 1, 0, ksize=3)
    gy = cv2.Sobel(gray, cv2.CV_64F, 0, 1, ksize=3)
    mag = np.hypot(gx, gy)
    threshold = SOBEL_RMS_FACTOR * math.sqrt(float(np.mean(mag * mag)))
    padded = np.pad(mag, 1, mode="edge")
    left, right = padded[1:-1, :-2], padded[1:-1, 2:]
    up, down = padded[:-2, 1:-1], padded[2:, 1:-1]
    horizontal = np.abs(gx) >= np.abs(gy)
    peak = np.where(horizontal, (mag >= left) & (mag >= right), (mag >= up) & (mag >= down))
    edges = (mag > threshold) & peak & (mag > 0)
    return edges, gx, gy


def _canny_edges(gray: np.ndarray) -> np.ndarray:
    """``(H, W)`` bool Canny edge map used to select edge blocks."""
    img8 = np.clip(np.rint(gray), 0, 255).astype(np.uint8)
    smooth = cv2.GaussianBlur(img8, (0, 0), CANNY_SIGMA)
    return cv2.Canny(smooth, CANNY_LOW, CANNY_HIGH, L2gradient=True) > 0


def _block_jnb_map(gray: np.ndarray, canny: np.ndarray) -> np.ndarray:
    """Per-pixel JNB width: 0 outside edge blocks (and in the dropped border strips).

    Args:
        gray: ``(H, W)`` float64 image; canny: ``(H, W)`` bool edges.

    Returns:
        ``(H, W)`` float64 JNB width map.
    """
    h, w = gray.shape
    bh, bw = min(CPBD_BLOCK, h), min(CPBD_BLOCK, w)
    jnb = np.zeros_like(gray)
    for y in range(0, h - bh + 1, bh):
        for x in range(0, w - bw + 1, bw):
            block = (slice(y, y + bh), slice(x, x + bw))
            if canny[block].mean() <= EDGE_BLOCK_RATIO:
                continue
            contrast = float(gray[block].max() - gray[block].min())
            low = contrast <= JNB_CONTRAST_SPLIT
            jnb[block] = JNB_WIDTH_LOW_CONTRAST if low else JNB_WIDTH_HIGH_CONTRAST
    return jnb


def edge_widths(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Widths of the measured edges in edge blocks and their blocks' JNB widths.

    Args:
        gray: ``(H, W)`` float64 luma on the 0..255 scale.

    Returns:
        ``(widths, jnb)``: two ``(N,)`` float64 arrays, one entry per edge pixel (N may be 0).
    """
    edges, gx, gy = _sobel_edges(gray)
    jnb_map = _block_jnb_map(gray, _canny_edges(gray))
    mag = np.hypot(gx, gy)
    horizontal = np.abs(gx) >= np.abs(gy)
    w_rows = edge_widths_along_rows(gray, gx)
    w_cols = edge_widths_along_rows(gray.T, gy.T).T
    with np.errstate(invalid="ignore", divide="ignore"):
        cos_theta = np.where(horizontal, np.abs(gx), np.abs(gy)) / mag
    widths = np.where(horizontal, w_rows, w_cols) * cos_theta
    keep = edges & (jnb_map > 0) & (widths > 0)
    return widths[keep], jnb_map[keep]


def blur_probability(widths: np.ndarray, jnb: np.ndarray) -> np.ndarray:
    """Probability of detecting blur at edges of width ``widths`` (same shape as the inputs)."""
    return 1.0 - np.exp(-np.abs(widths / jnb) ** CPBD_BETA)


def cpbd_image(image: np.ndarray) -> float:
    """CPBD of one image.

    Args:
        image: ``(H, W, 3)`` RGB or ``(H, W)`` gray, on the 0..255 scale.

    Returns:
        CPBD in [0, 1] (higher = sharper), or ``nan`` when the image has no measurable edge.
    """
    widths, jnb = edge_widths(to_gray(image))
    if widths.size == 0:
        return float("nan")
    return float(np.mean(blur_probability(widths, jnb) <= P_JNB))


def cpbd(frames: np.ndarray) -> np.ndarray:
    """CPBD per frame.

    Args:
        frames: ``(T, H, W, 3)`` uint8 RGB (or one ``(H, W, 3)`` image).

    Returns:
        ``(T,)`` float64 in [0, 1]; ``nan`` for a frame without measurable edges.
    """
    arr = as_frames(frames, "frames")
    return np.array([cpbd_image(frame) for frame in arr])
