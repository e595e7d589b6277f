"""Log-mel front end, per-video-frame grouping, windows, cache, and the energy envelope."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from audio_testutils import EXAMPLE_SPEECH, tone

import flowvq_cli.audio.energy as energy
import flowvq_cli.audio.features as features
from flowvq_cli.audio.energy import ENERGY_FLOOR_DB, energy_envelope, frame_rms_db, speech_activity
from flowvq_cli.audio.features import (
    AudioFeatureConfig,
    audio_features,
    audio_windows,
    cached_features,
    features_from_samples,
    frames_for,
    gated_rms_dbfs,
    iter_audio_windows,
    log_mel,
    mel_center_frequencies,
    mel_features,
    mel_filterbank,
    normalize_loudness,
    video_frame_features,
)
from flowvq_cli.audio.load import load_audio

CONFIG = AudioFeatureConfig()


def test_config_constants() -> None:
    assert CONFIG.mel_rate == 100.0
    assert CONFIG.video_feature_dim == 320
    assert mel_filterbank(CONFIG).shape == (80, 257)
    assert mel_filterbank(AudioFeatureConfig.tiny()).shape == (16, 257)


def test_example_speech_shape() -> None:
    audio = load_audio(EXAMPLE_SPEECH)
    feats = audio_features(EXAMPLE_SPEECH)
    assert feats.shape == (round(audio.duration * 25), 320)
    assert feats.dtype == np.float32 and np.all(np.isfinite(feats))


@pytest.mark.parametrize("seconds", [0.52, 1.03, 2.017])
def test_frame_count_matches_duration(seconds: float) -> None:
    samples = tone(440.0, seconds)
    assert features_from_samples(samples).shape == (frames_for(seconds), 320)
    assert frames_for(seconds) == round(seconds * 25)


def test_frames_for_rounds_half_up() -> None:
    assert frames_for(0.5, 25) == 13  # 12.5 -> 13 (Python's round would give 12)
    assert frames_for(4.9175625, 25) == 123
    assert frames_for(1.0, 30) == 30


@pytest.mark.parametrize("freq", [150.0, 440.0, 1000.0, 3000.0, 6500.0])
def test_pure_tone_peaks_in_its_mel_bin(freq: float) -> None:
    mel = log_mel(tone(freq, 0.5).astype(np.float32))
    expected = int(np.argmin(np.abs(mel_center_frequencies(CONFIG) - freq)))
    assert int(np.argmax(mel[5:-5].mean(axis=0))) == expected


def test_log_mel_matches_plain_stft_and_chunking(monkeypatch: pytest.MonkeyPatch) -> None:
    samples = np.random.default_rng(0).standard_normal(16_123).astype(np.float32) * 0.1
    spec = torch.stft(torch.from_numpy(samples), 512, 160, 400, torch.hann_window(400), center=True,
                      return_complex=True)  # (257, M)
    reference = torch.log(torch.clamp(mel_filterbank(CONFIG) @ spec.abs() ** 2, min=1e-10)).T.numpy()
    whole = log_mel(samples)
    assert whole.shape == (1 + 16_123 // 160, 80)
    np.testing.assert_allclose(whole, reference, atol=1e-4)
    monkeypatch.setattr(features, "STFT_CHUNK_FRAMES", 7)
    np.testing.assert_allclose(log_mel(samples), whole, atol=1e-5)


def test_loudness_and_utterance_normalisation() -> None:
    rng = np.random.default_rng(1)
    samples = (tone(220.0, 1.5) + 0.05 * rng.standard_normal(24_000)) * np.linspace(0.2, 1.0, 24_000)
    loud = normalize_loudness(samples, CONFIG.target_dbfs)
    assert gated_rms_dbfs(loud) == pytest.approx(CONFIG.target_dbfs, abs=1e-3)
    mel = mel_features(samples)
    np.testing.assert_allclose(mel.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(mel.std(axis=0), 1.0, atol=1e-3)
    # Level does not change the features (loudness normalisation undoes the gain).
    np.testing.assert_allclose(mel_features(samples * 0.05), mel, atol=1e-3)


def test_video_frame_features_groups_four_mel_frames() -> None:
    mel = np.arange(41 * 3, dtype=np.float32).reshape(41, 3)  # (M, n_mels)
    grouped = video_frame_features(mel, 10)
    assert grouped.shape == (10, 12)
    np.testing.assert_array_equal(grouped[2], mel[8:12].reshape(-1))
    # Too few mel frames (38 for 40 slots): the last one is repeated.
    padded = video_frame_features(mel[:38], 10)
    np.testing.assert_array_equal(padded[-1], np.concatenate([mel[36], mel[37], mel[37], mel[37]]))


def test_video_frame_features_other_fps_interpolates() -> None:
    mel_times = np.arange(250) / 100.0  # 2.5 s of mel frames (more than the 2 s of video)
    mel = np.stack([mel_times, 2 * mel_times], axis=1).astype(np.float32)  # (250, 2) linear in time
    grouped = video_frame_features(mel, 60, fps=30.0)
    assert grouped.shape == (60, 8)
    sub_times = (np.arange(60)[:, None] + np.arange(4)[None, :] / 4) / 30.0  # (T, 4) seconds
    np.testing.assert_allclose(grouped[:, 0::2], sub_times, atol=1e-5)
    np.testing.assert_allclose(grouped[:, 1::2], 2 * sub_times, atol=1e-5)


def test_audio_windows_shapes_and_edges() -> None:
    feats = np.arange(6 * 2, dtype=np.float32).reshape(6, 2)  # (T, F)
    windows = audio_windows(feats, 2)
    assert windows.shape == (6, 5, 2)
    np.testing.assert_array_equal(windows[:, 2], feats)  # centre row is the frame itself
    np.testing.assert_array_equal(windows[0, :3], np.repeat(feats[:1], 3, axis=0))  # edge-padded past
    np.testing.assert_array_equal(windows[-1, 2:], np.repeat(feats[-1:], 3, axis=0))  # padded future
    np.testing.assert_array_equal(windows[3], feats[1:6])
    torch_windows = audio_windows(torch.from_numpy(feats), 2)
    np.testing.assert_array_equal(torch_windows.numpy(), windows)
    chunks = [chunk for _, chunk in iter_audio_windows(feats, 2, chunk_frames=4)]
    np.testing.assert_array_equal(np.concatenate(chunks), windows)


def test_audio_windows_is_a_view_for_long_audio() -> None:
    feats = np.zeros((frames_for(600.0), 320), dtype=np.float32)  # 10 minutes at 25 fps
    windows = audio_windows(feats, 8)
    assert windows.shape == (15_000, 17, 320)
    low, high = np.byte_bounds(windows)
    assert high - low < 2 * feats.nbytes  # a view of one padded copy, not 17 copies


def test_cache_hit_returns_identical_arrays(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wav = tmp_path / "speech.wav"
    wav.write_bytes(EXAMPLE_SPEECH.read_bytes())
    cache = tmp_path / "cache"
    first = cached_features(wav, cache)
    assert len(list(cache.glob("*.npy"))) == 1 and not list(cache.glob(".*.partial*"))

    def _no_recompute(*_args: object, **_kwargs: object) -> np.ndarray:
        raise AssertionError("cache miss")

    monkeypatch.setattr(features, "audio_features", _no_recompute)
    np.testing.assert_array_equal(cached_features(wav, cache), first)
    monkeypatch.undo()
    tiny = cached_features(wav, cache, config=AudioFeatureConfig.tiny())  # other config, other key
    assert tiny.shape == (first.shape[0], 64) and len(list(cache.glob("*.npy"))) == 2
    # A torn cache entry is recomputed.
    entry = next(p for p in cache.glob("*.npy") if np.load(p).shape[1] == 320)
    entry.write_bytes(b"not a npy file")
    np.testing.assert_array_equal(cached_features(wav, cache), first)


def test_energy_envelope_follows_speech_and_silence(monkeypatch: pytest.MonkeyPatch) -> None:
    sr = 16_000
    samples = np.concatenate([tone(200.0, 1.0, amplitude=0.5), np.zeros(sr)])
    envelope = energy_envelope(samples, sr)
    assert envelope.shape == (50,)
    assert envelope[:20] == pytest.approx(20 * np.log10(0.5 / np.sqrt(2)), abs=0.1)
    assert np.all(envelope[30:] == ENERGY_FLOOR_DB)
    active = speech_activity(envelope)
    assert active[:24].all() and not active[27:].any()
    assert energy_envelope(samples, sr, n_frames=60).shape == (60,)
    # Chunked measurement gives the same levels, also when sr / fps is not an integer.
    whole = frame_rms_db(samples, sr, 59, fps=29.97)
    monkeypatch.setattr(energy, "CHUNK_FRAMES", 7)
    np.testing.assert_allclose(frame_rms_db(samples, sr, 59, fps=29.97), whole, atol=1e-4)
