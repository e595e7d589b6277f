"""Labels shared by the data, the models and the command line."""

from __future__ import annotations

EMOTIONS: tuple[str, ...] = ("angry", "contempt", "disgusted", "fear", "happy", "neutral", "sad", "surprised", "talk")
"""The 9 emotion classes: MEAD's 8 plus ``talk`` (HDTF-style everyday speech). The order is the class index
used by the models' per-emotion parameters: never reorder it."""

INTENSITIES: tuple[int, ...] = (1, 2, 3)
"""MEAD's emotion intensity levels."""
