"""PatchGAN discriminator for the codebook model (pix2pix / VQGAN's "NLayer" design).

A stack of 4×4 convolutions, the first ``num_layers`` with stride 2, ending in one logit per patch:
(B, 3, H, W) → (B, 1, H/2^L − 2, W/2^L − 2) with L = ``num_layers``; each logit sees a receptive field of
70 px at L = 3. The intermediate activations are returned as well, for the feature-matching loss (the
perceptual substitute in ``losses.py``).

Normalisation: **spectral norm** on every conv by default, and no batch/group norm. BatchNorm (as in
pix2pix and VQGAN) couples the statistics of real and fake batches and behaves differently in train and
eval; spectral norm bounds each layer's Lipschitz constant, which keeps the hinge-loss game stable
without that coupling (SN-GAN, Miyato et al. 2018). With ``spectral_norm=False`` GroupNorm is used
instead (plain convs, e.g. for speed when debugging).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm


@dataclass(frozen=True)
class DiscriminatorConfig:
    """Hyper-parameters of :class:`PatchDiscriminator`.

    Attributes:
        image_channels: channels of the images judged.
        base_channels: width of the first conv; each further stride-2 layer doubles it.
        max_channels: cap on the width.
        num_layers: stride-2 layers (patch size grows with it).
        kernel_size: side of every conv kernel.
        leaky_slope: negative slope of the LeakyReLUs.
        spectral_norm: spectral norm on every conv (default); otherwise GroupNorm after hidden convs.
        norm_groups: GroupNorm groups when ``spectral_norm`` is off.
    """

    image_channels: int = 3
    base_channels: int = 64
    max_channels: int = 512
    num_layers: int = 3
    kernel_size: int = 4
    leaky_slope: float = 0.2
    spectral_norm: bool = True
    norm_groups: int = 32

    def __post_init__(self) -> None:
        if self.num_layers < 1 or self.base_channels < 1:
            raise ValueError("num_layers and base_channels must be >= 1")
        if not self.spectral_norm:
            for width in self.widths[1:]:
                if width % self.norm_groups:
                    raise ValueError(f"norm_groups {self.norm_groups} does not divide width {width}")

    @property
    def widths(self) -> tuple[int, ...]:
        """Output width of each hidden conv (num_layers stride-2 convs, then one stride-1 conv)."""
        return tuple(min(self.base_channels * 2**i, self.max_channels) for i in range(self.num_layers + 1))

    @classmethod
    def tiny(cls) -> DiscriminatorConfig:
        """For tests: 8 → 32 channels, 2 stride-2 layers (works on 32² images)."""
        return cls(base_channels=8, max_channels=32, num_layers=2, norm_groups=4)

    @classmethod
    def mini(cls) -> DiscriminatorConfig:
        """For CPU training of the mini codebook model."""
        return cls(base_channels=32, max_channels=256, num_layers=3, norm_groups=8)

    @classmethod
    def base(cls) -> DiscriminatorConfig:
        """The standard 70×70 PatchGAN width (64 → 512)."""
        return cls()


@dataclass
class DiscriminatorOutput:
    """Patch logits (B, 1, h', w') and the activations after each hidden layer, shallow to deep."""

    logits: torch.Tensor
    features: list[torch.Tensor]


class PatchDiscriminator(nn.Module):
    """(B, 3, H, W) images → :class:`DiscriminatorOutput` (one real/fake logit per patch)."""

    def __init__(self, config: DiscriminatorConfig) -> None:
        super().__init__()
        self.config = config
        pad = (config.kernel_size - 1) // 2
        in_ch = config.image_channels
        layers: list[nn.Module] = []
        for i, width in enumerate(config.widths):
            stride = 2 if i < config.num_layers else 1
            block: list[nn.Module] = [self._conv(in_ch, width, stride, pad)]
            if i > 0 and not config.spectral_norm:
                block.append(nn.GroupNorm(config.norm_groups, width))
            block.append(nn.LeakyReLU(config.leaky_slope))
            layers.append(nn.Sequential(*block))
            in_ch = width
        self.layers = nn.ModuleList(layers)
        self.head = self._conv(in_ch, 1, 1, pad)

    def _conv(self, in_ch: int, out_ch: int, stride: int, pad: int) -> nn.Module:
        conv = nn.Conv2d(in_ch, out_ch, self.config.kernel_size, stride=stride, padding=pad)
        return _spectral_norm(conv) if self.config.spectral_norm else conv

    def forward(self, images: torch.Tensor) -> DiscriminatorOutput:
        features: list[torch.Tensor] = []
        h = images
        for layer in self.layers:
            h = layer(h)  # (B, C_i, H_i, W_i)
            features.append(h)
        return DiscriminatorOutput(logits=self.head(h), features=features)
