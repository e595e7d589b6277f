"""Priors: densities against scipy, sampling statistics and determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from flowvq_cli.flow import MixturePrior, StandardNormal, sample_gamma


@pytest.mark.parametrize("nu", [1.5, 5.0, 30.0])
def test_smm_component_matches_scipy_multivariate_t(nu: float):
    prior = MixturePrior(dim=7, n_classes=4, kind="smm", nu=nu, seed=3)
    z, labels = 2 * torch.randn(4, 5, 7), torch.tensor([0, 1, 2, 3])
    ours = prior.log_prob(z, labels)
    for b in range(4):
        ref = stats.multivariate_t(loc=prior.means[b].numpy(), shape=np.eye(7), df=nu).logpdf(z[b].numpy())
        np.testing.assert_allclose(ours[b].numpy(), ref, rtol=1e-10, atol=1e-10)


def test_gmm_component_matches_scipy_normal():
    prior = MixturePrior(dim=5, n_classes=3, kind="gmm", seed=1)
    z = torch.randn(3, 4, 5)
    ours = prior.log_prob(z, torch.tensor([2, 0, 1]))
    for b, c in enumerate([2, 0, 1]):
        ref = stats.multivariate_normal(mean=prior.means[c].numpy(), cov=np.eye(5)).logpdf(z[b].numpy())
        np.testing.assert_allclose(ours[b].numpy(), ref, rtol=1e-10, atol=1e-10)


def test_standard_normal_matches_scipy():
    z = torch.randn(2, 3, 6)
    ref = stats.multivariate_normal(mean=np.zeros(6), cov=np.eye(6)).logpdf(z.reshape(-1, 6).numpy())
    np.testing.assert_allclose(StandardNormal(6).log_prob(z).reshape(-1).numpy(), ref, rtol=1e-12)


@pytest.mark.parametrize("kind", ["smm", "gmm"])
def test_marginal_is_equal_weight_mixture(kind: str):
    prior = MixturePrior(dim=4, n_classes=3, kind=kind, nu=4.0)
    z = torch.randn(2, 5, 4)
    per_class = torch.stack([prior.log_prob(z, torch.full((2,), c)) for c in range(3)], dim=-1)  # (B, T, C)
    expected = torch.log(per_class.exp().mean(-1))
    torch.testing.assert_close(prior.marginal_log_prob(z), expected)


def test_means_are_fixed_by_the_seed_and_stored_as_buffers():
    a, b = MixturePrior(8, 9, seed=0), MixturePrior(8, 9, seed=0)
    assert torch.equal(a.means, b.means) and not torch.equal(a.means, MixturePrior(8, 9, seed=1).means)
    assert "means" in a.state_dict() and not list(a.parameters())


@pytest.mark.parametrize("alpha", [0.4, 2.5])
def test_gamma_sampler_moments_and_determinism(alpha: float):
    g = sample_gamma((40_000,), alpha, torch.Generator().manual_seed(0))
    assert g.min() > 0
    assert abs(g.mean().item() - alpha) < 0.03 * alpha + 0.01
    assert abs(g.var().item() - alpha) < 0.08 * alpha + 0.01
    assert torch.equal(g, sample_gamma((40_000,), alpha, torch.Generator().manual_seed(0)))


def test_smm_samples_have_t_moments():
    nu, prior = 6.0, MixturePrior(dim=3, n_classes=2, kind="smm", nu=6.0)
    z = prior.sample(torch.tensor([1]), 60_000, torch.Generator().manual_seed(0))[0]  # (T, 3)
    torch.testing.assert_close(z.mean(0), prior.means[1], atol=0.03, rtol=0)
    cov = torch.cov(z.T)
    torch.testing.assert_close(cov, nu / (nu - 2) * torch.eye(3), atol=0.08, rtol=0)
    # the radius is shared by the dimensions of a frame: |z - μ|² / D follows an F(D, ν) distribution
    f_stat = ((z - prior.means[1]).pow(2).sum(-1) / 3).numpy()
    assert stats.kstest(f_stat, stats.f(3, nu).cdf).pvalue > 1e-3


@pytest.mark.parametrize("prior", [MixturePrior(4, 3, "smm"), MixturePrior(4, 3, "gmm"), StandardNormal(4)])
def test_sampling_is_seeded_and_temperature_scales_the_deviation(prior):
    labels = torch.tensor([0, 2])
    a = prior.sample(labels, 5, torch.Generator().manual_seed(7))
    b = prior.sample(labels, 5, torch.Generator().manual_seed(7))
    c = prior.sample(labels, 5, torch.Generator().manual_seed(8))
    assert a.shape == (2, 5, 4) and torch.equal(a, b) and not torch.equal(a, c)
    cold = prior.sample(labels, 5, torch.Generator().manual_seed(7), temperature=0.5)
    mu = prior.means[labels].unsqueeze(1) if isinstance(prior, MixturePrior) else 0.0
    torch.testing.assert_close(cold - mu, 0.5 * (a - mu))


def test_smm_log_norm_reduces_to_cauchy():
    """ν = 1, D = 1: the Cauchy density 1 / (π (1 + z²))."""
    prior = MixturePrior(dim=1, n_classes=1, kind="smm", nu=1.0)
    z = prior.means[0] + torch.tensor([[[0.0], [2.0]]])
    expected = -math.log(math.pi) - torch.log1p(torch.tensor([[0.0, 4.0]]))
    torch.testing.assert_close(prior.log_prob(z, torch.tensor([0])), expected)
