"""SSIM and PSNR against scikit-image and closed forms."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data
from skimage.metrics import structural_similarity

from flowvq_cli.errors import InputError
from flowvq_cli.eval._arrays import BT601_LUMA
from flowvq_cli.eval.image_metrics import psnr, ssim, ssim_image


def _reference_ssim(x: np.ndarray, y: np.ndarray, **kw: object) -> float:
    return structural_similarity(x, y, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                 data_range=255, **kw)


@pytest.fixture(scope="module")
def pair() -> tuple[np.ndarray, np.ndarray]:
    """A 128x160 crop of the astronaut and a noisy, shifted copy."""
    rng = np.random.default_rng(0)
    img = data.astronaut()[100:228, 150:310]
    noisy = np.clip(np.roll(img, 2, axis=1) + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)
    return img, noisy


def test_ssim_rgb_matches_skimage(pair: tuple[np.ndarray, np.ndarray]) -> None:
    img, noisy = pair
    ours = ssim_image(noisy, img)
    ref = _reference_ssim(noisy, img, channel_axis=-1)
    assert abs(ours - ref) < 1e-4
    assert 0.2 < ours < 0.95


def test_ssim_luma_matches_skimage_on_luma(pair: tuple[np.ndarray, np.ndarray]) -> None:
    img, noisy = pair
    ref = _reference_ssim(noisy.astype(np.float64) @ BT601_LUMA, img.astype(np.float64) @ BT601_LUMA)
    assert abs(ssim_image(noisy, img, mode="luma") - ref) < 1e-4


def test_ssim_batched_over_frames_and_identity(pair: tuple[np.ndarray, np.ndarray]) -> None:
    img, noisy = pair
    pred = np.stack([img, noisy, img])
    gt = np.stack([img, img, noisy])
    values = ssim(pred, gt)
    assert values.shape == (3,)
    assert values[0] == pytest.approx(1.0, abs=1e-12)
    assert values[1] == pytest.approx(values[2], abs=1e-12)  # symmetric
    assert values[1] == pytest.approx(_reference_ssim(noisy, img, channel_axis=-1), abs=1e-4)


def test_psnr_closed_form() -> None:
    gt = np.full((2, 16, 16, 3), 100, np.uint8)
    pred = gt.copy()
    pred[1] += 10  # MSE = 100 → PSNR = 10 log10(255² / 100)
    values = psnr(pred, gt)
    assert values[0] == np.inf
    assert values[1] == pytest.approx(10 * np.log10(255**2 / 100), abs=1e-12)


def test_inputs_are_checked() -> None:
    a = np.zeros((2, 16, 16, 3), np.uint8)
    with pytest.raises(InputError, match="shapes differ"):
        ssim(a, a[:1])
    with pytest.raises(InputError, match="uint8"):
        psnr(a.astype(np.float32), a)
    with pytest.raises(InputError, match="too small"):
        ssim(a[:, :8, :8], a[:, :8, :8])
