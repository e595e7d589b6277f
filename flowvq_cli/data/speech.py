"""Synthetic speech with phoneme timings, from espeak-ng (the audio side of ``flowvq synth``).

``espeak-ng --pho`` prints nothing for espeak's own (non-MBROLA) voices, so this module drives the C
library ``libespeak-ng`` through :mod:`ctypes`, in synchronous mode with phoneme events on:

    espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, DATA_PATH, espeakINITIALIZE_PHONEME_EVENTS)
    espeak_SetSynthCallback(cb)            cb(short *wav, int n, espeak_EVENT *events) per buffer
    espeak_SetVoiceByName("en-us+f3")      language voice + optional "+variant"
    espeak_SetParameter(RATE | PITCH | VOLUME | RANGE, value, 0)
    espeak_Synth(text, ...)                returns when all audio and events went through cb

Each ``espeakEVENT_PHONEME`` event carries the phoneme's start (``audio_position``, ms) and its espeak
mnemonic (``id.string``, e.g. ``p``, ``A:``, ``_:`` for a pause); a phoneme ends where the next one
starts, the last one at the end of the audio. The span before the first phoneme is labelled ``_``.
Audio comes at 22 050 Hz and is resampled to 16 kHz (``resample_poly``, 320/441).

Which library: the one the PyPI package ``espeakng-loader`` ships (a dependency of FlowVQ, so ``pip``
alone sets everything up; espeak-ng 1.52 with its ``espeak-ng-data`` folder, whose path goes to
``espeak_Initialize``, since the library was built for another prefix). Only if that package cannot be
imported is a system ``libespeak-ng.so.1`` (Debian's ``espeak-ng``) tried, with its own compiled-in data
path. :func:`engine_info` says which one runs. The two releases differ: 1.52 marks stress on a
syllable's vowel in the phoneme events (``'oU``, ``,aU``; 1.51 sent ``oU``, ``aU``; the visemes ignore
the marks), and the same text can come out with other audio (of four test sentences, one was sample
for sample the same, three differed in waveform and up to 2.4 % in length). A corpus made with one is
therefore not the corpus made with the other; nothing in FlowVQ depends on exact audio. 1.52 also seeds
its noise generator (the breathy variants) from the clock; :data:`RAND_SEED` fixes it, so that a fresh
process speaks a text the same way every time, as 1.51 did.

The library is process-global state: every call holds :data:`_LOCK`. Separate processes are
independent (each loads its own copy), so a process pool parallelises synthesis.

espeak-ng is not bit-reproducible across calls: it carries synthesis state (pitch flutter phase and
the like) from one call to the next, so the same text can come out a few samples longer or shorter
with phoneme times shifted by ~10 ms. A corpus must therefore store the audio it actually got next to
the motion made from that :class:`Utterance` (the motion itself is deterministic given the utterance
and a seed).

Also here: a seeded generator of random, pronounceable English sentences (:func:`random_sentence`)
and :func:`random_utterance`, which re-draws until the audio lasts 2–6 s.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from dataclasses import dataclass
from math import gcd
from pathlib import Path
from typing import NamedTuple

import numpy as np
from scipy.signal import resample_poly

from flowvq_cli.errors import FlowVQError

SAMPLE_RATE = 16_000
"""Rate of :attr:`Utterance.samples` (Hz), the rate the audio features expect (docs/design.md §3)."""

LIBRARY_NAMES = ("libespeak-ng.so.1", "libespeak-ng.so")
"""System library names tried when the ``espeakng-loader`` package is not importable."""

# speak_lib.h (API revision 12) constants
AUDIO_OUTPUT_SYNCHRONOUS = 2
INITIALIZE_PHONEME_EVENTS = 0x0001
CHARS_UTF8 = 1
POS_CHARACTER = 1
EVENT_LIST_TERMINATED = 0
EVENT_WORD = 1
EVENT_PHONEME = 7
PHONEMES_IPA = 0x02  # espeak_TextToPhonemes: phoneme names in IPA (UTF-8)
PARAM_RATE, PARAM_VOLUME, PARAM_PITCH, PARAM_RANGE = 1, 2, 3, 4
EE_OK = 0

RAND_SEED = 1
"""Seed of espeak-ng's noise generator (``espeak_ng_SetRandSeed``, 1.52+), so that a fresh process speaks
a text the same way every time, as 1.51 did without one."""

PAUSE = "_"
"""Label of silence: espeak's own pauses are ``_``, ``_:``, ``_!``, ``_|``; the lead-in gets ``_``."""

LANGUAGE_VOICES = ("en-us", "en", "en-gb-x-rp", "en-029", "en-gb-scotland", "en-us-nyc", "en-gb-x-gbclan")
"""English espeak-ng voices (accents) the corpus draws from; ``en`` is British English (language en-gb)."""

VOICE_VARIANTS = ("", "m1", "m2", "m3", "m4", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2", "klatt3")
"""espeak variants (``voices/!v/<name>``) appended as ``voice+variant``; ``""`` is the plain voice."""

RATE_RANGE_WPM = (80, 450)
PITCH_RANGE = (0, 100)

DEFAULT_RATE_WPM = 175
DEFAULT_PITCH = 50
DEFAULT_VOLUME = 100
DEFAULT_PITCH_RANGE = 50
MIN_DURATION_S = 2.0
MAX_DURATION_S = 6.0
MAX_REDRAWS = 12


class SpeechSynthesisError(FlowVQError):
    """espeak-ng is missing or refused a request."""


class Phone(NamedTuple):
    """One phoneme: [start, end) in seconds and its espeak mnemonic (``_`` variants are pauses)."""

    start: float
    end: float
    phoneme: str


class Word(NamedTuple):
    """One word: [start, end) in seconds (end = its last phoneme's end) and its text."""

    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Utterance:
    """Synthesised speech and its timing.

    samples: (N,) float32 in [-1, 1] at :attr:`sample_rate` (16 kHz).
    phonemes: contiguous spans covering [0, duration], in time order.
    words: word spans in time order.
    """

    samples: np.ndarray
    phonemes: list[Phone]
    words: list[Word]
    text: str
    voice: str
    rate: int
    pitch: int
    sample_rate: int = SAMPLE_RATE

    @property
    def duration(self) -> float:
        """Length of the audio in seconds."""
        return self.samples.size / self.sample_rate


# ---------------------------------------------------------------------------------------------
# ctypes binding (layout from speak_lib.h)
# ---------------------------------------------------------------------------------------------


class _EventId(ctypes.Union):
    _fields_ = (("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8))


class _Event(ctypes.Structure):
    """``espeak_EVENT``."""

    _fields_ = (
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    )


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass
class _Capture:
    """What the synth callback collected during one ``espeak_Synth`` call."""

    chunks: list[np.ndarray]
    phonemes: list[tuple[int, str]]  # (ms, mnemonic)
    words: list[tuple[int, int, int]]  # (ms, text_position (1-based), length)


class _Engine:
    """The loaded library, its callback and the capture buffer of the call in progress."""

    def __init__(self, lib: ctypes.CDLL, native_rate: int, path: str) -> None:
        self.lib = lib
        self.native_rate = native_rate
        self.path = path
        self.capture = _Capture([], [], [])
        self.callback = _CALLBACK(self._on_buffer)  # kept referenced: the library holds the pointer
        lib.espeak_SetSynthCallback(self.callback)

    def _on_buffer(self, wav: ctypes.POINTER(ctypes.c_short), n: int, events: ctypes.POINTER(_Event)) -> int:
        if wav and n > 0:
            self.capture.chunks.append(np.ctypeslib.as_array(wav, (n,)).copy())
        i = 0
        while events[i].type != EVENT_LIST_TERMINATED:
            event = events[i]
            if event.type == EVENT_PHONEME:
                name = bytes(event.id.string).split(b"\0", 1)[0].decode("utf-8", "replace")
                self.capture.phonemes.append((event.audio_position, name))
            elif event.type == EVENT_WORD:
                self.capture.words.append((event.audio_position, event.text_position, event.length))
            i += 1
        return 0


_LOCK = threading.Lock()
_ENGINE: _Engine | None = None


def _candidates() -> list[tuple[str, str | None]]:
    """(library, data path or None for the library's own) to try, in order: PyPI's, then the system's."""
    found: list[tuple[str, str | None]] = []
    try:
        import espeakng_loader

        found.append((espeakng_loader.get_library_path(), espeakng_loader.get_data_path()))
    except (ImportError, RuntimeError):  # not installed, or installed without its data folder
        pass
    system = ctypes.util.find_library("espeak-ng")
    found += [(name, None) for name in dict.fromkeys(filter(None, (*LIBRARY_NAMES, system)))]
    return found


def _load_library() -> tuple[ctypes.CDLL, str, str | None]:
    """The first espeak-ng library of :func:`_candidates` that loads, its name and the data path to give it."""
    for name, data in _candidates():
        try:
            return ctypes.CDLL(name), name, data
        except OSError:
            continue
    raise SpeechSynthesisError("espeak-ng library not found: neither the espeakng-loader package nor a system "
                               "libespeak-ng.so.1; reinstall FlowVQ's dependencies: pip install espeakng-loader")


def _declare(lib: ctypes.CDLL) -> None:
    lib.espeak_Initialize.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int)
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_SetSynthCallback.argtypes = (_CALLBACK,)
    lib.espeak_SetSynthCallback.restype = None
    lib.espeak_SetVoiceByName.argtypes = (ctypes.c_char_p,)
    lib.espeak_SetParameter.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int)
    lib.espeak_Synth.argtypes = (ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                 ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p)
    lib.espeak_Info.argtypes = (ctypes.POINTER(ctypes.c_char_p),)
    lib.espeak_Info.restype = ctypes.c_char_p
    lib.espeak_TextToPhonemes.argtypes = (ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_int)
    lib.espeak_TextToPhonemes.restype = ctypes.c_char_p


def _engine() -> _Engine:
    """The process's engine, initialised on first use. Call with :data:`_LOCK` held."""
    global _ENGINE
    if _ENGINE is None:
        lib, name, data = _load_library()
        _declare(lib)
        rate = lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, data.encode() if data else None,
                                     INITIALIZE_PHONEME_EVENTS)
        if rate <= 0:
            raise SpeechSynthesisError(f"espeak-ng ({name}) found no espeak-ng-data at {data or 'its default'}; "
                                       "reinstall it: pip install --force-reinstall espeakng-loader")
        if hasattr(lib, "espeak_ng_SetRandSeed"):  # 1.52+: noise (breath, e.g. variant f3) seeded by the clock
            lib.espeak_ng_SetRandSeed.argtypes = (ctypes.c_long,)
            lib.espeak_ng_SetRandSeed(RAND_SEED)
        _ENGINE = _Engine(lib, rate, name)
    return _ENGINE


def _info(engine: _Engine) -> tuple[str, Path]:
    """espeak_Info: the library's version and its data folder."""
    path = ctypes.c_char_p()
    version = engine.lib.espeak_Info(ctypes.byref(path))
    return (version or b"").decode(), Path((path.value or b"").decode())


class EngineInfo(NamedTuple):
    """Which espeak-ng runs: its version (``"1.52.0"``), library file and data folder."""

    version: str
    library: str
    data: Path


def engine_info() -> EngineInfo:
    """The espeak-ng this process speaks with (loading it if needed)."""
    with _LOCK:
        engine = _engine()
        version, data = _info(engine)
    return EngineInfo(version, engine.path, data)


def available_voices() -> list[str]:
    """Every ``voice`` or ``voice+variant`` from :data:`LANGUAGE_VOICES` × :data:`VOICE_VARIANTS` installed here.

    (``espeak_SetVoiceByName`` accepts an unknown variant silently, so variants are checked on disk.)
    """
    with _LOCK:
        root = _info(_engine())[1]
    variants = [v for v in VOICE_VARIANTS if not v or (root / "voices" / "!v" / v).is_file()]
    return [f"{lang}+{v}" if v else lang for lang in LANGUAGE_VOICES for v in variants]


# ---------------------------------------------------------------------------------------------
# Synthesis
# ---------------------------------------------------------------------------------------------


def _run(engine: _Engine, text: str, voice: str, params: dict[int, int]) -> _Capture:
    lib = engine.lib
    if lib.espeak_SetVoiceByName(voice.encode()) != EE_OK:
        raise SpeechSynthesisError(f"espeak-ng has no voice {voice!r}; FlowVQ's voices: "
                                   "python -c 'from flowvq_cli.data import speech; print(speech.available_voices())'")
    for key, value in params.items():
        lib.espeak_SetParameter(key, int(value), 0)
    engine.capture = _Capture([], [], [])
    data = text.encode("utf-8")
    status = lib.espeak_Synth(data + b"\0", len(data) + 1, 0, POS_CHARACTER, 0, CHARS_UTF8, None, None)
    if status != EE_OK:
        raise SpeechSynthesisError(f"espeak-ng refused to speak {text[:40]!r} (error {status})")
    return engine.capture


def to_ipa(text: str, voice: str = "en-us") -> str:
    """The IPA espeak-ng reads ``text`` as (``espeak_TextToPhonemes``, clause by clause, joined by spaces);
    what a phoneme-input synthesiser such as Kokoro (:mod:`flowvq_cli.data.kokoro`) is given."""
    data = ctypes.create_string_buffer(text.encode("utf-8"))
    pointer = ctypes.c_void_p(ctypes.addressof(data))
    clauses = []
    with _LOCK:
        engine = _engine()
        if engine.lib.espeak_SetVoiceByName(voice.encode()) != EE_OK:
            raise SpeechSynthesisError(f"espeak-ng has no voice {voice!r}")
        while pointer.value:
            out = engine.lib.espeak_TextToPhonemes(ctypes.byref(pointer), CHARS_UTF8, PHONEMES_IPA)
            clauses.append((out or b"").decode("utf-8", "replace").strip())
    return " ".join(c for c in clauses if c)


def _to_16k(chunks: list[np.ndarray], native_rate: int) -> np.ndarray:
    """int16 chunks at the native rate -> (N,) float32 at :data:`SAMPLE_RATE`."""
    raw = np.concatenate(chunks).astype(np.float32) / 32768.0 if chunks else np.zeros(0, np.float32)
    g = gcd(SAMPLE_RATE, native_rate)
    return resample_poly(raw, SAMPLE_RATE // g, native_rate // g).astype(np.float32)


def phone_spans(events: list[tuple[int, str]], duration: float) -> list[Phone]:
    """Phoneme start events (ms, mnemonic) -> contiguous spans covering [0, duration].

    Starts are clamped into [0, duration] and sorted; zero-length spans are dropped; a lead-in
    before the first phoneme becomes a :data:`PAUSE` span.
    """
    starts = sorted((min(max(ms / 1000.0, 0.0), duration), name) for ms, name in events)
    if not starts or starts[0][0] > 0.0:
        starts.insert(0, (0.0, PAUSE))
    ends = [s for s, _ in starts[1:]] + [duration]
    return [Phone(s, e, name) for (s, name), e in zip(starts, ends, strict=True) if e > s]


def word_spans(events: list[tuple[int, int, int]], text: str, phones: list[Phone]) -> list[Word]:
    """Word events (ms, 1-based char position, length) -> spans ending at their last non-pause phoneme."""
    starts = [min(ms / 1000.0, phones[-1].end) for ms, _, _ in events] if phones else []
    words = []
    for i, (_, pos, length) in enumerate(events):
        limit = starts[i + 1] if i + 1 < len(events) else phones[-1].end
        inside = [p for p in phones if starts[i] <= p.start < limit and not is_pause(p.phoneme)]
        end = inside[-1].end if inside else limit
        words.append(Word(starts[i], max(end, starts[i]), text[pos - 1:pos - 1 + length]))
    return words


def is_pause(phoneme: str) -> bool:
    """Whether an espeak mnemonic is a pause (``_``, ``_:``, ``_!``, ``_|`` …)."""
    return phoneme.startswith(PAUSE)


def synthesize(
    text: str,
    voice: str = "en-us",
    rate: int = DEFAULT_RATE_WPM,
    pitch: int = DEFAULT_PITCH,
    volume: int = DEFAULT_VOLUME,
    pitch_range: int = DEFAULT_PITCH_RANGE,
) -> Utterance:
    """Speak ``text`` with espeak-ng and return the 16 kHz audio with phoneme and word timings.

    Args:
        text: UTF-8 text (plain, no SSML).
        voice: espeak voice name, optionally with a variant: ``"en-gb-x-rp+f3"``.
        rate: words per minute (80–450).
        pitch: base pitch 0–100 (50 = the voice's normal).
        volume: 0–200 (100 = normal).
        pitch_range: intonation range 0–100 (0 = monotone).
    """
    if not text.strip():
        raise SpeechSynthesisError("nothing to say: the text is empty")
    rate = int(np.clip(rate, *RATE_RANGE_WPM))
    pitch = int(np.clip(pitch, *PITCH_RANGE))
    pitch_range = int(np.clip(pitch_range, 0, 100))
    params = {PARAM_RATE: rate, PARAM_PITCH: pitch, PARAM_VOLUME: volume, PARAM_RANGE: pitch_range}
    with _LOCK:
        engine = _engine()
        capture = _run(engine, text, voice, params)
        native_rate = engine.native_rate
    samples = _to_16k(capture.chunks, native_rate)
    phones = phone_spans(capture.phonemes, samples.size / SAMPLE_RATE)
    words = word_spans(capture.words, text, phones)
    return Utterance(samples, phones, words, text, voice, rate, pitch)


# ---------------------------------------------------------------------------------------------
# Random sentences
# ---------------------------------------------------------------------------------------------

DETERMINERS = ("the", "a", "my", "your", "his", "her", "our", "their", "this", "that", "every", "one")
ADJECTIVES = (
    "big", "small", "old", "new", "red", "blue", "green", "dark", "bright", "quiet", "loud", "happy", "tired",
    "quick", "slow", "warm", "cold", "soft", "hard", "young", "long", "short", "heavy", "light", "empty", "full",
    "strange", "simple", "famous", "lucky", "busy", "gentle", "brave", "clever", "funny", "early", "late", "fresh",
    "little", "golden", "silver", "wooden", "broken", "hidden", "careful", "pretty", "angry", "calm", "sweet",
)
NOUNS = (
    "dog", "cat", "house", "car", "boat", "tree", "river", "garden", "window", "door", "table", "book", "letter",
    "teacher", "doctor", "farmer", "child", "mother", "father", "brother", "sister", "friend", "neighbour", "city",
    "village", "road", "bridge", "market", "kitchen", "school", "office", "train", "station", "mountain", "beach",
    "morning", "evening", "summer", "winter", "picture", "song", "story", "bottle", "paper", "phone",
    "bicycle", "apple", "orange", "basket", "pocket", "jacket", "hammer", "pencil", "clock", "mirror", "shadow",
    "baby", "horse", "bird", "fish", "rabbit", "monkey", "piano", "guitar", "blanket", "pillow", "candle", "island",
    "forest", "valley", "meadow", "castle", "tower", "museum", "library", "captain", "soldier", "painter", "baker",
)
VERBS_PAST = (
    "found", "saw", "took", "gave", "made", "kept", "left", "brought", "bought", "sold", "painted", "opened",
    "closed", "carried", "watched", "followed", "visited", "cleaned", "fixed", "moved", "pushed", "pulled",
    "dropped", "lifted", "washed", "cooked", "wanted", "needed", "liked", "loved", "helped", "called", "remembered",
    "showed", "borrowed", "finished", "started", "touched", "noticed", "packed", "built", "broke", "caught",
)
VERBS_INTRANSITIVE = (
    "waited", "laughed", "smiled", "walked", "talked", "slept", "worked", "played", "danced", "sang", "cried",
    "shouted", "listened", "stayed", "arrived", "jumped", "rested", "wandered", "whispered", "stopped", "returned",
)
PREPOSITIONS = ("near", "behind", "under", "over", "beside", "inside", "outside", "across", "around", "by", "at",
                "in", "on", "into", "along", "past")
ADVERBS = ("today", "yesterday", "again", "quickly", "slowly", "quietly", "carefully", "together", "alone",
           "early", "later", "suddenly", "finally", "often", "never", "always", "soon", "once more")
CONJUNCTIONS = ("and", "but", "so", "because", "while", "then", "when")
NAMES = ("Anna", "Peter", "Maria", "James", "Lucy", "Oliver", "Emma", "Daniel", "Sophie", "Thomas", "Mia", "Sam",
         "Laura", "Ben", "Nora", "Victor", "Paula", "Mark", "Helen", "Robert")
QUESTION_STARTS = ("did", "will", "can", "could", "should", "would")
VERBS_BASE = ("find", "see", "take", "give", "make", "keep", "leave", "bring", "buy", "sell", "paint", "open",
              "close", "carry", "watch", "follow", "visit", "clean", "fix", "move", "wash", "cook", "call", "help")
WORDS_PER_CLAUSE_GUESS = 7


def _pick(rng: np.random.Generator, words: tuple[str, ...]) -> str:
    return words[int(rng.integers(len(words)))]


def _noun_phrase(rng: np.random.Generator) -> str:
    if rng.random() < 0.2:
        return _pick(rng, NAMES)
    adjective = f"{_pick(rng, ADJECTIVES)} " if rng.random() < 0.55 else ""
    return f"{_pick(rng, DETERMINERS)} {adjective}{_pick(rng, NOUNS)}"


def _clause(rng: np.random.Generator) -> str:
    """Subject + verb (+ object) (+ place) (+ adverb)."""
    subject = _noun_phrase(rng)
    if rng.random() < 0.6:
        core = f"{subject} {_pick(rng, VERBS_PAST)} {_noun_phrase(rng)}"
    else:
        core = f"{subject} {_pick(rng, VERBS_INTRANSITIVE)}"
    if rng.random() < 0.5:
        core += f" {_pick(rng, PREPOSITIONS)} {_noun_phrase(rng)}"
    if rng.random() < 0.3:
        core += f" {_pick(rng, ADVERBS)}"
    return core


def _question(rng: np.random.Generator) -> str:
    return f"{_pick(rng, QUESTION_STARTS)} {_noun_phrase(rng)} {_pick(rng, VERBS_BASE)} {_noun_phrase(rng)}"


def random_sentence(rng: np.random.Generator, n_words: int = 10) -> str:
    """A random grammatical English sentence of about ``n_words`` words from the built-in word lists.

    Clauses are joined with conjunctions or split into sentences until the word count is reached.
    """
    parts: list[str] = []
    count = 0
    while count < max(n_words, 1) - 1 or not parts:
        clause = _question(rng) if rng.random() < 0.12 else _clause(rng)
        if parts:
            joiner = f", {_pick(rng, CONJUNCTIONS)} " if rng.random() < 0.7 else ". "
            parts.append(joiner)
        parts.append(clause)
        count += len(clause.split())
    text = "".join(parts)
    sentences = [s.strip() for s in text.split(". ")]
    ending = "?" if parts[-1].split()[0] in QUESTION_STARTS else "."
    return ". ".join(s[:1].upper() + s[1:] for s in sentences) + ending


def random_utterance(
    rng: np.random.Generator,
    voice: str = "en-us",
    rate: int = DEFAULT_RATE_WPM,
    pitch: int = DEFAULT_PITCH,
    volume: int = DEFAULT_VOLUME,
    pitch_range: int = DEFAULT_PITCH_RANGE,
    min_s: float = MIN_DURATION_S,
    max_s: float = MAX_DURATION_S,
) -> Utterance:
    """Speak random sentences until one lasts between ``min_s`` and ``max_s`` seconds.

    ``voice``: an espeak-ng voice, or a flite or Kokoro speaker (``flite:...``, ``kokoro:...``:
    :mod:`flowvq_cli.data.flite`, :mod:`flowvq_cli.data.kokoro`; a sentence the aligner cannot follow is
    drawn again). The word count is aimed at a duration drawn
    uniformly in [min_s, max_s] and corrected from the previous attempt's measured speed; after
    :data:`MAX_REDRAWS` tries the closest attempt is returned.
    """
    speak, unaligned = synthesize, ()
    if voice.startswith(("flite:", "kokoro:")):
        from flowvq_cli.data import aligned, flite, kokoro

        speak = flite.synthesize if voice.startswith("flite:") else kokoro.synthesize
        unaligned = (aligned.UnalignedSpeechError,)
    target = float(rng.uniform(min_s, max_s))
    words_per_s = rate / 60.0
    attempts: list[Utterance] = []
    for _ in range(MAX_REDRAWS):
        n_words = max(2, round(target * words_per_s))
        try:
            utterance = speak(random_sentence(rng, n_words), voice, rate, pitch, volume, pitch_range)
        except unaligned:
            continue
        if min_s <= utterance.duration <= max_s:
            return utterance
        attempts.append(utterance)
        words_per_s = len(utterance.text.split()) / max(utterance.duration, 1e-3)
    if not attempts:
        raise SpeechSynthesisError(f"{voice}: none of {MAX_REDRAWS} random sentences could be aligned")
    return min(attempts, key=lambda u: abs(u.duration - target))
