"""The phones of a speech recording, by pocketsphinx: ARPAbet labels with their times.

One aligner for every voice, synthetic or recorded, so one phone inventory (ARPAbet, the CMU Pronouncing
Dictionary's): pocketsphinx 5.1.1 (PyPI, BSD; its en-us acoustic model, language model and dictionary ship
in the wheel; ``pip install '.[phones]'``, also part of ``[eval]``), at 10 ms.

- :func:`align_phones`: forced alignment of known text (words first, pauses between them allowed, then
  the phones within them).
- :func:`recognise_phones`: no text: pocketsphinx's en-us speech recogniser finds the words, and the
  phones of its hypothesis are aligned the same way. On real voices its word error rate is about 0–0.2;
  on espeak-ng's it is about 0.9 (issue 22), so give the text for synthetic speech. ``fast=True`` narrows
  its beams (:data:`FAST_SEARCH`): about 0.1 s of CPU per second of real speech instead of 0.23 (0.2
  instead of 0.6 on espeak-ng's), with more word errors; ExpFlow's phone features (``phone_dim``) and the
  corpus phones it learns from are recognised this way.
- :func:`loop_phones`: no text, no words: pocketsphinx's phone recogniser (its ``allphone`` search over
  en-us's phone language model, :data:`PHONE_LOOP`). What ``generate --phones`` hears: on real voices it
  finds more of the p, b and m than the word recogniser, at a third of its cost
  (``benchmarks/phone_recognition.py``).

``generate --text`` / ``--phones`` make the lips follow their phones (:mod:`flowvq_cli.flow.lips`); the
phone-level lip-sync measures on these phones are in :mod:`flowvq_cli.eval.phone_sync`.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import NamedTuple

import numpy as np

from flowvq_cli.errors import InputError

INSTALL_HINT = "pip install '.[phones]'"
SAMPLE_RATE = 16_000
FRAMES_PER_SECOND = 100
"""pocketsphinx's frame rate: its times are in 10 ms frames."""
SILENCE = "SIL"
BILABIALS = ("P", "B", "M")
"""The bilabial stops and nasal: the lips shut."""

_SEARCHES = (  # tried in turn; the lattice's best path (bestpath) loses the end of espeak-ng sentences
    dict(bestpath=False, beam=1e-80, wbeam=1e-60, pbeam=1e-80),
    dict(bestpath=False),
    dict(bestpath=False, beam=1e-80, wbeam=1e-60, pbeam=1e-80, fsgusefiller=False),
)
FAST_SEARCH = dict(fwdflat=False, bestpath=False, maxhmmpf=3000, beam=1e-40, pbeam=1e-40, wbeam=1e-25)
"""The recogniser's narrow search: first pass only, pruned beams, at most 3000 active HMMs per frame."""
PHONE_LOOP = dict(bestpath=False, lw=2.0)
"""The phone recogniser's search: its language-model weight 2 (pocketsphinx's default 6.5 lets the phone
bigrams overrule the sound: fewer p, b and m found; ``benchmarks/phone_recognition.py --lw``)."""


class Phone(NamedTuple):
    """One aligned phone: [start, end) in seconds and its ARPAbet label (``SIL`` for silence)."""

    start: float
    end: float
    label: str


class PhonesUnavailableError(InputError):
    """pocketsphinx is not installed."""


class AlignmentError(InputError):
    """pocketsphinx could not find the phones of the speech (a word it does not know, no speech)."""


def check_pocketsphinx() -> None:
    """Raise :class:`PhonesUnavailableError` (with the install hint) when pocketsphinx is missing."""
    if importlib.util.find_spec("pocketsphinx") is None:
        raise PhonesUnavailableError(f"pocketsphinx is not installed, and the phones need it: {INSTALL_HINT}")


def words_of(text: str) -> list[str]:
    """The words to align: lower case, letters and apostrophes (punctuation dropped)."""
    return re.findall(r"[a-z']+", text.lower())


def _pcm(audio: str | Path) -> bytes:
    """16 kHz mono 16-bit PCM of any file ffmpeg reads (a video's audio track too)."""
    from flowvq_cli.audio.load import load_audio

    samples = load_audio(audio, sr=SAMPLE_RATE).samples
    return (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()


def _decode(decoder, pcm: bytes) -> None:
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()


def _aligned(decoder, pcm: bytes) -> tuple[list[Phone], list[Phone]]:
    """Second pass: the words (their label the word; silences left out) and the phones of the words the
    decoder found last (``set_alignment``)."""
    decoder.set_alignment()
    _decode(decoder, pcm)
    words, phones = [], []
    for word in decoder.get_alignment():
        if not word.name.startswith(("<", "[", "+")):
            words.append(Phone(word.start / FRAMES_PER_SECOND, (word.start + word.duration) / FRAMES_PER_SECOND,
                               re.sub(r"\(\d+\)$", "", word.name)))
        phones += [Phone(p.start / FRAMES_PER_SECOND, (p.start + p.duration) / FRAMES_PER_SECOND, p.name)
                   for p in word]
    return words, phones


def align_phones(audio: str | Path, text: str) -> list[Phone]:
    """Forced alignment of ``text`` to the speech in ``audio``: its phones, in order, end to end
    (:func:`align`'s phones)."""
    return align(audio, text)[1]


def align(audio: str | Path, text: str) -> tuple[list[Phone], list[Phone]]:
    """Forced alignment of ``text`` to the speech in ``audio``: its words (a :class:`Phone` whose label is the
    word) and its phones, in order, end to end.

    A search that does not reach the text's last word is rejected and the next of :data:`_SEARCHES` tried.

    Raises:
        PhonesUnavailableError: pocketsphinx is not installed.
        AlignmentError: a word is not in pocketsphinx's dictionary, or no search aligned the whole text.
    """
    check_pocketsphinx()
    from pocketsphinx import Decoder

    pcm, words = _pcm(audio), words_of(text)
    if not words:
        raise AlignmentError(f"no words in the text {text!r}; give the words the speech says")
    for search in _SEARCHES:
        decoder = Decoder(samprate=SAMPLE_RATE, lm=None, loglevel="FATAL", **search)
        missing = [w for w in words if decoder.lookup_word(w) is None]
        if missing:
            raise AlignmentError(f"not in pocketsphinx's dictionary: {', '.join(missing)}; spell them as words")
        decoder.set_align_text(" ".join(words))
        _decode(decoder, pcm)
        got = [re.sub(r"\(\d+\)$", "", s.word) for s in decoder.seg() or [] if not s.word.startswith(("<", "["))]
        if got == words:
            return _aligned(decoder, pcm)
    raise AlignmentError(f"pocketsphinx could not align the text to {Path(audio).name}; check that it says "
                         f"{text!r}")


def recognise_phones(audio: str | Path, fast: bool = False) -> list[Phone]:
    """The phones of whatever ``audio`` says: pocketsphinx's en-us recogniser (its narrow search
    :data:`FAST_SEARCH` when ``fast``), then phone alignment.

    Raises:
        PhonesUnavailableError: pocketsphinx is not installed.
        AlignmentError: no speech was recognised.
    """
    check_pocketsphinx()
    from pocketsphinx import Decoder

    pcm = _pcm(audio)
    decoder = Decoder(samprate=SAMPLE_RATE, loglevel="FATAL", **(FAST_SEARCH if fast else {}))
    _decode(decoder, pcm)
    if decoder.hyp() is None or not decoder.hyp().hypstr.strip():
        raise AlignmentError(f"pocketsphinx recognised no speech in {Path(audio).name}")
    return _aligned(decoder, pcm)[1]


def loop_phones(audio: str | Path) -> list[Phone]:
    """The phones of whatever ``audio`` says, found one by one, without words: pocketsphinx's ``allphone``
    search over en-us's phone bigram language model (``en-us-phone.lm.bin``, in the wheel), :data:`PHONE_LOOP`.
    Silence and noise are ``SIL`` / ``+NSN+`` / ``+SPN+``; the phones cover the audio end to end.

    Raises:
        PhonesUnavailableError: pocketsphinx is not installed.
    """
    check_pocketsphinx()
    from pocketsphinx import Decoder, get_model_path

    language = Path(get_model_path()) / "en-us" / "en-us-phone.lm.bin"
    decoder = Decoder(samprate=SAMPLE_RATE, loglevel="FATAL", lm=None, allphone=str(language), **PHONE_LOOP)
    _decode(decoder, _pcm(audio))
    return [Phone(s.start_frame / FRAMES_PER_SECOND, (s.end_frame + 1) / FRAMES_PER_SECOND, s.word)
            for s in decoder.seg() or [] if s.end_frame >= s.start_frame]


def phones_of(audio: str | Path, text: str | None = None, fast: bool = False) -> list[Phone]:
    """:func:`align_phones` when the text is known, else :func:`recognise_phones` (``fast``: its narrow
    search)."""
    return recognise_phones(audio, fast) if text is None else align_phones(audio, text)


def heard_phones(audio: str | Path, text: str | None = None) -> list[Phone]:
    """What generation hears: :func:`phones_of` with the narrow search, and no phones (rather than an error)
    when the recogniser hears no speech; text that cannot be aligned is still an :class:`AlignmentError`."""
    try:
        return phones_of(audio, text, fast=True)
    except AlignmentError:
        if text is not None:
            raise
        return []
