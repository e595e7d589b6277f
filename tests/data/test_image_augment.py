"""Colour and lighting augmentation of training frames (identity augmentation, docs/design.md §4)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flowvq_cli.data.image_augment import ImageAugmentConfig, apply_image_augment, sample_image_params


def image(seed: int = 0, size: int = 24) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(3, size, size, generator=g) * 1.6 - 0.8  # (3, H, W) inside [-1, 1]


def test_off_is_the_identity() -> None:
    x = image()
    params = sample_image_params(np.random.default_rng(0), ImageAugmentConfig.off())
    torch.testing.assert_close(apply_image_augment(x, params), x, atol=1e-6, rtol=0)


def test_changes_stay_in_range_keep_shape_and_are_seeded() -> None:
    x = image()
    cfg = ImageAugmentConfig()
    a = apply_image_augment(x, sample_image_params(np.random.default_rng(3), cfg))
    b = apply_image_augment(x, sample_image_params(np.random.default_rng(3), cfg))
    c = apply_image_augment(x, sample_image_params(np.random.default_rng(4), cfg))
    assert a.shape == x.shape and a.dtype == x.dtype and -1 <= a.min() <= a.max() <= 1
    assert torch.equal(a, b) and not torch.allclose(a, c)
    assert (a - x).abs().mean() > 0.01  # it does change the picture


def test_grey_stays_grey_without_white_balance() -> None:
    """Hue and saturation act on the chroma plane only: a grey image has none to rotate or scale."""
    grey = torch.full((3, 8, 8), 0.2)
    cfg = ImageAugmentConfig(channel_gain=0, hue_degrees=40, saturation=1.0, light=0, gamma=0, contrast=0,
                             brightness=0)
    out = apply_image_augment(grey, sample_image_params(np.random.default_rng(1), cfg))
    torch.testing.assert_close(out, grey, atol=1e-5, rtol=0)


def test_lighting_is_a_gradient_across_the_face() -> None:
    flat = torch.zeros(3, 16, 16)  # mid grey
    cfg = ImageAugmentConfig(channel_gain=0, hue_degrees=0, saturation=0, light=0.5, gamma=0, contrast=0,
                             brightness=0)
    params = sample_image_params(np.random.default_rng(2), cfg)
    out = apply_image_augment(flat, params)[0]  # (H, W)
    ax, ay = params.light
    corner_gap = float(out[-1, -1] - out[0, 0])
    assert np.sign(corner_gap) == np.sign(ax + ay) and abs(corner_gap) > 0.1


def test_negative_ranges_are_rejected() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        ImageAugmentConfig(light=-0.1)
