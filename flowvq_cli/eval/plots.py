"""Diagnostic plots of ``flowvq evaluate --plots DIR`` (matplotlib, Agg backend, PNG files).

Per clip:

- ``<clip>_sync.png`` — ``jawOpen`` and the audio energy envelope over time (the lip-sync substitute);
- ``<clip>_blinks.png`` — ``eyeBlinkLeft`` / ``eyeBlinkRight`` over time, with the blink threshold;
- ``<clip>_pose.png`` — the six pose tracks (pitch, yaw, roll in degrees; tx, ty, log-scale).

Per group of seeds of the same job:

- ``<group>_diversity.png`` — the trace map: yaw/pitch trajectories of every seed, and the per-frame
  trace of the across-seed pose covariance (the quantity :func:`~flowvq_cli.eval.motion.pose_trace_variance`
  averages).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from flowvq_cli.errors import OutputError

if TYPE_CHECKING:
    from flowvq_cli.eval.run import EvalReport

BLINK_THRESHOLD = 0.5
"""``eyeBlink`` above this counts as closed (drawn as a dashed line)."""
DPI = 100
FIG_SIZE = (9.0, 3.2)
POSE_LABELS = ("pitch (°)", "yaw (°)", "roll (°)", "tx", "ty", "log-scale")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class ClipTracks:
    """Per-frame tracks of one evaluated clip, what the plots draw.

    Attributes:
        name: clip name (file stem), used in file names and titles.
        fps: frame rate.
        jaw_open: ``(T,)`` ARKit ``jawOpen`` in [0, 1].
        blink_left, blink_right: ``(T,)`` ARKit ``eyeBlinkLeft`` / ``eyeBlinkRight``.
        pose: ``(T, 6)`` pitch, yaw, roll (radians), tx, ty, log-scale.
        energy: ``(T,)`` audio energy envelope in dB, or None when no audio was available.
    """

    name: str
    fps: float
    jaw_open: np.ndarray
    blink_left: np.ndarray
    blink_right: np.ndarray
    pose: np.ndarray
    energy: np.ndarray | None = None


def _pyplot() -> ModuleType:
    """``matplotlib.pyplot`` on the non-interactive Agg backend (imported lazily: it is slow)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _safe(name: str) -> str:
    return _UNSAFE.sub("_", name).strip("_") or "clip"


def _save(fig: object, path: Path) -> Path:
    plt = _pyplot()
    fig.tight_layout()  # type: ignore[attr-defined]
    fig.savefig(path, dpi=DPI)  # type: ignore[attr-defined]
    plt.close(fig)
    return path


def plot_sync(tracks: ClipTracks, path: Path) -> Path:
    """jawOpen (left axis) and audio energy in dB (right axis) over time."""
    plt = _pyplot()
    t = np.arange(tracks.jaw_open.size) / tracks.fps
    fig, ax = plt.subplots(figsize=FIG_SIZE)
    ax.plot(t, tracks.jaw_open, color="tab:red", label="jawOpen")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("jawOpen")
    if tracks.energy is not None:
        right = ax.twinx()
        right.plot(np.arange(tracks.energy.size) / tracks.fps, tracks.energy, color="tab:blue", alpha=0.7)
        right.set_ylabel("audio energy (dB)", color="tab:blue")
    ax.set_title(f"{tracks.name}: mouth opening vs audio energy"
                 + ("" if tracks.energy is not None else " (no audio)"))
    return _save(fig, path)


def plot_blinks(tracks: ClipTracks, path: Path) -> Path:
    """eyeBlinkLeft / eyeBlinkRight over time, with the closed-eye threshold."""
    plt = _pyplot()
    t = np.arange(tracks.blink_left.size) / tracks.fps
    fig, ax = plt.subplots(figsize=FIG_SIZE)
    ax.plot(t, tracks.blink_left, label="eyeBlinkLeft")
    ax.plot(t, tracks.blink_right, label="eyeBlinkRight")
    ax.axhline(BLINK_THRESHOLD, color="grey", linestyle="--", linewidth=1)
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel("time (s)")
    ax.legend(loc="upper right")
    ax.set_title(f"{tracks.name}: eye blinks")
    return _save(fig, path)


def _pose_display(pose: np.ndarray) -> np.ndarray:
    """Pose with the three angles in degrees: ``(..., 6)``."""
    out = np.array(pose, dtype=np.float64, copy=True)
    out[..., :3] = np.degrees(out[..., :3])
    return out


def plot_pose(tracks: ClipTracks, path: Path) -> Path:
    """The six pose tracks over time, angles in degrees."""
    plt = _pyplot()
    pose = _pose_display(tracks.pose)  # (T, 6)
    t = np.arange(pose.shape[0]) / tracks.fps
    fig, axes = plt.subplots(2, 1, figsize=(FIG_SIZE[0], 2 * FIG_SIZE[1]), sharex=True)
    for d in range(3):
        axes[0].plot(t, pose[:, d], label=POSE_LABELS[d])
    for d in range(3, 6):
        axes[1].plot(t, pose[:, d], label=POSE_LABELS[d])
    for ax in axes:
        ax.legend(loc="upper right")
    axes[1].set_xlabel("time (s)")
    axes[0].set_title(f"{tracks.name}: head pose")
    return _save(fig, path)


def plot_diversity(name: str, poses: np.ndarray, fps: float, path: Path) -> Path:
    """Trace map of K seeds: yaw/pitch trajectories and the per-frame trace of the pose covariance.

    Args:
        poses: ``(K, T, 6)`` pose tracks of K seeds of the same job.
    """
    plt = _pyplot()
    deg = _pose_display(poses)  # (K, T, 6)
    fig, (left, right) = plt.subplots(1, 2, figsize=(FIG_SIZE[0], 1.3 * FIG_SIZE[1]))
    for k, track in enumerate(deg):
        left.plot(track[:, 1], track[:, 0], linewidth=1, label=f"seed {k}")
    left.set_xlabel("yaw (°)")
    left.set_ylabel("pitch (°)")
    left.set_title("pose trajectories")
    trace = np.asarray(poses, np.float64).var(axis=0).sum(axis=-1)  # (T,)
    right.plot(np.arange(trace.size) / fps, trace, color="tab:purple")
    right.set_xlabel("time (s)")
    right.set_title("trace of across-seed pose covariance")
    fig.suptitle(f"{name}: diversity over {poses.shape[0]} seeds")
    return _save(fig, path)


def write_plots(report_or_tracks: EvalReport | Sequence[ClipTracks], out_dir: str | Path,
                diversity: Mapping[str, np.ndarray] | None = None) -> list[Path]:
    """Write every plot as a PNG into ``out_dir`` (created if missing).

    Args:
        report_or_tracks: an :class:`~flowvq_cli.eval.run.EvalReport` (its tracks and seed groups are
            used) or per-clip :class:`ClipTracks`.
        out_dir: output folder.
        diversity: seed groups ``{name: (K, T, 6) poses}`` when passing tracks (ignored for a report).

    Returns:
        Paths of the written files, in writing order.
    """
    tracks, groups = _inputs(report_or_tracks, diversity)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot create the plot folder {out} ({error.strerror}); pass a writable folder") from error
    written = []
    for clip in tracks:
        stem = _safe(clip.name)
        written += [plot_sync(clip, out / f"{stem}_sync.png"), plot_blinks(clip, out / f"{stem}_blinks.png"),
                    plot_pose(clip, out / f"{stem}_pose.png")]
    fps = tracks[0].fps if tracks else 25.0
    for name, poses in groups.items():
        written.append(plot_diversity(name, np.asarray(poses), fps, out / f"{_safe(name)}_diversity.png"))
    return written


def _inputs(source: EvalReport | Sequence[ClipTracks],
            diversity: Mapping[str, np.ndarray] | None) -> tuple[list[ClipTracks], dict[str, np.ndarray]]:
    """Tracks and seed groups from a report or from explicit arguments."""
    tracks = getattr(source, "tracks", None)
    if tracks is not None:
        return list(tracks), dict(getattr(source, "seed_poses", {}))
    return list(source), dict(diversity or {})  # type: ignore[arg-type]
