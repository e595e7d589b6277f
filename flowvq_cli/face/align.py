"""The aligned square face crop: a similarity transform that puts the eyes and mouth on a template.

The template is defined for a 256² crop (scaled for other sizes). Like talking-head crops it leaves
room for hair above and the neck below: the face (brows to chin, cheek to cheek) spans about half
the crop. Three anchor points are fitted in the least-squares sense (Umeyama, no reflection):

- the two **eye centres**, each the mean of that eye's two corners (not the iris: it moves with gaze
  and would make the crop jitter);
- the **mouth centre**, the mean of the two mouth corners (moves little when the jaw opens).

So 468-point meshes (no irises) work as well as 478-point ones. For videos, per-frame alignments can
be smoothed over time (:func:`smooth_alignments`) or replaced by one per clip
(:func:`fixed_alignment`); :func:`video_alignments` does either from tracked landmarks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter1d

TEMPLATE_SIZE = 256
"""Side in pixels of the crop the template constants below are given for."""

TEMPLATE_LEFT_EYE = (103.0, 112.0)
"""Crop position of the centre of the eye on the image's left (the subject's right eye)."""

TEMPLATE_RIGHT_EYE = (153.0, 112.0)
"""Crop position of the centre of the eye on the image's right. Eye distance 50 px (0.2 of the crop):
brows to chin span about half the crop, with room for the hair above and ~55 px of neck below."""

TEMPLATE_MOUTH = (128.0, 156.0)
"""Crop position of the mouth centre (midpoint of the corners), 44 px = 0.88 eye distances below the
eye line: the ratio FaceMesh measures on a frontal adult face (scikit-image's astronaut: 0.87)."""

LEFT_EYE_CORNERS = (33, 133)
"""FaceMesh indices of the outer and inner corner of the eye on the image's left."""

RIGHT_EYE_CORNERS = (362, 263)
"""FaceMesh indices of the inner and outer corner of the eye on the image's right."""

MOUTH_CORNERS = (61, 291)
"""FaceMesh indices of the two mouth corners."""

DEFAULT_SMOOTH_SIGMA = 2.0
"""Gaussian standard deviation, in frames, of :func:`smooth_alignments` (at 25 fps: 80 ms)."""

BorderMode = Literal["replicate", "reflect"]
_BORDER_FLAGS = {"replicate": cv2.BORDER_REPLICATE, "reflect": cv2.BORDER_REFLECT_101}


@dataclass(frozen=True, eq=False)
class Alignment:
    """A similarity transform from image pixels to the pixels of a ``size``² crop.

    Attributes:
        matrix: ``(2, 3)`` float64, ``crop_xy = matrix @ [x, y, 1]``.
        inverse: ``(2, 3)`` float64, crop pixels back to image pixels.
        scale: crop pixels per image pixel (the similarity's isotropic scale).
        size: side of the crop in pixels.
    """

    matrix: np.ndarray
    inverse: np.ndarray
    scale: float
    size: int = TEMPLATE_SIZE

    @classmethod
    def from_matrix(cls, matrix: np.ndarray, size: int = TEMPLATE_SIZE) -> Alignment:
        """Build from a ``(2, 3)`` similarity matrix (image -> crop)."""
        matrix = np.asarray(matrix, dtype=np.float64).reshape(2, 3)
        inverse = cv2.invertAffineTransform(matrix)
        return cls(matrix=matrix, inverse=inverse, scale=float(np.hypot(matrix[0, 0], matrix[1, 0])),
                   size=int(size))

    @classmethod
    def from_params(cls, params: np.ndarray, size: int = TEMPLATE_SIZE) -> Alignment:
        """Build from ``params`` ``(4,)`` = (log scale, angle in radians, centre x, centre y).

        The centre is the image point that lands in the middle of the crop; the angle turns image
        axes into crop axes (``crop = scale * R(angle) @ (image - centre) + size / 2``).
        """
        log_scale, angle, center_x, center_y = (float(v) for v in params)
        scale = np.exp(log_scale)
        linear = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        shift = np.full(2, size / 2.0) - linear @ np.array([center_x, center_y])
        return cls.from_matrix(np.hstack([linear, shift[:, None]]), size=size)

    @property
    def params(self) -> np.ndarray:
        """``(4,)`` float64: (log scale, angle, centre x, centre y); see :meth:`from_params`."""
        angle = np.arctan2(self.matrix[1, 0], self.matrix[0, 0])
        center = self.inverse @ np.array([self.size / 2.0, self.size / 2.0, 1.0])
        return np.array([np.log(self.scale), angle, center[0], center[1]])

    def resized(self, size: int) -> Alignment:
        """The same crop region rendered at ``size``² pixels."""
        factor = size / self.size
        return Alignment.from_matrix(self.matrix * factor, size=size)


def image_frame(width: int, height: int, size: int = TEMPLATE_SIZE) -> Alignment:
    """The whole image seen as a crop: no rotation, the image's centre on the crop's centre, its width
    across the crop (``size / width`` crop pixels per image pixel).

    Poses expressed in it (``rig.rebase_pose`` into its matrix) are the head's pose in the image: angles
    about the image's axes, ``tx, ty`` in half image widths from the image's centre, ``log_scale`` 0 when
    the eyes are ``rig.REFERENCE_EYE_DISTANCE`` image widths apart.

    Raises:
        ValueError: a side that is not positive.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    k = size / float(width)
    half = size / 2.0
    return Alignment.from_matrix(np.array([[k, 0.0, half - k * width / 2.0], [0.0, k, half - k * height / 2.0]]),
                                 size=size)


def template_points(size: int = TEMPLATE_SIZE) -> np.ndarray:
    """``(3, 2)`` float64 crop positions of (left eye, right eye, mouth) for a ``size``² crop."""
    points = np.array([TEMPLATE_LEFT_EYE, TEMPLATE_RIGHT_EYE, TEMPLATE_MOUTH], dtype=np.float64)
    return points * (size / TEMPLATE_SIZE)


def anchor_points(landmarks: np.ndarray) -> np.ndarray:
    """The alignment anchors of FaceMesh landmarks.

    Args:
        landmarks: ``(..., 478 | 468, 2 | 3)`` pixel landmarks.

    Returns:
        ``(..., 3, 2)`` float64: left eye centre, right eye centre, mouth centre.
    """
    points = np.asarray(landmarks, dtype=np.float64)[..., :2]
    if points.shape[-2] not in (468, 478):
        raise ValueError(f"expected 468 or 478 FaceMesh landmarks, got shape {points.shape}")
    groups = (LEFT_EYE_CORNERS, RIGHT_EYE_CORNERS, MOUTH_CORNERS)
    return np.stack([points[..., list(group), :].mean(axis=-2) for group in groups], axis=-2)


def _fit_similarity(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, isotropic scale, shift; no reflection), Umeyama 1991.

    Args:
        source, target: ``(K, 2)`` corresponding points.

    Returns:
        ``(2, 3)`` matrix mapping ``source`` onto ``target``.
    """
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    source_c, target_c = source - source_mean, target - target_mean
    covariance = target_c.T @ source_c / len(source)  # (2, 2)
    u, singular, vt = np.linalg.svd(covariance)
    signs = np.array([1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
    rotation = u @ np.diag(signs) @ vt
    variance = (source_c**2).sum() / len(source)
    if variance <= 1e-12:
        raise ValueError("degenerate landmarks: the eyes and mouth coincide")
    scale = float((singular * signs).sum() / variance)
    shift = target_mean - scale * rotation @ source_mean
    return np.hstack([scale * rotation, shift[:, None]])


def estimate_alignment(landmarks: np.ndarray, size: int = TEMPLATE_SIZE) -> Alignment:
    """Similarity transform that maps a face's eyes and mouth onto the template.

    Args:
        landmarks: ``(478 | 468, 2 | 3)`` FaceMesh landmarks in image pixels.
        size: side of the crop in pixels (the template scales with it).

    Raises:
        ValueError: wrong shape, NaN landmarks (a lost face) or a degenerate configuration.
    """
    anchors = anchor_points(landmarks)
    if not np.isfinite(anchors).all():
        raise ValueError("landmarks contain NaN (face lost in this frame); interpolate or use video_alignments")
    return Alignment.from_matrix(_fit_similarity(anchors, template_points(size)), size=size)


def crop(rgb: np.ndarray, alignment: Alignment, size: int | None = None,
         border: BorderMode = "replicate") -> np.ndarray:
    """Cut the aligned face crop out of an image.

    Args:
        rgb: ``(H, W, 3)`` image (any dtype cv2 can warp; normally uint8 RGB).
        alignment: from :func:`estimate_alignment`.
        size: crop side in pixels; default ``alignment.size``.
        border: how pixels outside the image are filled: ``"replicate"`` (edge pixels) or
            ``"reflect"`` (mirror).

    Returns:
        ``(size, size, 3)`` array of ``rgb``'s dtype. Shrinking by more than 2× first halves the image
        with ``cv2.pyrDown`` (low-pass) so the crop does not alias.
    """
    if size is not None and size != alignment.size:
        alignment = alignment.resized(size)
    image, matrix, level_scale = rgb, alignment.matrix.copy(), alignment.scale
    while level_scale < 0.5 and min(image.shape[:2]) >= 4:
        image = cv2.pyrDown(image)  # pixel p of the half-size image is centred on pixel 2p of the input
        matrix[:, :2] *= 2.0
        level_scale *= 2.0
    return cv2.warpAffine(image, matrix, (alignment.size, alignment.size), flags=cv2.INTER_LINEAR,
                          borderMode=_BORDER_FLAGS[border])


def _apply(points: np.ndarray, matrix: np.ndarray, z_factor: float) -> np.ndarray:
    """Map ``(..., N, 2 | 3)`` points through a ``(2, 3)`` affine matrix; ``z`` multiplied by ``z_factor``."""
    points = np.asarray(points)
    out = np.array(points, dtype=np.result_type(points.dtype, np.float32), copy=True)
    xy = points[..., :2].astype(np.float64)
    out[..., :2] = xy @ matrix[:, :2].T + matrix[:, 2]
    if points.shape[-1] > 2:
        out[..., 2] = points[..., 2] * z_factor
    return out


def transform_landmarks(points: np.ndarray, alignment: Alignment) -> np.ndarray:
    """Image-pixel landmarks to crop pixels.

    Args:
        points: ``(..., N, 3)`` (or ``(..., N, 2)``) image pixels, e.g. ``(478, 3)`` or ``(T, 468, 3)``.

    Returns:
        Same shape: ``x, y`` through the similarity, ``z`` multiplied by its scale (so ``z`` stays in
        the same units as ``x``).
    """
    return _apply(points, alignment.matrix, alignment.scale)


def uncrop_points(points: np.ndarray, alignment: Alignment) -> np.ndarray:
    """Crop-pixel points back to image pixels: the inverse of :func:`transform_landmarks`."""
    return _apply(points, alignment.inverse, 1.0 / alignment.scale)


def _params_array(alignments: Sequence[Alignment]) -> np.ndarray:
    """``(T, 4)`` parameters of a sequence of alignments, angles unwrapped over time."""
    if not alignments:
        raise ValueError("no alignments given")
    params = np.stack([alignment.params for alignment in alignments])
    params[:, 1] = np.unwrap(params[:, 1])
    return params


def smooth_alignments(alignments: Sequence[Alignment],
                      sigma_frames: float = DEFAULT_SMOOTH_SIGMA) -> list[Alignment]:
    """Temporally smooth per-frame alignments so the crops do not jitter.

    Scale (in log), angle and crop centre are low-passed separately with a Gaussian of
    ``sigma_frames`` frames (edges: nearest value); centre rather than matrix shift is smoothed, so a
    rotating head does not make the crop drift.

    Returns:
        One :class:`Alignment` per input frame.
    """
    params = _params_array(alignments)
    if sigma_frames > 0 and len(params) > 1:
        params = gaussian_filter1d(params, sigma=sigma_frames, axis=0, mode="nearest")
    size = alignments[0].size
    return [Alignment.from_params(row, size=size) for row in params]


def fixed_alignment(alignments: Sequence[Alignment]) -> Alignment:
    """One alignment for a whole clip: the per-parameter median (robust to a few bad frames)."""
    return Alignment.from_params(np.median(_params_array(alignments), axis=0), size=alignments[0].size)


def video_alignments(points: np.ndarray, found: np.ndarray | None = None,
                     mode: Literal["smooth", "fixed"] = "smooth",
                     sigma_frames: float = DEFAULT_SMOOTH_SIGMA, size: int = TEMPLATE_SIZE) -> list[Alignment]:
    """Per-frame alignments for a tracked clip.

    Args:
        points: ``(T, 478 | 468, 3)`` image-pixel landmarks (NaN rows where the face was lost).
        found: ``(T,)`` bool; default: frames whose anchors are finite.
        mode: ``"smooth"`` (per-frame, temporally smoothed) or ``"fixed"`` (one crop for the clip).
        sigma_frames: smoothing width for ``"smooth"``.
        size: crop side in pixels.

    Returns:
        ``T`` alignments. Lost frames take parameters interpolated from their neighbours (held at the ends).

    Raises:
        ValueError: no frame has a face, or an unknown ``mode``.
    """
    anchors = anchor_points(points)  # (T, 3, 2)
    valid = np.isfinite(anchors).all(axis=(1, 2))
    if found is not None:
        valid &= np.asarray(found, dtype=bool)
    if not valid.any():
        raise ValueError("no frame has a face to align")
    target = template_points(size)
    measured = _params_array([Alignment.from_matrix(_fit_similarity(anchors[t], target), size=size)
                              for t in np.flatnonzero(valid)])
    frames = np.arange(len(anchors))
    params = np.stack([np.interp(frames, np.flatnonzero(valid), measured[:, k]) for k in range(4)], axis=1)
    per_frame = [Alignment.from_params(row, size=size) for row in params]
    if mode == "smooth":
        return smooth_alignments(per_frame, sigma_frames=sigma_frames)
    if mode == "fixed":
        return [fixed_alignment([per_frame[t] for t in np.flatnonzero(valid)])] * len(per_frame)
    raise ValueError(f"unknown alignment mode {mode!r}; use 'smooth' or 'fixed'")
