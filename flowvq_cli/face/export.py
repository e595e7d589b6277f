"""Coefficient files for other tools: ``.npz`` (FlowVQ's own) and Live Link Face CSV (avatar tools).

Both ``flowvq analyze`` (coefficients fitted to a photo or video) and ``flowvq generate --coeffs``
(coefficients the flows generated) write through here, atomically (temporary file + rename).

Frames. The pipeline poses a face in its aligned 256² crop (``rig.pose_transform``), and so do the
coefficients ``generate --coeffs`` writes (the photo's crop). ``analyze`` reports poses in the image
instead (:func:`image_pose`): an ``.npz`` says which in its ``pose_frame`` (``"crop"`` or ``"image"``), and
:func:`read_coeffs` gives the pipeline's crop frame back.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from flowvq_cli.errors import OutputError
from flowvq_cli.face import align, rig
from flowvq_cli.fsutil import atomic_write

DEFAULT_FPS = 25.0
LIVE_LINK_HEAD = ("HeadYaw", "HeadPitch", "HeadRoll")
LIVE_LINK_EYES = ("LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll", "RightEyeYaw", "RightEyePitch", "RightEyeRoll")
POSE_FRAMES = ("crop", "image")


def image_pose(pose: np.ndarray, crop_matrix: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """Poses measured in a crop re-expressed in the image (``align.image_frame``): (T, 6) -> (T, 6) float64.

    The crop's similarity (its in-plane rotation, scale and shift) is composed with each pose as a
    rotation matrix and a similarity (``rig.rebase_pose``), so roll becomes the head's roll in the image.
    With the rig's order ``R = Rz(roll) Ry(yaw) Rx(pitch)`` an in-plane turn of the frame changes roll only;
    pitch and yaw are the same in both frames. ``tx, ty`` become half image widths from the image's centre
    and ``log_scale`` is 0 when the eyes are ``rig.REFERENCE_EYE_DISTANCE`` image widths apart.

    Args:
        pose: (T, 6) pitch, yaw, roll, tx, ty, log_scale in the crop of ``crop_matrix``.
        crop_matrix: (T, 2, 3) or (2, 3) image -> crop pixel similarity.
        image_size: (width, height) of the image in pixels.
    """
    frame = align.image_frame(*(int(v) for v in image_size)).matrix
    return rig.rebase_pose(np.atleast_2d(pose), crop_matrix, frame)


def crop_pose(pose: np.ndarray, crop_matrix: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """The inverse of :func:`image_pose`: poses in the image back in the crop of ``crop_matrix``."""
    frame = align.image_frame(*(int(v) for v in image_size)).matrix
    return rig.rebase_pose(np.atleast_2d(pose), frame, crop_matrix)


def check_output(path: Path, *, force: bool) -> None:
    """Fail early if ``path`` exists (without ``force``), is a folder, or its folder is read-only."""
    if path.is_dir():
        raise OutputError(f"{path} is a folder; pass a file name")
    if path.exists() and not force:
        raise OutputError(f"{path} already exists; pass --force to overwrite it")
    parent = path.parent
    if parent.exists() and not os.access(parent, os.W_OK):
        raise OutputError(f"cannot write {path}: folder {parent} is read-only")


def write_atomic(path: str | Path, write: Callable[[Path], None], *, force: bool = False) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it into place.

    The folder is created if missing; on any failure (or Ctrl-C) the temporary file is removed and an
    existing ``path`` is left untouched.
    """
    path = Path(path)
    check_output(path, force=force)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, write, fsync=False)


def write_coeffs_npz(path: str | Path, coeffs: np.ndarray, *, fps: float, identity: np.ndarray | None = None,
                     force: bool = False, pose_frame: str = "crop", **extra: np.ndarray) -> Path:
    """``coeffs`` (T, 58), ``fps``, optional ``identity`` (468, 3) and extra arrays, plus the layout
    version, the names of every coefficient column and ``pose_frame``: ``"crop"`` (the pipeline's, e.g.
    ``generate --coeffs``) or ``"image"`` (``analyze --out``; then ``crop_matrix`` and ``image_size`` must be
    among the extra arrays, so :func:`read_coeffs` can go back to the crop)."""
    if pose_frame not in POSE_FRAMES:
        raise ValueError(f"pose_frame must be one of {POSE_FRAMES}, got {pose_frame!r}")
    if pose_frame == "image" and not {"crop_matrix", "image_size"} <= extra.keys():
        raise ValueError("poses in the image's frame need crop_matrix and image_size beside them")
    arrays = dict(coeffs=np.asarray(coeffs, np.float32), fps=np.float32(fps), pose_frame=np.asarray(pose_frame),
                  coeff_layout_version=np.int32(rig.COEFF_LAYOUT_VERSION), exp_names=np.asarray(rig.ARKIT_NAMES),
                  pose_names=np.asarray(rig.POSE_NAMES), **extra)
    if identity is not None:
        arrays["identity"] = np.asarray(identity, np.float32)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)

    return write_atomic(path, write, force=force)


def live_link_header() -> list[str]:
    """Live Link Face's CSV columns: Timecode, BlendShapeCount, 52 blendshapes, head and eye rotations."""
    shapes = [n[0].upper() + n[1:] for n in rig.ARKIT_NAMES]
    return ["Timecode", "BlendShapeCount", *shapes, *LIVE_LINK_HEAD, *LIVE_LINK_EYES]


def timecode(frame: int, fps: float) -> str:
    """``HH:MM:SS:FF.mmm`` as Live Link Face writes it (frame-based, milliseconds zero)."""
    fps_i = max(1, round(fps))
    seconds, ff = divmod(frame, fps_i)
    hh, rem = divmod(seconds, 3600)
    mm, ss = divmod(rem, 60)
    return f"{hh:02d}:{mm:02d}:{ss:02d}:{ff:02d}.000"


def write_live_link_csv(path: str | Path, coeffs: np.ndarray, *, fps: float = DEFAULT_FPS,
                        force: bool = False) -> Path:
    """One row per frame in Live Link Face's column order. Head rotations are in radians, in the frame of
    the ``coeffs`` given (``analyze`` passes its poses in the image, ``generate --coeffs`` the photo's crop);
    eye rotations are not modelled separately (gaze lives in the eyeLook* blendshapes) and are written as 0."""
    coeffs = np.asarray(coeffs, np.float32)
    pitch, yaw, roll = (rig.N_EXP + rig.POSE_NAMES.index(n) for n in ("pitch", "yaw", "roll"))
    count = rig.N_EXP + len(LIVE_LINK_HEAD) + len(LIVE_LINK_EYES)

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(live_link_header())
            for t, c in enumerate(coeffs):
                w.writerow([timecode(t, fps), count, *(f"{v:.6f}" for v in c[: rig.N_EXP]),
                            *(f"{c[i]:.6f}" for i in (yaw, pitch, roll)), *["0"] * len(LIVE_LINK_EYES)])

    return write_atomic(path, write, force=force)


def read_coeffs(path: str | Path) -> tuple[np.ndarray, float]:
    """Coefficients (T, 58) and fps from a FlowVQ ``.npz`` or a Live Link Face ``.csv`` (columns by name).

    Poses come back in the pipeline's crop frame: an ``.npz`` whose ``pose_frame`` is ``"image"`` (from
    ``analyze --out``) is converted with its ``crop_matrix`` (:func:`crop_pose`). A CSV's head rotations are
    taken as written (``analyze``'s are in the image: they differ from the crop's by the crop's constant
    in-plane turn, a constant roll offset) and it gets tx = ty = log_scale = 0.
    """
    from flowvq_cli.errors import InputError

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} does not exist; pass an .npz from `flowvq analyze --out` or a Live Link CSV")
    if path.suffix.lower() == ".npz":
        with np.load(path, allow_pickle=False) as data:
            if "coeffs" not in data or int(data.get("coeff_layout_version", -1)) != rig.COEFF_LAYOUT_VERSION:
                raise InputError(f"{path} holds no FlowVQ coefficients of layout {rig.COEFF_LAYOUT_VERSION}; "
                                 "make it with `flowvq analyze --out`")
            coeffs = np.array(data["coeffs"], np.float32)
            frame = str(data["pose_frame"]) if "pose_frame" in data else "crop"  # files before pose_frame: crop
            if frame not in POSE_FRAMES:
                raise InputError(f"{path}: unknown pose_frame {frame!r}; make it with `flowvq analyze --out`")
            if frame == "image":
                if "crop_matrix" not in data or "image_size" not in data:
                    raise InputError(f"{path}: poses in the image without crop_matrix/image_size; "
                                     "make it again with `flowvq analyze --out`")
                crops, size = np.asarray(data["crop_matrix"], np.float64), np.asarray(data["image_size"]).ravel()
                if crops.shape not in ((len(coeffs), 2, 3), (2, 3)) or size.shape != (2,) or (size <= 0).any():
                    raise InputError(f"{path}: crop_matrix {crops.shape} / image_size {size.tolist()} do not fit "
                                     f"{len(coeffs)} frames; make it again with `flowvq analyze --out`")
                coeffs[:, rig.N_EXP :] = crop_pose(coeffs[:, rig.N_EXP :], crops, tuple(size))
            return coeffs, float(data["fps"]) or DEFAULT_FPS
    if path.suffix.lower() == ".csv":
        return _read_live_link_csv(path)
    raise InputError(f"{path}: unknown coefficient file type; pass .npz or .csv")


def _read_live_link_csv(path: Path) -> tuple[np.ndarray, float]:
    from flowvq_cli.errors import InputError

    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    if len(rows) < 2:
        raise InputError(f"{path} has no data rows")
    header = rows[0]
    names = [n[0].upper() + n[1:] for n in rig.ARKIT_NAMES]
    missing = [n for n in (*names, *LIVE_LINK_HEAD) if n not in header]
    if missing:
        raise InputError(f"{path} lacks Live Link column(s) {', '.join(missing[:4])}…; pass a Live Link Face CSV")
    col = {n: header.index(n) for n in header}
    try:
        data = np.array([[float(r[col[n]]) for n in (*names, *LIVE_LINK_HEAD)] for r in rows[1:]], np.float32)
    except (ValueError, IndexError) as exc:
        raise InputError(f"{path}: unreadable number in a data row ({exc})") from None
    coeffs = np.zeros((len(data), rig.N_COEFFS), np.float32)
    coeffs[:, : rig.N_EXP] = data[:, : rig.N_EXP]
    yaw, pitch, roll = data[:, rig.N_EXP], data[:, rig.N_EXP + 1], data[:, rig.N_EXP + 2]
    coeffs[:, rig.N_EXP + rig.POSE_NAMES.index("pitch")] = pitch
    coeffs[:, rig.N_EXP + rig.POSE_NAMES.index("yaw")] = yaw
    coeffs[:, rig.N_EXP + rig.POSE_NAMES.index("roll")] = roll
    return coeffs, DEFAULT_FPS
