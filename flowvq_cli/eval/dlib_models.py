"""dlib's 68-point landmarks and 128-D face embeddings, for M-LMD/F-LMD and identity similarity.

Optional: needs ``dlib`` (the ``dlib-bin`` wheel) and the model files of ``face-recognition-models``
(``shape_predictor_68_face_landmarks.dat``, ``dlib_face_recognition_resnet_model_v1.dat``), both in
the ``eval`` extra. Nothing is imported until :func:`load_dlib_models` is called; when something is
missing it raises :class:`DlibUnavailableError` whose message carries the install hint, which
``evaluate`` turns into an *unavailable* metric.

The model files are located without importing ``face_recognition_models`` (its ``__init__`` needs
``pkg_resources``, which recent setuptools no longer ship): its package folder is found with
``importlib.util.find_spec``.

Faces are found with dlib's HOG frontal-face detector (the box the 68-point predictor was trained
with); when a frame holds several, the largest is used. Identity: the library's Euclidean distance
between 128-D descriptors, where < 0.6 means "same person" (dlib's documented threshold, 99.38 % on
LFW).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from flowvq_cli.errors import InputError

INSTALL_HINT = "pip install '.[eval]'"
LANDMARKS_FILE = "shape_predictor_68_face_landmarks.dat"
EMBEDDING_FILE = "dlib_face_recognition_resnet_model_v1.dat"
SAME_PERSON_DISTANCE = 0.6
"""dlib's threshold: descriptors closer than this belong to the same person."""
SMALL_FRAME = 200
"""Frames whose shorter side is below this are upsampled once by the detector (small faces)."""
NUM_LANDMARKS = 68
EMBEDDING_DIM = 128


class DlibUnavailableError(InputError):
    """dlib or its model files are not installed."""


def model_dir() -> Path:
    """Folder holding the ``face_recognition_models`` ``.dat`` files.

    Raises:
        DlibUnavailableError: the package is not installed.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise DlibUnavailableError("dlib models unavailable: face-recognition-models is not installed "
                                   f"({INSTALL_HINT})")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def _model_file(name: str) -> Path:
    path = model_dir() / name
    if not path.is_file():
        raise DlibUnavailableError(f"dlib models unavailable: {path} is missing; reinstall face-recognition-models "
                                   f"({INSTALL_HINT})")
    return path


@dataclass(frozen=True, eq=False)
class DlibModels:
    """The loaded dlib detector, 68-point predictor and face-embedding network."""

    detector: Any
    predictor: Any
    encoder: Any

    def _shape(self, rgb: np.ndarray) -> Any | None:
        """dlib ``full_object_detection`` of the largest face, or None when none is found."""
        image = np.ascontiguousarray(rgb, dtype=np.uint8)
        upsample = 1 if min(image.shape[:2]) < SMALL_FRAME else 0
        boxes = list(self.detector(image, upsample))
        if not boxes:
            return None
        box = max(boxes, key=lambda b: b.width() * b.height())
        return self.predictor(image, box)

    def landmarks(self, rgb: np.ndarray) -> np.ndarray | None:
        """``(68, 2)`` float64 landmarks (pixels) of the largest face of an ``(H, W, 3)`` uint8 RGB frame."""
        shape = self._shape(rgb)
        if shape is None:
            return None
        return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)

    def embedding(self, rgb: np.ndarray) -> np.ndarray | None:
        """``(128,)`` float64 face descriptor of the largest face, or None when no face is found."""
        shape = self._shape(rgb)
        if shape is None:
            return None
        image = np.ascontiguousarray(rgb, dtype=np.uint8)
        return np.asarray(self.encoder.compute_face_descriptor(image, shape), dtype=np.float64)


def load_dlib_models() -> DlibModels:
    """Load the HOG detector, the 68-point predictor and the ResNet embedding (a few seconds).

    Raises:
        DlibUnavailableError: ``dlib`` or ``face-recognition-models`` is missing.
    """
    try:
        import dlib
    except ImportError as error:
        raise DlibUnavailableError(f"dlib unavailable: the dlib-bin wheel is not installed ({INSTALL_HINT})") from error
    landmarks_path, embedding_path = _model_file(LANDMARKS_FILE), _model_file(EMBEDDING_FILE)
    return DlibModels(detector=dlib.get_frontal_face_detector(),
                      predictor=dlib.shape_predictor(str(landmarks_path)),
                      encoder=dlib.face_recognition_model_v1(str(embedding_path)))


def landmark_track(models: DlibModels, frames: list[np.ndarray]) -> np.ndarray:
    """``(T, 68, 2)`` landmarks of each frame, NaN where no face was found."""
    out = np.full((len(frames), NUM_LANDMARKS, 2), np.nan)
    for t, frame in enumerate(frames):
        points = models.landmarks(frame)
        if points is not None:
            out[t] = points
    return out


def face_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distance between descriptors: ``(..., 128)`` × ``(..., 128)`` → ``(...)``."""
    return np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64), axis=-1)
