"""Tests for flowvq_cli.face.detect on real photos (the astronaut, a cat) and variants of them."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data

from flowvq_cli.errors import FaceNotFoundError, FaceTooSmallError
from flowvq_cli.face.detect import (
    MIN_FACE_PX,
    N_LANDMARKS,
    FaceAnalyzer,
    VideoLandmarker,
    detect_faces,
    landmarks_file,
    landmarks_image,
    landmarks_video,
)
from flowvq_cli.image import load_image
from flowvq_cli.video import VideoWriter

REPO = Path(__file__).resolve().parents[2]
FACE_PNG = REPO / "examples" / "face.png"
EXIF_ORIENTATION = 0x0112


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    return load_image(FACE_PNG)


@pytest.fixture(scope="module")
def face_points(face: np.ndarray) -> np.ndarray:
    return landmarks_image(face).points


def _mean_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean 2-D distance between two (N, 2+) point sets, in pixels."""
    return float(np.linalg.norm(a[:, :2] - b[:, :2], axis=1).mean())


def test_import_does_not_load_mediapipe() -> None:
    code = "import sys, flowvq_cli.face.detect; assert 'mediapipe' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_landmarks_on_example_photo(face: np.ndarray) -> None:
    result = landmarks_image(face, source="face.png")
    points = result.points
    assert points.shape == (N_LANDMARKS, 3) and points.dtype == np.float32
    assert np.isfinite(points).all() and result.n_faces == 1
    height, width = face.shape[:2]
    assert (points[:, 0] >= 0).all() and (points[:, 0] < width).all()
    assert (points[:, 1] >= 0).all() and (points[:, 1] < height).all()
    box = result.box
    assert box.width >= MIN_FACE_PX and 0.9 < box.score <= 1
    # Iris centres (468 and 473) lie between the corners of their eyes; the nose tip is below the eyes.
    for iris, corners in ((468, (33, 133)), (473, (362, 263))):
        lo, hi = sorted(points[list(corners), 0])
        assert lo < points[iris, 0] < hi
    assert points[1, 1] > points[468, 1]
    assert 30 < result.eye_distance < 70


def test_full_astronaut_matches_crop(face: np.ndarray, face_points: np.ndarray) -> None:
    """face.png is a crop of the astronaut: landmarks must agree once the crop offset is found."""
    full = data.astronaut()
    points = landmarks_image(full).points
    match = cv2.matchTemplate(full, face, cv2.TM_SQDIFF)
    x0, y0 = cv2.minMaxLoc(match)[2]
    assert _mean_distance(points - np.array([x0, y0, 0]), face_points) < 2.0


def test_cat_has_no_face() -> None:
    with pytest.raises(FaceNotFoundError, match=r"no face found in chelsea\.png.*full- and short-range.*"
                                                r"px wide"):
        landmarks_image(data.chelsea(), source="chelsea.png")


def test_grayscale_photo(tmp_path: Path, face: np.ndarray, face_points: np.ndarray) -> None:
    Image.fromarray(face).convert("L").save(tmp_path / "gray.png")
    _, result = landmarks_file(tmp_path / "gray.png")
    assert _mean_distance(result.points, face_points) < 3.0


@pytest.mark.parametrize(("orientation", "turns"), [(3, 2), (6, 1), (8, 3)])
def test_exif_rotated_jpeg(tmp_path: Path, face: np.ndarray, face_points: np.ndarray, orientation: int,
                           turns: int) -> None:
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    path = tmp_path / f"phone{orientation}.jpg"
    Image.fromarray(np.ascontiguousarray(np.rot90(face, k=turns))).save(path, quality=95, exif=exif)
    rgb, result = landmarks_file(path)
    assert rgb.shape == face.shape
    assert _mean_distance(result.points, face_points) < 3.0


@pytest.mark.parametrize(("turns", "words"), [(1, "90° counter-clockwise"), (2, "180°"),
                                              (3, "90° clockwise")])
def test_sideways_photo_is_refused_with_a_hint(face: np.ndarray, turns: int, words: str) -> None:
    rotated = np.ascontiguousarray(np.rot90(face, k=turns))
    with pytest.raises(FaceNotFoundError, match=f"rotated by {words}.*rotate the photo"):
        landmarks_image(rotated, source="sideways.png")


def _two_faces(face: np.ndarray) -> np.ndarray:
    """A grey canvas with the photo at full size on the left and at 2/3 size on the right."""
    small = cv2.resize(face, (240, 240), interpolation=cv2.INTER_AREA)
    canvas = np.full((400, 700, 3), 200, np.uint8)
    canvas[20:380, 0:360] = face
    canvas[80:320, 420:660] = small
    return canvas


def test_two_faces(face: np.ndarray) -> None:
    canvas = _two_faces(face)
    with pytest.warns(UserWarning, match=r"2 faces found in pair\.png.*--face-index"):
        largest = landmarks_image(canvas, source="pair.png")
    assert largest.n_faces == 2 and largest.points[:, 0].mean() < 360
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        other = landmarks_image(canvas, face_index=1, source="pair.png")
    assert other.points[:, 0].mean() > 420
    assert other.eye_distance == pytest.approx(largest.eye_distance * 2 / 3, rel=0.1)
    with pytest.raises(FaceNotFoundError, match="has 2 faces"):
        landmarks_image(canvas, face_index=2, source="pair.png")
    assert [round(box.width) for box in detect_faces(canvas)] == sorted(
        (round(box.width) for box in detect_faces(canvas)), reverse=True)


def test_tiny_face(face: np.ndarray) -> None:
    tiny = cv2.resize(data.astronaut(), (200, 200), interpolation=cv2.INTER_AREA)
    with pytest.raises(FaceTooSmallError, match=f"px wide; FlowVQ needs at least {MIN_FACE_PX} px"):
        landmarks_image(tiny, source="tiny.png")


def test_face_in_large_image(face: np.ndarray, face_points: np.ndarray) -> None:
    """A small face in a big frame: FaceMesh runs on an upscaled crop around it."""
    canvas = np.full((1600, 2400, 3), 90, np.uint8)
    canvas[1000:1360, 1800:2160] = face
    points = landmarks_image(canvas).points
    assert _mean_distance(points - np.array([1800, 1000, 0]), face_points) < 3.0


def test_own_analyzer_context(face: np.ndarray, face_points: np.ndarray) -> None:
    with FaceAnalyzer() as analyzer:
        points = landmarks_image(face, analyzer=analyzer).points
    assert _mean_distance(points, face_points) < 0.5


def test_bad_array() -> None:
    with pytest.raises(ValueError, match="uint8"):
        detect_faces(np.zeros((64, 64, 3), np.float32))


def _shifted(face: np.ndarray, shift: int) -> np.ndarray:
    """The photo on a wider grey canvas, moved right by ``shift`` px."""
    canvas = np.full((360, 480, 3), 128, np.uint8)
    canvas[:, shift:shift + 360] = face
    return canvas


def test_video_landmarker_tracks_and_flags_lost_frames(face: np.ndarray, face_points: np.ndarray) -> None:
    shifts = [0, 4, 8, 12, 16, 20, 24, 28]
    frames = [_shifted(face, shift) for shift in shifts]
    frames[4] = np.full_like(frames[0], 128)  # the face disappears for one frame
    with VideoLandmarker() as tracker:
        results = list(tracker.track(frames))
    found = np.array([result.found for result in results])
    assert found.tolist() == [True] * 4 + [False] + [True] * 3
    assert np.isnan(results[4].points).all() and results[4].points.shape == (N_LANDMARKS, 3)
    for shift, result in zip(shifts, results, strict=True):
        if result.found:
            assert _mean_distance(result.points - np.array([shift, 0, 0]), face_points) < 3.0


def test_landmarks_video(tmp_path: Path, face: np.ndarray) -> None:
    path = tmp_path / "talk.mp4"
    with VideoWriter(path, 25, (480, 360)) as writer:
        for shift in range(0, 40, 4):
            writer.write(_shifted(face, shift))
    result = landmarks_video(path)
    assert result.points.shape == (10, N_LANDMARKS, 3) and result.found.all()
    assert result.fps == 25 and result.size == (480, 360)
    moved = result.points[-1, :, 0].mean() - result.points[0, :, 0].mean()
    assert moved == pytest.approx(36, abs=3)
