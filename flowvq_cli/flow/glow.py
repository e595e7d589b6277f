"""Glow step (multi-actnorm → invertible 1×1 → affine coupling) and a stack of them.

Besides the parallel ``forward`` / ``inverse`` over whole sequences, the stack runs its inverse one frame
at a time (``start_stream`` + ``inverse_step``) for autoregressive sampling: per step it precomputes the
actnorm affine and the inverse 1×1 weight once and keeps the coupling transformer's key/value cache.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from .layers import AffineCoupling, FlowCond, InvertibleLinearLU, MultiActNorm
from .transformer import KVCache


@dataclass
class StreamState:
    """What one flow step keeps between frames: actnorm (B, 1, D) terms, inverse 1×1 weight (D, D), and
    the coupling transformer's cache."""

    inv_scale: Tensor
    bias: Tensor
    w_inv: Tensor
    kv: KVCache


class FlowStep(nn.Module):
    def __init__(self, dim: int, n_classes: int, d_cond: int, d_model: int, n_heads: int, n_layers: int,
                 ff_mult: int, window: int):
        super().__init__()
        self.actnorm = MultiActNorm(dim, n_classes)
        self.invconv = InvertibleLinearLU(dim)
        self.coupling = AffineCoupling(dim, d_cond, d_model, n_heads, n_layers, ff_mult, window)

    def forward(self, x: Tensor, cond: FlowCond) -> tuple[Tensor, Tensor]:
        x, ld_act = self.actnorm(x, cond)
        x, ld_conv = self.invconv(x, cond)
        z, ld_coup = self.coupling(x, cond)
        return z, ld_act + ld_conv + ld_coup

    def inverse(self, z: Tensor, cond: FlowCond) -> Tensor:
        x = self.coupling.inverse(z, cond)
        x = self.invconv.inverse(x, cond)
        return self.actnorm.inverse(x, cond)

    def start_stream(self, labels: Tensor) -> StreamState:
        log_scale, bias = self.actnorm.affine(labels)
        return StreamState((-log_scale).exp(), bias, self.invconv.inverse_weight(), self.coupling.net.new_cache())

    def inverse_step(self, z: Tensor, context: Tensor, state: StreamState) -> Tensor:
        """z (B, 1, D), context (B, 1, d_cond) -> x (B, 1, D)."""
        x = self.coupling.inverse_step(z, context, state.kv)
        x = x @ state.w_inv.T
        return x * state.inv_scale - state.bias


class FlowStack(nn.Module):
    """K flow steps; log p(x|c) = log p_Z(z) + Σ_k logdet_k, logdet per frame."""

    def __init__(self, dim: int, n_classes: int, n_steps: int, d_cond: int, d_model: int, n_heads: int,
                 n_layers: int, ff_mult: int, window: int):
        super().__init__()
        self.steps = nn.ModuleList(
            FlowStep(dim, n_classes, d_cond, d_model, n_heads, n_layers, ff_mult, window) for _ in range(n_steps)
        )

    def forward(self, x: Tensor, cond: FlowCond) -> tuple[Tensor, Tensor]:
        """x (B, T, D) -> z (B, T, D), logdet (B, T)."""
        logdet = x.new_zeros(x.shape[:2])
        for step in self.steps:
            x, ld = step(x, cond)
            logdet = logdet + ld
        return x, logdet

    def inverse(self, z: Tensor, cond: FlowCond) -> Tensor:
        for step in reversed(self.steps):
            z = step.inverse(z, cond)
        return z

    def start_stream(self, labels: Tensor) -> list[StreamState]:
        return [step.start_stream(labels) for step in self.steps]

    def inverse_step(self, z: Tensor, context: Tensor, states: list[StreamState]) -> Tensor:
        """One frame of the inverse: z (B, 1, D), context (B, 1, d_cond) -> x (B, 1, D)."""
        for step, state in zip(reversed(self.steps), reversed(states), strict=True):
            z = step.inverse_step(z, context, state)
        return z
