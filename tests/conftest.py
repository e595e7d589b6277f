"""Shared fixtures: small real inputs the project ships or makes (no network)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


@pytest.fixture(scope="session")
def face_png() -> Path:
    """The shipped example photo (a crop of scikit-image's public-domain astronaut)."""
    return EXAMPLES / "face.png"


@pytest.fixture(scope="session")
def speech_wav() -> Path:
    """The shipped example speech (espeak-ng, 16 kHz mono)."""
    return EXAMPLES / "speech.wav"


@pytest.fixture(scope="session")
def face_rgb(face_png: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(face_png).convert("RGB"))
