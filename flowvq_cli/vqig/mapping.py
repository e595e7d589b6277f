"""Mapping network M (paper §3.3, after PIRenderer): a coefficient window → motion descriptor m.

Input: the target coefficients of 2w + 1 frames centred on the frame to render (B, 2w+1, 58) and the
source photo's coefficients (B, 58). Every frame is described by [target, target − source], so the
network sees both where the face should be and how far that is from the photo. Dilated residual 1-D
convolutions mix the frames; the descriptor is a linear map of [mean over the window, the centre
frame's features]: the mean smooths jitter in the coefficients, the centre keeps the frame's own pose
and mouth shape exact.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from flowvq_cli.vqig.config import VQIGConfig
from flowvq_cli.vqig.layers import LEAKY_SLOPE

KERNEL = 3  # temporal kernel of every 1-D conv


class _TemporalBlock(nn.Module):
    """LeakyReLU → dilated 1-D conv, residual: (B, C, T) → (B, C, T)."""

    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, KERNEL, padding=dilation, dilation=dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(F.leaky_relu(x, LEAKY_SLOPE))


class MappingNetwork(nn.Module):
    """M: (target window (B, 2w+1, K), source coeffs (B, K)) → m (B, d_m)."""

    def __init__(self, config: VQIGConfig) -> None:
        super().__init__()
        self.config = config
        width = config.mapping_channels
        self.conv_in = nn.Conv1d(2 * config.coeff_dim, width, KERNEL, padding=1)
        self.blocks = nn.Sequential(*(_TemporalBlock(width, 2**i) for i in range(config.mapping_layers)))
        self.out = nn.Linear(2 * width, config.motion_dim)

    def forward(self, windows: torch.Tensor, source_coeffs: torch.Tensor) -> torch.Tensor:
        """windows (B, 2w+1, K), source_coeffs (B, K) → m (B, d_m)."""
        cfg = self.config
        if windows.dim() != 3 or windows.shape[1:] != (cfg.window_frames, cfg.coeff_dim):
            raise ValueError(f"expected coefficient windows (B, {cfg.window_frames}, {cfg.coeff_dim}), "
                             f"got {tuple(windows.shape)}")
        delta = windows - source_coeffs[:, None, :]  # (B, T, K)
        x = torch.cat([windows, delta], dim=-1).transpose(1, 2)  # (B, 2K, T)
        h = self.blocks(self.conv_in(x))  # (B, C, T)
        h = F.leaky_relu(h, LEAKY_SLOPE)
        pooled = torch.cat([h.mean(dim=-1), h[:, :, cfg.window]], dim=-1)  # (B, 2C)
        return self.out(pooled)  # (B, d_m)
