"""Coefficient files for other tools: ``.npz`` (FlowVQ's own) and Live Link Face CSV (avatar tools).

Both ``flowvq analyze`` (coefficients fitted to a photo or video) and ``flowvq generate --coeffs``
(coefficients the flows generated) write through here, atomically (temporary file + rename).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from flowvq_cli.errors import OutputError
from flowvq_cli.face import rig
from flowvq_cli.fsutil import atomic_write

DEFAULT_FPS = 25.0
LIVE_LINK_HEAD = ("HeadYaw", "HeadPitch", "HeadRoll")
LIVE_LINK_EYES = ("LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll", "RightEyeYaw", "RightEyePitch", "RightEyeRoll")


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
                     force: bool = False, **extra: np.ndarray) -> Path:
    """``coeffs`` (T, 58), ``fps``, optional ``identity`` (468, 3) and extra arrays, plus the layout
    version and the names of every coefficient column."""
    arrays = dict(coeffs=np.asarray(coeffs, np.float32), fps=np.float32(fps),
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
    """One row per frame in Live Link Face's column order. Head rotations are in radians; eye rotations
    are not modelled separately (gaze lives in the eyeLook* blendshapes) and are written as 0."""
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

    A CSV without FlowVQ's translation/scale columns gets tx = ty = log_scale = 0.
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
            return np.asarray(data["coeffs"], np.float32), float(data["fps"]) or DEFAULT_FPS
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
