"""Helpers shared by the audio tests: real files written with the ``wave`` module and the ffmpeg binary.

A plain module (not ``conftest``) so that test files can import it by a name no other test folder uses.
"""

from __future__ import annotations

import subprocess
import wave
from pathlib import Path

import imageio_ffmpeg
import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_SPEECH = REPO_ROOT / "examples" / "speech.wav"


def tone(freq: float, seconds: float, sr: int = 16_000, amplitude: float = 0.5) -> np.ndarray:
    """(N,) float64 sine."""
    t = np.arange(round(seconds * sr)) / sr
    return amplitude * np.sin(2 * np.pi * freq * t)


def write_wav(path: Path, samples: np.ndarray, sr: int) -> Path:
    """Write (N,) or (N, C) float samples in [-1, 1] as 16-bit PCM with the ``wave`` module."""
    frames = samples.reshape(samples.shape[0], -1)  # (N, C)
    pcm = np.clip(np.rint(frames * 32767), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(frames.shape[1])
        handle.setsampwidth(2)
        handle.setframerate(sr)
        handle.writeframes(pcm.tobytes())
    return path


def run_ffmpeg(*args: str) -> None:
    """Run the bundled ffmpeg quietly; fail the test on a non-zero exit."""
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args]
    subprocess.run(cmd, check=True, capture_output=True)


def dominant_frequency(samples: np.ndarray, sr: int) -> float:
    """Frequency (Hz) of the strongest spectral peak of the middle half of a signal."""
    middle = samples[samples.size // 4 : 3 * samples.size // 4]
    spectrum = np.abs(np.fft.rfft(middle * np.hanning(middle.size), n=1 << 20))
    return float(np.argmax(spectrum) * sr / (1 << 20))
