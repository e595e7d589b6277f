"""Training-time audio augmentation (docs/design.md §3): the shipped weights learn from synthetic speech but
must work on real voices, so training audio is randomly pitch-shifted, tempo-changed, equalised,
reverberated and mixed with noise. Pure numpy/scipy; every random choice comes from a
``numpy.random.Generator``.

Methods:
- **Time stretch / tempo** (:func:`time_stretch`): WSOLA (waveform-similarity overlap-add). 30 ms
  Hann frames at 50 % overlap are taken from the input at ``rate`` times the output hop; each frame's
  start is moved by up to ±12.5 ms to the offset whose waveform best continues the previous frame
  (maximum cross-correlation), which keeps pitch periods intact for voices down to 40 Hz.
- **Pitch shift** (:func:`pitch_shift`): resample by the pitch ratio (``resample_poly``: pitch and
  speed both change), then WSOLA-stretch back to the original length (speed restored, pitch kept).
- **Noise** (:func:`add_noise`): white or pink Gaussian noise scaled to an exact SNR over the whole clip.
- **Reverberation** (:func:`add_reverb`): convolution with a synthetic room impulse response: a unit
  direct path followed, after a short pre-delay, by Gaussian noise under an exponential envelope
  that decays 60 dB in RT60 seconds, scaled to a direct-to-reverberant energy ratio.
- **EQ** (:func:`equalize`): a low shelf and a high shelf biquad (RBJ audio-EQ cookbook formulas,
  shelf slope 1) applied with ``scipy.signal.sosfilt``.

Tempo changes the clip's duration: a trainer must time-warp the matching coefficient sequence by the
same factor (:class:`AugmentParams` records it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from scipy import signal

WSOLA_FRAME_S = 0.030
"""WSOLA frame length (s); frames overlap by half."""

WSOLA_TOLERANCE_S = 0.0125
"""Largest shift (s) WSOLA may apply to a frame to find the best-matching waveform."""

RESAMPLE_MAX_DENOMINATOR = 200
"""Pitch ratios are approximated by fractions up/down with down ≤ this (error < 0.01 %)."""

REVERB_PREDELAY_S = 0.004
"""Gap (s) between the direct path and the start of the reverberant tail."""

PEAK_LIMIT = 0.99
"""Augmented clips whose peak exceeds this are scaled down (whole clip) to avoid clipping."""

NOISE_COLORS = ("white", "pink")


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges and probabilities of each effect (each one drawn independently per clip)."""

    pitch_semitones: float = 4.0  # shift drawn uniformly in ±this
    tempo_range: float = 0.10  # tempo factor drawn uniformly in [1 - r, 1 + r]
    snr_db_range: tuple[float, float] = (5.0, 30.0)
    rt60_range: tuple[float, float] = (0.15, 0.8)  # seconds
    drr_db_range: tuple[float, float] = (0.0, 12.0)  # direct-to-reverberant ratio
    eq_gain_db: float = 6.0  # shelf gains drawn uniformly in ±this
    low_shelf_hz_range: tuple[float, float] = (80.0, 400.0)
    high_shelf_hz_range: tuple[float, float] = (2000.0, 6000.0)
    p_pitch: float = 0.5
    p_tempo: float = 0.5
    p_eq: float = 0.5
    p_reverb: float = 0.3
    p_noise: float = 0.5

    @classmethod
    def always(cls) -> AugmentConfig:
        """Every effect on every clip (tests, stress checks)."""
        return cls(p_pitch=1.0, p_tempo=1.0, p_eq=1.0, p_reverb=1.0, p_noise=1.0)


@dataclass(frozen=True)
class AugmentParams:
    """The effects applied to one clip; ``None``/neutral values mean "effect off".

    ``seed`` drives the noise and the impulse response, so :func:`apply_augment` is deterministic.
    """

    semitones: float = 0.0
    tempo: float = 1.0
    low_shelf: tuple[float, float] | None = None  # (corner Hz, gain dB)
    high_shelf: tuple[float, float] | None = None  # (corner Hz, gain dB)
    rt60: float | None = None
    drr_db: float = 0.0
    snr_db: float | None = None
    noise_color: str = "white"
    seed: int = 0


# ---------------------------------------------------------------------------------------------
# Time stretch and pitch shift
# ---------------------------------------------------------------------------------------------


def _best_offset(region: np.ndarray, template: np.ndarray) -> int:
    """Index in ``region`` where ``template`` correlates best (region longer than template)."""
    scores = np.correlate(region, template, mode="valid")  # (len(region) - len(template) + 1,)
    return int(np.argmax(scores))


def time_stretch(samples: np.ndarray, sr: int, rate: float) -> np.ndarray:
    """Change speed without changing pitch (WSOLA). rate > 1 is faster.

    Args:
        samples: (N,) mono float samples.
        sr: sample rate (Hz).
        rate: speed factor.

    Returns:
        (round(N / rate),) float32.
    """
    if rate <= 0:
        raise ValueError(f"rate must be > 0, got {rate}")
    n_out = round(samples.size / rate)
    if math.isclose(rate, 1.0) or samples.size == 0:
        return samples.astype(np.float32, copy=True)
    frame = 2 * round(WSOLA_FRAME_S * sr / 2)  # even length
    hop = frame // 2  # synthesis hop
    tol = round(WSOLA_TOLERANCE_S * sr)
    window = signal.windows.hann(frame, sym=False)  # periodic: sums to 1 at 50 % overlap
    n_frames = n_out // hop + 2
    lead = hop + tol  # zeros before the input: frame 0 is centred on sample 0
    tail = round(n_frames * hop * rate) + frame + 2 * tol - samples.size
    x = np.pad(samples.astype(np.float64), (lead, max(tail, 0) + frame))  # (lead + N + ...,)
    out = np.zeros(n_frames * hop + frame)
    start = lead - hop  # analysis start of frame 0 (no search)
    for k in range(n_frames):
        if k > 0:
            nominal = lead - hop + round(k * hop * rate)
            template = x[start + hop : start + hop + frame]  # natural continuation of frame k-1
            region = x[nominal - tol : nominal + tol + frame]
            start = nominal - tol + _best_offset(region, template)
        out[k * hop : k * hop + frame] += window * x[start : start + frame]
    return out[hop : hop + n_out].astype(np.float32)


def _resample_by_ratio(samples: np.ndarray, ratio: float) -> np.ndarray:
    """Resample so that, played at the same rate, every frequency is multiplied by ``ratio``."""
    fraction = Fraction(1.0 / ratio).limit_denominator(RESAMPLE_MAX_DENOMINATOR)
    return signal.resample_poly(samples.astype(np.float64), fraction.numerator, fraction.denominator)


def pitch_shift(samples: np.ndarray, sr: int, semitones: float) -> np.ndarray:
    """Shift pitch by ``semitones`` keeping duration (resample, then WSOLA back): (N,) -> (N,) float32."""
    if semitones == 0.0 or samples.size == 0:
        return samples.astype(np.float32, copy=True)
    ratio = 2.0 ** (semitones / 12.0)
    resampled = _resample_by_ratio(samples, ratio)  # ≈ (N / ratio,), pitch × ratio
    stretched = time_stretch(resampled, sr, resampled.size / samples.size)  # (N,)
    return stretched.astype(np.float32)


def change_tempo(samples: np.ndarray, sr: int, factor: float) -> np.ndarray:
    """Speak ``factor`` times faster (pitch kept): (N,) -> (round(N / factor),) float32."""
    return time_stretch(samples, sr, factor)


# ---------------------------------------------------------------------------------------------
# Noise, reverberation, EQ
# ---------------------------------------------------------------------------------------------


def _noise(n: int, color: str, rng: np.random.Generator) -> np.ndarray:
    """(n,) Gaussian noise, white or pink (power ∝ 1/f, shaped in the frequency domain)."""
    if color not in NOISE_COLORS:
        raise ValueError(f"noise color must be one of {NOISE_COLORS}, got {color!r}")
    white = rng.standard_normal(n)
    if color == "white" or n < 2:
        return white
    spectrum = np.fft.rfft(white)  # (n // 2 + 1,)
    freqs = np.arange(spectrum.size, dtype=np.float64)
    freqs[0] = 1.0  # keep DC finite
    return np.fft.irfft(spectrum / np.sqrt(freqs), n)


def add_noise(
    samples: np.ndarray, snr_db: float, rng: np.random.Generator, color: str = "white"
) -> np.ndarray:
    """Add noise so that 10·log10(signal power / noise power) equals ``snr_db`` exactly (whole clip).

    Returns (N,) float32; an all-zero input is returned unchanged.
    """
    clean = samples.astype(np.float64)
    signal_power = float(np.mean(np.square(clean))) if clean.size else 0.0
    if signal_power == 0.0:
        return samples.astype(np.float32, copy=True)
    noise = _noise(clean.size, color, rng)
    noise *= math.sqrt(signal_power / (float(np.mean(np.square(noise))) * 10.0 ** (snr_db / 10.0)))
    return (clean + noise).astype(np.float32)


def room_impulse_response(
    sr: int, rt60: float, drr_db: float, rng: np.random.Generator
) -> np.ndarray:
    """Synthetic impulse response: (L,) float64, L = pre-delay + RT60 seconds of tail.

    h[0] = 1 (direct path); the tail is Gaussian noise × exp(-3·ln(10)·t / rt60) (−60 dB at t = rt60),
    scaled so that direct energy / tail energy = 10^(drr_db / 10).
    """
    if rt60 <= 0:
        raise ValueError(f"rt60 must be > 0, got {rt60}")
    predelay = max(1, round(REVERB_PREDELAY_S * sr))
    t = np.arange(max(1, round(rt60 * sr))) / sr  # (L_tail,) seconds
    tail = rng.standard_normal(t.size) * np.exp(-3.0 * math.log(10.0) * t / rt60)
    tail *= math.sqrt(10.0 ** (-drr_db / 10.0) / float(np.sum(np.square(tail))))
    response = np.zeros(predelay + t.size)
    response[0] = 1.0
    response[predelay:] = tail
    return response


def add_reverb(
    samples: np.ndarray, sr: int, rt60: float, drr_db: float, rng: np.random.Generator
) -> np.ndarray:
    """Convolve with :func:`room_impulse_response`, cut to the input length, keep the input's RMS."""
    if samples.size == 0:
        return samples.astype(np.float32, copy=True)
    dry = samples.astype(np.float64)
    wet = signal.fftconvolve(dry, room_impulse_response(sr, rt60, drr_db, rng))[: dry.size]  # (N,)
    dry_rms, wet_rms = np.sqrt(np.mean(dry**2)), np.sqrt(np.mean(wet**2))
    if wet_rms > 0:
        wet *= dry_rms / wet_rms
    return wet.astype(np.float32)


def shelf_sos(kind: str, corner_hz: float, gain_db: float, sr: int) -> np.ndarray:
    """(1, 6) second-order section of a low or high shelf (RBJ cookbook, shelf slope S = 1)."""
    if kind not in ("low", "high"):
        raise ValueError(f"kind must be 'low' or 'high', got {kind!r}")
    if not 0 < corner_hz < sr / 2:
        raise ValueError(f"corner frequency must be in (0, {sr / 2}) Hz, got {corner_hz}")
    amp = 10.0 ** (gain_db / 40.0)
    w0 = 2.0 * math.pi * corner_hz / sr
    cos_w0, two_sqrt_a_alpha = math.cos(w0), 2.0 * math.sqrt(amp) * math.sin(w0) / math.sqrt(2.0)
    sign = 1.0 if kind == "low" else -1.0  # the high shelf mirrors the cos(w0) terms
    b0 = amp * ((amp + 1) - sign * (amp - 1) * cos_w0 + two_sqrt_a_alpha)
    b1 = sign * 2 * amp * ((amp - 1) - sign * (amp + 1) * cos_w0)
    b2 = amp * ((amp + 1) - sign * (amp - 1) * cos_w0 - two_sqrt_a_alpha)
    a0 = (amp + 1) + sign * (amp - 1) * cos_w0 + two_sqrt_a_alpha
    a1 = -sign * 2 * ((amp - 1) + sign * (amp + 1) * cos_w0)
    a2 = (amp + 1) + sign * (amp - 1) * cos_w0 - two_sqrt_a_alpha
    return np.array([[b0 / a0, b1 / a0, b2 / a0, 1.0, a1 / a0, a2 / a0]])


def equalize(
    samples: np.ndarray,
    sr: int,
    low_shelf: tuple[float, float] | None = None,
    high_shelf: tuple[float, float] | None = None,
) -> np.ndarray:
    """Apply optional low/high shelves, each given as (corner Hz, gain dB): (N,) -> (N,) float32."""
    sections = []
    if low_shelf is not None:
        sections.append(shelf_sos("low", *low_shelf, sr))
    if high_shelf is not None:
        sections.append(shelf_sos("high", *high_shelf, sr))
    if not sections or samples.size == 0:
        return samples.astype(np.float32, copy=True)
    return signal.sosfilt(np.concatenate(sections), samples.astype(np.float64)).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# The whole chain
# ---------------------------------------------------------------------------------------------


def sample_params(rng: np.random.Generator, config: AugmentConfig = AugmentConfig()) -> AugmentParams:
    """Draw one clip's effects. The number of draws is fixed, so streams stay aligned across clips."""
    on = rng.random(5) < np.array([config.p_pitch, config.p_tempo, config.p_eq, config.p_reverb,
                                   config.p_noise])
    semitones = rng.uniform(-config.pitch_semitones, config.pitch_semitones)
    tempo = rng.uniform(1.0 - config.tempo_range, 1.0 + config.tempo_range)
    low = (rng.uniform(*config.low_shelf_hz_range), rng.uniform(-config.eq_gain_db, config.eq_gain_db))
    high = (rng.uniform(*config.high_shelf_hz_range), rng.uniform(-config.eq_gain_db, config.eq_gain_db))
    rt60, drr_db = rng.uniform(*config.rt60_range), rng.uniform(*config.drr_db_range)
    snr_db, color = rng.uniform(*config.snr_db_range), NOISE_COLORS[int(rng.integers(len(NOISE_COLORS)))]
    return AugmentParams(
        semitones=float(semitones) if on[0] else 0.0,
        tempo=float(tempo) if on[1] else 1.0,
        low_shelf=(float(low[0]), float(low[1])) if on[2] else None,
        high_shelf=(float(high[0]), float(high[1])) if on[2] else None,
        rt60=float(rt60) if on[3] else None,
        drr_db=float(drr_db),
        snr_db=float(snr_db) if on[4] else None,
        noise_color=color,
        seed=int(rng.integers(2**63 - 1)),
    )


def apply_augment(samples: np.ndarray, sr: int, params: AugmentParams) -> np.ndarray:
    """Apply ``params`` in the order pitch → tempo → EQ → reverb → noise, then limit the peak.

    Returns:
        (round(N / params.tempo),) float32 with peak ≤ :data:`PEAK_LIMIT`.
    """
    rng = np.random.default_rng(params.seed)
    out = pitch_shift(samples, sr, params.semitones)
    out = change_tempo(out, sr, params.tempo)
    out = equalize(out, sr, params.low_shelf, params.high_shelf)
    if params.rt60 is not None:
        out = add_reverb(out, sr, params.rt60, params.drr_db, rng)
    if params.snr_db is not None:
        out = add_noise(out, params.snr_db, rng, params.noise_color)
    peak = float(np.max(np.abs(out))) if out.size else 0.0
    if peak > PEAK_LIMIT:
        out = out * np.float32(PEAK_LIMIT / peak)
    return out.astype(np.float32, copy=False)


def augment(
    samples: np.ndarray, sr: int, rng: np.random.Generator, config: AugmentConfig = AugmentConfig()
) -> tuple[np.ndarray, AugmentParams]:
    """Randomly augment one clip: returns ((round(N / tempo),) float32, the params used)."""
    params = sample_params(rng, config)
    return apply_augment(samples, sr, params), params
