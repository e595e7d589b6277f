"""Latent priors: Student's-t mixture (ExpFlow), Gaussian mixture (its ablation), N(0, I) (PoseFlow).

All priors share one interface over latents z (B, T, D) and labels (B,):
``log_prob(z, labels) -> (B, T)`` (class-conditional; the Gaussian ignores labels),
``marginal_log_prob(z) -> (B, T)`` (equal-weight mixture over classes) and
``sample(labels, T, generator, temperature) -> (B, T, D)``.
Mixture means are drawn once from N(0, I) with a fixed seed and kept as buffers; covariances are I.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def sample_gamma(shape: tuple[int, ...], alpha: float, generator: torch.Generator | None = None,
                 dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> Tensor:
    """Gamma(alpha, 1) samples drawn from ``generator`` (torch's own gamma sampler takes no generator).

    Marsaglia & Tsang (2000): for alpha >= 1, with d = alpha - 1/3, c = 1/sqrt(9d), x ~ N(0, 1),
    v = (1 + c x)³, u ~ U(0, 1), accept d·v when v > 0 and log u < x²/2 + d - d v + d log v.
    For alpha < 1 use Gamma(alpha + 1) · U^(1/alpha). Rejection is vectorised: redraw the rejected ones.
    """
    boost = alpha < 1.0
    a = alpha + 1.0 if boost else alpha
    d = a - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    kw = {"generator": generator, "dtype": dtype, "device": device}
    out = torch.empty(shape, dtype=dtype, device=device).reshape(-1)
    todo = torch.arange(out.numel(), device=out.device)
    while todo.numel():
        x = torch.randn(todo.numel(), **kw)
        u = torch.rand(todo.numel(), **kw)
        v = (1.0 + c * x) ** 3
        ok = (v > 0) & (u.log() < 0.5 * x**2 + d - d * v + d * v.clamp_min(1e-30).log())
        out[todo[ok]] = d * v[ok]
        todo = todo[~ok]
    if boost:
        out = out * torch.rand(out.numel(), **kw) ** (1.0 / alpha)
    return out.reshape(shape)


def _random_means(n_classes: int, dim: int, seed: int) -> Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n_classes, dim, generator=generator, dtype=torch.float64).to(torch.get_default_dtype())


class MixturePrior(nn.Module):
    """Equal-weight mixture, one identity-covariance component per class (means μ_e: buffer (C, D)).

    kind="smm": Student's-t components, the multivariate density
    t_ν(z; μ, I) = Γ((ν+D)/2) / (Γ(ν/2) (νπ)^{D/2}) · (1 + ‖z-μ‖²/ν)^{-(ν+D)/2};
    sampled as μ + τ · g / sqrt(u/ν), g ~ N(0, I), u ~ χ²_ν = 2·Gamma(ν/2), one u per frame.
    kind="gmm" (the paper's ablation): N(z; μ, I), sampled as μ + τ · g.
    """

    def __init__(self, dim: int, n_classes: int, kind: str = "smm", nu: float = 5.0, seed: int = 0):
        super().__init__()
        if kind not in ("smm", "gmm"):
            raise ValueError(f"kind must be 'smm' or 'gmm', got {kind!r}")
        self.dim, self.n_classes, self.kind, self.nu = dim, n_classes, kind, float(nu)
        self.register_buffer("means", _random_means(n_classes, dim, seed))  # (C, D)
        if kind == "smm":
            self.log_norm = math.lgamma((nu + dim) / 2) - math.lgamma(nu / 2) - dim / 2 * math.log(nu * math.pi)
        else:
            self.log_norm = -dim / 2 * math.log(2 * math.pi)

    def _log_density(self, sq_dist: Tensor) -> Tensor:
        """Component log-density as a function of ‖z - μ‖²."""
        if self.kind == "smm":
            return self.log_norm - (self.nu + self.dim) / 2 * torch.log1p(sq_dist / self.nu)
        return self.log_norm - 0.5 * sq_dist

    def log_prob(self, z: Tensor, labels: Tensor) -> Tensor:
        """log p(z | e): z (B, T, D), labels (B,) -> (B, T)."""
        mu = self.means[labels].unsqueeze(1)  # (B, 1, D)
        return self._log_density((z - mu).pow(2).sum(-1))

    def marginal_log_prob(self, z: Tensor) -> Tensor:
        """log p(z) = log Σ_e (1/C) p(z | e): z (B, T, D) -> (B, T)."""
        sq = (z.unsqueeze(-2) - self.means).pow(2).sum(-1)  # (B, T, C)
        return torch.logsumexp(self._log_density(sq), dim=-1) - math.log(self.n_classes)

    def sample(self, labels: Tensor, T: int, generator: torch.Generator | None = None,
               temperature: float = 1.0) -> Tensor:
        """z = μ_e + τ · ε, ε from the zero-mean component: labels (B,) -> (B, T, D)."""
        B, dtype, device = labels.shape[0], self.means.dtype, self.means.device
        eps = torch.randn(B, T, self.dim, generator=generator, dtype=dtype, device=device)
        if self.kind == "smm":
            u = 2.0 * sample_gamma((B, T, 1), self.nu / 2, generator, dtype, device)  # χ²_ν
            eps = eps * (u / self.nu).rsqrt()
        return self.means[labels].unsqueeze(1) + temperature * eps


class StandardNormal(nn.Module):
    """N(0, I) (PoseFlow); labels are accepted and ignored so all priors share one interface."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)  # carries dtype and device

    def log_prob(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        return -0.5 * z.pow(2).sum(-1) - self.dim / 2 * math.log(2 * math.pi)

    def marginal_log_prob(self, z: Tensor) -> Tensor:
        return self.log_prob(z)

    def sample(self, labels: Tensor, T: int, generator: torch.Generator | None = None,
               temperature: float = 1.0) -> Tensor:
        B = labels.shape[0]
        g = torch.randn(B, T, self.dim, generator=generator, dtype=self._anchor.dtype, device=self._anchor.device)
        return temperature * g
