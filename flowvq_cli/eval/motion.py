"""Motion statistics: blinks, landmark jitter, and diversity across sampling seeds.

- **Blinks** are found in an eye-openness track (higher = more open): the eye aspect ratio (EAR,
  Soukupová & Čech 2016) from 68-point landmarks via :func:`eye_aspect_ratio`, or ``1 - eyeBlink``
  from blendshapes. A blink is a run of consecutive frames strictly below a threshold lasting
  0.08–0.48 s (2–12 frames at 25 fps; scaled to other frame rates). Runs that touch the first or
  last frame are not counted: their length is unknown. ``eyeBlink`` read from a video carries a slow
  baseline of its own (a lowered gaze or a squint lowers the upper lid too), so :func:`blink_openness`
  measures it against its rolling median over :data:`BLINK_BASELINE_SECONDS` first.
- **Jitter**: the norm of the second temporal difference ``x[t+1] - 2 x[t] + x[t-1]`` of each point,
  averaged over points (an acceleration; 0 for still or uniformly moving landmarks).
- **Diversity** of K samples of the same job with different seeds:
  pose trace variance — at each frame the trace of the covariance across seeds (sum over the pose
  dimensions of the population variance, ``ddof = 0``), averaged over frames, as in the paper's
  trace map; expression spread — the mean over seed pairs of the per-frame Euclidean distance
  between their expression tracks, averaged over frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np

from flowvq_cli.errors import InputError
from flowvq_cli.eval._arrays import as_track

DEFAULT_FPS = 25.0
EAR_BLINK_THRESHOLD = 0.2
"""Usual EAR threshold: an eye with EAR below 0.2 is closed."""
BLINK_MIN_SECONDS = 2 / 25
"""Shortest blink: 2 frames at 25 fps."""
BLINK_MAX_SECONDS = 12 / 25
"""Longest blink: 12 frames at 25 fps; longer closures are not blinks."""
BLINK_BASELINE_SECONDS = 2.0
"""Window of the rolling median that :func:`blink_openness` takes as the open-eye level (several times a
blink's length, so a blink never moves it)."""
LEFT_EYE = np.arange(36, 42)
RIGHT_EYE = np.arange(42, 48)


@dataclass(frozen=True)
class BlinkResult:
    """Blinks found in an eye-openness track.

    Attributes:
        count: number of blinks.
        rate_per_minute: ``count`` divided by the clip's duration in minutes.
        events: ``(start, end)`` frame ranges of each blink, end-exclusive.
    """

    count: int
    rate_per_minute: float
    events: tuple[tuple[int, int], ...]


def eye_aspect_ratio(landmarks: np.ndarray) -> np.ndarray:
    """Mean eye aspect ratio of both eyes per frame.

    ``EAR = (|p1 - p5| + |p2 - p4|) / (2 |p0 - p3|)`` with ``p0..p5`` the six points of an eye
    (dlib 36–41 and 42–47).

    Args:
        landmarks: ``(T, 68, 2)``.

    Returns:
        ``(T,)`` float64 (≈0.3 open, ≈0 closed).
    """
    lm = as_track(landmarks, "landmarks", ndim=3)
    if lm.shape[1:] != (68, 2):
        raise InputError(f"landmarks must have shape (T, 68, 2), got {lm.shape}")

    def ear(eye: np.ndarray) -> np.ndarray:
        p = lm[:, eye]  # (T, 6, 2)
        vertical = np.linalg.norm(p[:, 1] - p[:, 5], axis=-1) + np.linalg.norm(p[:, 2] - p[:, 4], axis=-1)
        horizontal = np.linalg.norm(p[:, 0] - p[:, 3], axis=-1)
        if np.any(horizontal <= 0):
            raise InputError("eye corners coincide in some frame; check the landmark detector")
        return vertical / (2.0 * horizontal)

    return 0.5 * (ear(LEFT_EYE) + ear(RIGHT_EYE))


def _runs_below(track: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """``(start, end)`` (end-exclusive) of every maximal run of ``track < threshold``."""
    below = np.concatenate([[False], track < threshold, [False]]).astype(np.int8)
    edges = np.diff(below)
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def blink_openness(eye_blink: np.ndarray, fps: float = DEFAULT_FPS) -> np.ndarray:
    """Eye openness (T,) from an ``eyeBlink`` track (T,): ``1 - (eyeBlink - rolling median)``, the median
    over :data:`BLINK_BASELINE_SECONDS` centred on each frame (edges use the frames there are). A blink
    from any resting level then reads as a dip of its own depth; pass it to :func:`detect_blinks` with
    ``threshold=0.5`` (a closure by at least half the eye's range)."""
    track = as_track(eye_blink, "eyeBlink track", ndim=1).astype(np.float64)
    if fps <= 0:
        raise InputError(f"fps must be positive, got {fps}")
    half = max(1, round(BLINK_BASELINE_SECONDS * fps / 2))
    padded = np.pad(track, half, mode="constant", constant_values=np.nan)
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1)  # (T, 2·half + 1)
    baseline = np.nanmedian(windows, axis=1)
    return 1.0 - (track - baseline)


def detect_blinks(openness: np.ndarray, threshold: float = EAR_BLINK_THRESHOLD,
                  fps: float = DEFAULT_FPS) -> BlinkResult:
    """Count blinks in an eye-openness track.

    Args:
        openness: ``(T,)`` eye openness (EAR, or ``1 - eyeBlink``; pass ``threshold=0.5`` then).
        threshold: a frame with openness strictly below it is closed.
        fps: frame rate of the track.

    Returns:
        A :class:`BlinkResult`.
    """
    track = as_track(openness, "eye-openness track", ndim=1)
    if fps <= 0:
        raise InputError(f"fps must be positive, got {fps}")
    min_len = max(1, round(BLINK_MIN_SECONDS * fps))
    max_len = max(min_len, round(BLINK_MAX_SECONDS * fps))
    events = tuple(
        (s, e) for s, e in _runs_below(track, threshold)
        if s > 0 and e < track.size and min_len <= e - s <= max_len
    )
    minutes = track.size / fps / 60.0
    return BlinkResult(len(events), len(events) / minutes, events)


def landmark_jitter(landmarks: np.ndarray) -> np.ndarray:
    """Per-frame jitter: mean over points of ``|x[t+1] - 2 x[t] + x[t-1]|``.

    Args:
        landmarks: ``(T, P, D)`` point tracks (D = 2 or 3), T >= 3.

    Returns:
        ``(T - 2,)`` float64, in the landmarks' units per frame².
    """
    lm = as_track(landmarks, "landmarks", ndim=3)
    if lm.shape[0] < 3:
        raise InputError(f"jitter needs at least 3 frames, got {lm.shape[0]}")
    accel = lm[2:] - 2.0 * lm[1:-1] + lm[:-2]  # (T-2, P, D)
    return np.linalg.norm(accel, axis=-1).mean(axis=1)


def _as_samples(samples: np.ndarray, name: str) -> np.ndarray:
    arr = as_track(samples, name, ndim=3)
    if arr.shape[0] < 2:
        raise InputError(f"{name}: diversity needs at least 2 samples (seeds), got {arr.shape[0]}")
    return arr


def pose_trace_variance(poses: np.ndarray) -> float:
    """Mean over frames of the trace of the across-seed pose covariance.

    Args:
        poses: ``(K, T, 6)`` pose tracks of K seeds (any last dimension works).

    Returns:
        ``mean_t sum_d Var_k[poses[k, t, d]]`` (population variance).
    """
    p = _as_samples(poses, "pose samples")
    return float(p.var(axis=0).sum(axis=-1).mean())


def expression_spread(expressions: np.ndarray) -> float:
    """Mean pairwise distance between the expression tracks of K seeds.

    Args:
        expressions: ``(K, T, 52)`` expression tracks (any last dimension works).

    Returns:
        ``mean over pairs i < j of mean_t |e_i(t) - e_j(t)|``.
    """
    e = _as_samples(expressions, "expression samples")
    k = e.shape[0]
    dists = [np.linalg.norm(e[i] - e[j], axis=-1).mean() for i, j in combinations(range(k), 2)]
    return float(np.mean(dists))

