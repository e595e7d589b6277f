"""Flow layers: multi-actnorm, invertible 1×1 (LU), affine coupling.

Contract of every layer: ``forward(x, cond) -> (z, logdet)`` and ``inverse(z, cond) -> x`` with x, z of
shape (B, T, D) and logdet per frame (B, T). ``cond`` is a :class:`FlowCond` (context vectors and class
labels); a layer uses what it needs. For autoregressive sampling the layers also expose one-frame
primitives that :class:`~flowvq_cli.flow.glow.FlowStep` combines.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .transformer import CouplingTransformer, KVCache


@dataclass
class FlowCond:
    """Conditioning of a flow: context (B, T, d_cond) per frame, labels (B,) class per sequence."""

    context: Tensor
    labels: Tensor


class MultiActNorm(nn.Module):
    """z = (x + b_e) · exp(s_e), one (s, b) per class e.

    Data-initialised: the first time a class appears in a forward pass in training mode, its (s, b) are
    set so that class's output has zero mean and unit variance per dimension over that batch; the
    per-class ``initialized`` flags are a buffer, so they survive save/load.
    """

    def __init__(self, dim: int, n_classes: int, min_std: float = 1e-3):
        super().__init__()
        self.min_std = min_std
        self.log_scale = nn.Parameter(torch.zeros(n_classes, dim))
        self.bias = nn.Parameter(torch.zeros(n_classes, dim))
        self.register_buffer("initialized", torch.zeros(n_classes, dtype=torch.bool))

    @torch.no_grad()
    def data_init(self, x: Tensor, labels: Tensor) -> None:
        """Initialise the classes present in ``labels`` (B,) that are not yet initialised, from x (B, T, D)."""
        for c in labels.unique().tolist():
            if self.initialized[c]:
                continue
            xc = x[labels == c].reshape(-1, x.shape[-1])  # (n·T, D)
            std = xc.std(dim=0, unbiased=False).clamp_min(self.min_std)
            self.bias.data[c] = -xc.mean(dim=0)
            self.log_scale.data[c] = -std.log()
            self.initialized[c] = True

    def affine(self, labels: Tensor) -> tuple[Tensor, Tensor]:
        """(log_scale, bias) for each sequence, both (B, 1, D)."""
        return self.log_scale[labels].unsqueeze(1), self.bias[labels].unsqueeze(1)

    def forward(self, x: Tensor, cond: FlowCond) -> tuple[Tensor, Tensor]:
        if self.training and not bool(self.initialized[cond.labels].all()):
            self.data_init(x, cond.labels)
        log_scale, bias = self.affine(cond.labels)
        logdet = log_scale.sum(-1).expand(x.shape[0], x.shape[1])  # (B, T)
        return (x + bias) * log_scale.exp(), logdet

    def inverse(self, z: Tensor, cond: FlowCond) -> Tensor:
        log_scale, bias = self.affine(cond.labels)
        return z * (-log_scale).exp() - bias


class InvertibleLinearLU(nn.Module):
    """Invertible 1×1 "convolution" over the feature axis: z = x Wᵀ, W = P L (U + diag(sign · exp(log_s))).

    P (a permutation) and sign are fixed buffers; L (unit lower), U (strict upper) and log_s are learned.
    Initialised from a random rotation; logdet per frame = Σ log_s.
    """

    def __init__(self, dim: int):
        super().__init__()
        w = torch.linalg.qr(torch.randn(dim, dim))[0]
        P, L, U = torch.linalg.lu(w)
        s = torch.diagonal(U)
        self.register_buffer("perm", P)
        self.register_buffer("sign_s", torch.sign(s))
        self.register_buffer("lower_mask", torch.ones(dim, dim).tril(-1), persistent=False)
        self.register_buffer("eye", torch.eye(dim), persistent=False)
        self.lower = nn.Parameter(L * self.lower_mask)
        self.upper = nn.Parameter(U.triu(1))
        self.log_s = nn.Parameter(s.abs().log())

    def weight(self) -> Tensor:
        L = self.lower * self.lower_mask + self.eye
        U = self.upper * self.lower_mask.T + torch.diag(self.sign_s * self.log_s.exp())
        return self.perm @ L @ U  # (D, D)

    def inverse_weight(self) -> Tensor:
        return torch.linalg.inv(self.weight())

    def forward(self, x: Tensor, cond: FlowCond | None = None) -> tuple[Tensor, Tensor]:
        logdet = self.log_s.sum().expand(x.shape[0], x.shape[1])  # (B, T)
        return x @ self.weight().T, logdet

    def inverse(self, z: Tensor, cond: FlowCond | None = None) -> Tensor:
        return z @ self.inverse_weight().T


class AffineCoupling(nn.Module):
    """h = (h_a, h_b); (raw, t) = NN(h_a, context); h_b' = h_b · s + t with the bounded scale
    s = sigmoid(raw + 2) / sigmoid(2) ∈ (0, 1.14): exactly 1 when raw = 0, so with NN's zero-initialised
    output layer the coupling starts as the identity. NN is a causal transformer over time, so frame t's
    (s, t) depend on h_a and the context of frames t-W+1..t only.
    """

    SHIFT = 2.0

    def __init__(self, dim: int, d_cond: int, d_model: int, n_heads: int, n_layers: int, ff_mult: int,
                 window: int):
        super().__init__()
        self.d_a = dim // 2
        self.net = CouplingTransformer(self.d_a + d_cond, 2 * (dim - self.d_a), d_model, n_heads, n_layers,
                                       ff_mult, window)
        self.log_s0 = math.log(1.0 / (1.0 + math.exp(-self.SHIFT)))  # logsigmoid(SHIFT)

    def _scale_shift(self, params: Tensor) -> tuple[Tensor, Tensor]:
        raw, shift = params.chunk(2, dim=-1)
        return F.logsigmoid(raw + self.SHIFT) - self.log_s0, shift

    def forward(self, x: Tensor, cond: FlowCond) -> tuple[Tensor, Tensor]:
        x_a, x_b = x[..., : self.d_a], x[..., self.d_a:]
        log_s, shift = self._scale_shift(self.net(torch.cat([x_a, cond.context], dim=-1)))
        z_b = x_b * log_s.exp() + shift
        return torch.cat([x_a, z_b], dim=-1), log_s.sum(-1)

    def inverse(self, z: Tensor, cond: FlowCond) -> Tensor:
        z_a, z_b = z[..., : self.d_a], z[..., self.d_a:]
        log_s, shift = self._scale_shift(self.net(torch.cat([z_a, cond.context], dim=-1)))
        return torch.cat([z_a, (z_b - shift) * (-log_s).exp()], dim=-1)

    def inverse_step(self, z: Tensor, context: Tensor, cache: KVCache) -> Tensor:
        """One frame: z (B, 1, D), context (B, 1, d_cond) -> x (B, 1, D); ``cache`` holds earlier frames."""
        z_a, z_b = z[..., : self.d_a], z[..., self.d_a:]
        log_s, shift = self._scale_shift(self.net.step(torch.cat([z_a, context], dim=-1), cache))
        return torch.cat([z_a, (z_b - shift) * (-log_s).exp()], dim=-1)
