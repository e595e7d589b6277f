"""Mouth-opening / audio-energy correlation and the A/V offset."""

from __future__ import annotations

import numpy as np
import pytest

from flowvq_cli.eval.sync import audio_energy_envelope, av_sync, lagged_correlation, mouth_opening

FPS = 25
SR = 16000


def _syllable_envelope(num_frames: int, seed: int) -> np.ndarray:
    """A speech-like energy track: random syllables of 3–8 frames with pauses."""
    rng = np.random.default_rng(seed)
    env = np.zeros(num_frames)
    t = 0
    while t < num_frames:
        length = int(rng.integers(3, 9))
        env[t:t + length] = rng.uniform(0.3, 1.0) * np.hanning(length + 2)[1:-1][: num_frames - t]
        t += length + int(rng.integers(0, 5))
    return env


def test_shift_by_five_frames_gives_offset_five() -> None:
    energy = _syllable_envelope(250, seed=3)
    lag = 5
    mouth = np.concatenate([np.zeros(lag), energy[:-lag]])  # video lags audio: mouth[t] = energy[t-5]
    result = av_sync(mouth, energy, max_offset=15)
    assert result.offset == lag
    assert result.correlation == pytest.approx(1.0)
    assert result.correlation_at_zero < 0.5
    early = av_sync(energy[lag:], energy[:-lag])  # mouth leads the audio
    assert early.offset == -lag


def test_lagged_correlation_convention() -> None:
    audio = np.sin(np.linspace(0, 12, 100)) + np.linspace(0, 1, 100)
    video = np.roll(audio, 2)
    video[:2] = audio[0]
    assert lagged_correlation(video, audio, 2) == pytest.approx(1.0)


def test_constant_track_has_no_offset() -> None:
    result = av_sync(np.ones(50), _syllable_envelope(50, seed=0), max_offset=3)
    assert result.offset is None
    assert np.all(np.isnan(result.correlations))


def test_energy_envelope_per_video_frame() -> None:
    t = np.arange(SR) / SR  # 1 s → 25 frames
    wave = np.where(t < 0.5, 0.5, 0.0) * np.sign(np.sin(2 * np.pi * 100 * t + 0.1))  # square wave ±0.5
    env = audio_energy_envelope(wave, SR, FPS)
    assert env.shape == (25,)
    np.testing.assert_allclose(env[:12], 0.5, rtol=1e-12)  # RMS of ±0.5 is 0.5
    np.testing.assert_allclose(env[13:], 0.0, atol=1e-12)


def test_mouth_opening_from_landmarks() -> None:
    lm = np.zeros((2, 68, 2))
    lm[:, 48] = [0.0, 0.0]
    lm[:, 54] = [40.0, 0.0]  # mouth width 40
    for upper, lower in ((61, 67), (62, 66), (63, 65)):
        lm[:, upper] = [20.0, -5.0]
        lm[0, lower] = [20.0, -5.0]  # closed
        lm[1, lower] = [20.0, 5.0]  # gap 10
    np.testing.assert_allclose(mouth_opening(lm), [0.0, 0.25])
