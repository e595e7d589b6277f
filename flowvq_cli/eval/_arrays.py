"""Input checks and conversions shared by the metric modules.

Metrics take arrays, never files: frames are ``(T, H, W, 3) uint8`` RGB (a single ``(H, W, 3)``
image is accepted where it makes sense and treated as ``T = 1``), landmark tracks ``(T, P, 2)``.
A wrong shape or dtype raises :class:`~flowvq_cli.errors.InputError` with what to pass instead.
"""

from __future__ import annotations

import numpy as np

from flowvq_cli.errors import InputError

BT601_LUMA = np.array([0.299, 0.587, 0.114])
"""ITU-R BT.601 luma weights (R, G, B), the ones MATLAB's ``rgb2gray`` and OpenCV use."""


def as_frames(frames: np.ndarray, name: str) -> np.ndarray:
    """Return ``frames`` as a ``(T, H, W, 3) uint8`` array, checking shape and dtype.

    Args:
        frames: ``(T, H, W, 3)`` or ``(H, W, 3)`` uint8 RGB.
        name: what the array is, for the error message (``"predicted frames"``).

    Returns:
        ``(T, H, W, 3) uint8`` (a view where possible).
    """
    arr = np.asarray(frames)
    if arr.dtype != np.uint8:
        raise InputError(f"{name} must be uint8 RGB in 0..255, got dtype {arr.dtype}; "
                         "convert with np.clip(x * 255, 0, 255).round().astype(np.uint8)")
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.shape[0] == 0:
        raise InputError(f"{name} must have shape (T, H, W, 3) with T >= 1, got {arr.shape}")
    return arr


def check_same_shape(a: np.ndarray, b: np.ndarray, what: str) -> None:
    """Raise :class:`InputError` unless ``a`` and ``b`` have the same shape."""
    if a.shape != b.shape:
        raise InputError(f"{what}: shapes differ, {a.shape} vs {b.shape}; "
                         "trim both to the same number of frames and resize to the same size")


def to_gray(images: np.ndarray) -> np.ndarray:
    """BT.601 luma of RGB images, as float64 on the 0..255 scale.

    Args:
        images: ``(..., H, W, 3)`` RGB (any real dtype on the 0..255 scale) or ``(..., H, W)`` gray.

    Returns:
        ``(..., H, W)`` float64.
    """
    arr = np.asarray(images, dtype=np.float64)
    if arr.ndim >= 3 and arr.shape[-1] == 3:
        return arr @ BT601_LUMA
    return arr


def as_track(values: np.ndarray, name: str, ndim: int) -> np.ndarray:
    """Return ``values`` as a finite float64 array with ``ndim`` dimensions.

    Args:
        values: any array-like.
        name: what it is, for the error message.
        ndim: the required number of dimensions.
    """
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != ndim:
        raise InputError(f"{name} must have {ndim} dimensions, got shape {arr.shape}")
    if arr.size == 0:
        raise InputError(f"{name} is empty (shape {arr.shape}); pass at least one frame")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{name} contains NaN or infinite values; drop or interpolate the frames "
                         "where detection failed before computing metrics")
    return arr
