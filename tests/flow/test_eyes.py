"""``--eyes auto``: the sampled blinks kept and topped up to the emotion's natural rate; gaze from the
fixation model; ``--eyes model``: the flow's samples untouched."""

from __future__ import annotations

import numpy as np
import pytest

from flowvq_cli.data.styles import BLINK_RATE_PER_MIN, GAZE_BIAS, blink_frame_ranges
from flowvq_cli.errors import UsageError
from flowvq_cli.eval.motion import detect_blinks
from flowvq_cli.face import rig
from flowvq_cli.flow.eyes import (
    EYE_INDICES,
    GAZE_INDICES,
    SAMPLED_THRESHOLD,
    check_eyes,
    eye_motion,
    fixation_gaze,
    top_up_blinks,
)

FPS = 25.0


def rate(exp: np.ndarray) -> float:
    return detect_blinks(1.0 - exp[:, list(EYE_INDICES)].mean(axis=1), 0.5, FPS).rate_per_minute


@pytest.mark.parametrize("emotion", ["neutral", "surprised", "fear"])
def test_a_blinkless_track_gets_the_emotions_rate(emotion: str) -> None:
    exp = np.full((25 * 600, 52), 0.1, np.float32)  # ten minutes, eyes open, other blendshapes at rest
    out = top_up_blinks(exp, FPS, emotion, seed=0)
    assert 0.8 * BLINK_RATE_PER_MIN[emotion] <= rate(out) <= 1.2 * BLINK_RATE_PER_MIN[emotion]
    others = [i for i in range(52) if i not in EYE_INDICES]
    np.testing.assert_array_equal(out[:, others], exp[:, others])
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_sampled_blinks_are_kept_and_not_doubled() -> None:
    n = 25 * 600
    exp = np.zeros((n, 52), np.float32)
    starts = np.arange(50, n - 10, 100)  # a blink of 4 frames every 4 s: 15 per minute, neutral's rate
    for s in starts:
        exp[s : s + 4, list(EYE_INDICES)] = 1.0
    out = top_up_blinks(exp, FPS, "neutral", seed=1)
    assert np.all(out >= exp)  # the flow's lids are never opened
    assert rate(exp) == pytest.approx(15.0, rel=0.02)
    assert rate(out) < 1.25 * rate(exp)  # at most a few events fall in the sampled blinks' gaps


def test_same_seed_same_blinks_and_short_clips() -> None:
    exp = np.zeros((125, 52), np.float32)
    a, b = top_up_blinks(exp, FPS, "happy", 3), top_up_blinks(exp, FPS, "happy", 3)
    np.testing.assert_array_equal(a, b)
    seeds = [top_up_blinks(exp, FPS, "happy", s) for s in range(40)]
    assert len({x.tobytes() for x in seeds}) > 30
    counts = [len(blink_frame_ranges(x[:, list(EYE_INDICES)], SAMPLED_THRESHOLD)) for x in seeds]
    assert 0.5 * 16 / 12 <= np.mean(counts) <= 2 * 16 / 12  # 5-s clips: 16 per minute on average
    assert top_up_blinks(exp, FPS, "talk", 0).dtype == np.float32


def test_gaze_follows_the_fixation_model_and_nothing_else_moves() -> None:
    rng = np.random.default_rng(0)
    exp = rng.uniform(0.0, 1.0, (25 * 120, 52)).astype(np.float32)
    exp[:, list(GAZE_INDICES)] = 0.9  # a drifted flow sample: eyes rolled to an extreme
    names = list(rig.ARKIT_NAMES)
    up, down = names.index("eyeLookUpLeft"), names.index("eyeLookDownLeft")
    sad, happy = fixation_gaze(exp, FPS, "sad", 1), fixation_gaze(exp, FPS, "happy", 1)
    assert sad[:, down].mean() - sad[:, up].mean() == pytest.approx(-GAZE_BIAS["sad"][1], abs=0.08)  # looks down
    assert abs(happy[:, up].mean() - happy[:, down].mean()) < 0.08 and happy[:, up].mean() < 0.25
    others = [i for i in range(52) if i not in GAZE_INDICES]
    np.testing.assert_array_equal(happy[:, others], exp[:, others])
    np.testing.assert_array_equal(fixation_gaze(exp, FPS, "happy", 1), happy)
    # both eyes turn together: left's Out is right's In
    np.testing.assert_array_equal(happy[:, names.index("eyeLookOutLeft")], happy[:, names.index("eyeLookInRight")])


def test_modes() -> None:
    exp = np.zeros((250, 52), np.float32)
    assert eye_motion(exp, FPS, "neutral", 0, "model") is exp
    auto = eye_motion(exp, FPS, "neutral", 0, "auto")
    np.testing.assert_array_equal(auto, top_up_blinks(fixation_gaze(exp, FPS, "neutral", 0), FPS, "neutral", 0))
    assert check_eyes("model") == "model"
    with pytest.raises(UsageError, match="--eyes"):
        check_eyes("off")
