"""Speech energy per video frame: the loudness envelope lip-sync metrics and the synthetic corpus use.

For video frame t (covering samples [t·sr/fps, (t+1)·sr/fps)) the level is the RMS of those samples in
dB relative to an RMS of 1.0, floored at :data:`ENERGY_FLOOR_DB`, then smoothed over time with a short
Hann kernel (:data:`SMOOTH_FRAMES`) so single-frame flicker does not look like syllables.
"""

from __future__ import annotations

import numpy as np

from flowvq_cli.audio.features import VIDEO_FPS, frames_for

ENERGY_FLOOR_DB = -80.0
"""Level given to digital silence (and the floor for everything else), in dB."""

SMOOTH_FRAMES = 3
"""Width of the Hann smoothing kernel in video frames (1 = no smoothing)."""

CHUNK_FRAMES = 1500
"""Video frames measured at a time (60 s at 25 fps): memory stays small for long recordings."""

ACTIVITY_BELOW_PEAK_DB = 30.0
"""Frames more than this many dB under the loudest frame count as non-speech in :func:`speech_activity`."""


def frame_rms_db(samples: np.ndarray, sr: int, n_frames: int, fps: float = VIDEO_FPS) -> np.ndarray:
    """Unsmoothed RMS level of each video frame's samples: (N,) -> (T,) float32 dB.

    Frames past the end of the signal get :data:`ENERGY_FLOOR_DB`.
    """
    bounds = np.rint(np.arange(n_frames + 1) * sr / fps).astype(np.int64)  # (T + 1,) sample indices
    bounds = np.minimum(bounds, samples.size)
    energy = np.zeros(n_frames)  # (T,) sum of squares per frame
    for first in range(0, n_frames, CHUNK_FRAMES):  # chunks keep the float64 temporaries small
        edges = bounds[first : first + CHUNK_FRAMES + 1]
        part = samples[edges[0] : edges[-1]].astype(np.float64)
        squares = np.concatenate([[0.0], np.cumsum(part * part)])  # (len(part) + 1,)
        energy[first : first + edges.size - 1] = np.diff(squares[edges - edges[0]])
    counts = np.diff(bounds)
    power = np.divide(energy, counts, out=np.zeros(n_frames), where=counts > 0)
    floor = 10.0 ** (ENERGY_FLOOR_DB / 10.0)
    return (10.0 * np.log10(np.maximum(power, floor))).astype(np.float32)


def smooth(values: np.ndarray, width: int = SMOOTH_FRAMES) -> np.ndarray:
    """Hann-weighted moving average of a (T,) sequence with edge padding; returns (T,) float32."""
    if width <= 1 or values.size == 0:
        return values.astype(np.float32, copy=True)
    kernel = np.hanning(width + 2)[1:-1]  # (width,) strictly positive weights
    kernel /= kernel.sum()
    left = (width - 1) // 2
    padded = np.pad(values.astype(np.float64), (left, width - 1 - left), mode="edge")
    return np.convolve(padded, kernel, mode="valid").astype(np.float32)


def energy_envelope(
    samples: np.ndarray,
    sr: int,
    n_frames: int | None = None,
    fps: float = VIDEO_FPS,
    smooth_frames: int = SMOOTH_FRAMES,
) -> np.ndarray:
    """Smoothed speech energy per video frame.

    Args:
        samples: (N,) mono samples.
        sr: their sample rate (Hz).
        n_frames: T; defaults to ``frames_for(N / sr, fps)``.
        fps: video frame rate.
        smooth_frames: Hann kernel width in frames.

    Returns:
        (T,) float32 levels in dB (≥ :data:`ENERGY_FLOOR_DB`).
    """
    if n_frames is None:
        n_frames = frames_for(samples.size / sr, fps)
    return smooth(frame_rms_db(samples, sr, n_frames, fps), smooth_frames)


def speech_activity(envelope_db: np.ndarray, below_peak_db: float = ACTIVITY_BELOW_PEAK_DB) -> np.ndarray:
    """(T,) bool: frames within ``below_peak_db`` of the loudest frame (and above the floor)."""
    if envelope_db.size == 0:
        return np.zeros(0, dtype=bool)
    threshold = max(float(envelope_db.max()) - below_peak_db, ENERGY_FLOOR_DB)
    return envelope_db > threshold
