"""Blinks, jitter and seed diversity with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from flowvq_cli.errors import InputError
from flowvq_cli.eval.motion import (
    blink_openness,
    detect_blinks,
    expression_spread,
    eye_aspect_ratio,
    landmark_jitter,
    pose_trace_variance,
)


def test_blinks_counted_by_duration() -> None:
    ear = np.full(250, 0.3)  # 10 s at 25 fps
    ear[20:23] = 0.1  # 3 frames: blink
    ear[100:102] = 0.1  # 2 frames: blink (shortest)
    ear[150:151] = 0.1  # 1 frame: noise
    ear[180:200] = 0.1  # 20 frames: eyes closed, not a blink
    ear[240:252] = 0.1  # runs into the end: unknown length, ignored
    result = detect_blinks(ear, threshold=0.2, fps=25)
    assert result.events == ((20, 23), (100, 102))
    assert result.count == 2
    assert result.rate_per_minute == pytest.approx(12.0)


def test_blink_length_scales_with_fps() -> None:
    ear = np.full(500, 0.3)
    ear[100:103] = 0.0  # 3 frames at 50 fps = 0.06 s: too short
    ear[200:210] = 0.0  # 0.2 s: blink
    assert detect_blinks(ear, fps=50).events == ((200, 210),)


def test_blinks_from_eye_blink_over_a_resting_lid_level() -> None:
    # 8 s at 25 fps: lids resting at 0.1, then lowered to 0.45 for 3 s (a downward gaze) with reading noise,
    # and two real blinks (to 1.0 for 4 frames) at either level.
    rng = np.random.default_rng(0)
    eye_blink = np.full(200, 0.1)
    eye_blink[60:135] = 0.45
    eye_blink += rng.uniform(-0.08, 0.08, 200)
    eye_blink[30:34] = 1.0
    eye_blink[100:104] = 1.0
    # Against the fixed 0.5 threshold the noisy lowered lids flicker across it: spurious short "blinks".
    assert detect_blinks(1.0 - eye_blink, threshold=0.5, fps=25).count > 2
    openness = blink_openness(eye_blink, fps=25)
    assert detect_blinks(openness, threshold=0.5, fps=25).events == ((30, 34), (100, 104))
    assert np.median(np.abs(openness - 1.0)) < 0.1


def test_blink_openness_of_a_still_eye_is_one() -> None:
    np.testing.assert_allclose(blink_openness(np.full(10, 0.3), fps=25), 1.0)
    with pytest.raises(InputError):
        blink_openness(np.zeros(5), fps=0)


def test_eye_aspect_ratio_of_a_known_eye() -> None:
    lm = np.zeros((1, 68, 2))
    eye = np.array([[0, 0], [1, -1], [2, -1], [3, 0], [2, 1], [1, 1]], dtype=float)  # height 2, width 3
    lm[0, 36:42] = eye
    lm[0, 42:48] = eye + np.array([10.0, 0.0])
    assert eye_aspect_ratio(lm)[0] == pytest.approx((2 + 2) / (2 * 3))


def test_jitter_zero_for_uniform_motion_and_known_for_acceleration() -> None:
    t = np.arange(20, dtype=float)[:, None, None]
    base = np.random.default_rng(4).normal(size=(1, 68, 2))
    velocity = np.array([1.5, -2.0])
    np.testing.assert_allclose(landmark_jitter(base + t * velocity), 0.0, atol=1e-9)
    accel = np.array([3.0, 4.0])  # x(t) = a t² / 2 → second difference = a, |a| = 5
    np.testing.assert_allclose(landmark_jitter(base + 0.5 * t**2 * accel), 5.0, rtol=1e-9)
    with pytest.raises(InputError, match="3 frames"):
        landmark_jitter(base)


def test_pose_trace_variance_known() -> None:
    rng = np.random.default_rng(5)
    mean = rng.normal(size=(30, 6))
    d = np.array([0.1, 0.2, 0.3, 1.0, 2.0, 0.5])
    poses = np.stack([mean - d, mean + d])  # two seeds ±d: variance per dim = d²
    assert pose_trace_variance(poses) == pytest.approx(float(np.sum(d**2)))
    assert pose_trace_variance(np.stack([mean, mean, mean])) == pytest.approx(0.0, abs=1e-20)


def test_expression_spread_known() -> None:
    base = np.random.default_rng(6).uniform(size=(40, 52))
    offset = np.zeros(52)
    offset[17] = 0.3  # jawOpen
    samples = np.stack([base, base + offset, base + 2 * offset])
    # pairs: 0.3, 0.6, 0.3 → mean 0.4
    assert expression_spread(samples) == pytest.approx(0.4)
    with pytest.raises(InputError, match="at least 2"):
        expression_spread(samples[:1])
