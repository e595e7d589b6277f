"""Fitting coefficients to landmarks: exact and noisy round trips, identity estimation, batching."""

from __future__ import annotations

import numpy as np
import pytest

from flowvq_cli.errors import InputError
from flowvq_cli.face import canonical, rig
from flowvq_cli.face.fit import FitConfig, estimate_identity, fit_landmarks, normalize_identity, solve_box_qp
from flowvq_cli.face.rig import N_COEFFS, N_EXP

N_ROUND_TRIP = 240
NOISE_PX = 0.5
MAX_EXP_MAE = 0.05
MAX_ANGLE_MAE_DEG = 1.5
IDENTITY_BUMPS = 8  # smooth random identity: Gaussian bumps on the canonical face
IDENTITY_BUMP_SIGMA_CM = 3.0
IDENTITY_BUMP_AMPLITUDE_CM = 0.25


def random_coeffs(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 58): 3-8 active blendshapes in [0, 1]; pitch/yaw ±30°, roll ±15°, small tx/ty/log_scale."""
    c = np.zeros((n, N_COEFFS))
    for row in c:
        k = rng.integers(3, 9)
        row[rng.choice(N_EXP, k, replace=False)] = rng.uniform(0.0, 1.0, k)
    c[:, 52] = np.deg2rad(rng.uniform(-30, 30, n))
    c[:, 53] = np.deg2rad(rng.uniform(-30, 30, n))
    c[:, 54] = np.deg2rad(rng.uniform(-15, 15, n))
    c[:, 55:57] = rng.uniform(-0.1, 0.1, (n, 2))
    c[:, 57] = rng.uniform(-0.15, 0.15, n)
    return c


def random_identity(rng: np.random.Generator) -> np.ndarray:
    """Canonical face + smooth random shape change (468, 3), normalised to the canonical frame."""
    v = canonical.load_canonical().vertices.astype(np.float64)
    delta = np.zeros_like(v)
    for centre in v[rng.choice(len(v), IDENTITY_BUMPS, replace=False)]:
        w = np.exp(-((v - centre) ** 2).sum(1) / (2 * IDENTITY_BUMP_SIGMA_CM**2))
        delta += w[:, None] * rng.normal(0.0, IDENTITY_BUMP_AMPLITUDE_CM, 3)
    return normalize_identity(v + delta)


@pytest.fixture(scope="module")
def sequence() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(identity (468, 3), coeffs (N, 58), noisy landmarks (N, 468, 3)), seeded."""
    rng = np.random.default_rng(2024)
    identity = random_identity(rng)
    coeffs = random_coeffs(rng, N_ROUND_TRIP)
    points = rig.synthesize(identity, coeffs)
    return identity, coeffs, points + rng.normal(0.0, NOISE_PX, points.shape)


def _errors(fitted: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    exp_mae = np.abs(fitted[:, :N_EXP] - truth[:, :N_EXP]).mean()
    angle_mae = np.rad2deg(np.abs(fitted[:, 52:55] - truth[:, 52:55])).mean()
    return float(exp_mae), float(angle_mae)


def test_noisy_round_trip_with_known_identity(sequence) -> None:
    identity, coeffs, noisy = sequence
    result = fit_landmarks(noisy, identity=identity)
    exp_mae, angle_mae = _errors(result.coeffs, coeffs)
    assert exp_mae < MAX_EXP_MAE and angle_mae < MAX_ANGLE_MAE_DEG, (exp_mae, angle_mae)
    assert result.coeffs[:, :N_EXP].min() >= 0.0 and result.coeffs[:, :N_EXP].max() <= 1.0


def test_noisy_round_trip_with_estimated_identity(sequence) -> None:
    identity, coeffs, noisy = sequence
    result = fit_landmarks(noisy)
    exp_mae, angle_mae = _errors(result.coeffs, coeffs)
    assert exp_mae < MAX_EXP_MAE and angle_mae < MAX_ANGLE_MAE_DEG, (exp_mae, angle_mae)
    assert np.abs(result.identity - identity).mean() < 0.02  # cm


def test_noise_free_fit_is_exact_and_batched() -> None:
    rng = np.random.default_rng(7)
    identity = random_identity(rng)
    coeffs = random_coeffs(rng, 50)
    points = rig.synthesize(identity, coeffs)
    result = fit_landmarks(points, identity=identity, config=FitConfig.exact())
    assert result.coeffs.shape == (50, N_COEFFS) and result.coeffs.dtype == np.float32
    np.testing.assert_allclose(result.coeffs, coeffs, atol=1e-3)
    assert result.rms_px.max() < 1e-2
    one_by_one = np.concatenate([fit_landmarks(p, identity=identity, config=FitConfig.exact()).coeffs
                                 for p in points[:5]])
    np.testing.assert_allclose(one_by_one, result.coeffs[:5], atol=1e-4)


def test_single_frame_identity_is_neutral_and_explains_the_frame() -> None:
    """One frame: the identity is its shape made neutral by the reader, lips closed (``neutral_identity``);
    the refit against it explains the frame to about a pixel (the lips' opening is the rest)."""
    from flowvq_cli.face.canonical import lip_gap

    rng = np.random.default_rng(3)
    identity = random_identity(rng)
    points = rig.synthesize(identity, random_coeffs(rng, 1))
    result = fit_landmarks(points[0], config=FitConfig.exact())
    assert result.rms_px[0] < 2.0 and lip_gap(result.identity) < 0.05
    np.testing.assert_allclose(estimate_identity(points), result.identity, atol=1e-4)


def test_frame_prior_silences_weak_blendshapes_under_a_landmark_bias() -> None:
    # A still, neutral face whose landmarks carry a fixed 0.5 px bias (as MediaPipe's reading of a face
    # differs from the face model's): without the prior the bias is read as weak blendshapes (up to 0.07
    # on the calibrated fields, 0.1 and more on the smaller procedural ones); with it they stay smaller,
    # while a real jawOpen is still read almost in full.
    rng = np.random.default_rng(11)
    identity = random_identity(rng)
    coeffs = np.zeros((2, N_COEFFS), np.float32)
    coeffs[:, 52:] = random_coeffs(rng, 1)[0, 52:]
    coeffs[1, rig.ARKIT_NAMES.index("jawOpen")] = 0.6
    points = rig.synthesize(identity, coeffs) + rng.normal(0.0, 0.5, (1, 468, 3))
    exact = fit_landmarks(points, identity=identity, config=FitConfig.exact()).coeffs
    prior = fit_landmarks(points, identity=identity).coeffs
    jaw = rig.ARKIT_NAMES.index("jawOpen")
    weak = [i for i in range(N_EXP) if i != jaw]
    assert exact[0, weak].max() > 0.05
    assert np.abs(prior[:, weak]).mean() < 0.5 * np.abs(exact[:, weak]).mean()
    assert abs(prior[1, jaw] - 0.6) < 0.05


def test_depth_weight_keeps_an_exact_fit_exact() -> None:
    rng = np.random.default_rng(5)
    identity = random_identity(rng)
    coeffs = random_coeffs(rng, 8)
    points = rig.synthesize(identity, coeffs)
    for w in (1.0, 0.25):
        fitted = fit_landmarks(points, identity=identity, config=FitConfig(frame_prior=0.0, depth_weight=w))
        np.testing.assert_allclose(fitted.coeffs, coeffs, atol=1e-3)


def test_mirrored_landmarks_give_mirrored_coeffs() -> None:
    rng = np.random.default_rng(5)
    identity = random_identity(rng)
    coeffs = random_coeffs(rng, 20)
    points = rig.synthesize(identity, coeffs)
    mirrored = points[:, canonical.mirror_index()] * [-1, 1, 1] + [rig.CROP_SIZE, 0, 0]
    mirrored_identity = canonical.mirror_field(identity)
    result = fit_landmarks(mirrored, identity=mirrored_identity, config=FitConfig.exact())
    np.testing.assert_allclose(result.coeffs, rig.mirror_coeffs(coeffs), atol=1e-3)
    # With the default prior the fit is no longer exact, but still mirror-symmetric.
    plain = fit_landmarks(points, identity=identity).coeffs
    np.testing.assert_allclose(fit_landmarks(mirrored, identity=mirrored_identity).coeffs,
                               rig.mirror_coeffs(plain), atol=2e-3)


def test_box_qp_matches_brute_force_kkt() -> None:
    rng = np.random.default_rng(11)
    a = rng.normal(size=(30, 6))
    gram = a.T @ a
    rhs = rng.normal(size=(40, 6)) * 5
    x = solve_box_qp(gram, rhs, float(np.linalg.eigvalsh(gram)[-1]), FitConfig(fista_iters=200))
    grad = x @ gram - rhs
    inside = (x > 1e-9) & (x < 1 - 1e-9)
    assert np.abs(grad[inside]).max() < 1e-6
    assert (grad[x <= 1e-9] >= -1e-6).all() and (grad[x >= 1 - 1e-9] <= 1e-6).all()


def test_bad_landmarks_raise_input_error() -> None:
    with pytest.raises(InputError, match="shape"):
        fit_landmarks(np.zeros((3, 478, 3)))
    bad = np.zeros((2, 468, 3))
    bad[1, 4, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        fit_landmarks(bad)
