"""Utterances of voices that give no phone timings (flite, Kokoro): pocketsphinx's forced alignment of the
text gives them, one aligner for every such voice (:func:`flowvq_cli.audio.phones.align`), its ARPAbet
phones mapped to the espeak mnemonics the visemes are defined on (:data:`ARPABET_TO_ESPEAK`)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from flowvq_cli.data import speech

ARPABET_TO_ESPEAK = {
    "AA": "A:", "AE": "a", "AH": "V", "AO": "O:", "AW": "aU", "AY": "aI", "EH": "E", "ER": "3:", "EY": "eI",
    "IH": "I", "IY": "i:", "OW": "oU", "OY": "OI", "UH": "U", "UW": "u:",
    "B": "b", "CH": "tS", "D": "d", "DH": "D", "F": "f", "G": "g", "HH": "h", "JH": "dZ", "K": "k", "L": "l",
    "M": "m", "N": "n", "NG": "N", "P": "p", "R": "r", "S": "s", "SH": "S", "T": "t", "TH": "T", "V": "v",
    "W": "w", "Y": "j", "Z": "z", "ZH": "Z",
}
"""pocketsphinx's phones (ARPAbet) → the espeak-ng mnemonic of the same sound (``data.visemes``); silence
and noise (``SIL``, ``+SPN+``, …) become a pause."""


class UnalignedSpeechError(speech.SpeechSynthesisError):
    """pocketsphinx could not align the text to what the voice said."""


def speaker_names(prefix: str, voices: Iterable[str], test_voices: Iterable[str], shifts: Mapping[str, object], *,
                  held_out: bool = False) -> list[str]:
    """``<prefix><voice><shift>`` for every voice × shift but the test voices (only those with ``held_out``)."""
    tests = set(test_voices)
    return [f"{prefix}{v}{s}" for v in voices if (v in tests) == held_out for s in shifts]


def to_espeak(phones) -> list[speech.Phone]:
    """Aligned ARPAbet phones → contiguous :class:`~flowvq_cli.data.speech.Phone` spans with espeak mnemonics
    (gaps and silence are pauses)."""
    out: list[speech.Phone] = []
    t = 0.0
    for p in phones:
        if p.start > t + 1e-6:
            out.append(speech.Phone(t, p.start, speech.PAUSE))
        out.append(speech.Phone(p.start, p.end, ARPABET_TO_ESPEAK.get(p.label, speech.PAUSE)))
        t = p.end
    return out


def utterance(samples: np.ndarray, text: str, voice: str, rate: int, pitch: int) -> speech.Utterance:
    """16 kHz ``samples`` of ``voice`` saying ``text`` → an :class:`~flowvq_cli.data.speech.Utterance` with the
    aligned phones (a pause to the end) and words.

    Raises:
        UnalignedSpeechError: pocketsphinx could not align the text to the audio.
    """
    from flowvq_cli.audio.load import save_wav
    from flowvq_cli.audio.phones import AlignmentError, align

    samples = np.clip(np.asarray(samples, np.float32), -1.0, 1.0)
    with tempfile.TemporaryDirectory(prefix="flowvq-align-") as tmp:
        wav = save_wav(Path(tmp) / "speech.wav", samples)
        try:
            words, phones = align(wav, text)
        except AlignmentError as error:
            raise UnalignedSpeechError(f"{voice}: {error}") from None
    spans = to_espeak(phones)
    duration = samples.size / speech.SAMPLE_RATE
    if spans and spans[-1].end < duration:
        spans.append(speech.Phone(spans[-1].end, duration, speech.PAUSE))
    return speech.Utterance(samples, spans, [speech.Word(w.start, w.end, w.label) for w in words], text, voice,
                            rate, pitch)
