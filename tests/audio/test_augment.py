"""Training augmentation: each effect does what it says, on measurable signals, reproducibly."""

from __future__ import annotations

import numpy as np
import pytest
from audio_testutils import EXAMPLE_SPEECH, dominant_frequency, tone
from scipy import signal

from flowvq_cli.audio.augment import (
    PEAK_LIMIT,
    AugmentConfig,
    AugmentParams,
    add_noise,
    add_reverb,
    apply_augment,
    augment,
    change_tempo,
    equalize,
    pitch_shift,
    room_impulse_response,
    sample_params,
    shelf_sos,
    time_stretch,
)
from flowvq_cli.audio.load import load_audio

SR = 16_000


@pytest.mark.parametrize("semitones", [-4.0, -2.5, 1.0, 4.0])
def test_pitch_shift_moves_tone_by_expected_ratio(semitones: float) -> None:
    shifted = pitch_shift(tone(220.0, 1.0), SR, semitones)
    assert shifted.shape == (SR,) and shifted.dtype == np.float32
    ratio = dominant_frequency(shifted, SR) / 220.0
    assert ratio == pytest.approx(2 ** (semitones / 12), rel=0.02)


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_tempo_changes_duration_not_pitch(factor: float) -> None:
    samples = tone(300.0, 1.0)
    faster = change_tempo(samples, SR, factor)
    assert faster.size == round(samples.size / factor)
    assert dominant_frequency(faster, SR) == pytest.approx(300.0, rel=0.01)
    # The waveform keeps its level: no gaps or doubled overlaps in the overlap-add.
    middle = faster[faster.size // 4 : 3 * faster.size // 4]
    assert np.sqrt(np.mean(middle**2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.05)


def test_time_stretch_rejects_bad_rate() -> None:
    with pytest.raises(ValueError, match="rate"):
        time_stretch(tone(300.0, 0.1), SR, 0.0)


@pytest.mark.parametrize(("snr_db", "color"), [(0.0, "white"), (10.0, "white"), (20.0, "pink")])
def test_noise_at_requested_snr(snr_db: float, color: str) -> None:
    clean = tone(440.0, 1.0)
    noisy = add_noise(clean, snr_db, np.random.default_rng(3), color)
    measured = 10 * np.log10(np.mean(clean**2) / np.mean((noisy - clean) ** 2))
    assert measured == pytest.approx(snr_db, abs=0.5)


def test_pink_noise_has_more_low_than_high_energy() -> None:
    noise = add_noise(np.ones(SR) * 0.1, 0.0, np.random.default_rng(0), "pink") - 0.1
    freqs, power = signal.welch(noise, fs=SR, nperseg=1024)
    low, high = power[(freqs > 50) & (freqs < 200)].mean(), power[(freqs > 4000) & (freqs < 6000)].mean()
    assert 10 * np.log10(low / high) > 10.0


def test_reverb_impulse_response_decays_60db_in_rt60() -> None:
    rt60 = 0.4
    response = room_impulse_response(SR, rt60, drr_db=6.0, rng=np.random.default_rng(0))
    assert response[0] == 1.0
    tail = response[1:]
    assert 10 * np.log10(1.0 / np.sum(tail**2)) == pytest.approx(6.0, abs=1e-6)  # direct/reverberant
    decay = tail[np.nonzero(tail)[0][0] :]  # after the pre-delay
    start, end = decay[:800], decay[-800:]  # first and last 50 ms
    expected_db = 60.0 * (decay.size - 800) / (rt60 * SR)  # the windows are this far apart
    assert 10 * np.log10(np.mean(start**2) / np.mean(end**2)) == pytest.approx(expected_db, abs=1.5)


def test_reverb_keeps_length_and_level() -> None:
    dry = tone(500.0, 1.0) * (np.arange(SR) < SR // 2)  # tone then silence: the tail rings into it
    wet = add_reverb(dry, SR, rt60=0.5, drr_db=0.0, rng=np.random.default_rng(0))
    assert wet.shape == dry.shape
    assert np.sqrt(np.mean(wet**2)) == pytest.approx(np.sqrt(np.mean(dry**2)), rel=1e-4)
    assert np.abs(wet[SR // 2 + 800 : SR // 2 + 1600]).max() > 0.01  # reverberant tail after the tone


@pytest.mark.parametrize(("kind", "corner", "low_gain", "high_gain"), [("low", 300.0, 6.0, 0.0),
                                                                        ("high", 4000.0, 0.0, -6.0)])
def test_shelves_have_the_requested_gain(kind: str, corner: float, low_gain: float, high_gain: float) -> None:
    gain = low_gain if kind == "low" else high_gain
    _, response = signal.sosfreqz(shelf_sos(kind, corner, gain, SR), worN=[20.0, 7900.0], fs=SR)
    np.testing.assert_allclose(20 * np.log10(np.abs(response)), [low_gain, high_gain], atol=0.1)
    boosted = equalize(tone(100.0, 0.5), SR, low_shelf=(300.0, 6.0))
    assert np.abs(boosted[SR // 4 :]).max() == pytest.approx(0.5 * 10 ** (6 / 20), rel=0.05)


def test_seeded_determinism() -> None:
    speech = load_audio(EXAMPLE_SPEECH).samples[: 2 * SR]
    config = AugmentConfig.always()
    first, params = augment(speech, SR, np.random.default_rng(7), config)
    again, params_again = augment(speech, SR, np.random.default_rng(7), config)
    other, other_params = augment(speech, SR, np.random.default_rng(8), config)
    assert params == params_again and params != other_params
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(apply_augment(speech, SR, params), first)
    assert first.size == round(speech.size / params.tempo)
    assert np.all(np.isfinite(first)) and np.abs(first).max() <= PEAK_LIMIT + 1e-6
    assert not np.array_equal(first[: other.size], other[: first.size])


def test_sampled_params_stay_in_range() -> None:
    rng = np.random.default_rng(0)
    config = AugmentConfig()
    drawn = [sample_params(rng, config) for _ in range(200)]
    assert all(abs(p.semitones) <= config.pitch_semitones for p in drawn)
    assert all(0.9 <= p.tempo <= 1.1 for p in drawn)
    assert any(p.snr_db is None for p in drawn) and any(p.snr_db is not None for p in drawn)
    assert apply_augment(tone(300.0, 0.5), SR, AugmentParams()).shape == (SR // 2,)  # identity params
