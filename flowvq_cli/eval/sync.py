"""Lip-sync substitutes for SyncNet: mouth opening vs. audio energy, and the A/V offset.

No SyncNet weights can be had, so lip sync is measured with two signals on the video frame grid:

- the **mouth opening** per frame (from 68-point landmarks: the mean inner-lip gap over the pairs
  61–67, 62–66, 63–65, divided by the mouth width 48–54, so it does not depend on face size), or
  any other per-frame opening track (e.g. the ``jawOpen`` blendshape);
- the **audio energy envelope**: RMS amplitude of the samples that fall in each video frame
  (:func:`audio_energy_envelope`); any per-frame loudness track works as well, e.g. the dB envelope
  of ``flowvq_cli.audio.energy`` (Pearson correlation is invariant to affine rescaling, not to the
  log, so compare results computed with the same envelope).

Their Pearson correlation is computed at every integer offset in ``[-N, N]`` frames.

**Offset sign convention**: a positive offset ``k`` means the **video lags the audio** by ``k``
frames — the mouth at frame ``t`` matches the audio at frame ``t - k``. A correct video has its
best offset at 0; a video whose mouth moves 5 frames late reports ``+5``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from flowvq_cli.errors import InputError
from flowvq_cli.eval._arrays import as_track

DEFAULT_MAX_OFFSET = 15
"""Offsets searched by default: ±15 frames (±0.6 s at 25 fps), SyncNet's usual range."""
MIN_OVERLAP = 3
"""Fewest overlapping frames a correlation is computed on."""
INNER_LIP_PAIRS = ((61, 67), (62, 66), (63, 65))
"""Upper / lower inner-lip landmark pairs (68-point scheme)."""
MOUTH_CORNERS = (48, 54)


@dataclass(frozen=True)
class SyncResult:
    """Correlation of mouth opening and audio energy over a range of offsets.

    Attributes:
        offset: the offset (frames) with the highest correlation; positive = video lags audio.
            None when no offset has a defined correlation (a constant track).
        correlation: the correlation at ``offset`` (nan when undefined).
        correlation_at_zero: the correlation with no shift (the "in sync" score).
        offsets: ``(2N+1,)`` int offsets searched, ``-N..N``.
        correlations: ``(2N+1,)`` float64 correlation per offset (nan where undefined).
    """

    offset: int | None
    correlation: float
    correlation_at_zero: float
    offsets: np.ndarray
    correlations: np.ndarray


def mouth_opening(landmarks: np.ndarray) -> np.ndarray:
    """Mouth opening per frame from 68-point landmarks.

    Args:
        landmarks: ``(T, 68, 2)``.

    Returns:
        ``(T,)`` float64: mean inner-lip gap / mouth width (0 = closed).
    """
    lm = as_track(landmarks, "landmarks", ndim=3)
    if lm.shape[1:] != (68, 2):
        raise InputError(f"landmarks must have shape (T, 68, 2), got {lm.shape}")
    upper = lm[:, [a for a, _ in INNER_LIP_PAIRS]]  # (T, 3, 2)
    lower = lm[:, [b for _, b in INNER_LIP_PAIRS]]
    gap = np.linalg.norm(upper - lower, axis=-1).mean(axis=1)  # (T,)
    width = np.linalg.norm(lm[:, MOUTH_CORNERS[0]] - lm[:, MOUTH_CORNERS[1]], axis=-1)
    if np.any(width <= 0):
        raise InputError("mouth corners coincide in some frame (width 0); check the landmark detector")
    return gap / width


def audio_energy_envelope(wave: np.ndarray, sample_rate: int, fps: float = 25.0,
                          num_frames: int | None = None) -> np.ndarray:
    """RMS amplitude of the audio in each video frame.

    Frame ``t`` covers samples ``[t · sr / fps, (t + 1) · sr / fps)``; missing samples at the end
    count as silence.

    Args:
        wave: ``(N,)`` mono samples.
        sample_rate: samples per second.
        fps: video frame rate.
        num_frames: frames to return (default: enough to cover the audio).

    Returns:
        ``(T,)`` float64 RMS per frame.
    """
    x = as_track(wave, "audio", ndim=1)
    if sample_rate <= 0 or fps <= 0:
        raise InputError(f"sample rate and fps must be positive, got {sample_rate} and {fps}")
    hop = sample_rate / fps
    t = math.ceil(x.size / hop) if num_frames is None else num_frames
    bounds = np.minimum(np.round(np.arange(t + 1) * hop).astype(np.int64), x.size)
    csum = np.concatenate([[0.0], np.cumsum(x * x)])
    energy = csum[bounds[1:]] - csum[bounds[:-1]]  # (T,) sum of squares in each frame
    length = np.round(hop)
    return np.sqrt(np.maximum(energy, 0.0) / length)


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two equal-length vectors; nan when either is constant."""
    a = a - a.mean()
    b = b - b.mean()
    den = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b) / den if den > 0 else float("nan")


def lagged_correlation(video: np.ndarray, audio: np.ndarray, offset: int) -> float:
    """Correlation of ``video[t]`` with ``audio[t - offset]`` over their overlap.

    Args:
        video, audio: ``(T,)`` tracks on the same frame grid.
        offset: frames; positive = video lags audio.
    """
    n = min(video.size, audio.size)
    if n - abs(offset) < MIN_OVERLAP:
        return float("nan")
    if offset >= 0:
        return _pearson(video[offset:n], audio[: n - offset])
    return _pearson(video[: n + offset], audio[-offset:n])


def av_sync(mouth: np.ndarray, energy: np.ndarray, max_offset: int = DEFAULT_MAX_OFFSET) -> SyncResult:
    """Best audio-video offset and the correlation there.

    Args:
        mouth: ``(T,)`` mouth opening per video frame.
        energy: ``(T,)`` audio energy per video frame (lengths may differ; the overlap is used).
        max_offset: search ``-max_offset..max_offset`` frames.

    Returns:
        A :class:`SyncResult` (positive offset = video lags audio).
    """
    v = as_track(mouth, "mouth-opening track", ndim=1)
    a = as_track(energy, "audio energy envelope", ndim=1)
    if max_offset < 0:
        raise InputError(f"max offset must be >= 0, got {max_offset}")
    offsets = np.arange(-max_offset, max_offset + 1)
    corr = np.array([lagged_correlation(v, a, int(k)) for k in offsets])
    zero = float(corr[max_offset])
    if np.all(np.isnan(corr)):
        return SyncResult(None, float("nan"), zero, offsets, corr)
    ties = np.flatnonzero(corr == np.nanmax(corr))
    best = int(ties[np.argmin(np.abs(offsets[ties]))])  # on a tie, the offset closest to 0
    return SyncResult(int(offsets[best]), float(corr[best]), zero, offsets, corr)
