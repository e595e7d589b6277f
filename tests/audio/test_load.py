"""load_audio / probe_audio on real files made here: wave-module WAVs and ffmpeg-encoded formats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from audio_testutils import EXAMPLE_SPEECH, dominant_frequency, run_ffmpeg, tone

from flowvq_cli.audio.load import (
    MIN_DURATION_S,
    SAMPLE_RATE,
    SILENCE_DBFS,
    audio_duration,
    load_audio,
    probe_audio,
)
from flowvq_cli.errors import AudioError, InputError


def _assert_one_line(error: pytest.ExceptionInfo) -> None:
    assert "\n" not in str(error.value)


def test_stereo_44k_wav_becomes_mono_16k(stereo_wav: Path) -> None:
    audio = load_audio(stereo_wav)
    assert audio.sr == SAMPLE_RATE
    assert audio.samples.dtype == np.float32 and audio.samples.ndim == 1
    assert abs(audio.duration - 1.0) < 0.010
    assert audio.samples.size == round(audio.duration * SAMPLE_RATE)
    assert (audio.source_channels, audio.source_rate) == (2, 44_100)
    # ffmpeg's stereo downmix is (L + R)/√2: two 0.5-amplitude copies -> amplitude 0.707, RMS 0.5.
    assert np.sqrt(np.mean(audio.samples**2)) == pytest.approx(0.5, rel=0.02)
    assert dominant_frequency(audio.samples, SAMPLE_RATE) == pytest.approx(440.0, rel=0.005)


@pytest.mark.parametrize(
    ("suffix", "codec_args"),
    [
        ("flac", ["-c:a", "flac"]),
        ("mp3", ["-c:a", "libmp3lame", "-b:a", "128k"]),
        ("m4a", ["-c:a", "aac", "-b:a", "128k"]),
        ("ogg", ["-c:a", "libvorbis"]),
    ],
)
def test_compressed_formats_decode(stereo_wav: Path, tmp_path: Path, suffix: str, codec_args: list[str]) -> None:
    encoded = tmp_path / f"tone.{suffix}"
    run_ffmpeg("-i", str(stereo_wav), *codec_args, str(encoded))
    audio = load_audio(encoded)
    assert abs(audio.duration - 1.0) < 0.030  # codec priming/padding, trimmed by ffmpeg where it can
    assert audio.source_rate == 44_100 and audio.source_channels == 2
    assert dominant_frequency(audio.samples, SAMPLE_RATE) == pytest.approx(440.0, rel=0.005)
    assert audio_duration(encoded) == pytest.approx(1.0, abs=0.05)


def test_audio_track_of_a_video(stereo_wav: Path, tmp_path: Path) -> None:
    video = tmp_path / "clip.mp4"
    run_ffmpeg("-f", "lavfi", "-i", "color=c=gray:s=32x32:r=25:d=1", "-i", str(stereo_wav),
               "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(video))
    audio = load_audio(video)
    assert audio.duration == pytest.approx(1.0, abs=0.05)
    assert dominant_frequency(audio.samples, SAMPLE_RATE) == pytest.approx(440.0, rel=0.005)


def test_video_without_audio_track(tmp_path: Path) -> None:
    video = tmp_path / "silent_movie.mp4"
    run_ffmpeg("-f", "lavfi", "-i", "color=c=gray:s=32x32:r=25:d=1", "-c:v", "libx264",
               "-pix_fmt", "yuv420p", str(video))
    with pytest.raises(AudioError, match="no audio track") as error:
        load_audio(video)
    _assert_one_line(error)
    with pytest.raises(AudioError, match="no audio track"):
        probe_audio(video)


def test_missing_file_and_directory_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found") as error:
        load_audio(tmp_path / "nope.wav")
    assert not isinstance(error.value, AudioError)
    with pytest.raises(InputError, match="is a folder") as error:
        load_audio(tmp_path)
    assert not isinstance(error.value, AudioError)


def test_zero_byte_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.wav"
    empty.touch()
    with pytest.raises(AudioError, match="empty") as error:
        load_audio(empty)
    _assert_one_line(error)


def test_garbage_bytes_give_ffmpeg_reason_on_one_line(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.mp3"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(AudioError, match="cannot decode") as error:
        load_audio(garbage)
    _assert_one_line(error)
    assert "Invalid data" in str(error.value)


def test_silent_audio(make_wav) -> None:
    path = make_wav("silence.wav", np.zeros(16_000))
    with pytest.raises(AudioError, match="silent"):
        load_audio(path)
    quiet = make_wav("quiet.wav", tone(300.0, 1.0, amplitude=10 ** ((SILENCE_DBFS - 10) / 20)))
    with pytest.raises(AudioError, match="silent"):
        load_audio(quiet)


def test_too_short(make_wav) -> None:
    path = make_wav("short.wav", tone(300.0, 0.2))
    with pytest.raises(AudioError, match="too short") as error:
        load_audio(path)
    _assert_one_line(error)
    assert load_audio(make_wav("ok.wav", tone(300.0, MIN_DURATION_S + 0.01))).duration >= MIN_DURATION_S


def test_max_seconds(make_wav) -> None:
    path = make_wav("two_seconds.wav", tone(300.0, 2.0))
    with pytest.raises(AudioError, match="longer than"):
        load_audio(path, max_seconds=1.0)
    assert load_audio(path, max_seconds=5.0).duration == pytest.approx(2.0, abs=1e-3)


def test_odd_file_names_are_not_options_or_protocols(make_wav, tmp_path: Path) -> None:
    path = make_wav("-pipe:1.wav", tone(300.0, 1.0))
    assert load_audio(path).duration == pytest.approx(1.0, abs=1e-3)


def test_example_speech_loads() -> None:
    audio = load_audio(EXAMPLE_SPEECH)
    assert 3.0 <= audio.duration <= 5.0
    assert (audio.source_channels, audio.source_rate) == (1, SAMPLE_RATE)
    assert audio_duration(EXAMPLE_SPEECH) == pytest.approx(audio.duration, abs=0.01)
    info = probe_audio(EXAMPLE_SPEECH)
    assert (info.channels, info.sample_rate) == (1, SAMPLE_RATE)
