"""Fréchet distance against closed forms; FID never invents a number."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import linalg

from flowvq_cli.eval.fid import NO_WEIGHTS_REASON, fid, frechet_distance, gaussian_fit, trace_sqrt_product


def test_diagonal_gaussians_closed_form() -> None:
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 0.25])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)  # = 5 + 1 + 1 + 6.25
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-12)


def test_non_commuting_2d_closed_form() -> None:
    # for 2x2 PSD matrices: tr sqrt(A B) = sqrt(tr(A B) + 2 sqrt(det A det B))
    s1 = np.array([[2.0, 0.8], [0.8, 1.0]])
    s2 = np.array([[1.0, -0.3], [-0.3, 3.0]])
    assert not np.allclose(s1 @ s2, s2 @ s1)
    tr_root = np.sqrt(np.trace(s1 @ s2) + 2 * np.sqrt(np.linalg.det(s1) * np.linalg.det(s2)))
    mu1, mu2 = np.array([0.5, -1.0]), np.array([0.0, 0.0])
    expected = 1.25 + np.trace(s1) + np.trace(s2) - 2 * tr_root
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-12)


def test_matches_scipy_sqrtm_and_handles_singular() -> None:
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(50, 8)), rng.normal(size=(50, 8)) @ rng.normal(size=(8, 8))
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    ref = np.trace(linalg.sqrtm(s1 @ s2)).real
    assert trace_sqrt_product(s1, s2) == pytest.approx(ref, rel=1e-9)
    few = rng.normal(size=(4, 16))  # 4 samples in 16-D: rank-3 covariance
    mu, sigma = gaussian_fit(few)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-9)


def test_fid_without_extractor_is_unavailable() -> None:
    frames = np.zeros((4, 32, 32, 3), np.uint8)
    result = fid(frames, frames)
    assert not result.available and result.value is None
    assert result.reason == NO_WEIGHTS_REASON and "--fid-weights" in result.reason


def test_fid_with_injected_extractor() -> None:
    rng = np.random.default_rng(8)
    pred = rng.integers(0, 256, size=(40, 8, 8, 3), dtype=np.uint8)
    gt = rng.integers(0, 256, size=(40, 8, 8, 3), dtype=np.uint8)

    def channel_means(batch: np.ndarray) -> np.ndarray:
        return batch.reshape(batch.shape[0], -1, 3).mean(axis=1)  # (N, 3)

    result = fid(pred, gt, extractor=channel_means)
    fp, fg = channel_means(pred), channel_means(gt)
    expected = frechet_distance(*gaussian_fit(fp), *gaussian_fit(fg))
    assert result.available and result.value == pytest.approx(expected)
    assert fid(pred, pred, extractor=channel_means).value == pytest.approx(0.0, abs=1e-9)
