"""Decode any audio ffmpeg reads into 16 kHz mono float32 (docs/design.md §3).

The decoder is the ffmpeg binary that ships with ``imageio-ffmpeg`` (no system ffmpeg needed). It is
run with an argument list, its samples come back over a pipe as raw little-endian float32
(``-f f32le -ac 1 -ar 16000``), and its exit status is always checked. Inputs can be WAV, FLAC, MP3,
M4A/AAC, Ogg/Opus or the audio track of a video (the first audio track is used).

Memory: the decoded signal is the only large object (4 bytes per sample: 64 kB per second at 16 kHz,
≈38 MB for 10 minutes); the pipe is read in fixed-size chunks into one growing buffer, so memory is
linear in the audio length with no second copy. ``max_seconds`` lets callers refuse longer inputs
before decoding all of them.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flowvq_cli.errors import AudioError
from flowvq_cli.fsutil import atomic_write, check_input_file
from flowvq_cli.video import ffmpeg_exe

SAMPLE_RATE = 16_000
"""Rate every decoded signal is resampled to (Hz)."""

MIN_DURATION_S = 0.5
"""Shortest usable recording (s): a few video frames of lip motion need at least this much speech."""

SILENCE_DBFS = -60.0
"""RMS level (dB relative to a full-scale RMS of 1.0) under which a recording counts as silent."""

PIPE_CHUNK_BYTES = 1 << 20
"""Bytes read from ffmpeg's stdout at a time."""

REDUCE_CHUNK_SAMPLES = 1 << 20
"""Samples reduced at a time when measuring levels (bounds float64 temporaries)."""

_MAX_SECONDS_SLACK_S = 0.1
"""Extra audio decoded past ``max_seconds`` so that "longer than the limit" can be detected."""

_CHANNEL_LAYOUTS = {
    "mono": 1, "stereo": 2, "downmix": 2, "2.1": 3, "3.0": 3, "3.0(back)": 3, "4.0": 4, "quad": 4,
    "quad(side)": 4, "3.1": 4, "5.0": 5, "5.0(side)": 5, "4.1": 5, "5.1": 6, "5.1(side)": 6, "6.0": 6,
    "6.0(front)": 6, "hexagonal": 6, "6.1": 7, "6.1(back)": 7, "6.1(front)": 7, "7.0": 7, "7.0(front)": 7,
    "7.1": 8, "7.1(wide)": 8, "7.1(wide-side)": 8, "octagonal": 8,
}
_DURATION_RE = re.compile(r"^\s*Duration:\s*(\d+):(\d+):(\d+(?:\.\d+)?)", re.MULTILINE)
_AUDIO_STREAM_RE = re.compile(r"^\s*Stream #0:\d+\S*: Audio: [^\n]*?, (\d+) Hz, ([^,\n]+)", re.MULTILINE)
_ANY_STREAM_RE = re.compile(r"^\s*Stream #0:\d+\S*: (Video|Audio|Subtitle|Data|Attachment):", re.MULTILINE)
_LOG_PREFIX_RE = re.compile(r"^\[[^\]]*@ 0x[0-9a-f]+\]\s*")
_ERROR_HINT_RE = re.compile(r"error|invalid|no such|not found|unsupported|could not|failed|denied", re.I)


@dataclass(frozen=True, eq=False)
class Audio:
    """A decoded recording.

    Attributes:
        samples: (N,) float32 mono samples in [-1, 1] (roughly; lossy codecs may overshoot).
        sr: sample rate of ``samples`` (Hz), normally :data:`SAMPLE_RATE`.
        duration: N / sr in seconds.
        source_channels: channel count of the source track (0 when ffmpeg did not say).
        source_rate: sample rate of the source track in Hz (0 when ffmpeg did not say).
    """

    samples: np.ndarray
    sr: int
    duration: float
    source_channels: int
    source_rate: int


@dataclass(frozen=True)
class AudioInfo:
    """What a cheap probe of a file says, without decoding it (see :func:`probe_audio`)."""

    duration: float | None
    channels: int
    sample_rate: int


AUDIO_HINT = "pass a recording with speech: .wav, .mp3, .flac, .m4a, .ogg or a video with sound"


def _ffmpeg_input(path: Path) -> list[str]:
    """``-i`` arguments; the ``file:`` protocol stops names like ``pipe:x`` or ``-x`` being misread."""
    return ["-i", f"file:{path.resolve()}"]


def _channels_from_layout(layout: str) -> int:
    layout = layout.strip()
    if layout in _CHANNEL_LAYOUTS:
        return _CHANNEL_LAYOUTS[layout]
    match = re.match(r"(\d+) channels", layout)
    return int(match.group(1)) if match else 0


def _parse_stream_info(log: str) -> AudioInfo:
    """Duration, channels and rate of the first audio stream from ffmpeg's input dump."""
    duration = None
    if (m := _DURATION_RE.search(log)) is not None:
        hours, minutes, seconds = m.groups()
        duration = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    channels = rate = 0
    if (m := _AUDIO_STREAM_RE.search(log)) is not None:
        rate = int(m.group(1))
        channels = _channels_from_layout(m.group(2))
    return AudioInfo(duration=duration, channels=channels, sample_rate=rate)


def _has_streams_but_no_audio(log: str) -> bool:
    kinds = _ANY_STREAM_RE.findall(log)
    return bool(kinds) and "Audio" not in kinds


def _ffmpeg_error_line(log: str) -> str:
    """The most useful single line of an ffmpeg error log (prefix such as ``[in#0 @ 0x..]`` removed)."""
    lines = [_LOG_PREFIX_RE.sub("", ln).strip() for ln in log.splitlines()]
    lines = [ln for ln in lines if ln]
    for line in lines:  # ffmpeg's own summary of why the input could not be opened, when it gives one
        if line.lower().startswith("error opening input:"):
            return line.split(": ", 1)[1]
    for line in lines:
        if _ERROR_HINT_RE.search(line):
            return line
    return lines[-1] if lines else "ffmpeg gave no message"


def _decode_error(path: Path, log: str, returncode: int) -> AudioError:
    if _has_streams_but_no_audio(log):
        return AudioError(f"{path} has no audio track; pass a file that contains speech")
    return AudioError(
        f"cannot decode {path}: {_ffmpeg_error_line(log)} (ffmpeg exit {returncode}); "
        "is it a valid audio or video file?"
    )


def _read_all(stream, chunk_bytes: int = PIPE_CHUNK_BYTES) -> bytearray:
    """Read a pipe to its end in fixed-size chunks into one bytearray (no second full-size copy)."""
    buffer = bytearray()
    while chunk := stream.read(chunk_bytes):
        buffer += chunk
    return buffer


def _run_decoder(path: Path, sr: int, max_seconds: float | None) -> tuple[np.ndarray, str]:
    """Run ffmpeg, returning ((N,) float32 samples, its stderr log). Raises AudioError on failure."""
    args = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-nostats", *_ffmpeg_input(path)]
    if max_seconds is not None:
        args += ["-t", f"{max_seconds + _MAX_SECONDS_SLACK_S:.6f}"]
    args += ["-map", "0:a:0", "-vn", "-sn", "-dn", "-ac", "1", "-ar", str(sr), "-f", "f32le", "pipe:1"]
    # stderr goes to a file, not a pipe: a chatty ffmpeg cannot then block on a full stderr pipe
    # while we are reading stdout.
    with tempfile.TemporaryFile() as err_file:
        with subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err_file) as proc:
            assert proc.stdout is not None
            raw = _read_all(proc.stdout)
            returncode = proc.wait()
        err_file.seek(0)
        log = err_file.read().decode("utf-8", errors="replace")
    if returncode != 0:
        raise _decode_error(path, log, returncode)
    usable = len(raw) - len(raw) % 4
    del raw[usable:]
    return np.frombuffer(raw, dtype="<f4").astype(np.float32, copy=False), log


def mean_square(samples: np.ndarray, chunk: int = REDUCE_CHUNK_SAMPLES) -> float:
    """Mean of x² over (N,) samples, accumulated in float64 chunk by chunk (no full-size temporary)."""
    if samples.size == 0:
        return 0.0
    total = 0.0
    for start in range(0, samples.size, chunk):
        part = samples[start : start + chunk].astype(np.float64)
        total += float(np.dot(part, part))
    return total / samples.size


def rms_dbfs(samples: np.ndarray) -> float:
    """RMS level of (N,) samples in dB relative to an RMS of 1.0 (``-inf`` for digital silence)."""
    power = mean_square(samples)
    return 10.0 * np.log10(power) if power > 0.0 else float("-inf")


def _validate(path: Path, samples: np.ndarray, sr: int, max_seconds: float | None) -> None:
    duration = samples.size / sr
    if samples.size == 0:
        raise AudioError(f"{path} decoded to no audio samples; the file holds an empty audio track")
    if max_seconds is not None and duration > max_seconds:
        raise AudioError(
            f"{path} is longer than the {max_seconds:g} s limit; trim it or raise the limit (max_seconds)"
        )
    if duration < MIN_DURATION_S:
        raise AudioError(
            f"{path} is too short ({duration:.2f} s); pass at least {MIN_DURATION_S:g} s of speech"
        )
    if not np.isfinite(np.sum(samples, dtype=np.float64)):  # NaN/inf anywhere poison the sum
        raise AudioError(f"{path} decoded to non-finite samples (NaN/inf); re-encode it, e.g. as 16-bit WAV")
    level = rms_dbfs(samples)
    if level < SILENCE_DBFS:
        raise AudioError(
            f"{path} is silent (RMS {level:.1f} dBFS, below {SILENCE_DBFS:g} dBFS); "
            "pass a recording with audible speech"
        )


def load_audio(path: str | Path, sr: int = SAMPLE_RATE, max_seconds: float | None = None) -> Audio:
    """Decode ``path`` (any format ffmpeg reads, or a video's first audio track) to mono float32.

    Multi-channel input is downmixed by ffmpeg (``-ac 1``: its default matrix, which for stereo is
    (L + R)/√2, so identical channels come out 3 dB above either one; levels do not matter downstream,
    features are loudness-normalised) and resampled to ``sr`` (``-ar``).

    Args:
        path: audio or video file.
        sr: output sample rate in Hz.
        max_seconds: if given, refuse recordings longer than this (only ``max_seconds`` + 0.1 s is
            ever decoded). Without it any length is accepted; memory is linear in the length.

    Returns:
        :class:`Audio` with ``samples`` of shape (N,), float32.

    Raises:
        InputError: the path does not exist or is a folder.
        AudioError: empty, corrupt or undecodable file, no audio track, no samples, shorter than
            :data:`MIN_DURATION_S`, longer than ``max_seconds``, or quieter than :data:`SILENCE_DBFS`.
    """
    path = Path(path)
    check_input_file(path, "audio file", AUDIO_HINT, empty_error=AudioError)
    samples, log = _run_decoder(path, sr, max_seconds)
    _validate(path, samples, sr, max_seconds)
    info = _parse_stream_info(log)
    return Audio(
        samples=samples,
        sr=sr,
        duration=samples.size / sr,
        source_channels=info.channels,
        source_rate=info.sample_rate,
    )


def probe_audio(path: str | Path) -> AudioInfo:
    """Read a file's header with ffmpeg (no decoding) and describe its first audio track.

    ``duration`` is the container's duration as ffmpeg reports it (for a video, the whole file's),
    or None where the container does not say (e.g. some raw streams).

    Raises:
        InputError: missing path or a folder.
        AudioError: empty or unreadable file, or no audio track.
    """
    path = Path(path)
    check_input_file(path, "audio file", AUDIO_HINT, empty_error=AudioError)
    # "-t 0 -f null -" opens input and output and stops before decoding anything; exit 0 on success.
    args = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-nostats", *_ffmpeg_input(path),
            "-map", "0:a:0", "-t", "0", "-f", "null", "-"]
    try:
        result = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, check=True)
    except subprocess.CalledProcessError as exc:
        log = exc.stderr.decode("utf-8", errors="replace")
        raise _decode_error(path, log, exc.returncode) from None
    return _parse_stream_info(result.stderr.decode("utf-8", errors="replace"))


def audio_duration(path: str | Path) -> float:
    """Duration of ``path`` in seconds from its header (cheap); decodes only if the header has none."""
    info = probe_audio(path)
    if info.duration is not None:
        return info.duration
    return load_audio(path).duration


def save_wav(path: str | Path, samples: np.ndarray, sr: int = SAMPLE_RATE) -> Path:
    """Write mono float samples in [-1, 1] as 16-bit PCM WAV, atomically (temporary file + rename)."""
    import wave

    pcm = np.clip(np.asarray(samples, np.float32), -1.0, 1.0)
    pcm = np.round(pcm * 32767.0).astype("<i2")

    def write(tmp: Path) -> None:
        with wave.open(str(tmp), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(sr)
            w.writeframes(pcm.tobytes())

    return atomic_write(path, write, fsync=False)
