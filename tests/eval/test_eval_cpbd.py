"""CPBD: range, known images, and monotone decrease with Gaussian blur on real photos."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest
from skimage import data
from skimage.filters import gaussian

from flowvq_cli.eval.cpbd import P_JNB, blur_probability, cpbd, cpbd_image, edge_widths_along_rows

SIGMAS = (0, 1, 2, 3)
SATURATION_TOLERANCE = 0.002
"""Once blur removes almost every sharp edge, CPBD sits near 0 and moves by a few stray edges."""


def _blurred(img: np.ndarray, sigma: float) -> np.ndarray:
    if sigma == 0:
        return img
    axis = -1 if img.ndim == 3 else None
    return np.round(gaussian(img, sigma=sigma, channel_axis=axis, preserve_range=True)).astype(np.uint8)


@pytest.mark.parametrize("name", ["astronaut", "camera"])
def test_cpbd_decreases_with_blur(name: str) -> None:
    img = getattr(data, name)()
    values = [cpbd_image(_blurred(img, s)) for s in SIGMAS]
    assert all(0.0 <= v <= 1.0 for v in values), values
    assert values[0] > 0.4, values  # a sharp photo has many edges below the JNB width
    for sharper, blurrier in itertools.pairwise(values):
        if sharper > 10 * SATURATION_TOLERANCE:
            assert blurrier < sharper, values
        else:
            assert blurrier <= sharper + SATURATION_TOLERANCE, values


def test_step_edge_is_sharp_and_blurred_step_is_not() -> None:
    img = np.zeros((128, 128), np.uint8)
    img[:, 64:] = 200
    assert cpbd_image(img) == 1.0
    assert cpbd_image(cv2.GaussianBlur(img, (0, 0), 5)) == 0.0


def test_flat_image_has_no_cpbd() -> None:
    frames = np.full((2, 64, 64, 3), 90, np.uint8)
    assert np.all(np.isnan(cpbd(frames)))


def test_width_of_a_ramp_and_probability_at_jnb() -> None:
    ramp = np.array([[0, 0, 10, 20, 30, 40, 40, 40]], dtype=np.float64)
    grad = np.array([[0, 0, 10, 10, 10, 10, 0, 0]], dtype=np.float64)
    widths = edge_widths_along_rows(ramp, grad)
    # from the minimum at column 1 to the maximum at column 5: 4 pixels
    assert widths[0, 2:6].tolist() == [4.0, 4.0, 4.0, 4.0]
    assert blur_probability(np.array([3.0]), np.array([3.0]))[0] == pytest.approx(P_JNB)
