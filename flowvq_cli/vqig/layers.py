"""Small layers shared by the VQIG networks: AdaIN conditioned on the motion descriptor, scaled init."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

LEAKY_SLOPE = 0.2  # negative slope of every LeakyReLU in VQIG


def scale_init_(module: nn.Linear | nn.Conv1d | nn.Conv2d, gain: float) -> None:
    """Multiply the default-initialised weight by ``gain`` and zero the bias (in place).

    Used on layers whose output is *added* to a signal (flow offsets, modulation, residual branches):
    the model starts close to the identity, yet every upstream parameter still receives a gradient on
    the first step (a zero weight would block it).
    """
    with torch.no_grad():
        module.weight.mul_(gain)
        if module.bias is not None:
            module.bias.zero_()


class AdaIN(nn.Module):
    """Adaptive instance normalisation by the motion descriptor (Huang & Belongie 2017; PIRenderer's use).

    x is normalised per sample and channel over its positions, then scaled by (1 + γ(m)) and shifted by
    β(m). Works on feature maps (B, C, H, W) and on token sequences (B, T, C).
    """

    def __init__(self, channels: int, motion_dim: int, init_gain: float, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.affine = nn.Linear(motion_dim, 2 * channels)
        scale_init_(self.affine, init_gain)

    def forward(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """x (B, C, H, W) or (B, T, C); m (B, d_m) → same shape as x."""
        gamma, beta = self.affine(m).chunk(2, dim=-1)  # each (B, C)
        if x.dim() == 4:
            normed = F.instance_norm(x, eps=self.eps)  # (B, C, H, W)
            return normed * (1 + gamma[:, :, None, None]) + beta[:, :, None, None]
        mean = x.mean(dim=1, keepdim=True)  # (B, 1, C)
        var = x.var(dim=1, keepdim=True, unbiased=False)
        normed = (x - mean) * torch.rsqrt(var + self.eps)  # (B, T, C)
        return normed * (1 + gamma[:, None, :]) + beta[:, None, :]
