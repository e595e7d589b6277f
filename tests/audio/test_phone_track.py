"""Phone features per video frame (``flowvq_cli.audio.phone_track``): known answers, then pocketsphinx."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from flowvq_cli.audio.phone_track import N_PHONES, PHONES, clip_text, phone_track, speech_phone_track
from flowvq_cli.audio.phones import Phone

FPS = 25.0
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SPEECH3_TEXT = "Bob put the maps by my bike, but Pam bought plum jam."


def test_each_frame_holds_the_share_of_it_every_phone_covers() -> None:
    # frame 0: [0, 40) ms, silence then M from 20 ms; frame 1: M to 50 ms, AA after; 2 and 3: AA; 4: nothing
    track = phone_track([Phone(0.02, 0.05, "M"), Phone(0.05, 0.16, "AA")], 5, FPS)
    assert track.shape == (5, N_PHONES) and track.dtype == np.float32
    m, aa, sil = PHONES.index("M"), PHONES.index("AA"), PHONES.index("SIL")
    np.testing.assert_allclose(track[0, [sil, m]], [0.5, 0.5], atol=1e-6)
    np.testing.assert_allclose(track[1, [m, aa]], [0.25, 0.75], atol=1e-6)
    assert track[2, aa] == pytest.approx(1.0) and track[3, aa] == pytest.approx(1.0)
    assert track[4, sil] == pytest.approx(1.0)
    np.testing.assert_allclose(track.sum(axis=1), 1.0, atol=1e-6)


def test_noise_labels_and_times_outside_the_frames_are_silence() -> None:
    track = phone_track([Phone(-0.5, 0.04, "+NSN+"), Phone(0.04, 9.0, "IY")], 3, FPS)
    assert track[0, PHONES.index("SIL")] == pytest.approx(1.0)
    assert track[1:, PHONES.index("IY")] == pytest.approx(1.0)
    assert phone_track([], 0, FPS).shape == (0, N_PHONES)


@pytest.mark.skipif(importlib.util.find_spec("pocketsphinx") is None,
                    reason="needs pocketsphinx (pip install '.[phones]')")
def test_the_track_of_a_recording_has_its_bilabials_where_the_aligner_puts_them() -> None:
    wav = EXAMPLES / "speech3.wav"
    track = speech_phone_track(wav, 100, FPS, SPEECH3_TEXT)
    bilabial = track[:, [PHONES.index(p) for p in ("P", "B", "M")]].sum(axis=1)
    runs = np.flatnonzero(np.diff((bilabial > 0.5).astype(int)) == 1)
    assert len(runs) >= 10  # 15 bilabials in the sentence, some merged across words ("maps by my")
    spoken = track[track[:, PHONES.index("SIL")] < 0.5]
    assert PHONES[int(spoken[0].argmax())] == "B"  # "Bob ..."
    recognised = speech_phone_track(wav, 100, FPS)
    assert recognised.shape == (100, N_PHONES) and np.allclose(recognised.sum(axis=1), 1.0, atol=1e-5)


def test_a_clips_text_is_the_first_line_of_its_text_file(tmp_path: Path) -> None:
    audio = tmp_path / "audio.wav"
    assert clip_text(audio) is None  # no text.txt
    for written, expected in (("", None), ("  \nvoice\n", None), ("Bob put the maps.\nvoice\n", "Bob put the maps.")):
        (tmp_path / "text.txt").write_text(written, encoding="utf-8")
        assert clip_text(audio) == expected
