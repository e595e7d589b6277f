"""Full-reference image quality: SSIM and PSNR, per frame.

SSIM protocol (Wang et al. 2004, "Image quality assessment: from error visibility to structural
similarity"):

- local statistics under an isotropic Gaussian window, σ = 1.5, truncated at 3.5 σ (an 11-tap
  window), image borders handled by reflection;
- constants ``C1 = (0.01 L)²``, ``C2 = (0.03 L)²`` with ``L = 255``; population (not sample)
  covariance, as in the paper;
- the SSIM map is averaged after dropping a 5-pixel border (the window radius), where the window
  would reach past the image;
- ``mode="rgb"`` (default): SSIM of each of R, G, B, averaged — the number
  ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=255, channel_axis=-1)`` gives, which is what talking-face
  papers usually report; ``mode="luma"``: SSIM of the BT.601 luma only (Wang et al.'s own setting).

PSNR is ``10 log10(255² / MSE)`` over all pixels and channels of a frame; identical frames give
``inf``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy.ndimage import gaussian_filter

from flowvq_cli.errors import InputError
from flowvq_cli.eval._arrays import as_frames, check_same_shape, to_gray

DATA_RANGE = 255.0
"""Dynamic range L of uint8 frames."""
SSIM_K1 = 0.01
SSIM_K2 = 0.03
SSIM_SIGMA = 1.5
"""Standard deviation of the Gaussian window, in pixels."""
SSIM_TRUNCATE = 3.5
"""Window radius in σ: ``int(3.5 · 1.5 + 0.5) = 5`` → 11 taps."""

SsimMode = Literal["rgb", "luma"]


def _window_radius() -> int:
    return int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)


def _ssim_map(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Local SSIM of two float64 images.

    Args:
        x, y: ``(H, W)`` or ``(H, W, C)`` float64; channels are filtered independently.

    Returns:
        The SSIM map, same shape as ``x``.
    """
    sigma = (SSIM_SIGMA, SSIM_SIGMA) + (0.0,) * (x.ndim - 2)  # no mixing across channels

    def blur(a: np.ndarray) -> np.ndarray:
        return gaussian_filter(a, sigma=sigma, truncate=SSIM_TRUNCATE, mode="reflect")

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x * mu_x
    var_y = blur(y * y) - mu_y * mu_y
    cov_xy = blur(x * y) - mu_x * mu_y
    c1 = (SSIM_K1 * DATA_RANGE) ** 2
    c2 = (SSIM_K2 * DATA_RANGE) ** 2
    num = (2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    return num / den


def ssim_image(pred: np.ndarray, gt: np.ndarray, mode: SsimMode = "rgb") -> float:
    """SSIM of one pair of images.

    Args:
        pred, gt: ``(H, W, 3)`` uint8 RGB, same shape, at least 11×11.
        mode: ``"rgb"`` (mean of per-channel SSIM) or ``"luma"`` (BT.601 luma).

    Returns:
        SSIM in [-1, 1]; 1 for identical images.
    """
    return float(ssim(pred, gt, mode=mode)[0])


def ssim(pred_frames: np.ndarray, gt_frames: np.ndarray, mode: SsimMode = "rgb") -> np.ndarray:
    """SSIM per frame.

    Args:
        pred_frames, gt_frames: ``(T, H, W, 3)`` uint8 RGB, same shape (``(H, W, 3)`` = one frame).
        mode: ``"rgb"`` (mean of per-channel SSIM, skimage's ``channel_axis=-1``) or ``"luma"``.

    Returns:
        ``(T,)`` float64 SSIM values.
    """
    pred = as_frames(pred_frames, "predicted frames")
    gt = as_frames(gt_frames, "ground-truth frames")
    check_same_shape(pred, gt, "SSIM")
    if mode not in ("rgb", "luma"):
        raise InputError(f"unknown SSIM mode {mode!r}; use 'rgb' or 'luma'")
    pad = _window_radius()
    if min(pred.shape[1:3]) < 2 * pad + 1:
        raise InputError(f"frames of {pred.shape[1]}x{pred.shape[2]} are too small for SSIM's "
                         f"{2 * pad + 1}-pixel window; pass larger frames")
    out = np.empty(pred.shape[0])
    for t in range(pred.shape[0]):  # frame by frame: memory stays flat for long clips
        if mode == "luma":
            x, y = to_gray(pred[t]), to_gray(gt[t])  # (H, W)
        else:
            x, y = pred[t].astype(np.float64), gt[t].astype(np.float64)  # (H, W, 3)
        inner = _ssim_map(x, y)[pad:-pad, pad:-pad]
        out[t] = inner.mean()  # for "rgb" = mean over channels of each channel's mean
    return out


def psnr(pred_frames: np.ndarray, gt_frames: np.ndarray) -> np.ndarray:
    """PSNR per frame, in dB.

    Args:
        pred_frames, gt_frames: ``(T, H, W, 3)`` uint8 RGB, same shape.

    Returns:
        ``(T,)`` float64; ``inf`` where a frame is identical to its reference.
    """
    pred = as_frames(pred_frames, "predicted frames")
    gt = as_frames(gt_frames, "ground-truth frames")
    check_same_shape(pred, gt, "PSNR")
    out = np.empty(pred.shape[0])
    for t in range(pred.shape[0]):
        diff = pred[t].astype(np.float64) - gt[t].astype(np.float64)
        mse = float(np.mean(diff * diff))
        out[t] = np.inf if mse == 0.0 else 10.0 * np.log10(DATA_RANGE**2 / mse)
    return out
