"""Face detection and 478-point landmarks (MediaPipe FaceMesh with irises), for photos and videos.

Photos (:func:`detect_faces`, :func:`landmarks_image`):

1. MediaPipe face detection runs twice, full range (faces up to ~5 m) and short range (close-ups),
   and the boxes are merged (non-maximum suppression); faces are sorted largest first. A large
   photo where neither finds a face is searched again in overlapping tiles (small faces).
2. FaceMesh (``refine_landmarks=True``: 468 mesh points + 10 iris points) runs on a square crop
   around the chosen box, resized to :data:`MESH_CROP_PX` (small faces are upscaled, huge ones
   shrunk), and the points are mapped back to image pixels. FaceMesh on the whole frame misses
   faces that are small relative to a large image; on the crop it does not.
3. Sideways or upside-down photos are refused with a message saying which way to rotate them: a
   face whose eye line is tilted more than :data:`MAX_ROLL_DEG`, or a photo with no face that shows
   one when rotated by 90, 180 or 270 degrees, raises :class:`FaceNotFoundError`. Such a face is
   **not** used silently: the output video is pasted back into the photo as given, and an EXIF-less
   sideways phone photo is best fixed by the user once.

Videos (:class:`VideoLandmarker`): FaceMesh in tracking mode follows one face — the largest in the
first frame where a face is seen — and frames where that face is lost come back as NaN rows with
``found = False``; the caller decides what to do with them.

Landmark coordinates are image pixels: ``x * W``, ``y * H`` and ``z * W`` of MediaPipe's normalised
output for the whole image (``z`` is depth relative to the face centre, negative towards the camera,
in the same pixel units as ``x``).

MediaPipe is imported lazily (inside functions): importing this module is cheap. Its graphs are
created once per process (:func:`shared_analyzer`) and reused.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import cv2
import numpy as np

from flowvq_cli import native_log
from flowvq_cli.errors import FaceNotFoundError, FaceTooSmallError

N_LANDMARKS = 478
"""FaceMesh points with ``refine_landmarks=True``: 468 mesh vertices + 5 per iris."""

MIN_FACE_PX = 64
"""Smallest usable face: width in pixels of the detector's box (about cheek to cheek). Below this the
aligned 256² crop (face about half the crop) would be upscaled more than 2×."""

MIN_DETECTION_CONFIDENCE = 0.5
"""MediaPipe detector score threshold."""

MIN_TRACKING_CONFIDENCE = 0.5
"""FaceMesh tracking score threshold in videos (below it the detector runs again)."""

NMS_IOU = 0.3
"""Boxes from the two detectors that overlap more than this are one face."""

DETECT_TILE_PX = 640
"""When a large image shows no face, detection is repeated on square tiles of this side (stride half
of it): the detectors see the image at 128-192 px, where a small face in a big photo vanishes."""

MESH_CROP_SCALE = 2.0
"""Side of the square FaceMesh crop, relative to the larger side of the detector box."""

MESH_CROP_PX = 256
"""Pixel size the FaceMesh crop is resized to."""

MESH_CROP_FILL = 127
"""Grey level of crop pixels that fall outside the image."""

TRACK_MAX_FACES = 4
"""At most this many faces are tracked in a video to keep following the chosen one."""

TRACK_MAX_JUMP = 0.5
"""A face whose centre moved more than this fraction of the face size since the last frame where the
tracked face was seen is another face: the tracked one counts as lost."""

ROTATIONS_TRIED = (90, 180, 270)
"""Counter-clockwise rotations tried when an upright photo shows no face."""

MAX_ROLL_DEG = 45.0
"""A face whose eye line is tilted more than this (in-plane) is taken as a photo lying sideways or
upside down: MediaPipe finds such faces, but FlowVQ asks for the photo to be rotated upright."""

CONFIDENT_SCORE = 0.85
"""Detections at least this confident are trusted as upright. Below it the photo is also checked
rotated: upside-down faces produce weak, spurious upright detections (chin read as a face)."""

ROTATION_MARGIN = 0.1
"""A rotated copy whose best detection beats the upright one by this much means the photo is rotated."""

_LEFT_EYE_CORNERS = (33, 133)  # the eye on the image's left (the subject's right eye)
_RIGHT_EYE_CORNERS = (362, 263)


def _quiet_mediapipe() -> Any:
    """Import ``mediapipe.solutions`` with its C++ logging turned down; its calls run in
    :func:`native_log.filtered <flowvq_cli.native_log.filtered>` blocks, which drop what is still logged."""
    native_log.lower_native_log_levels()
    from mediapipe.python import solutions

    return solutions


@dataclass(frozen=True, eq=False)
class FaceBox:
    """One detected face, in image pixels.

    Attributes:
        x, y: top-left corner.
        width, height: box size (the detector's box spans roughly brows to chin, cheek to cheek).
        score: detector confidence in ``[0, 1]``.
        keypoints: ``(6, 2)`` float32 — right eye, left eye, nose tip, mouth centre, right ear, left ear
            (MediaPipe's order; "right" is the subject's right, on the image's left).
    """

    x: float
    y: float
    width: float
    height: float
    score: float
    keypoints: np.ndarray

    @property
    def area(self) -> float:
        """Box area in square pixels."""
        return self.width * self.height

    @property
    def center(self) -> tuple[float, float]:
        """Box centre ``(x, y)``."""
        return self.x + self.width / 2, self.y + self.height / 2


@dataclass(frozen=True, eq=False)
class Landmarks:
    """The 478 FaceMesh points of one face in a photo.

    Attributes:
        points: ``(478, 3)`` float32 image pixels ``(x, y, z)``; ``z`` in the same units as ``x``.
        box: the detector box the points were found in.
        image_size: ``(width, height)`` of the photo.
        n_faces: how many faces the photo holds.
    """

    points: np.ndarray
    box: FaceBox
    image_size: tuple[int, int]
    n_faces: int

    @property
    def eye_distance(self) -> float:
        """Distance between the two eye centres (mean of each eye's corners), in pixels."""
        left = self.points[list(_LEFT_EYE_CORNERS), :2].mean(axis=0)
        right = self.points[list(_RIGHT_EYE_CORNERS), :2].mean(axis=0)
        return float(np.linalg.norm(right - left))


def _check_rgb(rgb: np.ndarray) -> np.ndarray:
    """Validate an ``(H, W, 3) uint8`` frame and return it C-contiguous (MediaPipe needs that)."""
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB array, got {getattr(rgb, 'dtype', type(rgb))} "
                         f"{getattr(rgb, 'shape', '')}")
    return np.ascontiguousarray(rgb)


def _iou(a: FaceBox, b: FaceBox) -> float:
    """Intersection over union of two boxes."""
    width = min(a.x + a.width, b.x + b.width) - max(a.x, b.x)
    height = min(a.y + a.height, b.y + b.height) - max(a.y, b.y)
    inter = max(width, 0.0) * max(height, 0.0)
    return inter / max(a.area + b.area - inter, 1e-9)


def _merge_boxes(boxes: list[FaceBox]) -> list[FaceBox]:
    """Non-maximum suppression (best score wins), then sort largest first."""
    kept: list[FaceBox] = []
    for box in sorted(boxes, key=lambda item: item.score, reverse=True):
        if all(_iou(box, other) <= NMS_IOU for other in kept):
            kept.append(box)
    return sorted(kept, key=lambda item: item.area, reverse=True)


def _box_from_detection(detection: Any, width: int, height: int) -> FaceBox:
    """Convert a MediaPipe detection (relative coordinates) to a :class:`FaceBox` in pixels."""
    data = detection.location_data
    rel = data.relative_bounding_box
    keypoints = np.array([[point.x * width, point.y * height] for point in data.relative_keypoints],
                         dtype=np.float32).reshape(-1, 2)
    return FaceBox(x=rel.xmin * width, y=rel.ymin * height, width=rel.width * width,
                   height=rel.height * height, score=float(detection.score[0]), keypoints=keypoints)


def _square_crop(rgb: np.ndarray, center: tuple[float, float], side: float) -> tuple[np.ndarray, np.ndarray]:
    """Cut a square around ``center`` and resize it to :data:`MESH_CROP_PX`.

    Returns:
        ``patch`` ``(MESH_CROP_PX, MESH_CROP_PX, 3) uint8`` and ``to_image`` ``(2, 3)``: the affine map
        from patch pixels to image pixels (``x_img = to_image @ [x_patch, y_patch, 1]``).
    """
    side_px = max(round(float(side)), 8)
    x0 = round(float(center[0]) - side_px / 2)
    y0 = round(float(center[1]) - side_px / 2)
    height, width = rgb.shape[:2]
    patch = np.full((side_px, side_px, 3), MESH_CROP_FILL, dtype=np.uint8)
    sx0, sy0 = max(x0, 0), max(y0, 0)
    sx1, sy1 = min(x0 + side_px, width), min(y0 + side_px, height)
    if sx1 > sx0 and sy1 > sy0:
        patch[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = rgb[sy0:sy1, sx0:sx1]
    shrinking = side_px > MESH_CROP_PX
    patch = cv2.resize(patch, (MESH_CROP_PX, MESH_CROP_PX),
                       interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    scale = side_px / MESH_CROP_PX  # image pixels per patch pixel
    to_image = np.array([[scale, 0.0, x0], [0.0, scale, y0]], dtype=np.float64)
    return patch, to_image


def _mesh_points(result: Any, width: int, height: int) -> list[np.ndarray]:
    """All faces of a FaceMesh result as ``(478, 3)`` float32 arrays in pixels (``x*W, y*H, z*W``)."""
    faces = []
    for face in result.multi_face_landmarks or []:
        points = np.array([[p.x, p.y, p.z] for p in face.landmark], dtype=np.float32)
        points *= np.array([width, height, width], dtype=np.float32)
        faces.append(points)
    return faces


def _nearest(candidates: list[np.ndarray], target: tuple[float, float]) -> tuple[np.ndarray | None, float]:
    """The ``(478, 3)`` candidate whose 2-D centroid is closest to ``target``, and that distance."""
    if not candidates:
        return None, float("inf")
    distances = [float(np.linalg.norm(points[:, :2].mean(axis=0) - np.asarray(target))) for points in candidates]
    best = int(np.argmin(distances))
    return candidates[best], distances[best]


class FaceAnalyzer:
    """MediaPipe graphs for photos: two face detectors and a static FaceMesh, created on first use.

    Use one per process (:func:`shared_analyzer`) or as a context manager that closes the graphs.
    Calls are serialised with a lock (MediaPipe graphs are not re-entrant).
    """

    def __init__(self, min_detection_confidence: float = MIN_DETECTION_CONFIDENCE) -> None:
        """Store settings only; the graphs are built by the first call that needs them."""
        self.min_detection_confidence = min_detection_confidence
        self._detectors: list[Any] = []
        self._mesh: Any = None
        self._lock = threading.Lock()

    def __enter__(self) -> FaceAnalyzer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Release the MediaPipe graphs (they are rebuilt if the analyzer is used again)."""
        with self._lock:
            for graph in [*self._detectors, self._mesh]:
                if graph is not None:
                    graph.close()
            self._detectors, self._mesh = [], None

    def _build(self) -> None:
        """Create the graphs (full-range detector, short-range detector, static FaceMesh)."""
        solutions = _quiet_mediapipe()
        if not self._detectors:
            self._detectors = [
                solutions.face_detection.FaceDetection(model_selection=selection,
                                                       min_detection_confidence=self.min_detection_confidence)
                for selection in (1, 0)  # 1 = full range, 0 = short range
            ]
        if self._mesh is None:
            self._mesh = solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=2,
                                                      refine_landmarks=True,
                                                      min_detection_confidence=self.min_detection_confidence)

    def _detect_raw(self, rgb: np.ndarray, offset: tuple[int, int] = (0, 0)) -> list[FaceBox]:
        """Both detectors on one contiguous image; boxes shifted by ``offset`` (unmerged)."""
        height, width = rgb.shape[:2]
        with self._lock, native_log.filtered():
            self._build()
            detections = [detection for detector in self._detectors
                          for detection in (detector.process(rgb).detections or [])]
        boxes = [_box_from_detection(detection, width, height) for detection in detections]
        if offset == (0, 0):
            return boxes
        shift = np.array(offset, dtype=np.float32)
        return [FaceBox(x=box.x + offset[0], y=box.y + offset[1], width=box.width, height=box.height,
                        score=box.score, keypoints=box.keypoints + shift) for box in boxes]

    def detect(self, rgb: np.ndarray, tiles: bool = True) -> list[FaceBox]:
        """Faces in an ``(H, W, 3) uint8`` RGB image, largest first (both detectors, merged).

        With ``tiles`` and no face found in an image larger than :data:`DETECT_TILE_PX`, overlapping
        tiles are searched too.
        """
        rgb = _check_rgb(rgb)
        boxes = self._detect_raw(rgb)
        if not boxes and tiles and max(rgb.shape[:2]) > DETECT_TILE_PX:
            for x0, y0 in _tile_origins(rgb.shape[1], rgb.shape[0]):
                tile = np.ascontiguousarray(rgb[y0:y0 + DETECT_TILE_PX, x0:x0 + DETECT_TILE_PX])
                boxes += self._detect_raw(tile, offset=(x0, y0))
        return _merge_boxes(boxes)

    def mesh(self, rgb: np.ndarray, box: FaceBox) -> np.ndarray | None:
        """FaceMesh points of the face in ``box``: ``(478, 3)`` float32 image pixels, or ``None``.

        FaceMesh runs on a square crop around the box; when that finds nothing it runs on the whole
        image and keeps the face nearest the box.
        """
        rgb = _check_rgb(rgb)
        patch, to_image = _square_crop(rgb, box.center, MESH_CROP_SCALE * max(box.width, box.height))
        with self._lock, native_log.filtered():
            self._build()
            in_patch = _mesh_points(self._mesh.process(patch), MESH_CROP_PX, MESH_CROP_PX)
            points, _ = _nearest(in_patch, (MESH_CROP_PX / 2, MESH_CROP_PX / 2))
            if points is not None:
                return _patch_to_image(points, to_image)
            in_image = _mesh_points(self._mesh.process(rgb), rgb.shape[1], rgb.shape[0])
        points, distance = _nearest(in_image, box.center)
        return points if distance <= max(box.width, box.height) else None


def _tile_origins(width: int, height: int) -> list[tuple[int, int]]:
    """Top-left corners of :data:`DETECT_TILE_PX` tiles at half-tile stride covering the image."""
    def starts(length: int) -> list[int]:
        last = max(length - DETECT_TILE_PX, 0)
        return sorted({*range(0, last, DETECT_TILE_PX // 2), last})

    return [(x0, y0) for y0 in starts(height) for x0 in starts(width)]


def _patch_to_image(points: np.ndarray, to_image: np.ndarray) -> np.ndarray:
    """Map ``(478, 3)`` patch-pixel points to image pixels; ``z`` scales like ``x``."""
    scale = to_image[0, 0]
    out = np.empty_like(points)
    out[:, :2] = points[:, :2] * scale + to_image[:, 2]
    out[:, 2] = points[:, 2] * scale
    return out


_shared: FaceAnalyzer | None = None
_shared_lock = threading.Lock()


def shared_analyzer() -> FaceAnalyzer:
    """The process-wide :class:`FaceAnalyzer` (models loaded once, on first use)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = FaceAnalyzer()
        return _shared


def detect_faces(rgb: np.ndarray, analyzer: FaceAnalyzer | None = None) -> list[FaceBox]:
    """Detect faces in an ``(H, W, 3) uint8`` RGB image.

    Returns:
        Boxes in image pixels, largest first (empty when there is no face).
    """
    return (analyzer or shared_analyzer()).detect(rgb)


def _rotation_hint(rgb: np.ndarray, analyzer: FaceAnalyzer, upright_score: float = 0.0) -> int | None:
    """The counter-clockwise rotation (degrees) after which a clearly better face appears, or ``None``.

    With ``upright_score = 0`` (no upright face) any detection counts; otherwise the rotated copy's
    best score must exceed ``upright_score`` by :data:`ROTATION_MARGIN`.
    """
    best_degrees, best_score = None, upright_score + (ROTATION_MARGIN if upright_score > 0 else 0.0)
    for degrees in ROTATIONS_TRIED:
        faces = analyzer.detect(np.rot90(rgb, k=degrees // 90), tiles=False)
        score = max((face.score for face in faces), default=0.0)
        if score > best_score:
            best_degrees, best_score = degrees, score
    return best_degrees


def _check_upright(rgb: np.ndarray, faces: list[FaceBox], source: str, analyzer: FaceAnalyzer) -> None:
    """Raise the rotated-photo error when only weak upright faces exist and a rotated copy does better."""
    top_score = max(face.score for face in faces)
    if top_score >= CONFIDENT_SCORE:
        return
    degrees = _rotation_hint(rgb, analyzer, upright_score=top_score)
    if degrees is not None:
        raise _rotated_face_error(source, degrees)


def _rotated_face_error(source: str, clockwise_deg: int) -> FaceNotFoundError:
    """The error for a face that is upright only after rotating the photo.

    Args:
        clockwise_deg: how far the face is turned clockwise as the photo stands: 90, 180 or 270.
    """
    if clockwise_deg == 180:
        how = "the face appears rotated by 180° (upside down); rotate the photo by 180°"
    elif clockwise_deg == 90:
        how = "the face appears rotated by 90° clockwise; rotate the photo 90° counter-clockwise"
    else:
        how = "the face appears rotated by 90° counter-clockwise; rotate the photo 90° clockwise"
    return FaceNotFoundError(f"no upright face in {source}: {how} (or fix its EXIF orientation) and try again")


def _roll_degrees(points: np.ndarray) -> float:
    """In-plane tilt of the eye line of ``(478|468, 3)`` pixel landmarks, degrees, clockwise positive."""
    left = points[list(_LEFT_EYE_CORNERS), :2].mean(axis=0)
    right = points[list(_RIGHT_EYE_CORNERS), :2].mean(axis=0)
    dx, dy = right - left
    return float(np.degrees(np.arctan2(dy, dx)))


def _raise_no_face(rgb: np.ndarray, source: str, min_face_px: int, analyzer: FaceAnalyzer) -> None:
    """Raise :class:`FaceNotFoundError` with the most helpful message (rotated photo or no face)."""
    degrees = _rotation_hint(rgb, analyzer)
    if degrees is not None:
        # Found after turning the photo `degrees` counter-clockwise: the face is turned that much clockwise.
        raise _rotated_face_error(source, degrees)
    raise FaceNotFoundError(
        f"no face found in {source} (tried MediaPipe full- and short-range detection, also on the photo "
        f"rotated); pass a photo with one clearly visible, roughly frontal face at least {min_face_px} px wide")


def _pick_face(faces: list[FaceBox], face_index: int, source: str) -> FaceBox:
    """Choose ``faces[face_index]``; warn when several faces exist and the default was taken."""
    count = len(faces)
    if not 0 <= face_index < count:
        raise FaceNotFoundError(f"face index {face_index} asked for, but {source} has {count} face"
                                f"{'s' if count != 1 else ''} (index 0 = largest, up to {count - 1}); "
                                "pass a smaller --face-index")
    if count > 1 and face_index == 0:
        warnings.warn(f"{count} faces found in {source}; using the largest (index 0). "
                      f"Pass --face-index N (0 = largest, up to {count - 1}) to pick another.",
                      UserWarning, stacklevel=3)
    return faces[face_index]


def landmarks_image(rgb: np.ndarray, face_index: int = 0, min_face_px: int = MIN_FACE_PX,
                    source: str = "the image", analyzer: FaceAnalyzer | None = None) -> Landmarks:
    """Find one face in a photo and its 478 landmarks.

    Args:
        rgb: ``(H, W, 3) uint8`` RGB photo, upright (see :func:`flowvq_cli.image.load_image`).
        face_index: which face, by size (0 = largest). Several faces and index 0 -> a ``UserWarning``.
        min_face_px: smallest accepted detector-box width in pixels.
        source: how error messages name the photo (usually its path).
        analyzer: MediaPipe graphs to use (default: the process-wide one).

    Returns:
        :class:`Landmarks` with ``points`` ``(478, 3)`` float32 in image pixels.

    Raises:
        FaceNotFoundError: no face, or a face tilted more than :data:`MAX_ROLL_DEG` (the message says
            which way to rotate the photo), or ``face_index`` beyond the number of faces, or FaceMesh
            cannot place landmarks on the detected face.
        FaceTooSmallError: the chosen face is narrower than ``min_face_px``.
    """
    analyzer = analyzer or shared_analyzer()
    rgb = _check_rgb(rgb)
    faces = analyzer.detect(rgb)
    if not faces:
        _raise_no_face(rgb, source, min_face_px, analyzer)
    _check_upright(rgb, faces, source, analyzer)
    box = _pick_face(faces, face_index, source)
    if box.width < min_face_px:
        raise FaceTooSmallError(
            f"the face in {source} is only {box.width:.0f} px wide; FlowVQ needs at least {min_face_px} px: "
            "pass a higher-resolution photo or one where the face fills more of the frame")
    points = analyzer.mesh(rgb, box)
    if points is None:
        raise FaceNotFoundError(
            f"a face was detected in {source} but its landmarks could not be placed (FaceMesh found no face "
            "in it); pass a sharper photo with a roughly frontal, unoccluded face")
    roll = _roll_degrees(points)
    if abs(roll) > MAX_ROLL_DEG:
        raise _rotated_face_error(source, round(roll / 90.0) * 90 % 360)
    height, width = rgb.shape[:2]
    return Landmarks(points=points, box=box, image_size=(width, height), n_faces=len(faces))


def landmarks_file(path: str | os.PathLike[str], face_index: int = 0,
                   min_face_px: int = MIN_FACE_PX) -> tuple[np.ndarray, Landmarks]:
    """Load a photo (:func:`~flowvq_cli.image.load_image`) and find its face's landmarks.

    Returns:
        ``(rgb, landmarks)``: the ``(H, W, 3) uint8`` upright photo and its :class:`Landmarks`.
    """
    from flowvq_cli.image import load_image

    rgb = load_image(path)
    return rgb, landmarks_image(rgb, face_index=face_index, min_face_px=min_face_px, source=str(path))


@dataclass(frozen=True, eq=False)
class FrameLandmarks:
    """Landmarks of the tracked face in one video frame.

    Attributes:
        points: ``(478, 3)`` float32 image pixels; all NaN when the face was lost.
        found: whether the tracked face was seen in this frame.
    """

    points: np.ndarray
    found: bool


@dataclass(frozen=True, eq=False)
class VideoLandmarks:
    """Landmarks of one face through a clip.

    Attributes:
        points: ``(T, 478, 3)`` float32 image pixels; NaN rows where ``found`` is false.
        found: ``(T,)`` bool.
        fps: the clip's frame rate.
        size: ``(width, height)`` of its frames.
    """

    points: np.ndarray
    found: np.ndarray
    fps: float
    size: tuple[int, int]


class VideoLandmarker:
    """Track one face through consecutive frames (FaceMesh in tracking mode).

    The face followed is the largest one (or ``face_index``) in the first frame where any face is detected; in later
    frames the FaceMesh face nearest to where it was last seen is taken, and a frame where no face
    lies within :data:`TRACK_MAX_JUMP` face sizes of it counts as lost (NaN points, ``found=False``).

    Usage::

        with VideoLandmarker() as tracker:
            for frame in iter_frames("clip.mp4"):
                result = tracker.process(frame)      # FrameLandmarks
    """

    def __init__(self, min_detection_confidence: float = MIN_DETECTION_CONFIDENCE,
                 min_tracking_confidence: float = MIN_TRACKING_CONFIDENCE,
                 analyzer: FaceAnalyzer | None = None, face_index: int = 0, source: str = "the video") -> None:
        """Store settings only; the FaceMesh graph is created at the first frame with a face.

        ``face_index`` picks which face of that first frame to follow (0 = largest)."""
        self.face_index = face_index
        self.source = source
        self.min_detection_confidence = min_detection_confidence
        self.min_tracking_confidence = min_tracking_confidence
        self._analyzer = analyzer
        self._mesh: Any = None
        self._warm = False
        self._last_center: tuple[float, float] | None = None
        self._face_size = 0.0

    def __enter__(self) -> VideoLandmarker:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Release the FaceMesh graph and forget the tracked face."""
        if self._mesh is not None:
            self._mesh.close()
        self._mesh, self._last_center, self._face_size, self._warm = None, None, 0.0, False

    def _start(self, rgb: np.ndarray) -> bool:
        """Pick the largest face in ``rgb`` and build a tracking FaceMesh; False when there is none."""
        faces = detect_faces(rgb, self._analyzer)
        if not faces:
            return False
        solutions = _quiet_mediapipe()
        with native_log.filtered():
            self._mesh = solutions.face_mesh.FaceMesh(
                static_image_mode=False, max_num_faces=min(len(faces), TRACK_MAX_FACES), refine_landmarks=True,
                min_detection_confidence=self.min_detection_confidence,
                min_tracking_confidence=self.min_tracking_confidence)
        chosen = _pick_face(faces, self.face_index, self.source)
        self._last_center = chosen.center
        self._face_size = max(chosen.width, chosen.height)
        return True

    def process(self, rgb: np.ndarray) -> FrameLandmarks:
        """Landmarks of the tracked face in the next ``(H, W, 3) uint8`` RGB frame."""
        rgb = _check_rgb(rgb)
        lost = FrameLandmarks(points=np.full((N_LANDMARKS, 3), np.nan, dtype=np.float32), found=False)
        if self._mesh is None and not self._start(rgb):
            return lost
        assert self._last_center is not None
        height, width = rgb.shape[:2]
        if self._warm:
            result = self._mesh.process(rgb)
        else:  # the first inferences print the TFLite start-up notices
            with native_log.filtered():
                result = self._mesh.process(rgb)
            self._warm = True
        candidates = _mesh_points(result, width, height)
        points, distance = _nearest(candidates, self._last_center)
        if points is None or distance > TRACK_MAX_JUMP * self._face_size:
            return lost
        xy = points[:, :2]
        self._last_center = tuple(float(v) for v in xy.mean(axis=0))
        self._face_size = float(np.max(xy.max(axis=0) - xy.min(axis=0)))
        return FrameLandmarks(points=points, found=True)

    def track(self, frames: Iterable[np.ndarray]) -> Iterator[FrameLandmarks]:
        """:meth:`process` over a stream of frames, lazily."""
        for frame in frames:
            yield self.process(frame)


def landmarks_video(path: str | os.PathLike[str], max_frames: int | None = None) -> VideoLandmarks:
    """Track the largest face through a video file.

    Returns:
        :class:`VideoLandmarks` with ``points`` ``(T, 478, 3)`` and ``found`` ``(T,)``.

    Raises:
        InputError: the video cannot be read.
        FaceNotFoundError: no frame shows a face.
    """
    from flowvq_cli.video import iter_frames, probe_video

    info = probe_video(path, exact_frames=False)
    points, found = [], []
    with VideoLandmarker() as tracker:
        for result in tracker.track(iter_frames(path, max_frames=max_frames)):
            points.append(result.points)
            found.append(result.found)
    if not any(found):
        raise FaceNotFoundError(f"no face found in any frame of {Path(path)}; pass a clip that shows one "
                                f"clearly visible, roughly frontal face at least {MIN_FACE_PX} px wide")
    return VideoLandmarks(points=np.stack(points), found=np.asarray(found, dtype=bool), fps=info.fps,
                          size=(info.width, info.height))
