"""Warped encoder E_w (paper §3.3): a trainable copy of the codebook encoder E, split at ``warp_level``.

E_w has exactly E's architecture and parameter names (``self.encoder`` is an
:class:`~flowvq_cli.vq.vqgan.Encoder`), and :meth:`WarpedEncoder.load_from` copies E's weights into it.
Its modules run in two parts around the warp:

- **head** (``conv_in`` and the first ``warp_level`` levels, up to and including the k-th down-sampling):
  runs once per photo on the *source*; its output is the "entry" feature that gets warped. With
  ``warp_level`` = 0 the head is empty and the entry is the image itself (the paper: E_w encodes I_w).
- **tail** (the rest, through ``conv_out``): runs per frame on the warped entry → z_w (B, d, h, w).

Along the way it records each level's output (the activation before that level's down-sampling), the
features the fidelity skip feeds into the decoder: head levels from the source (warped afterwards),
tail levels already warped.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from flowvq_cli.vq.vqgan import Downsample, Encoder, VQGANConfig


@dataclass
class EncoderPass:
    """out: the pass's final output; levels: {level: (B, C_l, H/2^l, W/2^l)} outputs of the levels it ran."""

    out: torch.Tensor
    levels: dict[int, torch.Tensor]


class WarpedEncoder(nn.Module):
    """E_w: ``head(source)`` → entry (B, C, H/2^k, W/2^k); ``tail(warped entry)`` → z_w (B, d, h, w)."""

    def __init__(self, config: VQGANConfig, warp_level: int) -> None:
        super().__init__()
        self.config = config
        self.warp_level = warp_level
        self.encoder = Encoder(config)
        # Index in encoder.down just after the warp_level-th Downsample (0 when warping the image).
        downs = [i for i, module in enumerate(self.encoder.down) if isinstance(module, Downsample)]
        self.split = downs[warp_level - 1] + 1 if warp_level > 0 else 0

    @torch.no_grad()
    def load_from(self, encoder: Encoder) -> None:
        """Copy E's weights into E_w (the paper's initialisation)."""
        self.encoder.load_state_dict(encoder.state_dict())

    def head(self, source: torch.Tensor) -> EncoderPass:
        """Source images (B, 3, H, W) → entry feature and the outputs of levels < ``warp_level``."""
        if self.warp_level == 0:
            return EncoderPass(out=source, levels={})
        h = self.encoder.conv_in(source)  # (B, C_0, H, W)
        return self._run(h, list(self.encoder.down)[: self.split], level=0)

    def tail(self, entry: torch.Tensor) -> EncoderPass:
        """Warped entry (B, C_k, H/2^k, W/2^k) → z_w (B, d, h, w) and the outputs of levels ≥ ``warp_level``
        (the lowest level's output is taken after the middle blocks)."""
        h = self.encoder.conv_in(entry) if self.warp_level == 0 else entry
        run = self._run(h, list(self.encoder.down)[self.split:], level=self.warp_level)
        last = len(self.config.channel_mults) - 1
        h = self.encoder.mid(run.out)  # (B, C_L, h, w)
        run.levels[last] = h
        z = self.encoder.conv_out(F.silu(self.encoder.norm_out(h)))  # (B, d, h, w)
        return EncoderPass(out=z, levels=run.levels)

    @staticmethod
    def _run(h: torch.Tensor, modules: list[nn.Module], level: int) -> EncoderPass:
        levels: dict[int, torch.Tensor] = {}
        for module in modules:
            if isinstance(module, Downsample):
                levels[level] = h
                level += 1
            h = module(h)
        return EncoderPass(out=h, levels=levels)
