"""Phonemes → visemes → per-frame ARKit mouth and jaw weights (the speech side of ``flowvq synth``).

Each espeak-ng phoneme mnemonic maps to one of 14 viseme classes (:data:`VISEMES`). A class has a
target pose of the mouth (ARKit weights, :data:`VISEME_TARGETS`), a mouth-opening value (lip aperture
in [0, 1], :data:`VISEME_OPENING`, the ground-truth ``viseme_track``) and a dominance
(:data:`DOMINANCE`).

Viseme table (weights at full target; unnamed channels are 0; L/R pairs get the same value):

=========  ============================  ===========================================================  =======
class      espeak phonemes               ARKit target                                                 opening
=========  ============================  ===========================================================  =======
sil        _ _: _! _| (pauses)           all 0                                                        0
PBM        p b m                         jawOpen .04, mouthClose .04, mouthPress .35, mouthRoll .1     0
FV         f v                           jawOpen .08, mouthRollLower .55, mouthUpperUp .25             .08
TH         T D                           jawOpen .15, tongueOut .35, mouthUpperUp .1                   .2
DTNL       t d n l t# ? …                jawOpen .15, mouthLowerDown .12, mouthStretch .1              .25
KG         k g N h x                     jawOpen .2,  mouthStretch .1, mouthLowerDown .1               .3
CH         S Z tS dZ                     jawOpen .12, mouthFunnel .5, mouthPucker .2, lips apart .2    .2
SZ         s z                           jawOpen .06, mouthStretch .3, mouthSmile .1, lips apart .15   .12
R          r r-                          jawOpen .15, mouthFunnel .25, mouthPucker .25                 .2
W_OO       w u: U U@ (close rounded)     jawOpen .12, mouthPucker .7, mouthFunnel .35                  .15
AA         a A: aa aI aU A@ V            jawOpen .7, mouthLowerDown .3, mouthUpperUp .1                .9
EH         E e eI e@ @ a# 3 3: (+ER) …   jawOpen .42, mouthLowerDown .2, mouthStretch .15              .55
EE         i i: I I# I2 j i@             jawOpen .25, mouthStretch .35, mouthSmile .25                 .35
OW         0 O: O@ o@ oU OI (open round) jawOpen .45, mouthFunnel .5, mouthPucker .3                   .55
=========  ============================  ===========================================================  =======

Coarticulation (Cohen & Massaro's dominance model): phoneme i with centre c_i, duration d_i and class k
has dominance ``D_i(t) = α_k,g · exp(−max(|t − c_i| − ρ·d_i/2, 0) / τ_k)`` — a plateau over the middle
of the phoneme (ρ = :data:`PLATEAU`) that decays exponentially around it — with separate magnitudes α
for the jaw group (jawOpen, opening) and the lip group (everything else), so e.g. /k/ sets the jaw but
leaves lip rounding to the neighbouring vowels. Every channel is the dominance-weighted average of
the targets: ``F(t) = Σ_i D_i(t)·T_i / Σ_i D_i(t)``.

Lips-closed constraint: around every bilabial a closure weight w(t) is 1 over the middle of the
phoneme (at least half a video frame either side of its centre, so a short /p/ still closes a frame)
and falls off as a Gaussian outside; ``F ← (1 − w)·F + w·T_PBM`` on the channels that part the lips
(:data:`OPENING_CHANNELS`) and ``F ← (1 − w)·F + w·max(F, T_PBM)`` on the PBM target's press/roll
channels makes the lips really meet, while smiles, brows etc. added later by an emotion are kept.
(``lips apart`` above = mouthUpperUp and mouthLowerDown.)

Loudness: speakers open the jaw wider on loud (stressed) syllables, so when the audio's energy
envelope is given the jaw group is scaled by a gain rising from :data:`LOUDNESS_MIN_GAIN` (at
:data:`LOUDNESS_RANGE_DB` below the utterance's loud level, its 95th percentile) to 1 (at that level).

Frame k samples time ``(k + 0.5) / fps`` (the centre of the audio it covers, as in
:mod:`flowvq_cli.audio.energy`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np

from flowvq_cli.data.speech import Phone

VISEMES = ("sil", "PBM", "FV", "TH", "DTNL", "KG", "CH", "SZ", "R", "W_OO", "AA", "EH", "EE", "OW")
"""Viseme classes; their position is the class id used in :attr:`MouthTrack.viseme`."""

SILENCE = VISEMES.index("sil")
BILABIAL = VISEMES.index("PBM")

PHONEME_CLASSES: dict[str, str] = {
    # consonants
    "p": "PBM", "b": "PBM", "m": "PBM",
    "f": "FV", "v": "FV",
    "T": "TH", "D": "TH",
    "t": "DTNL", "d": "DTNL", "n": "DTNL", "l": "DTNL", "t#": "DTNL", "t2": "DTNL", "t[": "DTNL", "d#": "DTNL",
    "n-": "DTNL", "l/": "DTNL", "@L": "DTNL", "?": "DTNL", "L": "DTNL",
    "k": "KG", "g": "KG", "N": "KG", "h": "KG", "x": "KG", "C": "KG",
    "S": "CH", "Z": "CH", "tS": "CH", "dZ": "CH",
    "s": "SZ", "z": "SZ",
    "r": "R", "r-": "R",
    "w": "W_OO", "w#": "W_OO", "W": "W_OO",
    # vowels
    "u:": "W_OO", "U": "W_OO", "U@": "W_OO", "u": "W_OO", "ju:": "W_OO",
    "a": "AA", "A:": "AA", "aa": "AA", "aI": "AA", "aI@": "AA", "aI2": "AA", "aI3": "AA", "aU": "AA", "aU@": "AA",
    "A@": "AA", "A": "AA", "V": "AA", "a:": "AA",
    "E": "EH", "e": "EH", "eI": "EH", "e@": "EH", "@": "EH", "@2": "EH", "@-": "EH", "a#": "EH", "@@": "EH",
    "3": "EH", "3:": "EH", "VR": "EH", "@5": "EH", "IR": "EH",
    "i": "EE", "i:": "EE", "I": "EE", "I#": "EE", "I2": "EE", "j": "EE", "i@": "EE", "i@3": "EE",
    "0": "OW", "O:": "OW", "O@": "OW", "O2": "OW", "o@": "OW", "oU": "OW", "oU#": "OW", "OI": "OW", "O": "OW",
    "0@": "OW", "o:": "OW",
}
"""espeak-ng English mnemonic → viseme class name (collected from espeak-ng 1.51's English voices)."""

VOWEL_LETTERS = "aeiouAEIOUV@03"
"""First characters of vowel mnemonics: an unknown mnemonic starting with one is treated as ``EH``."""

MODIFIERS = "';,"
"""Stress/linking marks; an event made only of them (espeak emits ``;`` between spelled letters) has no
target of its own and is left out of the blend, so its neighbours cover it."""

VISEME_TARGETS: dict[str, dict[str, float]] = {
    "sil": {},
    "PBM": {"jawOpen": 0.04, "mouthClose": 0.04, "mouthPressLeft": 0.35, "mouthPressRight": 0.35,
            "mouthRollLower": 0.1, "mouthRollUpper": 0.1},
    "FV": {"jawOpen": 0.08, "mouthRollLower": 0.55, "mouthUpperUpLeft": 0.25, "mouthUpperUpRight": 0.25},
    "TH": {"jawOpen": 0.15, "tongueOut": 0.35, "mouthUpperUpLeft": 0.1, "mouthUpperUpRight": 0.1},
    "DTNL": {"jawOpen": 0.15, "mouthLowerDownLeft": 0.12, "mouthLowerDownRight": 0.12,
             "mouthStretchLeft": 0.1, "mouthStretchRight": 0.1},
    "KG": {"jawOpen": 0.2, "mouthStretchLeft": 0.1, "mouthStretchRight": 0.1,
           "mouthLowerDownLeft": 0.1, "mouthLowerDownRight": 0.1},
    "CH": {"jawOpen": 0.12, "mouthFunnel": 0.5, "mouthPucker": 0.2, "mouthUpperUpLeft": 0.2,
           "mouthUpperUpRight": 0.2, "mouthLowerDownLeft": 0.15, "mouthLowerDownRight": 0.15},
    "SZ": {"jawOpen": 0.06, "mouthStretchLeft": 0.3, "mouthStretchRight": 0.3, "mouthSmileLeft": 0.1,
           "mouthSmileRight": 0.1, "mouthUpperUpLeft": 0.15, "mouthUpperUpRight": 0.15,
           "mouthLowerDownLeft": 0.15, "mouthLowerDownRight": 0.15},
    "R": {"jawOpen": 0.15, "mouthFunnel": 0.25, "mouthPucker": 0.25},
    "W_OO": {"jawOpen": 0.12, "mouthPucker": 0.7, "mouthFunnel": 0.35},
    "AA": {"jawOpen": 0.7, "mouthLowerDownLeft": 0.3, "mouthLowerDownRight": 0.3,
           "mouthUpperUpLeft": 0.1, "mouthUpperUpRight": 0.1},
    "EH": {"jawOpen": 0.42, "mouthLowerDownLeft": 0.2, "mouthLowerDownRight": 0.2,
           "mouthStretchLeft": 0.15, "mouthStretchRight": 0.15},
    "EE": {"jawOpen": 0.25, "mouthStretchLeft": 0.35, "mouthStretchRight": 0.35, "mouthSmileLeft": 0.25,
           "mouthSmileRight": 0.25, "mouthUpperUpLeft": 0.1, "mouthUpperUpRight": 0.1,
           "mouthLowerDownLeft": 0.1, "mouthLowerDownRight": 0.1},
    "OW": {"jawOpen": 0.45, "mouthFunnel": 0.5, "mouthPucker": 0.3},
}
"""Viseme class → ARKit blendshape weights of its mouth/jaw target."""

VISEME_OPENING: dict[str, float] = {
    "sil": 0.0, "PBM": 0.0, "FV": 0.08, "TH": 0.2, "DTNL": 0.25, "KG": 0.3, "CH": 0.2, "SZ": 0.12, "R": 0.2,
    "W_OO": 0.15, "AA": 0.9, "EH": 0.55, "EE": 0.35, "OW": 0.55,
}
"""Viseme class → lip aperture in [0, 1] (0 = lips touching)."""

DOMINANCE: dict[str, tuple[float, float, float]] = {
    # class: (τ decay time constant in s, α jaw group, α lip group)
    "sil": (0.06, 1.5, 1.0),
    "PBM": (0.04, 0.8, 1.0),
    "FV": (0.04, 0.6, 1.0),
    "TH": (0.04, 0.5, 0.7),
    "DTNL": (0.035, 0.4, 0.25),
    "KG": (0.035, 0.4, 0.2),
    "CH": (0.05, 0.6, 0.9),
    "SZ": (0.04, 0.6, 0.6),
    "R": (0.05, 0.4, 0.6),
    "W_OO": (0.06, 0.6, 0.9),
    "AA": (0.06, 1.0, 0.6),
    "EH": (0.06, 0.9, 0.5),
    "EE": (0.06, 0.8, 0.6),
    "OW": (0.06, 0.9, 0.8),
}
"""Viseme class → Cohen–Massaro dominance parameters."""

OPENING_CHANNELS = ("jawOpen", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft", "mouthUpperUpRight",
                    "mouthFunnel", "tongueOut")
"""Channels that part the lips: the closure constraint pulls them to the bilabial target."""

JAW_GROUP = ("jawOpen",)
"""Channels blended with the jaw dominance (with the opening track); all others use the lip dominance."""

PLATEAU = 0.5
"""Fraction of a phoneme's duration (around its centre) over which its dominance stays at α."""

CLOSURE_CORE = 0.35
"""Half-width of a bilabial's full closure, as a fraction of its duration (at least half a frame)."""

CLOSURE_FALLOFF_S = 0.03
"""Gaussian fall-off (s) of the closure weight outside its core."""

LOUDNESS_MIN_GAIN = 0.4
"""Jaw gain of frames :data:`LOUDNESS_RANGE_DB` or more below the utterance's loud level."""

LOUDNESS_RANGE_DB = 30.0
"""Energy range (dB) over which the jaw gain rises from :data:`LOUDNESS_MIN_GAIN` to 1."""

LOUD_PERCENTILE = 95.0
"""Percentile of the energy envelope taken as the utterance's loud level."""

DOMINANCE_FLOOR = 1e-6
"""Added to the dominance sum, so a frame far from every phoneme does not divide by zero."""

WINDOW_FRAMES = 500
"""Long speech is blended this many video frames at a time (20 s at 25 fps), each with the phones near it."""

REACH_S = 2.0
"""Phones farther than this from a window are left out of it: beyond its plateau a phone's dominance has
decayed by e^-30 or more (τ ≤ 0.06 s), and a bilabial's closure weight is nil."""


@dataclass(frozen=True)
class MouthTrack:
    """Speech-driven mouth motion sampled at video frames.

    weights: (T, 52) float32 ARKit weights in the rig's order (non-mouth channels 0).
    opening: (T,) float32 lip aperture in [0, 1].
    viseme: (T,) int8 dominant viseme class id (index into :data:`VISEMES`).
    closure: (T,) float32 bilabial closure weight in [0, 1] (1 = lips must be shut).
    """

    weights: np.ndarray
    opening: np.ndarray
    viseme: np.ndarray
    closure: np.ndarray


@cache
def arkit_index() -> dict[str, int]:
    """ARKit blendshape name → channel in ``exp[0:52]`` (from :mod:`flowvq_cli.face.rig`)."""
    from flowvq_cli.face.rig import ARKIT_NAMES

    return {name: i for i, name in enumerate(ARKIT_NAMES)}


def weight_vector(weights: dict[str, float]) -> np.ndarray:
    """Named ARKit weights -> (52,) float32 vector in rig order."""
    index = arkit_index()
    out = np.zeros(len(index), dtype=np.float32)
    for name, value in weights.items():
        out[index[name]] = value
    return out


def viseme_of(phoneme: str) -> int:
    """Viseme class id of an espeak mnemonic (pauses → ``sil``; unknown vowels → ``EH``, consonants → ``DTNL``).

    Stress and length marks (``'``, ``,``, ``;``) are ignored; an unlisted mnemonic falls back to its
    longest listed prefix.
    """
    name = phoneme.strip(MODIFIERS)
    if phoneme.startswith("_") or not name:
        return SILENCE
    for end in range(len(name), 0, -1):
        if name[:end] in PHONEME_CLASSES:
            return VISEMES.index(PHONEME_CLASSES[name[:end]])
    return VISEMES.index("EH" if name[0] in VOWEL_LETTERS else "DTNL")


def frame_times(n_frames: int, fps: float) -> np.ndarray:
    """Times (s) the frames sample: the centres ``(k + 0.5) / fps``; (T,) float64."""
    return (np.arange(n_frames) + 0.5) / fps


@cache
def _class_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(K, 53) targets (52 ARKit + opening), (K, 53) dominance magnitudes α, (K,) decay constants τ."""
    index = arkit_index()
    n_exp = len(index)
    jaw = np.zeros(n_exp + 1, dtype=bool)
    jaw[[index[n] for n in JAW_GROUP]] = True
    jaw[n_exp] = True  # the opening channel
    targets = np.stack([np.append(weight_vector(VISEME_TARGETS[v]), VISEME_OPENING[v]) for v in VISEMES])
    alpha = np.stack([np.where(jaw, DOMINANCE[v][1], DOMINANCE[v][2]) for v in VISEMES])
    tau = np.array([DOMINANCE[v][0] for v in VISEMES])
    return targets.astype(np.float64), alpha.astype(np.float64), tau


def _phone_arrays(phones: Sequence[Phone]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(P,) centres, (P,) durations, (P,) class ids (modifier-only events skipped)."""
    phones = [p for p in phones if p.phoneme.strip(MODIFIERS)] or list(phones[:1])
    starts = np.array([p.start for p in phones], dtype=np.float64)
    ends = np.array([p.end for p in phones], dtype=np.float64)
    classes = np.array([viseme_of(p.phoneme) for p in phones], dtype=np.int64)
    return (starts + ends) / 2.0, ends - starts, classes


def dominance(times: np.ndarray, centres: np.ndarray, durations: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """Shape of each phoneme's dominance over time (without α): (T,), (P,), (P,), (P,) -> (T, P) in (0, 1]."""
    distance = np.abs(times[:, None] - centres[None, :]) - PLATEAU * durations[None, :] / 2.0  # (T, P)
    return np.exp(-np.maximum(distance, 0.0) / tau[None, :])


def closure_weight(times: np.ndarray, phones: Sequence[Phone], fps: float, core: float = CLOSURE_CORE,
                   min_frames: float = 0.5) -> np.ndarray:
    """Bilabial closure weight per time: (T,) float64 in [0, 1] (max over all /p b m/), full over ``core`` of
    each one's duration either side of its centre, and at least ``min_frames`` frames. Long speech is taken
    :data:`WINDOW_FRAMES` times at a time (:func:`_windows`)."""
    out = np.zeros(times.size)
    for window, near in _windows(times, phones):
        out[window] = _closure_weight(times[window], near, fps, core, min_frames)
    return out


def _closure_weight(times: np.ndarray, phones: Sequence[Phone], fps: float, core: float,
                    min_frames: float) -> np.ndarray:
    if not phones:
        return np.zeros(times.size)
    centres, durations, classes = _phone_arrays(phones)
    keep = classes == BILABIAL
    if not keep.any():
        return np.zeros(times.size)
    half = np.maximum(core * durations[keep], min_frames / fps)  # (B,)
    outside = np.maximum(np.abs(times[:, None] - centres[keep][None, :]) - half[None, :], 0.0)  # (T, B)
    return np.exp(-np.square(outside / CLOSURE_FALLOFF_S)).max(axis=1)


def _windows(times: np.ndarray, phones: Sequence[Phone]):
    """(slice of ``times``, the phones within :data:`REACH_S` of it) for each run of :data:`WINDOW_FRAMES`
    times: every phone–time matrix stays that size, so memory and time grow linearly with the speech's
    length. A clip of at most that many frames is one window with every phone."""
    for start in range(0, times.size, WINDOW_FRAMES):
        window = slice(start, min(start + WINDOW_FRAMES, times.size))
        if times.size <= WINDOW_FRAMES:
            yield window, list(phones)
            return
        lo, hi = times[window][0] - REACH_S, times[window][-1] + REACH_S
        yield window, [p for p in phones if p.end >= lo and p.start <= hi]


def apply_closure(weights: np.ndarray, opening: np.ndarray, closure: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shut the lips where ``closure`` (T,) is high: (T, 52) weights, (T,) opening -> same shapes
    (:func:`shut_lips`, and the opening scaled by 1 − closure)."""
    return shut_lips(weights, closure), (1.0 - closure) * opening


def shut_lips(weights: np.ndarray, closure: np.ndarray) -> np.ndarray:
    """(T, 52) weights with the lips shut where ``closure`` (T,) is high.

    :data:`OPENING_CHANNELS` are pulled to the bilabial target; the target's other channels (press,
    roll, close) are pulled to at least their target value; every other channel (smile, brows …) is kept.
    """
    index = arkit_index()
    closed = weight_vector(VISEME_TARGETS["PBM"]).astype(np.float64)  # (52,)
    opens = np.zeros(len(index), dtype=bool)
    opens[[index[n] for n in OPENING_CHANNELS]] = True
    goal = np.where(opens[None, :], closed[None, :], np.maximum(weights, closed[None, :]))  # (T, 52)
    touched = opens | (closed > 0)
    w = closure[:, None] * touched[None, :]  # (T, 52)
    return (1.0 - w) * weights + w * goal


def loudness_gain(energy_db: np.ndarray) -> np.ndarray:
    """Jaw gain per frame from the energy envelope: (T,) dB -> (T,) in [LOUDNESS_MIN_GAIN, 1]."""
    if energy_db.size == 0:
        return np.ones(0)
    loud = np.percentile(energy_db, LOUD_PERCENTILE)
    level = np.clip(1.0 + (energy_db.astype(np.float64) - loud) / LOUDNESS_RANGE_DB, 0.0, 1.0)
    return LOUDNESS_MIN_GAIN + (1.0 - LOUDNESS_MIN_GAIN) * level


def mouth_track(
    phones: Sequence[Phone], n_frames: int, fps: float = 25.0, energy_db: np.ndarray | None = None
) -> MouthTrack:
    """Coarticulated mouth motion for a phoneme sequence, sampled at ``n_frames`` video frames.

    Args:
        phones: phoneme spans in seconds (e.g. :attr:`Utterance.phonemes`).
        n_frames: T.
        fps: video frame rate.
        energy_db: optional (T,) energy envelope of the audio (:func:`flowvq_cli.audio.energy.energy_envelope`);
            when given, the jaw group follows loudness (:func:`loudness_gain`).
    """
    n_exp = len(arkit_index())
    times = frame_times(n_frames, fps)
    if not phones or n_frames == 0:
        zeros = np.zeros(n_frames, dtype=np.float32)
        return MouthTrack(np.zeros((n_frames, n_exp), np.float32), zeros, zeros.astype(np.int8), zeros)
    gain = None if energy_db is None else loudness_gain(energy_db)  # the utterance's loud level: all of it
    blended = np.zeros((n_frames, n_exp + 1))
    viseme = np.zeros(n_frames, np.int8)
    for window, near in _windows(times, phones):
        blended[window], viseme[window] = _blend(times[window], near, None if gain is None else gain[window])
    closure = closure_weight(times, phones, fps)
    exp, opening = apply_closure(blended[:, :n_exp], blended[:, n_exp], closure)
    return MouthTrack(exp.astype(np.float32), opening.astype(np.float32), viseme, closure.astype(np.float32))


def _blend(times: np.ndarray, phones: Sequence[Phone], gain: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The coarticulated targets (T, 53: 52 ARKit + opening) at ``times`` and the dominant class (T,) int8;
    the jaw group times ``gain`` (T,) when given."""
    n_exp = len(arkit_index())
    if not phones:
        return np.zeros((times.size, n_exp + 1)), np.full(times.size, SILENCE, np.int8)
    targets, alpha, tau = _class_tables()
    centres, durations, classes = _phone_arrays(phones)
    shape = dominance(times, centres, durations, tau[classes])  # (T, P)
    weights = shape[:, :, None] * alpha[classes][None, :, :]  # (T, P, C)
    blended = np.einsum("tpc,pc->tc", weights, targets[classes]) / (weights.sum(axis=1) + DOMINANCE_FLOOR)  # (T, C)
    per_class = np.zeros((times.size, len(VISEMES)))
    np.add.at(per_class.T, classes, shape.T * alpha[classes, 0][:, None])  # (K, T) total jaw dominance
    if gain is not None:
        jaw = np.append([arkit_index()[n] for n in JAW_GROUP], n_exp)
        blended[:, jaw] *= gain[:, None]
    return blended, per_class.argmax(axis=1).astype(np.int8)
