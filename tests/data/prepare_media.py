"""Small real source media for the ``prepare`` tests: talking-head clips made from the example photo."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np

from flowvq_cli.video import VideoWriter, ffmpeg_exe

CLIP_SIZE = 256
"""Side of the test clips in pixels (the 360² example photo shrunk: fast to track and encode)."""

MAX_ROTATION_DEG = 4.0
MAX_SHIFT_PX = 3.0
"""Per-frame head motion: small enough for FaceMesh to track, large enough that frames differ."""

CORRUPT_BYTES = 4096
"""Size of the garbage file that pretends to be an MP4."""


def _moved(rgb: np.ndarray, t: int, n_frames: int) -> np.ndarray:
    """``rgb`` slightly rotated and shifted, a different amount at each frame ``t``."""
    h, w = rgb.shape[:2]
    phase = 2 * np.pi * t / n_frames
    m = cv2.getRotationMatrix2D((w / 2, h / 2), MAX_ROTATION_DEG * np.sin(phase), 1.0)
    m[0, 2] += MAX_SHIFT_PX * np.cos(phase)
    return cv2.warpAffine(rgb, m, (w, h), borderMode=cv2.BORDER_REFLECT)


def cut_audio(source: Path, target: Path, seconds: float, *, aac: bool = False) -> Path:
    """The first ``seconds`` of ``source`` as WAV (or AAC in ``.m4a`` with ``aac``), via ffmpeg."""
    codec = ["-c:a", "aac", "-b:a", "64k"] if aac else ["-c:a", "pcm_s16le"]
    command = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", str(source),
               "-t", f"{seconds:.3f}", "-vn", *codec, str(target)]
    subprocess.run(command, check=True, capture_output=True)
    return target


def make_video(image: np.ndarray, path: Path, n_frames: int, fps: float, audio: Path | None = None) -> Path:
    """An H.264 clip of ``image`` (resized to :data:`CLIP_SIZE`²) under small head motion, with ``audio`` muxed."""
    rgb = cv2.resize(image, (CLIP_SIZE, CLIP_SIZE), interpolation=cv2.INTER_AREA)
    path.parent.mkdir(parents=True, exist_ok=True)
    with VideoWriter(path, fps=fps, size=(CLIP_SIZE, CLIP_SIZE), audio_path=audio, preset="ultrafast") as writer:
        for t in range(n_frames):
            writer.write(_moved(rgb, t, n_frames))
    return path


def make_corrupt(path: Path) -> Path:
    """Random bytes named like a video."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.random.default_rng(0).integers(0, 256, CORRUPT_BYTES, dtype=np.uint8).tobytes())
    return path


def place(source: Path, target: Path) -> Path:
    """Copy a made clip into a layout tree (a copy, not a link: tests overwrite some of them)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return target
