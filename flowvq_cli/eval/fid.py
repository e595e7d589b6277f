"""FID: Fréchet distance between Gaussian fits of image features.

``FID = |μ1 - μ2|² + tr(Σ1 + Σ2 - 2 (Σ1 Σ2)^{1/2})`` (Heusel et al. 2017). The features come from
an extractor the caller injects (Inception-v3 pool features in the usual protocol); no Inception
weights ship with FlowVQ or can be downloaded here, so without an extractor :func:`fid` returns an
*unavailable* :class:`~flowvq_cli.eval.report.MetricResult` — it never invents a number.

Numerics: ``tr (Σ1 Σ2)^{1/2}`` is computed exactly as ``Σ sqrt(λ_i)`` over the eigenvalues of the
symmetric PSD matrix ``Σ1^{1/2} Σ2 Σ1^{1/2}`` (similar to ``Σ1 Σ2``, so same eigenvalues), with
``scipy.linalg.eigh``: no complex parts to discard and no failure on singular covariances (fewer
samples than feature dimensions), unlike a general ``sqrtm`` of the non-symmetric ``Σ1 Σ2``.
Rounding-level negative eigenvalues are clipped to 0.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import linalg

from flowvq_cli.errors import InputError
from flowvq_cli.eval._arrays import as_frames
from flowvq_cli.eval.report import MetricResult, unavailable

FeatureExtractor = Callable[[np.ndarray], np.ndarray]
"""Maps ``(N, H, W, 3) uint8`` RGB frames to ``(N, D)`` features (any array-like, e.g. a CPU tensor)."""

NO_WEIGHTS_REASON = ("no Inception weights: pass --fid-weights FILE (a local Inception-v3 "
                     "feature-extractor checkpoint) to compute FID")
FEATURE_BATCH = 32
"""Frames per extractor call (memory stays flat for long clips)."""
PSD_TOLERANCE = 1e-8
"""Relative size of a negative eigenvalue still accepted as rounding noise."""
FID_NAME = "FID"


def gaussian_fit(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (sample, ``ddof = 1``) covariance of features.

    Args:
        features: ``(N, D)`` with N >= 2.

    Returns:
        ``(mu (D,), sigma (D, D))`` float64.
    """
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise InputError(f"FID needs (N, D) features with N >= 2 frames, got shape {f.shape}")
    if not np.all(np.isfinite(f)):
        raise InputError("the feature extractor returned NaN or infinite values; check the FID weights")
    return f.mean(axis=0), np.cov(f, rowvar=False, ddof=1).reshape(f.shape[1], f.shape[1])


def _psd_eigen(matrix: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Eigen-decomposition of a symmetric PSD matrix, rounding negatives clipped to 0."""
    sym = 0.5 * (matrix + matrix.T)
    w, v = linalg.eigh(sym)
    scale = max(float(np.abs(w).max(initial=0.0)), 1.0)
    if w.size and w.min() < -PSD_TOLERANCE * scale:
        raise InputError(f"{what} is not positive semi-definite (eigenvalue {w.min():.3g}); "
                         "pass a covariance matrix")
    return np.clip(w, 0.0, None), v


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """``tr (Σ1 Σ2)^{1/2}`` for two PSD ``(D, D)`` matrices."""
    w1, v1 = _psd_eigen(sigma1, "Σ1")
    root1 = (v1 * np.sqrt(w1)) @ v1.T  # Σ1^{1/2}, (D, D)
    w, _ = _psd_eigen(root1 @ sigma2 @ root1, "Σ1^{1/2} Σ2 Σ1^{1/2}")
    return float(np.sqrt(w).sum())


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet (2-Wasserstein) distance between N(μ1, Σ1) and N(μ2, Σ2).

    Args:
        mu1, mu2: ``(D,)`` means; sigma1, sigma2: ``(D, D)`` covariances.

    Returns:
        ``|μ1 - μ2|² + tr Σ1 + tr Σ2 - 2 tr (Σ1 Σ2)^{1/2}`` (≥ 0).
    """
    m1, m2 = np.atleast_1d(np.asarray(mu1, float)), np.atleast_1d(np.asarray(mu2, float))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, float)), np.atleast_2d(np.asarray(sigma2, float))
    d = m1.size
    if m2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise InputError(f"Gaussian shapes do not match: mu {m1.shape}, {m2.shape}; "
                         f"sigma {s1.shape}, {s2.shape}")
    diff = m1 - m2
    value = float(diff @ diff) + float(np.trace(s1) + np.trace(s2)) - 2.0 * trace_sqrt_product(s1, s2)
    return max(value, 0.0)


def extract_features(frames: np.ndarray, extractor: FeatureExtractor) -> np.ndarray:
    """Run ``extractor`` over ``(T, H, W, 3) uint8`` frames in batches; returns ``(T, D)`` float64."""
    arr = as_frames(frames, "frames")
    parts = []
    for start in range(0, arr.shape[0], FEATURE_BATCH):
        batch = arr[start:start + FEATURE_BATCH]
        feats = np.asarray(extractor(batch), dtype=np.float64).reshape(batch.shape[0], -1)  # (B, D)
        parts.append(feats)
    return np.concatenate(parts, axis=0)


def fid(pred_frames: np.ndarray, gt_frames: np.ndarray,
        extractor: FeatureExtractor | None = None) -> MetricResult:
    """FID between generated and ground-truth frames.

    Args:
        pred_frames, gt_frames: ``(T, H, W, 3)`` and ``(T', H', W', 3)`` uint8 RGB (T, T' >= 2).
        extractor: features per frame; None → the result is unavailable (no weights).

    Returns:
        A :class:`MetricResult` named ``"FID"`` (lower is better).
    """
    if extractor is None:
        return unavailable(FID_NAME, NO_WEIGHTS_REASON, higher_is_better=False)
    mu1, s1 = gaussian_fit(extract_features(pred_frames, extractor))
    mu2, s2 = gaussian_fit(extract_features(gt_frames, extractor))
    value = frechet_distance(mu1, s1, mu2, s2)
    return MetricResult(name=FID_NAME, value=value, higher_is_better=False)
