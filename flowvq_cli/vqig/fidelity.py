"""Fidelity skip (CodeFormer's controllable feature transformation, behind ``VQIGConfig.fidelity_skip``).

**Why.** The paper's VQIG decodes *only* codebook entries. A codebook trained on the few licence-clean
faces available here (docs/design.md §4) cannot spell an unseen person's fine identity — skin tone, moles, the
exact eye and lip shapes — with 1024 codes at 16² positions: the output drifts toward the training
faces. Identity on unseen photos matters more than the letter of the paper, so, as CodeFormer does for
the same trade-off, the warped encoder's multi-scale features reach the decoder directly:

    F_dec ← F_dec + w · (F_dec ⊙ α + β),   (α, β) = P_l([F_dec, F_src])

at each level l in ``fidelity_levels``, with F_src the *warped* source feature of that level (the
source is already in the target's pose, so the skip adds texture, not ghosts) and w = ``fidelity_w``:
0 is the pure codebook output (quality, the paper), 1 leans most on the photo (fidelity).

**How.** The decoder G is frozen and belongs to ``flowvq_cli.vq``; :class:`FidelitySkip` owns only the
transformations P_l and replays G's own modules in order (``conv_in``, ``mid``, ``up``, ``norm_out``,
``conv_out``), applying P_l at the end of each level l (just before the up-sampling that leaves it).
With w = 0, or no levels, the result is exactly ``decoder(z_q)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from flowvq_cli.vq.vqgan import Decoder, Upsample
from flowvq_cli.vqig.config import VQIGConfig
from flowvq_cli.vqig.layers import LEAKY_SLOPE, scale_init_


class FeatureTransform(nn.Module):
    """P_l: [decoder feature, warped source feature] (B, 2C, H, W) → (α, β), each (B, C, H, W)."""

    def __init__(self, channels: int, hidden: int, kernel: int, init_gain: float) -> None:
        super().__init__()
        self.body = nn.Conv2d(2 * channels, hidden, kernel, padding=kernel // 2)
        self.scale_shift = nn.Conv2d(hidden, 2 * channels, 1)
        scale_init_(self.scale_shift, init_gain)

    def forward(self, dec: torch.Tensor, src: torch.Tensor, w: float) -> torch.Tensor:
        """dec, src (B, C, H, W) → dec + w·(dec·α + β)."""
        h = F.leaky_relu(self.body(torch.cat([dec, src.to(dec.dtype)], dim=1)), LEAKY_SLOPE)  # (B, hidden, H, W)
        alpha, beta = self.scale_shift(h).chunk(2, dim=1)  # each (B, C, H, W)
        return dec + w * (dec * alpha + beta)


class FidelitySkip(nn.Module):
    """Runs a frozen :class:`~flowvq_cli.vq.vqgan.Decoder` with feature transformations at chosen levels."""

    def __init__(self, config: VQIGConfig) -> None:
        super().__init__()
        widths = config.codebook.level_channels
        self.transforms = nn.ModuleDict({
            str(level): FeatureTransform(widths[level], max(widths[level] // config.fidelity_reduction, 1),
                                         config.fidelity_kernel, config.init_gain)
            for level in config.fidelity_levels
        })
        self.top_level = len(widths) - 1

    def forward(self, decoder: Decoder, z_q: torch.Tensor, features: dict[int, torch.Tensor], w: float) -> torch.Tensor:
        """z_q (B, d, h, w) codes; features {level: (B, C_l, H/2^l, W/2^l)} warped source features → (B, 3, H, W)."""
        h = decoder.mid(decoder.conv_in(z_q))  # (B, C_L, h, w)
        level = self.top_level
        for module in decoder.up:
            if isinstance(module, Upsample):
                h = self._modulate(h, level, features, w)
                level -= 1
            h = module(h)
        h = self._modulate(h, level, features, w)  # (B, C_0, H, W)
        return decoder.conv_out(F.silu(decoder.norm_out(h)))

    def _modulate(self, h: torch.Tensor, level: int, features: dict[int, torch.Tensor], w: float) -> torch.Tensor:
        key = str(level)
        if key not in self.transforms or w == 0:
            return h
        return self.transforms[key](h, features[level], w)
