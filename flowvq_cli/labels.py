"""Labels shared by the data, the models and the command line."""

from __future__ import annotations

from flowvq_cli.errors import UsageError

EMOTIONS: tuple[str, ...] = ("angry", "contempt", "disgusted", "fear", "happy", "neutral", "sad", "surprised", "talk")
"""The 9 emotion classes: MEAD's 8 plus ``talk`` (HDTF-style everyday speech). The order is the class index
used by the models' per-emotion parameters: never reorder it."""

INTENSITIES: tuple[int, ...] = (1, 2, 3)
"""MEAD's emotion intensity levels."""

TALK = "talk"
"""The everyday-speech class (HDTF-style clips; no emotion intensity)."""

TALK_CLASS = EMOTIONS.index(TALK)
""":data:`TALK`'s class index in the models."""


def check_emotion(emotion: str, intensity: int | None = None) -> tuple[str, int | None]:
    """The label, lower-cased, and the intensity, checked: a one-line :class:`~flowvq_cli.errors.UsageError`
    listing what is allowed for a label outside :data:`EMOTIONS` or an intensity outside :data:`INTENSITIES`
    (``None``: not checked)."""
    name = emotion.strip().lower()
    if name not in EMOTIONS:
        raise UsageError(f"unknown emotion {emotion!r}; choose one of: {', '.join(EMOTIONS)}")
    if intensity is not None and intensity not in INTENSITIES:
        raise UsageError(f"intensity must be 1, 2 or 3 (MEAD's levels), got {intensity}")
    return name, intensity
