"""Landmark distances M-LMD and F-LMD (Chen et al. 2018 / 2019 protocol), on 68-point landmarks.

Protocol:

1. landmarks of the generated and ground-truth frames come from the same detector (dlib's
   68-point scheme; the detector is plugged in by the caller — this module takes arrays);
2. per frame, each set is centred: its mean point is subtracted, which removes head translation.
   ``centre_on="all"`` (default) uses the mean of all 68 points, so a mouth that moves relative to
   the rest of the face still counts; ``centre_on="subset"`` uses the mean of the evaluated points
   only (M-LMD then measures mouth shape alone);
3. the Euclidean distance between corresponding points, averaged over the evaluated points
   (mouth 48–67 for M-LMD, all 68 for F-LMD) and then over frames.

Distances are in the landmarks' units (pixels of the frames they were detected on); compare only
results computed at the same resolution.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from flowvq_cli.errors import InputError
from flowvq_cli.eval._arrays import as_track

NUM_LANDMARKS = 68
MOUTH = np.arange(48, 68)
"""Indices of the 20 mouth landmarks (outer lip 48–59, inner lip 60–67)."""
ALL = np.arange(NUM_LANDMARKS)

CentreOn = Literal["all", "subset"]


def _as_landmarks(values: np.ndarray, name: str) -> np.ndarray:
    """Check a ``(T, 68, 2)`` landmark track (``(68, 2)`` = one frame)."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[None]
    arr = as_track(arr, name, ndim=3)
    if arr.shape[1:] != (NUM_LANDMARKS, 2):
        raise InputError(f"{name} must have shape (T, 68, 2) (dlib's 68-point scheme), got {arr.shape}")
    return arr


def lmd_per_frame(pred: np.ndarray, gt: np.ndarray, indices: np.ndarray = ALL,
                  centre_on: CentreOn = "all") -> np.ndarray:
    """Mean centred landmark distance of each frame.

    Args:
        pred, gt: ``(T, 68, 2)`` landmarks of the generated and ground-truth frames.
        indices: ``(P,)`` landmark indices to evaluate.
        centre_on: centre on the mean of ``"all"`` 68 points or of the evaluated ``"subset"``.

    Returns:
        ``(T,)`` float64 distances.
    """
    p = _as_landmarks(pred, "predicted landmarks")
    g = _as_landmarks(gt, "ground-truth landmarks")
    if p.shape != g.shape:
        raise InputError(f"landmark tracks differ in length: {p.shape[0]} vs {g.shape[0]} frames; "
                         "trim both videos to the same frames")
    if centre_on not in ("all", "subset"):
        raise InputError(f"unknown centring {centre_on!r}; use 'all' or 'subset'")
    idx = np.asarray(indices)
    centre_idx = ALL if centre_on == "all" else idx

    def centred(x: np.ndarray) -> np.ndarray:
        return x[:, idx] - x[:, centre_idx].mean(axis=1, keepdims=True)  # (T, P, 2)

    return np.linalg.norm(centred(p) - centred(g), axis=-1).mean(axis=1)


def m_lmd(pred: np.ndarray, gt: np.ndarray, centre_on: CentreOn = "all") -> np.ndarray:
    """M-LMD per frame: mouth landmarks 48–67. See :func:`lmd_per_frame`; returns ``(T,)``."""
    return lmd_per_frame(pred, gt, MOUTH, centre_on)


def f_lmd(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """F-LMD per frame: all 68 landmarks. See :func:`lmd_per_frame`; returns ``(T,)``."""
    return lmd_per_frame(pred, gt, ALL, "all")
