"""flite's voices from real speakers in the corpus (``flowvq_cli.data.flite``, ``flowvq synth --voices``).

The first tests need neither flite nor pocketsphinx; the rest run flite (Debian's ``flite``, installed by
``.ci/run``) and pocketsphinx, and skip elsewhere, saying why.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from flowvq_cli.audio.phones import Phone
from flowvq_cli.data import aligned, flite, speech, visemes
from flowvq_cli.data.synth import corpus_voices

SENTENCE = "Bob put the maps by my bike, but Pam bought plum jam."
NO_FLITE = None if flite.flite_exe() else f"flite is not installed ({flite.INSTALL_HINT})"
NO_SPHINX = (None if importlib.util.find_spec("pocketsphinx")
             else "pocketsphinx is not installed: pip install '.[phones]'")
needs_both = pytest.mark.skipif(bool(NO_FLITE or NO_SPHINX), reason=str(NO_FLITE or NO_SPHINX))


def test_every_arpabet_phone_lands_in_its_own_viseme_and_gaps_are_pauses() -> None:
    expected = {"P": "PBM", "B": "PBM", "M": "PBM", "F": "FV", "V": "FV", "TH": "TH", "DH": "TH", "T": "DTNL",
                "K": "KG", "SH": "CH", "CH": "CH", "S": "SZ", "R": "R", "W": "W_OO", "UW": "W_OO", "AA": "AA",
                "AE": "AA", "EH": "EH", "IY": "EE", "OW": "OW", "AO": "OW"}
    for label, viseme in expected.items():
        assert visemes.VISEMES[visemes.viseme_of(aligned.ARPABET_TO_ESPEAK[label])] == viseme, label
    assert len(aligned.ARPABET_TO_ESPEAK) == 39  # CMUdict's phone set
    spans = aligned.to_espeak([Phone(0.1, 0.2, "M"), Phone(0.2, 0.3, "AA"), Phone(0.35, 0.4, "SIL")])
    assert [s.phoneme for s in spans] == ["_", "m", "A:", "_", "_"]
    assert [s.start for s in spans] == [0.0, 0.1, 0.2, 0.3, 0.35] and spans[-1].end == 0.4


def test_speakers_shift_pitch_and_tempo_and_the_test_voice_stays_out() -> None:
    names = flite.speakers()
    assert names and all(n.startswith("flite:") for n in names)
    assert not any("awb" in n for n in names) and all("awb" in n for n in flite.speakers(held_out=True))
    assert flite.parse_speaker("flite:kal16-hi") == ("kal16", 3.0, 0.93)
    assert flite.parse_speaker("flite:slt") == ("slt", 0.0, 1.0)
    with pytest.raises(speech.SpeechSynthesisError, match="unknown flite speaker"):
        flite.parse_speaker("flite:nobody")
    values = dict(re.findall(r"(\w+)=([\d.]+)", " ".join(flite.arguments("flite:slt-lo", 175, 50, 50))))
    assert float(values["duration_stretch"]) == pytest.approx(1.08)
    assert float(values["int_f0_target_mean"]) == pytest.approx(170.0 * 2 ** (-3 / 12), abs=0.1)
    faster = dict(re.findall(r"(\w+)=([\d.]+)", " ".join(flite.arguments("flite:slt", 350, 100, 50))))
    assert float(faster["duration_stretch"]) == pytest.approx(0.5)
    assert float(faster["int_f0_target_mean"]) == pytest.approx(170.0 * 2 ** 0.5, abs=0.1)


def test_without_flite_the_corpus_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(flite.FLITE_ENV, "/no/such/flite")
    with pytest.raises(flite.FliteMissingError, match="apt-get install flite"):
        corpus_voices("flite")
    assert corpus_voices("espeak") == speech.available_voices()
    with pytest.raises(Exception, match="--voices takes espeak, flite, kokoro"):
        corpus_voices("festival")


@needs_both
def test_a_flite_speaker_says_the_text_with_aligned_phones_and_words() -> None:
    u = flite.synthesize(SENTENCE, "flite:rms-lo", rate=200, pitch=60, volume=80)
    assert u.sample_rate == 16000 and 2.0 < u.duration < 5.0 and np.abs(u.samples).max() <= 1.0
    assert u.phonemes[0].start == 0.0 and u.phonemes[-1].end == pytest.approx(u.duration)
    assert all(a.end == pytest.approx(b.start) for a, b in zip(u.phonemes, u.phonemes[1:], strict=False))
    bilabials = [p for p in u.phonemes if visemes.viseme_of(p.phoneme) == visemes.BILABIAL]
    assert len(bilabials) == 15
    assert [w.text for w in u.words] == ["bob", "put", "the", "maps", "by", "my", "bike", "but", "pam", "bought",
                                          "plum", "jam"]
    slow = flite.synthesize(SENTENCE, "flite:rms-lo", rate=100)
    assert slow.duration > 1.5 * u.duration  # the rate reaches flite


@pytest.mark.slow  # synthesises a speech corpus
@needs_both
def test_synth_builds_a_corpus_from_flite_speakers(tmp_path: Path) -> None:
    out = tmp_path / "corpus"
    proc = subprocess.run([sys.executable, "-m", "flowvq_cli", "synth", str(out), "--clips", "3", "--voices", "flite",
                           "--no-frames", "--workers", "2", "-q"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    clips = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert len(clips) == 3 and all(c["speaker"] in flite.speakers() for c in clips)
    for c in clips:
        coeffs = np.load(out / c["paths"]["coeffs"])
        assert coeffs.shape == (c["frames"], 58) and np.isfinite(coeffs).all()
