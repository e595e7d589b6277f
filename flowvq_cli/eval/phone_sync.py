"""Phone-level lip sync: do the lips close on p/b/m, open with the vowel, and round on uw/ow/w?

Pure functions of per-frame mouth tracks and a phone list (:class:`~flowvq_cli.audio.phones.Phone`, ARPAbet,
from pocketsphinx: :mod:`flowvq_cli.audio.phones`). ``flowvq evaluate`` takes the tracks from the video's
FaceMesh landmarks: the **lip gap** (``flowvq_cli.face.canonical.lip_gap``: the largest distance between the
paired inner upper and lower lip contour points, over the distance of the mouth corners 61–291, so in mouth
widths) and the expression reader's (Blendshape V2, ``flowvq_cli.face.reader``) ``mouthFunnel`` and
``mouthPucker``. A phone covers the frames whose centre lies within its span ± half a frame
(:func:`frames_of`). Frames where the face was lost are NaN and skipped.

- **p/b/m closure**: the share of bilabial phones (P, B, M) in which the inner lips meet, i.e. the lip gap
  is below :data:`CLOSED` (0.05 mouth widths, issue 21's criterion) in at least one of its frames. A
  stop's closure is silent and the aligner may label it as a pause: a P or B right after a silence takes
  the last :data:`STOP_CLOSURE_S` of it as its own.
- **vowel openness correlation**: the Spearman correlation between the largest lip gap within each vowel
  and the vowel's openness class (:data:`OPENNESS`, 1 close … 7 open).
- **rounding on uw/ow/w**: the share of rounded phones (:data:`ROUNDED`) in which ``mouthFunnel`` or
  ``mouthPucker`` is *raised*: its largest reading within the phone is at least :data:`RAISED` above its
  median over the clip's tracked frames (the clip's own resting level, so a face that always reads a
  little pucker does not count as rounding).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from flowvq_cli.audio.phones import BILABIALS, SILENCE, Phone

STOPS = ("P", "B")
CLOSED = 0.05
"""Lip gap (mouth widths) below which the inner lips meet (``canonical.lip_gap``; issue 21)."""
STOP_CLOSURE_S = 0.10
"""How much of an aligned silence right before a P or B counts as the stop's closure (seconds): the lips
close for 50–100 ms before the burst, and that closure is silent."""
OPENNESS = {
    "IY": 1, "UW": 1,  # close: i, u
    "IH": 2, "UH": 2,  # near-close: ɪ, ʊ
    "EY": 3, "OW": 3,  # close-mid: e(ɪ), o(ʊ)
    "ER": 4,  # mid: ɝ
    "EH": 5, "AO": 5, "AH": 5, "OY": 5,  # open-mid: ɛ, ɔ, ʌ, ɔ(ɪ)
    "AE": 6,  # near-open: æ
    "AA": 7, "AY": 7, "AW": 7,  # open: ɑ, a(ɪ), a(ʊ)
}
"""ARPAbet vowel → openness class (vowel height, 1 close … 7 open): the height of the vowel's IPA symbol on
the IPA vowel chart (International Phonetic Association, *Handbook of the IPA*, Cambridge University Press
1999, p. 41 for American English), ARPAbet ↔ IPA as in the CMU Pronouncing Dictionary's phone set. A
diphthong takes the height of its first, most open element, since the measure is the largest opening
within it."""
ROUNDED = ("UW", "OW", "W")
"""Phones spoken with rounded, protruded lips: u, o(ʊ) and the glide w (issue 22's list)."""
ROUNDING = ("mouthFunnel", "mouthPucker")
"""The reader's blendshapes of lip rounding."""
RAISED = 0.1
"""A rounding blendshape is raised in a phone when its largest reading there is at least this much (a tenth
of the reader's 0–1 range) above its median over the clip."""


def frames_of(phone: Phone, fps: float, n_frames: int) -> np.ndarray:
    """Frames within the phone's span ± half a frame: frame t shows [t/fps, (t+1)/fps), its centre
    (t + 0.5)/fps lies in [start − 0.5/fps, end + 0.5/fps]."""
    first = max(int(np.ceil(phone.start * fps - 1.0)), 0)
    last = min(int(np.floor(phone.end * fps)), n_frames - 1)
    return np.arange(first, last + 1)


def bilabial_spans(phones: list[Phone]) -> list[Phone]:
    """The P, B and M phones; a P or B right after a silence starts up to :data:`STOP_CLOSURE_S` earlier."""
    spans = []
    for i, phone in enumerate(phones):
        if phone.label not in BILABIALS:
            continue
        start = phone.start
        if phone.label in STOPS and i > 0 and phones[i - 1].label == SILENCE:
            start = max(phones[i - 1].start, phone.start - STOP_CLOSURE_S)
        spans.append(Phone(start, phone.end, phone.label))
    return spans


def _over(track: np.ndarray, phone: Phone, fps: float, reduce: Callable[[np.ndarray], float]) -> float:
    """``reduce`` (np.nanmin / np.nanmax) of ``track`` over the phone's frames; NaN where none is tracked."""
    values = track[frames_of(phone, fps, track.shape[0])]
    return float(reduce(values)) if np.isfinite(values).any() else float("nan")


def closures(gap: np.ndarray, phones: list[Phone], fps: float) -> np.ndarray:
    """(N,) the smallest lip gap within each bilabial phone (NaN where no frame of it has a face)."""
    return np.asarray([_over(gap, span, fps, np.nanmin) for span in bilabial_spans(phones)], np.float64)


def vowel_openings(gap: np.ndarray, phones: list[Phone], fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Per vowel phone with a tracked frame: (its openness class, the largest lip gap within it), each (N,)."""
    pairs = [(OPENNESS[p.label], _over(gap, p, fps, np.nanmax)) for p in phones if p.label in OPENNESS]
    pairs = [(k, g) for k, g in pairs if np.isfinite(g)]
    return np.asarray([k for k, _ in pairs], np.float64), np.asarray([g for _, g in pairs], np.float64)


def rounding_rises(rounding: np.ndarray, phones: list[Phone], fps: float) -> np.ndarray:
    """(N,) per rounded phone (:data:`ROUNDED`) with a tracked frame, the largest rise of any rounding
    blendshape within it over that blendshape's median over the clip.

    Args:
        rounding: ``(T, K)`` readings of the rounding blendshapes (``mouthFunnel``, ``mouthPucker``).
    """
    rounding = np.asarray(rounding, np.float64)
    tracked = np.isfinite(rounding).all(axis=1)
    if not tracked.any():
        return np.zeros(0)
    rise = (rounding - np.median(rounding[tracked], axis=0)).max(axis=1)  # (T,) NaN where not tracked
    peaks = [_over(rise, p, fps, np.nanmax) for p in phones if p.label in ROUNDED]
    return np.asarray([r for r in peaks if np.isfinite(r)], np.float64)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation (NaN with fewer than 3 pairs or a constant side)."""
    from scipy.stats import spearmanr

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.size < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


@dataclass(frozen=True)
class PhoneSync:
    """The phone-level measures of one clip.

    Attributes:
        closure_gaps: ``(B,)`` smallest lip gap within each tracked p/b/m phone (mouth widths).
        openness: ``(V,)`` openness class of each tracked vowel; ``openings``: ``(V,)`` its largest lip gap.
        rounding_rises: ``(R,)`` largest rise of mouthFunnel / mouthPucker over the clip's median in each
            tracked uw/ow/w phone.
    """

    closure_gaps: np.ndarray
    openness: np.ndarray
    openings: np.ndarray
    rounding_rises: np.ndarray

    @property
    def closed(self) -> np.ndarray:
        """(B,) bool: the lips meet in the phone."""
        return self.closure_gaps < CLOSED

    @property
    def openness_correlation(self) -> float:
        """Spearman ρ of vowel opening with openness class (NaN when undefined)."""
        return spearman(self.openness, self.openings)

    @property
    def rounded(self) -> np.ndarray:
        """(R,) bool: a rounding blendshape is raised in the phone."""
        return self.rounding_rises >= RAISED


def phone_sync(gap: np.ndarray, rounding: np.ndarray, phones: list[Phone], fps: float) -> PhoneSync:
    """Every phone-level measure of a clip.

    Args:
        gap: ``(T,)`` lip gap per frame, in mouth widths (NaN where the face was lost).
        rounding: ``(T, K)`` readings of the rounding blendshapes (:data:`ROUNDING`), NaN where lost.
        phones: the speech's phones, in order.
        fps: the video's frame rate.
    """
    gaps = closures(gap, phones, fps)
    openness, openings = vowel_openings(gap, phones, fps)
    return PhoneSync(gaps[np.isfinite(gaps)], openness, openings, rounding_rises(rounding, phones, fps))
