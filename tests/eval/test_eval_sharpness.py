"""Variance-of-Laplacian sharpness ratio."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from flowvq_cli.errors import InputError
from flowvq_cli.eval.sharpness import laplacian_variance, sharpness_ratio


def test_checkerboard_known_value() -> None:
    # alternating 0 / 100 pixels: the Laplacian is ±400 everywhere (reflected borders keep the
    # pattern: OpenCV mirrors without repeating the edge pixel), so its variance is 400².
    board = (np.indices((16, 16)).sum(axis=0) % 2 * 100).astype(np.uint8)
    assert laplacian_variance(board) == pytest.approx(400.0**2)


def test_ratio_is_one_for_the_source_and_drops_with_blur() -> None:
    src = data.astronaut()[:256, 128:384]
    frames = np.stack([src, cv2.GaussianBlur(src, (0, 0), 1.0), cv2.GaussianBlur(src, (0, 0), 2.0)])
    box = (64, 32, 192, 200)
    ratios = sharpness_ratio(frames, src, frame_box=box, source_box=box)
    assert ratios[0] == pytest.approx(1.0)
    assert 1.0 > ratios[1] > ratios[2] > 0.0


def test_bad_box_and_flat_source() -> None:
    src = np.full((32, 32, 3), 50, np.uint8)
    with pytest.raises(InputError, match="face box"):
        laplacian_variance(src, (10, 10, 5, 20))
    with pytest.raises(InputError, match="flat"):
        sharpness_ratio(src, src)
