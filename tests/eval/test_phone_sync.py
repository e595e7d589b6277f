"""Phone-level lip sync (``flowvq_cli.eval.phone_sync``): each figure on tracks and phones with a known answer."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from flowvq_cli.audio import phones as phones_mod
from flowvq_cli.audio.phones import Phone
from flowvq_cli.eval import run
from flowvq_cli.eval.phone_sync import (
    CLOSED,
    RAISED,
    PhoneSync,
    bilabial_spans,
    closures,
    frames_of,
    phone_sync,
    rounding_rises,
    spearman,
    vowel_openings,
)

FPS = 25.0
OPEN = 0.2  # lip gap of an open mouth, mouth widths
SHUT = 0.01


def _phones(labels: list[str], length: float = 0.2) -> list[Phone]:
    """Consecutive phones of ``length`` seconds each (5 frames at 25 fps)."""
    return [Phone(i * length, (i + 1) * length, label) for i, label in enumerate(labels)]


def _set(track: np.ndarray, phone: Phone, value: float, middle_only: bool = False) -> None:
    frames = frames_of(phone, FPS, track.shape[0])
    track[frames[len(frames) // 2] if middle_only else frames] = value


def test_frames_of_a_phone_are_those_whose_centre_is_within_it_plus_half_a_frame() -> None:
    assert frames_of(Phone(0.10, 0.15, "M"), FPS, 100).tolist() == [2, 3]
    assert frames_of(Phone(0.0, 0.02, "M"), FPS, 100).tolist() == [0]
    assert frames_of(Phone(0.2, 0.4, "AA"), FPS, 100).tolist() == [4, 5, 6, 7, 8, 9, 10]
    assert frames_of(Phone(3.9, 4.2, "AA"), FPS, 100).tolist() == [97, 98, 99]  # cut at the clip's end


def test_closure_two_of_four() -> None:
    """Four bilabials among vowels; the lips meet in one frame of the first and the third only: 2 of 4."""
    phones = _phones(["SIL", "M", "AA", "B", "AE", "P", "IY", "M", "SIL"])
    gap = np.full(int(phones[-1].end * FPS), OPEN)
    _set(gap, phones[1], SHUT, middle_only=True)
    _set(gap, phones[5], SHUT, middle_only=True)
    sync = phone_sync(gap, np.zeros((gap.size, 2)), phones, FPS)
    assert sync.closed.tolist() == [True, False, True, False]
    np.testing.assert_allclose(sync.closure_gaps, [SHUT, OPEN, SHUT, OPEN])
    result = run.phone_sync_results(sync)[0]
    assert result.name == "p/b/m closure" and result.value == 0.5 and result.count == 4


def test_a_stop_after_a_pause_owns_the_pause_s_last_tenth_of_a_second() -> None:
    """The closure of a P is silent: the aligner may give it to the pause before. The lips meet 0.08 s
    before the P's aligned start: closed; 0.3 s before: not closed; an M gets no such extension."""
    phones = [Phone(0.0, 0.5, "SIL"), Phone(0.5, 0.6, "P"), Phone(0.6, 0.9, "AA"),
              Phone(0.9, 1.4, "SIL"), Phone(1.4, 1.5, "M"), Phone(1.5, 1.8, "AA")]
    assert [s.start for s in bilabial_spans(phones)] == [pytest.approx(0.4), 1.4]
    gap = np.full(45, OPEN)
    gap[10] = SHUT  # frame 10 shows 0.40-0.44 s: in the P's pause, within its last 0.1 s
    gap[27] = SHUT  # 1.08-1.12 s: in the M's pause, 0.3 s before it
    assert (closures(gap, phones, FPS) < CLOSED).tolist() == [True, False]


def test_closure_skips_phones_where_the_face_was_lost() -> None:
    phones = _phones(["M", "AA", "M"])
    gap = np.full(15, SHUT)
    gap[frames_of(phones[2], FPS, 15)] = np.nan
    assert np.isnan(closures(gap, phones, FPS)[1])
    sync = phone_sync(gap, np.zeros((15, 2)), phones, FPS)
    assert sync.closure_gaps.size == 1 and run.phone_sync_results(sync)[0].count == 1


def test_openness_a_perfect_ordering_is_one_and_its_reverse_minus_one() -> None:
    """One vowel of each openness class 1-7, the lips opening in proportion (and the reverse)."""
    vowels = ["IY", "IH", "EY", "ER", "EH", "AE", "AA"]  # classes 1..7
    phones = _phones(["SIL", *vowels, "SIL"])
    for sign, expected in ((1.0, 1.0), (-1.0, -1.0)):
        gap = np.full(int(phones[-1].end * FPS), 0.0)
        for k, phone in enumerate(phones[1:-1], start=1):
            _set(gap, phone, 0.5 + sign * 0.05 * k, middle_only=True)
        openness, opening = vowel_openings(gap, phones, FPS)
        assert openness.tolist() == [1, 2, 3, 4, 5, 6, 7] and np.all(np.diff(opening) * sign > 0)
        sync = phone_sync(gap, np.zeros((gap.size, 2)), phones, FPS)
        assert sync.openness_correlation == pytest.approx(expected)
        assert run.phone_sync_results(sync)[1].value == pytest.approx(expected)


def test_openness_is_the_largest_gap_within_the_vowel_and_undefined_on_too_few() -> None:
    phones = _phones(["AA", "IY"])
    gap = np.array([0.1, 0.1, 0.4, 0.1, 0.1, 0.0, 0.05, 0.0, 0.0, 0.0])
    openness, opening = vowel_openings(gap, phones, FPS)
    # AA covers frames 0-5 (its end, 0.2 s, is frame 5's start + half a frame): max 0.4; IY frames 4-9
    np.testing.assert_allclose(opening, [0.4, 0.1])
    assert np.isnan(spearman(openness, opening))  # 2 vowels
    assert np.isnan(spearman(np.array([3.0, 3.0, 3.0]), np.array([0.1, 0.2, 0.3])))  # one class
    sync = phone_sync(gap, np.zeros((10, 2)), phones, FPS)
    result = run.phone_sync_results(sync)[1]
    assert not result.available and "3 or more" in (result.reason or "")


def test_rounding_two_of_four_relative_to_the_clip_s_own_median() -> None:
    """A face that always reads pucker 0.3 (its resting level): rounded where funnel or pucker rises by at
    least RAISED above it. W: pucker +0.15; OW: funnel +0.12; UW: pucker +0.05; W: nothing → 2 of 4."""
    phones = _phones(["SIL", "W", "AA", "OW", "IY", "UW", "EH", "W", "SIL"])
    n = int(phones[-1].end * FPS)
    rounding = np.tile([0.05, 0.3], (n, 1))  # (T, 2): mouthFunnel, mouthPucker
    _set(rounding[:, 1], phones[1], 0.3 + RAISED + 0.05)
    _set(rounding[:, 0], phones[3], 0.05 + RAISED + 0.02)
    _set(rounding[:, 1], phones[5], 0.3 + RAISED - 0.05)
    np.testing.assert_allclose(rounding_rises(rounding, phones, FPS), [0.15, 0.12, 0.05, 0.0], atol=1e-12)
    sync = phone_sync(np.full(n, OPEN), rounding, phones, FPS)
    assert sync.rounded.tolist() == [True, True, False, False]
    result = run.phone_sync_results(sync)[2]
    assert result.name == "rounding on uw/ow/w" and result.value == 0.5 and result.count == 4
    # a pucker held through the whole clip is the face's resting level, not rounding
    assert not phone_sync(np.full(n, OPEN), np.tile([0.6, 0.6], (n, 1)), phones, FPS).rounded.any()


def test_metrics_say_why_when_the_speech_lacks_the_phones_or_pocketsphinx_is_missing() -> None:
    empty = PhoneSync(np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0))
    reasons = [r.reason or "" for r in run.phone_sync_results(empty)]
    assert "p/b/m" in reasons[0] and "vowels" in reasons[1] and "uw, ow or w" in reasons[2]
    for result in run.phone_sync_results(None, "phone measures unavailable: pocketsphinx is not installed"):
        assert not result.available and "pocketsphinx" in (result.reason or "")
    assert [r.name for r in run.phone_sync_results(None, "x")] == list(run.PHONE_METRICS)
    assert all(name in [m[0] for m in run.METRIC_ORDER] for name in run.PHONE_METRICS)


def test_without_pocketsphinx_the_phone_metrics_are_unavailable_with_the_install_hint(
        monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "pocketsphinx" else real(name, *args))
    extras = run.load_extras(use_dlib=False, use_fer=False)
    assert "pocketsphinx is not installed" in extras.phones_reason and "pip install" in extras.phones_reason
    phones, reason = run.clip_phones(Path("speech.wav"), "hello", extras)
    assert phones is None and reason == extras.phones_reason
    with pytest.raises(phones_mod.PhonesUnavailableError, match=r"pip install '\.\[phones\]'"):
        phones_mod.align_phones("speech.wav", "hello")
    assert run.load_extras(use_dlib=False, use_fer=False, use_phones=False).phones_reason == "phone measures turned off"


def test_mouth_tracks_of_real_landmarks_parted_and_shut_lips() -> None:
    """face.png's lips are parted, face2.png's meet (FaceMesh on the photos); the reader's rounding is low."""
    from flowvq_cli.face.analyze import analyze

    examples = Path(__file__).resolve().parents[2] / "examples"
    (parted, rounding), (shut, _) = (run.mouth_tracks(analyze(examples / f).landmarks)
                                     for f in ("face.png", "face2.png"))
    assert shut[0] < CLOSED < parted[0]
    assert rounding.shape == (1, 2) and np.all((rounding >= 0) & (rounding < 0.5))
