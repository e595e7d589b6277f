"""Synthetic clip motion: shapes, determinism, emotion styles, blinks, gaze, head pose."""

from __future__ import annotations

import time

import numpy as np
import pytest

from flowvq_cli.audio.features import frames_for
from flowvq_cli.data import speech, styles
from flowvq_cli.data.manifest import EMOTIONS
from flowvq_cli.data.motion import ClipMotion, make_clip_motion
from flowvq_cli.errors import UsageError
from flowvq_cli.face.rig import ARKIT_NAMES, N_COEFFS, N_EXP

IDX = {name: i for i, name in enumerate(ARKIT_NAMES)}
JAW = IDX["jawOpen"]
SENTENCE = "The quick brown fox jumps over the lazy dog, and then it runs far away."


@pytest.fixture(scope="module")
def sentence() -> speech.Utterance:
    return speech.synthesize(SENTENCE, voice="en-us")


@pytest.fixture(scope="module")
def bilabial() -> speech.Utterance:
    return speech.synthesize("papa mama baba", voice="en-us")


def _motion(u: speech.Utterance, emotion: str = "neutral", intensity: int = 3, seed: int = 0) -> ClipMotion:
    return make_clip_motion(u, emotion, intensity, np.random.default_rng(seed))


def _mean(m: ClipMotion, *names: str) -> float:
    return float(m.coeffs[:, [IDX[n] for n in names]].mean())


def test_shapes_and_ranges(sentence: speech.Utterance) -> None:
    m = _motion(sentence)
    n = frames_for(sentence.duration)
    assert n == round(sentence.duration * 25)
    assert m.coeffs.shape == (n, N_COEFFS) and m.coeffs.dtype == np.float32
    assert m.coeffs[:, :N_EXP].min() >= 0.0 and m.coeffs[:, :N_EXP].max() <= 1.0
    assert m.viseme_track.shape == (n,) and m.energy.shape == (n,)
    assert m.blink_frames.ndim == 2 and m.blink_frames.shape[1] == 2


def test_same_seed_same_arrays_other_seed_differs(sentence: speech.Utterance) -> None:
    a, b, c = _motion(sentence, "happy", 2, 7), _motion(sentence, "happy", 2, 7), _motion(sentence, "happy", 2, 8)
    assert np.array_equal(a.coeffs, b.coeffs) and np.array_equal(a.viseme_track, b.viseme_track)
    assert np.array_equal(a.blink_frames, b.blink_frames)
    assert not np.array_equal(a.coeffs, c.coeffs)


@pytest.mark.parametrize("emotion", EMOTIONS)
def test_bilabials_close_in_every_style(bilabial: speech.Utterance, emotion: str) -> None:
    m = _motion(bilabial, emotion)
    for p in (p for p in bilabial.phonemes if p.phoneme in ("p", "b", "m")):
        k = round((p.start + p.end) / 2 * 25 - 0.5)
        assert m.coeffs[k, JAW] < 0.08 and m.viseme_track[k] < 0.02, (emotion, p)


def test_open_vowels_and_energy_drive_the_jaw(sentence: speech.Utterance) -> None:
    ah = _motion(speech.synthesize("ah ah ah"))
    assert ah.coeffs[:, JAW].max() > 0.4
    for emotion in ("neutral", "happy", "sad", "surprised"):
        m = _motion(sentence, emotion)
        assert np.corrcoef(m.coeffs[:, JAW], m.energy)[0, 1] > 0.5, emotion


def test_emotions_move_the_expected_blendshapes(sentence: speech.Utterance) -> None:
    neutral = _motion(sentence, "neutral")
    by = {e: _motion(sentence, e) for e in EMOTIONS}
    assert _mean(by["angry"], "browDownLeft", "browDownRight") > _mean(neutral, "browDownLeft", "browDownRight") + 0.3
    assert _mean(by["happy"], "mouthSmileLeft", "mouthSmileRight") > _mean(neutral, "mouthSmileLeft") + 0.3
    assert _mean(by["sad"], "browInnerUp") > _mean(neutral, "browInnerUp") + 0.3
    assert _mean(by["sad"], "mouthFrownLeft", "mouthFrownRight") > _mean(neutral, "mouthFrownLeft") + 0.3
    assert _mean(by["surprised"], "eyeWideLeft", "eyeWideRight") > _mean(neutral, "eyeWideLeft") + 0.3
    assert _mean(by["fear"], "eyeWideLeft", "browInnerUp") > _mean(neutral, "eyeWideLeft", "browInnerUp") + 0.3
    assert _mean(by["disgusted"], "noseSneerLeft", "noseSneerRight") > _mean(neutral, "noseSneerLeft") + 0.3
    contempt = by["contempt"]
    assert abs(_mean(contempt, "mouthSmileLeft") - _mean(contempt, "mouthSmileRight")) > 0.15  # one-sided
    assert by["surprised"].coeffs[:, JAW].std() > by["sad"].coeffs[:, JAW].std()  # larger jaw range


def test_intensity_scales_the_expression(sentence: speech.Utterance) -> None:
    levels = [np.mean([_mean(_motion(sentence, "angry", i, s), "browDownLeft") for s in range(5)]) for i in (1, 2, 3)]
    assert levels[0] < levels[1] < levels[2]


def test_voice_params_follow_the_emotion() -> None:
    def params(emotion: str) -> styles.VoiceParams:
        return styles.voice_params(emotion, 3, np.random.default_rng(1))

    assert params("sad").rate < params("neutral").rate < params("fear").rate
    assert params("surprised").pitch > params("neutral").pitch > params("sad").pitch
    assert params("angry").volume > params("neutral").volume > params("sad").volume
    for emotion in EMOTIONS:
        p = params(emotion)
        assert 80 <= p.rate <= 450 and 0 <= p.pitch <= 100 and 0 <= p.pitch_range <= 100


def test_blinks_have_the_right_length_and_rate() -> None:
    rng = np.random.default_rng(0)
    for emotion in ("neutral", "fear", "sad"):
        minutes = 200.0
        blinks = styles.sample_blinks(minutes * 60.0, emotion, rng)
        assert len(blinks) / minutes == pytest.approx(styles.BLINK_RATE_PER_MIN[emotion], rel=0.1)
        assert all(0.15 <= b.duration <= 0.4 for b in blinks)
        assert all(0.0 <= b.right_delay <= 0.015 for b in blinks)
        starts = np.array([b.start for b in blinks])
        assert np.all(np.diff(starts) > 0.4)  # never overlapping


def test_blink_frames_match_the_eyelids(sentence: speech.Utterance) -> None:
    seen = 0
    for seed in range(10):
        m = _motion(sentence, "talk", 2, seed)
        left, right = m.coeffs[:, IDX["eyeBlinkLeft"]], m.coeffs[:, IDX["eyeBlinkRight"]]
        for first, end in m.blink_frames:
            assert (end - first) / 25 <= 0.4 + 2 / 25  # 150–400 ms, sampled at 25 fps
            assert left[first:end].max() > 0.5 and right[first:end].max() > 0.5
            assert abs(int(np.argmax(left[first:end])) - int(np.argmax(right[first:end]))) <= 1  # eyes together
            seen += 1
    assert seen >= 5


def test_gaze_moves_the_eyes(sentence: speech.Utterance) -> None:
    m = _motion(sentence)
    look = m.coeffs[:, [i for n, i in IDX.items() if n.startswith("eyeLook")]]
    assert look.max() > 0.05 and look.std(axis=0).max() > 0.02


@pytest.mark.parametrize("emotion", ["neutral", "angry", "sad"])
def test_head_pose_varies_within_a_few_degrees(sentence: speech.Utterance, emotion: str) -> None:
    pose = _motion(sentence, emotion, 3, 3).coeffs[:, N_EXP:]
    degrees = np.degrees(pose[:, :3])
    assert np.all(np.abs(degrees) < styles.HEAD_LIMIT_DEG)
    assert degrees[:, 0].std() > 0.2 and degrees[:, 1].std() > 0.2
    assert np.abs(np.diff(degrees, axis=0)).max() < 2.0  # smooth
    assert np.abs(pose[:, 3:]).max() < 0.05


def test_head_nods_follow_energy_peaks() -> None:
    energy = np.full(100, -80.0)
    energy[48:53] = -20.0  # one loud syllable at frames 48–52
    nods = styles.nod_track(energy, 25.0, 1.0, np.random.default_rng(0))
    assert nods[:40].max() == 0.0 and nods[45:62].max() > 0.0


def test_bad_style_arguments_are_rejected(sentence: speech.Utterance) -> None:
    with pytest.raises(UsageError, match="emotion"):
        _motion(sentence, "bored")
    with pytest.raises(UsageError, match="intensity"):
        _motion(sentence, "happy", 4)


def test_one_clip_is_fast(sentence: speech.Utterance) -> None:
    start = time.perf_counter()
    _motion(sentence, "happy")
    assert time.perf_counter() - start < 0.5
