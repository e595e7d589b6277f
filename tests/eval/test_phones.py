"""pocketsphinx's phones (``flowvq_cli.audio.phones``) of the example voices, and ``flowvq evaluate --text`` on a
video whose mouth follows them with a known answer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pocketsphinx", reason="the phone aligner is pocketsphinx: pip install '.[eval]'")

from flowvq_cli.audio.phones import AlignmentError, Phone, align_phones, loop_phones, recognise_phones
from flowvq_cli.data.flite import flite_exe
from flowvq_cli.eval.phone_sync import BILABIALS, OPENNESS, ROUNDED, frames_of

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SPEECH2, TEXT2 = EXAMPLES / "speech2.wav", "Every morning I walk to the old harbour and watch the boats come in."
SPEECH3, TEXT3 = EXAMPLES / "speech3.wav", "Bob put the maps by my bike, but Pam bought plum jam."
ARPABET = {"SIL", "AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F", "G", "HH", "IH",
           "IY", "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH", "T", "TH", "UH", "UW", "V", "W",
           "Y", "Z", "ZH", "+NSN+", "+SPN+"}


def _contiguous(phones: list[Phone], duration: float) -> None:
    starts, ends = np.array([p.start for p in phones]), np.array([p.end for p in phones])
    assert np.all(ends > starts) and np.allclose(starts[1:], ends[:-1]) and starts[0] == 0.0
    assert duration - 0.1 <= ends[-1] <= duration + 0.02
    assert {p.label for p in phones} <= ARPABET


def test_forced_alignment_finds_every_bilabial_of_the_text_in_order() -> None:
    phones = align_phones(SPEECH3, TEXT3)
    # Bob put the maps by my bike, but Pam bought plum jam
    assert [p.label for p in phones if p.label in BILABIALS] == list("BBPMPBMBBPMBPMM")
    assert sum(p.label in OPENNESS for p in phones) == 12  # one vowel in each word
    _contiguous(phones, 4.32)  # the file lasts 4.32 s


def test_recognition_without_text_gives_arpabet_phones_end_to_end() -> None:
    for fast in (False, True):  # the full search (evaluate) and the narrow one (ExpFlow's phones)
        phones = recognise_phones(SPEECH3, fast=fast)
        _contiguous(phones, 4.32)
        assert sum(p.label != "SIL" for p in phones) >= 10


def test_the_phone_recogniser_gives_arpabet_phones_end_to_end() -> None:
    phones = loop_phones(SPEECH3)
    _contiguous(phones, 4.32)
    assert sum(p.label in OPENNESS for p in phones) >= 8


@pytest.mark.skipif(flite_exe() is None,
                    reason="flite's real-speaker voices are Debian's flite (docs/training.md; .ci/run installs it)")
def test_on_a_real_speakers_voice_the_phone_recogniser_finds_the_bilabials_the_words_miss(tmp_path: Path) -> None:
    """flite's awb (a recorded speaker, issue 22's held-out flite voice) saying speech3's sentence: of its 15 p,
    b and m (aligned to the text), the phone recogniser finds at least 13 (14 when written), the word
    recogniser fewer (9: it hears other words)."""
    from flowvq_cli.audio.load import save_wav
    from flowvq_cli.data import flite

    wav = tmp_path / "awb.wav"
    save_wav(wav, flite.synthesize(TEXT3, "flite:awb").samples)
    said = [p for p in align_phones(wav, TEXT3) if p.label in BILABIALS]

    def found(heard: list[Phone]) -> int:
        guessed = [q for q in heard if q.label in BILABIALS]
        return sum(any(min(p.end, q.end) - max(p.start, q.start) > -0.02 for q in guessed) for p in said)

    assert len(said) == 15
    assert found(loop_phones(wav)) >= 13 > found(recognise_phones(wav, fast=True))


def test_a_word_outside_the_dictionary_is_named() -> None:
    with pytest.raises(AlignmentError, match="zzyzxq"):
        align_phones(SPEECH3, "Bob zzyzxq the maps")


@pytest.fixture(scope="module")
def known_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A video of face2.png (lips that meet) rendered by the mesh warp, its mouth driven by speech2's phones:
    the lips shut on the 1st and 3rd of its 4 bilabials and open 0.25 elsewhere, the jaw opening with each
    vowel's openness class, mouthPucker 0.9 on the 1st and 3rd of its 4 uw/ow/w; the speech muxed.

    Only 10 distinct mouths are rendered (each frame is one of them), so it takes seconds."""
    from flowvq_cli import api
    from flowvq_cli.face import rig
    from flowvq_cli.video import VideoWriter

    phones, fps = align_phones(SPEECH2, TEXT2), 25
    n = int(np.ceil(phones[-1].end * fps))
    state = np.ones(n, np.int64)  # 0 lips shut, 1 rest, 1 + k a vowel of openness k, 9 rounded
    for p in phones:
        if p.label in OPENNESS:
            state[frames_of(p, fps, n)] = 1 + OPENNESS[p.label]
    rounded = [p for p in phones if p.label in ROUNDED]
    bilabials = [p for p in phones if p.label in BILABIALS]
    assert [p.label for p in bilabials] == ["M", "B", "B", "M"] and len(rounded) == 4
    for p in rounded[::2]:
        state[frames_of(p, fps, n)] = 9
    for p in bilabials[::2]:
        state[frames_of(p, fps, n)] = 0
    source = api.prepare_face(EXAMPLES / "face2.png")
    mouths = np.repeat(source.coeffs[None], 10, axis=0).astype(np.float32)  # (10, 58)
    mouths[:, : rig.N_EXP] = 0.0
    mouths[1:9, rig.ARKIT_NAMES.index("jawOpen")] = 0.25 + 0.05 * np.arange(8)
    mouths[9, rig.ARKIT_NAMES.index("jawOpen")] = 0.25
    mouths[9, rig.ARKIT_NAMES.index("mouthPucker")] = 0.9
    frames = np.stack(list(api.warp_frames(source, mouths, paste_back=False)))  # (10, 256, 256, 3)
    path = tmp_path_factory.mktemp("phones") / "face2_speech2_neutral_s0.mp4"
    with VideoWriter(path, fps=fps, size=(256, 256), audio_path=SPEECH2) as writer:
        writer.write(frames[state])
    return path


@pytest.mark.slow
def test_evaluate_with_text_reports_the_known_answers(known_clip: Path, tmp_path: Path) -> None:
    report = tmp_path / "metrics.json"
    proc = subprocess.run([sys.executable, "-m", "flowvq_cli", "evaluate", "--pred", str(known_clip), "--text", TEXT2,
                           "--json", str(report), "-q"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "p/b/m closure" in proc.stdout and "rounding on uw/ow/w" in proc.stdout
    metrics = {m["name"]: m for m in json.loads(report.read_text())["clips"][0]["metrics"]}
    closure, openness, rounding = (metrics[n] for n in ("p/b/m closure", "vowel openness correlation",
                                                        "rounding on uw/ow/w"))
    assert closure["value"] == 0.5 and closure["count"] == 4, closure  # shut on 2 of the 4
    assert openness["value"] > 0.8 and openness["count"] == 1, openness  # 17 vowels, jaw ordered by class
    # Known limit of the face model, not of the measure: the rig's mouthPucker at 0.9 is read as a rise of
    # about 0.05 (mouthFunnel is not read at all: readback.UNREAD), under RAISED, so none counts as rounded.
    assert rounding["available"] and rounding["count"] == 4 and rounding["value"] <= 0.5, rounding
    assert metrics["sync correlation (best offset)"]["available"]
