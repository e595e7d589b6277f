"""Phone features per video frame: which ARPAbet phone pocketsphinx hears in each frame (issue 22).

The log-mel front end (:mod:`flowvq_cli.audio.features`) carries the speaker's voice along with what is
said; a flow trained on a handful of voices learns the voices. pocketsphinx's phones (:mod:`.phones`) come
from an acoustic model trained on many real speakers, so they are the same for any voice that says the same
thing. An ExpFlow whose config has ``phone_dim`` = :data:`N_PHONES` sees, beside each frame's log-mels, the
share of that frame each phone covers (rows sum to 1).

- Training: every clip's phones from pocketsphinx's forced alignment of the clip's ``text.txt`` (what
  ``flowvq synth`` writes; the first line), else its recogniser; or, with the flow config's
  ``phone_source`` = "speech", from the recogniser always, as generation hears a voice without ``--text``;
  cached under ``DATASET/cache/phones``.
- Generation: aligned to ``--text`` when it is given, else recognised (``flowvq_cli.api``).

Frame t covers [t / fps, (t + 1) / fps), as the log-mel frames of video frame t do.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from flowvq_cli.audio.phones import SILENCE, AlignmentError, Phone, heard_phones

PHONES = ("SIL", "AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F", "G", "HH",
          "IH", "IY", "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH", "T", "TH", "UH", "UW",
          "V", "W", "Y", "Z", "ZH")
"""pocketsphinx en-us's phone set (the CMU dictionary's 39 ARPAbet phones) and silence; noise and filler
labels (``+NSN+``, ``+SPN+``, …) count as silence."""
N_PHONES = len(PHONES)
PHONE_TRACK_VERSION = 2
"""Bumped whenever the track changes, so that caches made by older code are not reused."""
PHONE_SOURCES = ("text", "speech")
"""Where a training clip's phones come from: aligned to its text, or recognised from its speech."""
_INDEX = {p: i for i, p in enumerate(PHONES)}


def phone_index(label: str) -> int:
    """Column of ``label`` in the track (silence for anything not in :data:`PHONES`)."""
    return _INDEX.get(label, _INDEX[SILENCE])


def phone_track(phones: Sequence[Phone], n_frames: int, fps: float) -> np.ndarray:
    """(n_frames, :data:`N_PHONES`) float32: the share of each frame every phone covers; time no phone covers
    (before the first, after the last, gaps) is silence, so every row sums to 1."""
    track = np.zeros((n_frames, N_PHONES), np.float64)
    edges = np.arange(n_frames + 1) / fps  # frame t: [edges[t], edges[t + 1])
    for p in phones:
        lo, hi = max(p.start, 0.0), min(p.end, edges[-1])
        if hi <= lo:
            continue
        first, last = int(lo * fps), min(int(np.ceil(hi * fps)), n_frames)
        for t in range(first, last):
            overlap = min(hi, edges[t + 1]) - max(lo, edges[t])
            if overlap > 0:
                track[t, phone_index(p.label)] += overlap * fps
    track[:, _INDEX[SILENCE]] += np.clip(1.0 - track.sum(axis=1), 0.0, None)
    return (track / track.sum(axis=1, keepdims=True)).astype(np.float32)


def speech_phone_track(audio: str | Path, n_frames: int, fps: float, text: str | None = None) -> np.ndarray:
    """:func:`phone_track` of the speech in ``audio``: aligned to ``text`` when given, else recognised (the
    narrow search, :data:`flowvq_cli.audio.phones.FAST_SEARCH`); where pocketsphinx finds no speech, silence
    throughout.

    Raises:
        PhonesUnavailableError: pocketsphinx is not installed.
        AlignmentError: ``text`` holds a word pocketsphinx does not know, or it could not align it.
    """
    return phone_track(heard_phones(audio, text), n_frames, fps)


def clip_text(audio: Path) -> str | None:
    """The first line of the ``text.txt`` beside a corpus clip's ``audio`` (what ``flowvq synth`` writes), or
    None when there is none or it is empty."""
    text_file = audio.parent / "text.txt"
    if not text_file.is_file():
        return None
    lines = text_file.read_text(encoding="utf-8").splitlines()
    return (lines[0].strip() or None) if lines else None


def clip_phone_track(audio: Path, n_frames: int, fps: float, text: str | None = None) -> np.ndarray:
    """A corpus clip's track: aligned to ``text`` when given and it aligns, else recognised."""
    if text is not None:
        try:
            return speech_phone_track(audio, n_frames, fps, text)
        except AlignmentError:
            pass
    return speech_phone_track(audio, n_frames, fps)
