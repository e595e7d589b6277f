"""Tests for flowvq_cli.face.align: the template fit, the crop, point mapping and video smoothing."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from flowvq_cli.face.align import (
    TEMPLATE_SIZE,
    Alignment,
    anchor_points,
    crop,
    estimate_alignment,
    fixed_alignment,
    smooth_alignments,
    template_points,
    transform_landmarks,
    uncrop_points,
    video_alignments,
)
from flowvq_cli.face.detect import landmarks_image
from flowvq_cli.image import load_image

FACE_PNG = Path(__file__).resolve().parents[2] / "examples" / "face.png"


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return data.astronaut()


@pytest.fixture(scope="module")
def points(astronaut: np.ndarray) -> np.ndarray:
    """(478, 3) image-pixel landmarks of the astronaut."""
    return landmarks_image(astronaut).points


def _similarity(angle_deg: float, scale: float, shift: tuple[float, float]) -> np.ndarray:
    """A (2, 3) similarity matrix."""
    angle = np.radians(angle_deg)
    linear = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return np.hstack([linear, np.array(shift)[:, None]])


def _moved(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) similarity to (N, 3) points, z scaled like x."""
    return transform_landmarks(points, Alignment.from_matrix(matrix))


def test_anchors_land_on_template(points: np.ndarray) -> None:
    alignment = estimate_alignment(points)
    assert alignment.matrix.shape == (2, 3) and alignment.size == TEMPLATE_SIZE
    mapped = transform_landmarks(anchor_points(points), alignment)
    assert np.abs(mapped - template_points()).max() < 4.0  # 3 points, 4 dof: a near-exact fit
    composed = alignment.inverse[:, :2] @ alignment.matrix[:, :2]
    np.testing.assert_allclose(composed, np.eye(2), atol=1e-9)


def test_crop_is_aligned(astronaut: np.ndarray, points: np.ndarray) -> None:
    """Detecting the face again on the crop finds the anchors on the template."""
    face_crop = crop(astronaut, estimate_alignment(points))
    assert face_crop.shape == (TEMPLATE_SIZE, TEMPLATE_SIZE, 3) and face_crop.dtype == np.uint8
    redetected = landmarks_image(face_crop).points
    assert np.abs(anchor_points(redetected) - template_points()).max() < 4.0
    # The face is about half the crop: brows-to-chin (10 -> 152) between 0.4 and 0.6 of the side.
    assert 0.4 < (redetected[152, 1] - redetected[10, 1]) / TEMPLATE_SIZE < 0.6


def test_equivariance_under_similarity(points: np.ndarray) -> None:
    moved_by = _similarity(25.0, 1.7, (40.0, -15.0))
    moved = _moved(points, moved_by)
    base = estimate_alignment(points)
    other = estimate_alignment(moved)
    np.testing.assert_allclose(transform_landmarks(moved, other), transform_landmarks(points, base), atol=1e-3)
    assert other.scale == pytest.approx(base.scale / 1.7, rel=1e-6)


def test_roundtrip_and_z_scaling(points: np.ndarray) -> None:
    alignment = estimate_alignment(points)
    in_crop = transform_landmarks(points, alignment)
    np.testing.assert_allclose(in_crop[:, 2], points[:, 2] * alignment.scale, rtol=1e-5)
    np.testing.assert_allclose(uncrop_points(in_crop, alignment), points, atol=1e-3)
    batch = np.stack([points, points + 1])  # (T, 478, 3)
    assert transform_landmarks(batch, alignment).shape == batch.shape
    assert transform_landmarks(points[:, :2], alignment).shape == (478, 2)


def test_468_points_align_like_478(points: np.ndarray) -> None:
    np.testing.assert_allclose(estimate_alignment(points[:468]).matrix, estimate_alignment(points).matrix)


def test_bad_landmarks(points: np.ndarray) -> None:
    with pytest.raises(ValueError, match="468 or 478"):
        estimate_alignment(points[:100])
    lost = np.full_like(points, np.nan)
    with pytest.raises(ValueError, match="NaN"):
        estimate_alignment(lost)


def test_crop_sizes_and_big_images(astronaut: np.ndarray, points: np.ndarray) -> None:
    alignment = estimate_alignment(points)
    reference = crop(astronaut, alignment)
    half = crop(astronaut, alignment, size=128)
    assert half.shape == (128, 128, 3)
    assert np.abs(cv2.resize(reference, (128, 128), interpolation=cv2.INTER_AREA).astype(float) - half).mean() < 6
    # A 4x larger photo goes through the pyramid (anti-aliasing) and gives the same crop.
    big = cv2.resize(astronaut, (2048, 2048), interpolation=cv2.INTER_CUBIC)
    big_crop = crop(big, estimate_alignment(points * np.array([4, 4, 4], np.float32)))
    assert np.abs(big_crop.astype(float) - reference).mean() < 6
    reflected = crop(astronaut, alignment, border="reflect")
    assert reflected.shape == reference.shape


def test_params_roundtrip(points: np.ndarray) -> None:
    alignment = estimate_alignment(points)
    again = Alignment.from_params(alignment.params)
    np.testing.assert_allclose(again.matrix, alignment.matrix, atol=1e-9)
    np.testing.assert_allclose(alignment.resized(512).matrix, alignment.matrix * 2)


def _jittered_clip(points: np.ndarray, frames: int = 40, seed: int = 0) -> np.ndarray:
    """(T, 478, 3) landmarks drifting slowly right with random per-frame jitter of a few pixels."""
    rng = np.random.default_rng(seed)
    clip = []
    for t in range(frames):
        jitter = _similarity(rng.normal(0, 1.0), 1 + rng.normal(0, 0.01), (t * 0.5 + rng.normal(0, 2.0),
                                                                           rng.normal(0, 2.0)))
        clip.append(_moved(points, jitter))
    return np.stack(clip)


def test_smoothing_reduces_jitter(points: np.ndarray) -> None:
    clip = _jittered_clip(points)
    raw = [estimate_alignment(frame) for frame in clip]
    smooth = smooth_alignments(raw)
    assert len(smooth) == len(raw)

    def roughness(alignments: list[Alignment]) -> float:
        params = np.stack([alignment.params for alignment in alignments])
        return float(np.abs(np.diff(params[:, 2:], n=2, axis=0)).mean())  # crop-centre acceleration

    assert roughness(smooth) < 0.3 * roughness(raw)
    constant = smooth_alignments([raw[0]] * 5)
    np.testing.assert_allclose(constant[3].matrix, raw[0].matrix, atol=1e-9)


def test_video_alignments_fill_lost_frames(points: np.ndarray) -> None:
    clip = _jittered_clip(points, frames=12)
    found = np.ones(12, bool)
    found[[0, 5, 6]] = False
    clip[[0, 5, 6]] = np.nan
    smooth = video_alignments(clip, found, mode="smooth")
    assert len(smooth) == 12 and all(np.isfinite(a.matrix).all() for a in smooth)
    fixed = video_alignments(clip, mode="fixed")
    assert len(fixed) == 12 and all(a is fixed[0] for a in fixed)
    median = fixed_alignment([estimate_alignment(clip[t]) for t in np.flatnonzero(found)])
    np.testing.assert_allclose(fixed[0].matrix, median.matrix, atol=1e-9)
    with pytest.raises(ValueError, match="mode"):
        video_alignments(clip, mode="wobbly")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no frame"):
        video_alignments(np.full_like(clip, np.nan))


def test_example_photo_crop() -> None:
    face = load_image(FACE_PNG)
    alignment = estimate_alignment(landmarks_image(face).points)
    assert 1.0 < alignment.scale < 2.5  # face.png's face is ~100 px wide: the crop upsamples it
