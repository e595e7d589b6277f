"""Phoneme → viseme mapping, coarticulation and the lips-closed constraint."""

from __future__ import annotations

import numpy as np
import pytest

from flowvq_cli.audio.energy import energy_envelope
from flowvq_cli.audio.features import frames_for
from flowvq_cli.data import speech, visemes
from flowvq_cli.data.speech import Phone
from flowvq_cli.face.rig import ARKIT_NAMES

JAW = ARKIT_NAMES.index("jawOpen")


def _track(text: str, **kw) -> tuple[speech.Utterance, visemes.MouthTrack]:
    utterance = speech.synthesize(text, **kw)
    n = frames_for(utterance.duration)
    energy = energy_envelope(utterance.samples, speech.SAMPLE_RATE, n)
    return utterance, visemes.mouth_track(utterance.phonemes, n, energy_db=energy)


def _centre_frame(phone: Phone, fps: float = 25.0) -> int:
    return round((phone.start + phone.end) / 2 * fps - 0.5)


def test_tables_are_complete_and_valid() -> None:
    assert 12 <= len(visemes.VISEMES) <= 15
    for name in visemes.VISEMES:
        assert set(visemes.VISEME_TARGETS[name]) <= set(ARKIT_NAMES)
        assert all(0.0 <= w <= 1.0 for w in visemes.VISEME_TARGETS[name].values())
        assert 0.0 <= visemes.VISEME_OPENING[name] <= 1.0
        assert name in visemes.DOMINANCE
    assert set(visemes.PHONEME_CLASSES.values()) <= set(visemes.VISEMES)


@pytest.mark.parametrize(("phoneme", "cls"), [("p", "PBM"), ("b", "PBM"), ("m", "PBM"), ("f", "FV"), ("D", "TH"),
                                               ("t", "DTNL"), ("k", "KG"), ("tS", "CH"), ("s", "SZ"), ("r", "R"),
                                               ("w", "W_OO"), ("u:", "W_OO"), ("A:", "AA"), ("aI", "AA"),
                                               ("E", "EH"), ("3:", "EH"), ("i:", "EE"), ("oU", "OW"),
                                               ("_:", "sil"), ("_", "sil"), ("'a", "AA"), ("e#", "EH")])
def test_viseme_of(phoneme: str, cls: str) -> None:
    assert visemes.VISEMES[visemes.viseme_of(phoneme)] == cls


def test_espeak_english_inventory_is_mapped() -> None:
    text = ("The quick brown fox jumps over the lazy dog. She sells sea shells; a judge's thin rhythm! "
            "Yes, your bird heard the pure clear air, oh boy, how nice.")
    for voice in ("en-us", "en", "en-gb-scotland"):
        for p in speech.synthesize(text, voice=voice).phonemes:
            name = p.phoneme.strip(visemes.MODIFIERS)
            assert speech.is_pause(p.phoneme) or not name or name in visemes.PHONEME_CLASSES, p.phoneme


def test_bilabials_close_the_lips() -> None:
    utterance, track = _track("papa mama baba")
    bilabials = [p for p in utterance.phonemes if p.phoneme in ("p", "b", "m")]
    assert len(bilabials) == 6
    for p in bilabials:
        k = _centre_frame(p)
        assert track.weights[k, JAW] < 0.08 and track.opening[k] < 0.02, p
        assert track.closure[k] == pytest.approx(1.0)
    assert track.weights[:, JAW].max() > 0.4  # the /a/ between them opens


def test_open_vowels_open_the_jaw() -> None:
    _, track = _track("ah ah ah")
    assert track.weights[:, JAW].max() > 0.4
    assert visemes.VISEMES[int(np.bincount(track.viseme).argmax())] == "AA"


def test_silence_keeps_the_mouth_shut() -> None:
    track = visemes.mouth_track([Phone(0.0, 1.0, "_")], 25)
    assert np.all(track.weights == 0.0) and np.all(track.opening == 0.0)


def test_jaw_follows_the_speech_energy() -> None:
    utterance, track = _track("The quick brown fox jumps over the lazy dog, and then it runs far away.")
    energy = energy_envelope(utterance.samples, speech.SAMPLE_RATE, track.opening.size)
    assert np.corrcoef(track.weights[:, JAW], energy)[0, 1] > 0.5


def test_coarticulation_is_smooth() -> None:
    _, track = _track("We went over the old bridge.")
    assert np.abs(np.diff(track.weights[:, JAW])).max() < 0.5
    assert track.weights.dtype == np.float32 and track.weights.shape[1] == len(ARKIT_NAMES)


def test_long_speech_is_blended_window_by_window_as_in_one_piece(monkeypatch: pytest.MonkeyPatch) -> None:
    """70 s of phones (some long pauses) over 1750 frames: taken 500 frames at a time, with the phones near
    each window, the track equals the one computed in one piece (whose phone × frame matrices grow with the
    square of the length)."""
    rng = np.random.default_rng(0)
    names = [*visemes.PHONEME_CLASSES, "_"]
    phones, t = [], 0.0
    while t < 70.0:
        d = rng.uniform(0.04, 0.25) if rng.random() > 0.05 else rng.uniform(0.3, 3.0)
        phones.append(Phone(t, t + d, names[rng.integers(len(names))]))
        t += d
    energy = rng.normal(-30.0, 8.0, 1750)
    windowed = visemes.mouth_track(phones, 1750, 25.0, energy)
    monkeypatch.setattr(visemes, "WINDOW_FRAMES", 10_000)
    whole = visemes.mouth_track(phones, 1750, 25.0, energy)
    np.testing.assert_allclose(windowed.weights, whole.weights, atol=1e-12)
    np.testing.assert_array_equal(windowed.viseme, whole.viseme)
    np.testing.assert_array_equal(windowed.closure, whole.closure)
    np.testing.assert_array_equal(windowed.opening, whole.opening)
