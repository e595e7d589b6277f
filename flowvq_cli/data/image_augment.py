"""Training-time colour and lighting augmentation of face frames (docs/design.md §4, "identities are augmented").

Few licence-clean face photos exist here, so the image models see the same few faces over and over. A
codebook or VQIG that only ever sees one skin tone under one light learns that face's colours, and on a
new photo it paints them back. Every training item therefore gets a random photometric change, the
*same* one on its source and target frame (VQIG must learn to copy the source's colours, not to guess
them). Face-*shape* changes are made where the frames are rendered (``flowvq synth --reshape``, through
the identity mesh); random crops for the codebook are :class:`~flowvq_cli.train.codebook.RandomCrops`.

The change, on RGB in [0, 1], in this order:

1. **white balance**: each channel × exp(U(±channel_gain));
2. **hue** rotation by U(±hue_degrees) about the grey axis, and **saturation** × exp(U(±saturation))
   (both in YIQ: the chroma plane (I, Q) is rotated and scaled, luma Y kept);
3. **lighting**: × (1 + a·(cos φ·u + sin φ·v)), a ~ U(0, light), φ ~ U(0, 2π), with (u, v) ∈ [−1, 1]²
   the pixel's position: one side of the face brighter, the other darker;
4. **gamma** x^γ, log γ ~ U(±log(1 + gamma));
5. **contrast and brightness** (x − ½)·exp(U(±contrast)) + ½ + U(±brightness);

then clipped to [0, 1]. Every random choice comes from a ``numpy.random.Generator``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

_RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_YIQ_TO_RGB = np.linalg.inv(_RGB_TO_YIQ)


@dataclass(frozen=True)
class ImageAugmentConfig:
    """Ranges of each change (all drawn independently per item); 0 turns a change off."""

    channel_gain: float = 0.10
    hue_degrees: float = 15.0
    saturation: float = 0.35
    light: float = 0.25
    gamma: float = 0.25
    contrast: float = 0.20
    brightness: float = 0.08

    def __post_init__(self) -> None:
        values = (self.channel_gain, self.hue_degrees, self.saturation, self.light, self.gamma, self.contrast,
                  self.brightness)
        if min(values) < 0:
            raise ValueError(f"augmentation ranges must be >= 0, got {values}")

    @classmethod
    def off(cls) -> ImageAugmentConfig:
        return cls(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


@dataclass(frozen=True)
class ImageAugmentParams:
    """One drawn change: colour matrix (3, 3) applied to RGB, lighting slope, gamma, contrast, brightness."""

    color: np.ndarray  # (3, 3) float64: rgb_out = color @ rgb_in
    light: tuple[float, float]  # (a·cos φ, a·sin φ)
    gamma: float
    contrast: float
    brightness: float


def sample_image_params(rng: np.random.Generator, config: ImageAugmentConfig) -> ImageAugmentParams:
    """Draw one change from ``config``'s ranges."""
    gains = np.exp(rng.uniform(-config.channel_gain, config.channel_gain, 3))
    theta = math.radians(rng.uniform(-config.hue_degrees, config.hue_degrees))
    sat = math.exp(rng.uniform(-config.saturation, config.saturation))
    chroma = sat * np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    yiq = np.eye(3)
    yiq[1:, 1:] = chroma
    color = _YIQ_TO_RGB @ yiq @ _RGB_TO_YIQ @ np.diag(gains)
    amp, phi = rng.uniform(0.0, config.light), rng.uniform(0.0, 2 * math.pi)
    log_g = math.log1p(config.gamma)
    return ImageAugmentParams(
        color=color, light=(amp * math.cos(phi), amp * math.sin(phi)),
        gamma=math.exp(rng.uniform(-log_g, log_g)), contrast=math.exp(rng.uniform(-config.contrast, config.contrast)),
        brightness=rng.uniform(-config.brightness, config.brightness),
    )


def apply_image_augment(image: Tensor, params: ImageAugmentParams) -> Tensor:
    """Apply one change to an image (3, H, W) float in [−1, 1]; returns the same shape and range."""
    _, h, w = image.shape
    x = (image.double() + 1.0) / 2.0  # (3, H, W) in [0, 1]
    x = torch.einsum("ij,jhw->ihw", torch.from_numpy(params.color), x)
    v = torch.linspace(-1.0, 1.0, h, dtype=torch.float64)[:, None]  # (H, 1)
    u = torch.linspace(-1.0, 1.0, w, dtype=torch.float64)[None, :]  # (1, W)
    x = x * (1.0 + params.light[0] * u + params.light[1] * v).clamp_min(0.0)
    x = x.clamp(0.0, 1.0).pow(params.gamma)
    x = (x - 0.5) * params.contrast + 0.5 + params.brightness
    return (x.clamp(0.0, 1.0) * 2.0 - 1.0).to(image.dtype)
