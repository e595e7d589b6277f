"""Paste-back: a rendered crop goes back into the photo without seams and without losing its detail."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from flowvq_cli.face import align
from flowvq_cli.face.paste import PasteBack


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-12)))


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A 480² photo with detail at every scale: smooth shading plus blurred noise (seeded)."""
    rng = np.random.default_rng(0)
    ys, xs = np.mgrid[0:480, 0:480].astype(np.float32)
    shade = 120 + 60 * np.sin(xs / 70.0)[..., None] * np.cos(ys / 90.0)[..., None]
    texture = cv2.GaussianBlur(rng.normal(0, 40, (480, 480, 3)).astype(np.float32), (0, 0), 1.2)
    return np.clip(shade + texture, 0, 255).astype(np.uint8)


def test_pasting_the_photos_own_crop_gives_the_photo_back(photo: np.ndarray) -> None:
    """The crop (a rotated, 1.4× larger face region brought to 256²) pasted back: the photo outside the
    crop's box is untouched, and inside it is the photo again up to the two resamplings; bicubic paste-back
    keeps more of the detail than bilinear would."""
    alignment = align.Alignment.from_params(np.array([np.log(256 / 360), np.radians(8.0), 240.3, 250.7]))
    crop = align.crop(photo, alignment)
    paster = PasteBack.build(photo, alignment.matrix)
    out = paster(crop)
    x0, y0, x1, y1 = paster.box
    outside = np.ones(photo.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    assert np.array_equal(out[outside], photo[outside])
    inner = (slice(y0 + 40, y1 - 40), slice(x0 + 40, x1 - 40))  # where the blend weight is 1
    assert psnr(out[inner], photo[inner]) > 30
    bilinear = cv2.warpAffine(crop, paster.to_box, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
    local = (slice(40, y1 - y0 - 40), slice(40, x1 - x0 - 40))
    assert psnr(out[inner], photo[inner]) > psnr(bilinear[local], photo[inner]) + 0.3
    laplacian = [cv2.Laplacian(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var()
                 for img in (out[inner], bilinear[local])]
    assert laplacian[0] > 1.2 * laplacian[1]
