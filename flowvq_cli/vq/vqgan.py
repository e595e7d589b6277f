"""The codebook model (paper §3.3 "Codebook", docs/design.md §4): encoder E, quantiser C, decoder G.

Images are (B, 3, H, W) in [-1, 1]. E maps them to a latent grid (B, d, H/2^L, W/2^L), where L =
``len(channel_mults) - 1``; C replaces each latent vector by its nearest code; G maps codes back to
images. The decoder's output is not squashed (no tanh, as in VQGAN); clamp to [-1, 1] for display.

A trainer calls ``model(images) -> VQOutput``; inference code calls ``model.encode`` (image → codes) and
``model.decode_indices`` (codes → image). ``save_pretrained``/``from_pretrained`` (:mod:`flowvq_cli.modeling`)
store ``config.json`` and ``model.safetensors`` (weights + codebook statistics) in one folder.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from flowvq_cli.modeling import ConfigMixin, ModelMixin
from flowvq_cli.vq.quantizer import QuantizerConfig, QuantizerOutput, VectorQuantizer


@dataclass(frozen=True)
class VQGANConfig(ConfigMixin):
    """Architecture and codebook hyper-parameters of :class:`VQGAN`.

    Attributes:
        image_size: H = W of the training images (must be divisible by 2^(levels-1)).
        image_channels: channels of input and output images.
        base_channels: width of the full-resolution level; level i has base_channels·channel_mults[i].
        channel_mults: one multiplier per resolution level; each level after the first halves H and W.
        num_res_blocks: residual blocks per level (encoder and decoder alike).
        attention: add a self-attention block in the middle of the lowest resolution.
        attention_heads: heads of that block.
        norm_groups: GroupNorm groups (must divide every level's width).
        norm_eps: GroupNorm epsilon.
        latent_dim: d, channels of the latent grid and width of a code.
        num_codes: N, codebook size.
        beta: commitment-loss weight β.
        usage_decay, dead_code_steps, restart_seed: see :class:`QuantizerConfig`.
    """

    image_size: int = 256
    image_channels: int = 3
    base_channels: int = 128
    channel_mults: tuple[int, ...] = (1, 1, 2, 2, 4)
    num_res_blocks: int = 2
    attention: bool = True
    attention_heads: int = 1
    norm_groups: int = 32
    norm_eps: float = 1e-6
    latent_dim: int = 256
    num_codes: int = 1024
    beta: float = 0.25
    usage_decay: float = 0.99
    dead_code_steps: int = 200
    restart_seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "channel_mults", tuple(int(m) for m in self.channel_mults))
        if not self.channel_mults or min(self.channel_mults) < 1:
            raise ValueError(f"channel_mults must be non-empty positive integers, got {self.channel_mults}")
        if self.image_size % self.downsample_factor:
            raise ValueError(f"image_size {self.image_size} is not divisible by the downsampling factor "
                             f"{self.downsample_factor} of {len(self.channel_mults)} levels")
        for width in self.level_channels:
            if width % self.norm_groups:
                raise ValueError(f"norm_groups {self.norm_groups} does not divide level width {width}")
        if self.attention and self.level_channels[-1] % self.attention_heads:
            raise ValueError(f"attention_heads {self.attention_heads} does not divide the lowest level's "
                             f"width {self.level_channels[-1]}")
        if self.num_res_blocks < 1:
            raise ValueError(f"num_res_blocks must be >= 1, got {self.num_res_blocks}")
        self.quantizer  # noqa: B018 - validates the codebook fields

    @property
    def level_channels(self) -> tuple[int, ...]:
        """Width of each resolution level, full resolution first."""
        return tuple(self.base_channels * m for m in self.channel_mults)

    @property
    def downsample_factor(self) -> int:
        """H / h between an image and its latent grid."""
        return 2 ** (len(self.channel_mults) - 1)

    @property
    def latent_size(self) -> int:
        """h = w of the latent grid for ``image_size`` images."""
        return self.image_size // self.downsample_factor

    @property
    def quantizer(self) -> QuantizerConfig:
        return QuantizerConfig(num_codes=self.num_codes, code_dim=self.latent_dim, beta=self.beta,
                               usage_decay=self.usage_decay, dead_code_steps=self.dead_code_steps,
                               restart_seed=self.restart_seed)

    @classmethod
    def tiny(cls) -> VQGANConfig:
        """For tests: 32² images → 8² latents, a few channels, 32 codes."""
        return cls(image_size=32, base_channels=8, channel_mults=(1, 2, 2), num_res_blocks=1, attention=True,
                   attention_heads=2, norm_groups=4, latent_dim=8, num_codes=32, dead_code_steps=20)

    @classmethod
    def mini(cls) -> VQGANConfig:
        """The CPU budget (docs/design.md §8): 256² → 16² latents; 3.4 M parameters; decoder 5.1 GFLOP/frame."""
        return cls(image_size=256, base_channels=16, channel_mults=(1, 2, 4, 8, 8), num_res_blocks=1,
                   attention=True, attention_heads=4, norm_groups=8, latent_dim=64, num_codes=1024)

    @classmethod
    def base(cls) -> VQGANConfig:
        """For a GPU: 256² → 16² latents, d = 256, N = 1024 (the paper's sizes), CodeFormer-like widths."""
        return cls()


@dataclass
class VQOutput:
    """What :meth:`VQGAN.forward` returns.

    Attributes:
        recon: (B, 3, H, W) reconstruction.
        indices: (B, h, w) code indices.
        z: (B, d, h, w) encoder output before quantisation.
        z_q: (B, d, h, w) quantised latents (straight-through).
        codebook_loss: scalar ‖sg[z] − z_q‖² (mean).
        commit_loss: scalar β‖z − sg[z_q]‖² (mean, β applied).
        perplexity: scalar code perplexity of this batch.
        restarted: dead codes re-initialised in this call.
    """

    recon: torch.Tensor
    indices: torch.Tensor
    z: torch.Tensor
    z_q: torch.Tensor
    codebook_loss: torch.Tensor
    commit_loss: torch.Tensor
    perplexity: torch.Tensor
    restarted: int = 0

    @property
    def vq_loss(self) -> torch.Tensor:
        """codebook_loss + commit_loss."""
        return self.codebook_loss + self.commit_loss


# ----------------------------------------------------------------------------- layers
def _norm(config: VQGANConfig, channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(config.norm_groups, channels, eps=config.norm_eps)


class ResBlock(nn.Module):
    """GroupNorm → SiLU → 3×3 conv, twice, plus a (1×1 when widths differ) skip. (B, C_in, H, W) → (B, C_out, H, W)."""

    def __init__(self, config: VQGANConfig, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.norm1 = _norm(config, in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = _norm(config, out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = nn.Identity() if in_channels == out_channels else nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class AttentionBlock(nn.Module):
    """Multi-head self-attention over the positions of a feature map, residual. (B, C, H, W) → same."""

    def __init__(self, config: VQGANConfig, channels: int) -> None:
        super().__init__()
        self.heads = config.attention_heads
        self.norm = _norm(config, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w)  # (B, 3, nh, hd, HW)
        q, k, v = qkv.transpose(-1, -2).unbind(dim=1)  # each (B, nh, HW, hd)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, nh, HW, hd)
        out = out.transpose(-1, -2).reshape(b, c, h, w)  # (B, C, H, W)
        return x + self.proj(out)


class Downsample(nn.Module):
    """Stride-2 3×3 conv: (B, C_in, H, W) → (B, C_out, H/2, W/2)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest ×2 then 3×3 conv: (B, C_in, H, W) → (B, C_out, 2H, 2W). Changing width here (not in the
    next level's first block) keeps the high-resolution convs narrow."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def _middle(config: VQGANConfig, channels: int) -> nn.Sequential:
    layers: list[nn.Module] = [ResBlock(config, channels, channels)]
    if config.attention:
        layers.append(AttentionBlock(config, channels))
    layers.append(ResBlock(config, channels, channels))
    return nn.Sequential(*layers)


class Encoder(nn.Module):
    """E: (B, 3, H, W) → (B, d, H/f, W/f) with f = ``config.downsample_factor``."""

    def __init__(self, config: VQGANConfig) -> None:
        super().__init__()
        widths = config.level_channels
        self.conv_in = nn.Conv2d(config.image_channels, widths[0], 3, padding=1)
        blocks: list[nn.Module] = []
        for level, width in enumerate(widths):
            blocks.extend(ResBlock(config, width, width) for _ in range(config.num_res_blocks))
            if level + 1 < len(widths):
                blocks.append(Downsample(width, widths[level + 1]))
        self.down = nn.Sequential(*blocks)
        self.mid = _middle(config, widths[-1])
        self.norm_out = _norm(config, widths[-1])
        self.conv_out = nn.Conv2d(widths[-1], config.latent_dim, 3, padding=1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        h = self.mid(self.down(self.conv_in(images)))  # (B, C_L, h, w)
        return self.conv_out(F.silu(self.norm_out(h)))  # (B, d, h, w)


class Decoder(nn.Module):
    """G: (B, d, h, w) → (B, 3, h·f, w·f)."""

    def __init__(self, config: VQGANConfig) -> None:
        super().__init__()
        widths = config.level_channels
        self.conv_in = nn.Conv2d(config.latent_dim, widths[-1], 3, padding=1)
        self.mid = _middle(config, widths[-1])
        blocks: list[nn.Module] = []
        for level in reversed(range(len(widths))):
            blocks.extend(ResBlock(config, widths[level], widths[level]) for _ in range(config.num_res_blocks))
            if level > 0:
                blocks.append(Upsample(widths[level], widths[level - 1]))
        self.up = nn.Sequential(*blocks)
        self.norm_out = _norm(config, widths[0])
        self.conv_out = nn.Conv2d(widths[0], config.image_channels, 3, padding=1)

    def forward(self, z_q: torch.Tensor) -> torch.Tensor:
        h = self.up(self.mid(self.conv_in(z_q)))  # (B, C_0, H, W)
        return self.conv_out(F.silu(self.norm_out(h)))  # (B, 3, H, W)


# ------------------------------------------------------------------------------ model
class VQGAN(ModelMixin, nn.Module):
    """Encoder + vector quantiser + decoder. The patch discriminator lives in ``discriminator.py``."""

    model_type = "flowvq-vqgan"

    display_name = "codebook model"
    config_class = VQGANConfig
    component = "codebook"

    def __init__(self, config: VQGANConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.quantizer = VectorQuantizer(config.quantizer)
        self.decoder = Decoder(config)

    @property
    def last_layer(self) -> torch.Tensor:
        """Weight of the decoder's final conv (for the adaptive adversarial weight)."""
        return self.decoder.conv_out.weight

    def encode(self, images: torch.Tensor) -> QuantizerOutput:
        """Quantise images (B, 3, H, W) → :class:`QuantizerOutput` (z_q (B, d, h, w), indices (B, h, w), …)."""
        return self.quantizer(self.encoder(images))

    def decode(self, z_q: torch.Tensor) -> torch.Tensor:
        """Decode (B, d, h, w) latents (quantised or not) → images (B, 3, H, W)."""
        return self.decoder(z_q)

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Decode code indices (B, h, w) → images (B, 3, H, W)."""
        return self.decoder(self.quantizer.get_codebook_feat(indices))

    def forward(self, images: torch.Tensor) -> VQOutput:
        """Reconstruct images (B, 3, H, W) through the codebook; returns losses and statistics too."""
        z = self.encoder(images)  # (B, d, h, w)
        quant = self.quantizer(z)
        return VQOutput(recon=self.decoder(quant.z_q), indices=quant.indices, z=z, z_q=quant.z_q,
                        codebook_loss=quant.codebook_loss, commit_loss=quant.commit_loss,
                        perplexity=quant.perplexity, restarted=quant.restarted)
