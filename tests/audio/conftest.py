"""Fixtures for the audio tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from audio_testutils import tone, write_wav


@pytest.fixture
def stereo_wav(tmp_path: Path) -> Path:
    """1.0 s, 44.1 kHz, stereo 440 Hz tone (same signal on both channels)."""
    mono = tone(440.0, 1.0, sr=44_100)
    return write_wav(tmp_path / "stereo44k.wav", np.stack([mono, mono], axis=1), 44_100)


@pytest.fixture
def make_wav(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``make_wav(name, samples, sr=16000)`` writes a wav under tmp_path."""

    def _make(name: str, samples: np.ndarray, sr: int = 16_000) -> Path:
        return write_wav(tmp_path / name, samples, sr)

    return _make
