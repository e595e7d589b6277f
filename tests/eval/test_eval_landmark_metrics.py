"""M-LMD and F-LMD on landmark tracks with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from flowvq_cli.errors import InputError
from flowvq_cli.eval.landmark_metrics import MOUTH, f_lmd, m_lmd


@pytest.fixture()
def track() -> np.ndarray:
    """10 frames of 68 random 2-D landmarks, shape (10, 68, 2)."""
    return np.random.default_rng(1).uniform(0, 256, size=(10, 68, 2))


def test_identical_is_zero(track: np.ndarray) -> None:
    assert np.all(m_lmd(track, track) == 0.0)
    assert np.all(f_lmd(track, track) == 0.0)


def test_translation_is_removed_by_centring(track: np.ndarray) -> None:
    shift = np.random.default_rng(2).normal(0, 20, size=(10, 1, 2))  # a different shift per frame
    moved = track + shift
    np.testing.assert_allclose(m_lmd(moved, track), 0.0, atol=1e-12)
    np.testing.assert_allclose(f_lmd(moved, track), 0.0, atol=1e-12)
    np.testing.assert_allclose(m_lmd(moved, track, centre_on="subset"), 0.0, atol=1e-12)


def test_mouth_scaling_gives_the_analytic_distance(track: np.ndarray) -> None:
    # scaling the mouth about its own centroid by s moves each mouth point by |s - 1| |p - c| and
    # leaves both the mouth centroid and the face centroid in place.
    s = 1.3
    mouth = track[:, MOUTH]
    centre = mouth.mean(axis=1, keepdims=True)
    deformed = track.copy()
    deformed[:, MOUTH] = centre + s * (mouth - centre)
    per_point = (s - 1) * np.linalg.norm(mouth - centre, axis=-1)  # (T, 20)
    expected_m = per_point.mean(axis=1)
    np.testing.assert_allclose(m_lmd(deformed, track), expected_m, rtol=1e-12)
    np.testing.assert_allclose(m_lmd(deformed, track, centre_on="subset"), expected_m, rtol=1e-12)
    np.testing.assert_allclose(f_lmd(deformed, track), per_point.sum(axis=1) / 68, rtol=1e-12)


def test_mouth_shift_counts_only_with_face_centring(track: np.ndarray) -> None:
    d = np.array([3.0, 4.0])  # |d| = 5
    moved = track.copy()
    moved[:, MOUTH] += d
    # face centroid moves by 20/68 d, so each mouth point is off by (1 - 20/68) |d|
    np.testing.assert_allclose(m_lmd(moved, track), (1 - 20 / 68) * 5.0, rtol=1e-12)
    np.testing.assert_allclose(m_lmd(moved, track, centre_on="subset"), 0.0, atol=1e-12)


def test_shapes_are_checked(track: np.ndarray) -> None:
    with pytest.raises(InputError, match="68"):
        f_lmd(track[:, :60], track[:, :60])
    with pytest.raises(InputError, match="same frames"):
        f_lmd(track, track[:5])
