"""The analysed photo every renderer starts from: its crop, identity and source coefficients."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flowvq_cli.face import align, rig
from flowvq_cli.face.analyze import Analysis, analyze_rgb
from flowvq_cli.image import load_image

MAX_VIDEO_SIDE = 1920  # photos larger than this are scaled down before pasting back


@dataclass(frozen=True)
class SourceFace:
    """The analysed photo: RGB (H, W, 3), its aligned crop (256, 256, 3), identity, coeffs (58,)."""

    image: np.ndarray
    crop: np.ndarray
    analysis: Analysis

    @property
    def coeffs(self) -> np.ndarray:
        return self.analysis.coeffs[0]

    @property
    def mesh(self) -> np.ndarray:
        """The photo's face in its crop (468, 3) pixels: its own shape posed (the model's fit of it when the
        analysis has no shape)."""
        a = self.analysis
        if a.shape is None:
            return rig.synthesize(a.identity, a.coeffs[:1])[0]
        return rig.default_rig().pose_points(a.shape[None], a.coeffs[:1, rig.POSE_SLICE])[0]

    @property
    def identity(self) -> np.ndarray:
        return self.analysis.identity

    @property
    def crop_matrix(self) -> np.ndarray:
        return self.analysis.crop_matrix[0]


def prepare_face(face: str | Path | np.ndarray, *, face_index: int = 0) -> SourceFace:
    """Load and analyse a photo: its crop, identity and source coefficients (photos larger than
    :data:`MAX_VIDEO_SIDE` are scaled down first)."""
    if isinstance(face, np.ndarray):
        rgb, name = face, "the photo"
    else:
        rgb, name = load_image(face), str(face)
    rgb = _limit_size(rgb)
    analysis = analyze_rgb(rgb, source=name, face_index=face_index)
    crop = align.crop(rgb, align.Alignment.from_matrix(analysis.crop_matrix[0]))
    return SourceFace(image=rgb, crop=crop, analysis=analysis)


def _limit_size(rgb: np.ndarray) -> np.ndarray:
    """Scale photos larger than :data:`MAX_VIDEO_SIDE` down (the video is the photo's size)."""
    import cv2

    h, w = rgb.shape[:2]
    scale = MAX_VIDEO_SIDE / max(h, w)
    if scale >= 1.0:
        return rgb
    return cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
