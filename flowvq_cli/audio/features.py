"""Audio features the flows are conditioned on (docs/design.md §3).

Pipeline for one recording::

    samples (N,) 16 kHz ─► loudness normalisation (gated RMS → target_dbfs)
                        ─► log-mel (M, 80) at 100 Hz      (torch.stft + our own mel filterbank)
                        ─► per-utterance mean/variance normalisation, per mel bin
                        ─► video_frame_features (T, 4·80) at 25 fps, T = frames_for(duration, fps)
                        ─► audio_windows (T, 2k+1, 320)   ±k video frames, edge-padded

Choices:
- Mel scale: HTK formula ``mel = 2595·log10(1 + f/700)``, triangular filters with unit area
  ("Slaney" normalisation) so that bins of different widths have comparable levels.
- Power spectrum (|X|²) of a Hann window of 400 samples (25 ms) zero-padded to 512, hop 160 (10 ms),
  frames centred on ``m·hop`` (reflect padding), so mel frame m describes time m / 100 s.
- ``log(max(mel_power, LOG_FLOOR))`` in natural log units.
- Long recordings: the STFT runs over chunks of :data:`STFT_CHUNK_FRAMES` frames, so peak memory is
  the signal plus the (M, 80) output, never the full (M, 257) complex spectrogram.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from flowvq_cli.audio.load import SAMPLE_RATE, load_audio, mean_square
from flowvq_cli.fsutil import save_npy_atomic, sha256_file

FEATURE_VERSION = 1
"""Bumped whenever the feature computation changes, so that caches made by older code are not reused."""

VIDEO_FPS = 25.0
"""Frame rate the models were designed for: 4 mel frames per video frame."""

STFT_CHUNK_FRAMES = 3000
"""STFT frames computed at once (30 s of audio): bounds peak memory for long recordings."""

LOUDNESS_BLOCK_S = 0.1
"""Block length (s) of the gated RMS used for loudness normalisation."""

LOUDNESS_GATE_DBFS = -70.0
"""Blocks quieter than this are left out of the loudness estimate (pauses, as in ITU-R BS.1770)."""

NORM_EPS = 1e-5
"""Added to the standard deviation in per-utterance normalisation (a constant bin stays finite)."""


@dataclass(frozen=True)
class AudioFeatureConfig:
    """Constants of the log-mel front end. The defaults are what the shipped weights were trained on."""

    sample_rate: int = SAMPLE_RATE
    n_fft: int = 512
    win_length: int = 400  # 25 ms
    hop_length: int = 160  # 10 ms -> 100 mel frames per second
    n_mels: int = 80
    fmin: float = 55.0
    fmax: float = 7600.0
    log_floor: float = 1e-10  # -100 dB on the power scale
    target_dbfs: float = -23.0  # loudness normalisation target (gated RMS)
    mels_per_video_frame: int = 4  # at VIDEO_FPS

    @classmethod
    def tiny(cls) -> AudioFeatureConfig:
        """A small front end for fast tests (16 mel bins)."""
        return cls(n_mels=16)

    @property
    def mel_rate(self) -> float:
        """Mel frames per second."""
        return self.sample_rate / self.hop_length

    @property
    def video_feature_dim(self) -> int:
        """F of the per-video-frame features: ``mels_per_video_frame * n_mels``."""
        return self.mels_per_video_frame * self.n_mels


# ---------------------------------------------------------------------------------------------
# Log-mel
# ---------------------------------------------------------------------------------------------


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """HTK mel scale."""
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def mel_band_edges(config: AudioFeatureConfig) -> np.ndarray:
    """(n_mels + 2,) band edges in Hz, equally spaced on the mel scale from fmin to fmax."""
    mels = np.linspace(hz_to_mel(config.fmin), hz_to_mel(config.fmax), config.n_mels + 2)
    return mel_to_hz(mels)


def mel_center_frequencies(config: AudioFeatureConfig) -> np.ndarray:
    """(n_mels,) centre frequency of each mel bin in Hz."""
    return mel_band_edges(config)[1:-1]


def mel_filterbank(config: AudioFeatureConfig) -> torch.Tensor:
    """(n_mels, n_fft // 2 + 1) float32 triangular filters, each with unit area in Hz."""
    fft_freqs = np.linspace(0.0, config.sample_rate / 2, config.n_fft // 2 + 1)  # (K,)
    edges = mel_band_edges(config)  # (n_mels + 2,)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]  # (n_mels, 1)
    rising = (fft_freqs[None, :] - lower) / (centre - lower)
    falling = (upper - fft_freqs[None, :]) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))  # (n_mels, K)
    weights *= 2.0 / (upper - lower)  # unit area
    return torch.from_numpy(weights.astype(np.float32))


def _stft_power_chunks(signal: torch.Tensor, config: AudioFeatureConfig) -> Iterator[torch.Tensor]:
    """Yield (n_fft // 2 + 1, m) power spectra of consecutive frame ranges of a 1-D signal.

    Frames are centred at ``m * hop``; chunking over frames gives exactly ``torch.stft(center=True)``.
    """
    half = config.n_fft // 2
    mode = "reflect" if signal.numel() > half else "constant"
    padded = F.pad(signal[None, None], (half, half), mode=mode)[0, 0]  # (N + n_fft,)
    n_frames = 1 + signal.numel() // config.hop_length
    window = torch.hann_window(config.win_length, periodic=True, dtype=signal.dtype)
    for start in range(0, n_frames, STFT_CHUNK_FRAMES):
        stop = min(start + STFT_CHUNK_FRAMES, n_frames)
        segment = padded[start * config.hop_length : (stop - 1) * config.hop_length + config.n_fft]
        spec = torch.stft(
            segment, n_fft=config.n_fft, hop_length=config.hop_length, win_length=config.win_length,
            window=window, center=False, return_complex=True,
        )  # (K, stop - start)
        yield spec.real.square() + spec.imag.square()


def log_mel(samples: np.ndarray, config: AudioFeatureConfig = AudioFeatureConfig()) -> np.ndarray:
    """Log-mel spectrogram of (N,) samples at ``config.sample_rate``.

    Returns:
        (M, n_mels) float32, M = 1 + N // hop_length; frame m is centred on sample m·hop.
    """
    signal = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))
    fbank = mel_filterbank(config)  # (n_mels, K)
    with torch.no_grad():
        chunks = [
            torch.log(torch.clamp(fbank @ power, min=config.log_floor)).T  # (m, n_mels)
            for power in _stft_power_chunks(signal, config)
        ]
    return torch.cat(chunks).numpy()


# ---------------------------------------------------------------------------------------------
# Normalisation
# ---------------------------------------------------------------------------------------------


def gated_rms_dbfs(samples: np.ndarray, sr: int = SAMPLE_RATE) -> float:
    """RMS level in dBFS over the blocks louder than :data:`LOUDNESS_GATE_DBFS` (pauses ignored).

    Returns ``-inf`` when every block is below the gate.
    """
    if samples.size == 0:
        return float("-inf")
    block = min(max(1, round(LOUDNESS_BLOCK_S * sr)), samples.size)
    n_blocks = samples.size // block
    blocks = samples[: n_blocks * block].reshape(n_blocks, block)  # (n_blocks, block) view
    power = np.array([mean_square(b) for b in blocks])  # (n_blocks,)
    loud = power[power > 10.0 ** (LOUDNESS_GATE_DBFS / 10.0)]
    if loud.size == 0:
        return float("-inf")
    return float(10.0 * np.log10(np.mean(loud)))


def normalize_loudness(samples: np.ndarray, target_dbfs: float, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Scale (N,) samples so that their gated RMS is ``target_dbfs``; returns a new float32 array.

    Signals below the gate everywhere are returned unchanged (nothing to normalise). No clipping is
    applied: the result feeds the feature extractor, not a sound card.
    """
    level = gated_rms_dbfs(samples, sr)
    if not math.isfinite(level):
        return samples.astype(np.float32, copy=True)
    gain = 10.0 ** ((target_dbfs - level) / 20.0)
    return (samples * gain).astype(np.float32, copy=False)


def normalize_utterance(feats: np.ndarray) -> np.ndarray:
    """Per-utterance mean/variance normalisation of (M, F) features over time, per column."""
    mean = feats.mean(axis=0, keepdims=True, dtype=np.float64)
    std = feats.std(axis=0, keepdims=True, dtype=np.float64)
    return ((feats - mean) / (std + NORM_EPS)).astype(np.float32)


def mel_features(samples: np.ndarray, config: AudioFeatureConfig = AudioFeatureConfig()) -> np.ndarray:
    """Loudness-normalised, utterance-normalised log-mel of (N,) samples: (M, n_mels) float32."""
    loud = normalize_loudness(samples, config.target_dbfs, config.sample_rate)
    return normalize_utterance(log_mel(loud, config))


# ---------------------------------------------------------------------------------------------
# Per-video-frame features and windows
# ---------------------------------------------------------------------------------------------


def frames_for(duration: float, fps: float = VIDEO_FPS) -> int:
    """Number of video frames for ``duration`` seconds: ``duration·fps`` rounded half up.

    Every module (features, coefficients, video writer) uses this one function, so audio and video
    lengths always agree.
    """
    return math.floor(duration * fps + 0.5)


def video_frame_features(
    mel: np.ndarray,
    n_frames: int,
    fps: float = VIDEO_FPS,
    config: AudioFeatureConfig = AudioFeatureConfig(),
) -> np.ndarray:
    """Group mel frames per video frame.

    Video frame t covers [t/fps, (t+1)/fps); it gets ``R = config.mels_per_video_frame`` mel vectors
    sampled at times ``(t + j/R)/fps``, j = 0..R-1, concatenated. At 25 fps and 100 mel frames/s these
    times fall exactly on mel frames 4t..4t+3 (plain grouping). At other frame rates the mel sequence
    is resampled by linear interpolation between neighbouring mel frames. Past either end of ``mel``
    the edge frame is repeated, so T always equals ``n_frames``. (The 4 analysis windows of frame t
    span [t/fps − 12.5 ms, t/fps + 42.5 ms], centred 5 ms before the frame's midpoint at 25 fps.)

    Args:
        mel: (M, n_mels) features at ``config.mel_rate`` frames per second.
        n_frames: T, normally ``frames_for(duration, fps)``.
        fps: video frame rate.

    Returns:
        (T, R·n_mels) float32.
    """
    if mel.ndim != 2 or mel.shape[0] == 0:
        raise ValueError(f"mel must be (M, n_mels) with M > 0, got shape {mel.shape}")
    ratio = config.mels_per_video_frame
    offsets = np.arange(n_frames * ratio) / ratio  # (T·R,) in video frames
    position = offsets / fps * config.mel_rate  # (T·R,) fractional mel index
    last = mel.shape[0] - 1
    nearest = np.rint(position)
    if np.allclose(position, nearest, atol=1e-6):
        picked = mel[np.clip(nearest.astype(np.int64), 0, last)]  # (T·R, n_mels)
    else:
        position = np.clip(position, 0.0, last)
        low = np.floor(position).astype(np.int64)
        high = np.minimum(low + 1, last)
        frac = (position - low)[:, None].astype(np.float32)
        picked = mel[low] * (1.0 - frac) + mel[high] * frac
    return picked.reshape(n_frames, ratio * mel.shape[1]).astype(np.float32, copy=False)  # (T, R·n_mels)


def audio_windows(feats: np.ndarray | torch.Tensor, k: int) -> np.ndarray | torch.Tensor:
    """Windows of ±k frames around every frame, edge-padded: (T, F) -> (T, 2k+1, F).

    Returns a strided *view* of one padded (T + 2k, F) copy (numpy: read-only), so memory is
    O((T + 2k)·F), not O(T·(2k+1)·F). Copy a slice (or use :func:`iter_audio_windows`) before
    writing into it. Window row ``k`` is the frame itself; rows before it are the past.
    """
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    if isinstance(feats, torch.Tensor):
        padded = torch.cat([feats[:1].expand(k, -1), feats, feats[-1:].expand(k, -1)])  # (T + 2k, F)
        return padded.unfold(0, 2 * k + 1, 1).transpose(1, 2)  # (T, 2k+1, F)
    padded = np.pad(feats, ((k, k), (0, 0)), mode="edge")  # (T + 2k, F)
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * k + 1, axis=0)  # (T, F, 2k+1)
    return windows.transpose(0, 2, 1)  # (T, 2k+1, F)


def iter_audio_windows(feats: np.ndarray, k: int, chunk_frames: int) -> Iterator[tuple[int, np.ndarray]]:
    """Stream :func:`audio_windows` in contiguous chunks: yields (start, (t, 2k+1, F) array)."""
    if chunk_frames < 1:
        raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}")
    windows = audio_windows(feats, k)
    for start in range(0, feats.shape[0], chunk_frames):
        yield start, np.ascontiguousarray(windows[start : start + chunk_frames])


# ---------------------------------------------------------------------------------------------
# From a file, with a cache
# ---------------------------------------------------------------------------------------------


def features_from_samples(
    samples: np.ndarray, fps: float = VIDEO_FPS, config: AudioFeatureConfig = AudioFeatureConfig()
) -> np.ndarray:
    """(N,) samples at ``config.sample_rate`` -> (T, R·n_mels) with T = frames_for(N / sr, fps)."""
    n_frames = frames_for(samples.size / config.sample_rate, fps)
    return video_frame_features(mel_features(samples, config), n_frames, fps, config)


def audio_features(
    path: str | Path, fps: float = VIDEO_FPS, config: AudioFeatureConfig = AudioFeatureConfig()
) -> np.ndarray:
    """Decode ``path`` (see :func:`~flowvq_cli.audio.load.load_audio`) and return (T, R·n_mels) features."""
    audio = load_audio(path, sr=config.sample_rate)
    return features_from_samples(audio.samples, fps, config)


def feature_cache_key(path: str | Path, fps: float, config: AudioFeatureConfig) -> str:
    """Hex key from the file's content hash, the config, the frame rate and :data:`FEATURE_VERSION`."""
    settings = {"version": FEATURE_VERSION, "fps": fps, "config": dataclasses.asdict(config)}
    blob = sha256_file(path) + json.dumps(settings, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def cached_features(
    path: str | Path,
    cache_dir: str | Path,
    fps: float = VIDEO_FPS,
    config: AudioFeatureConfig = AudioFeatureConfig(),
) -> np.ndarray:
    """:func:`audio_features`, memoised in ``cache_dir/<key>.npy`` (key: :func:`feature_cache_key`).

    A changed file, config, fps or feature version gives a new key; an unreadable cache entry is
    recomputed and overwritten.
    """
    target = Path(cache_dir) / f"{feature_cache_key(path, fps, config)}.npy"
    if target.is_file():
        try:
            return np.load(target, allow_pickle=False)
        except (OSError, ValueError):
            pass  # torn or foreign file: recompute below
    feats = audio_features(path, fps, config)
    target.parent.mkdir(parents=True, exist_ok=True)
    save_npy_atomic(target, feats, fsync=False)
    return feats
