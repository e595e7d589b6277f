"""Real corpora → a FlowVQ dataset (the library side of ``flowvq prepare mead|hdtf|videos``; docs/design.md §6).

Three layouts are read into a list of :class:`SourceJob` (clip id, speaker, emotion, intensity, video,
audio):

- ``mead``: ``ROOT/<SPEAKER>/video/front/<emotion>/level_<n>/<NNN>.mp4`` with its audio at
  ``ROOT/<SPEAKER>/audio/<emotion>/level_<n>/<NNN>.m4a``. Emotion folders are MEAD's eight names (angry,
  contempt, disgusted, fear, happy, neutral, sad, surprised); neutral has ``level_1`` only. Where the
  ``.m4a`` is missing the video's own audio track is used and the clip's ``done.json`` notes it. Clip id:
  ``M003_angry_3_001``. Only the frontal camera is used.
- ``hdtf``: ``ROOT/<name>_<idx>.mp4`` (e.g. ``WRA_KellyAyotte_000.mp4``): speaker ``<name>`` (the part
  before the last ``_<digits>``; a name without an index is its own speaker), emotion ``talk`` and
  intensity :data:`HDTF_INTENSITY` (2, the middle level: HDTF is everyday speech, not acted at a
  level). Audio comes from the video's track.
- ``videos``: every video under ``ROOT`` (recursive, by extension), audio from its own track. An
  optional ``labels.csv`` with columns ``file,emotion[,intensity][,speaker]`` (``file`` relative to
  ``ROOT``) labels some of them; the others are ``talk`` at intensity :data:`DEFAULT_INTENSITY`, and
  the speaker defaults to the file stem. The labels are validated before any work starts.

Per clip, ``OUT/clips/<id>/`` receives (each file written to a temporary name and renamed):

- ``coeffs.npy``: ``(T, 58)`` float32 coefficients of every video frame (``face.analyze``).
- ``identity.npy``: ``(468, 3)`` float32 neutral identity mesh.
- ``audio.wav``: 16 kHz mono PCM16, exactly ``round(T / fps * 16000)`` samples: the decoded audio is
  cut at the end of the last video frame, or padded with silence when it stops earlier (a note is kept
  when more than :data:`AUDIO_PAD_NOTE_S` is padded), so frame ``t`` covers samples
  ``[t·16000/fps, (t+1)·16000/fps)``.
- ``frames.mp4`` (with ``frames=True``): the aligned 256² crops at the clip's own fps, silent.
- ``done.json``, written **last**: T, fps, labels, source paths and sizes, coefficient layout version,
  notes. Only a clip with this
  marker counts as done; re-running skips it (unless ``force``, its source video changed size, or
  frames are now asked for and it has none), and a clip folder without a marker is wiped and redone.
  So an interrupted run never leaves a half clip counted, and ``limit`` splits a corpus over runs.

Clips keep their source frame rate (whatever the corpus was recorded at: the frames are never
resampled here); the manifest stores each clip's fps and training resamples to 25 fps. Frames where
the face was lost hold the nearest tracked frame's coefficients (``face.analyze``); ``done.json``
counts the tracked ones (``frames_with_face``). Failures (corrupt video, no face, no audio, …) do not stop
the run: each is one line of ``OUT/errors.jsonl`` (rewritten every run) and an entry of
:attr:`PrepareReport.failed`. At the end the manifest lists **every** done clip in ``OUT`` (earlier runs
included, whatever layout they came from) with speaker-level splits drawn by ``assign_splits`` over
all of their speakers (so adding speakers in a later run can redraw the split; the same set of
speakers and seed always gives the same split).

Parallelism: ``workers > 1`` runs clips in ``spawn``-ed processes (each builds its own MediaPipe
graphs and uses one OpenCV thread); ``workers=1`` runs in the calling process.
"""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import re
import shutil
import sys
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np

from flowvq_cli import stops
from flowvq_cli.audio.load import SAMPLE_RATE, save_wav
from flowvq_cli.data.manifest import Clip, assign_splits, write_manifest
from flowvq_cli.errors import FlowVQError, InputError, OutputError, UsageError
from flowvq_cli.fsutil import atomic_write, save_npy_atomic
from flowvq_cli.labels import EMOTIONS, INTENSITIES, TALK

LAYOUTS: tuple[str, ...] = ("mead", "hdtf", "videos")
"""Source layouts :func:`prepare` reads."""

MEAD_EMOTIONS: tuple[str, ...] = tuple(e for e in EMOTIONS if e != TALK)
"""MEAD's emotion folder names (the same words as our class names)."""

MEAD_VIEW = "front"
"""MEAD camera used (the corpus also has left/right/up/down views)."""

MEAD_AUDIO_SUFFIX = ".m4a"
"""Extension of MEAD's separate audio files."""

HDTF_INTENSITY = 2
"""HDTF clips are everyday speech, not acted at a level: they get the middle intensity."""

DEFAULT_INTENSITY = 2
"""Intensity of a ``videos`` clip whose label gives none (or that has no label)."""

LABEL_COLUMNS_REQUIRED = ("file", "emotion")
LABEL_COLUMNS_OPTIONAL = ("intensity", "speaker")

CLIPS_DIR = "clips"
DONE_NAME = "done.json"
ERRORS_NAME = "errors.jsonl"
COEFFS_NAME = "coeffs.npy"
IDENTITY_NAME = "identity.npy"
AUDIO_NAME = "audio.wav"
FRAMES_NAME = "frames.mp4"
MARKER_VERSION = 1
"""Format version of ``done.json``."""

CROP_SIZE = 256
"""Side of the aligned crops in ``frames.mp4`` (the face template's size)."""

FRAMES_PRESET = "veryfast"
"""x264 preset of ``frames.mp4``: a dataset has many clips, encoding speed matters more than size."""

FRAMES_CRF = 18
"""x264 quality of ``frames.mp4`` (visually lossless)."""

AUDIO_PAD_NOTE_S = 0.1
"""Padding of the audio with silence beyond this many seconds is noted in ``done.json``."""

_LEVEL_RE = re.compile(r"^level_(\d+)$")
_HDTF_RE = re.compile(r"^(?P<speaker>.+)_(?P<index>\d+)$")
_ID_UNSAFE_RE = re.compile(r"[^A-Za-z0-9._-]+")


class LayoutError(InputError):
    """A source folder that does not follow the layout it was given as (the message names the path)."""


class PrepareError(FlowVQError):
    """The run itself failed (not one clip), e.g. a worker process was killed."""


class LabelsError(InputError):
    """A ``labels.csv`` row that cannot be used (the message names the file and line)."""


@dataclass(frozen=True)
class SourceJob:
    """One clip to prepare: its labels and where its video and audio are.

    ``audio`` is ``None`` when the audio comes from the video's own track; ``missing_audio`` is the
    separate audio file the layout expected but did not find (then the track is used, with a note).
    """

    id: str
    speaker: str
    emotion: str
    intensity: int
    video: Path
    audio: Path | None = None
    missing_audio: Path | None = None


@dataclass(frozen=True)
class ClipOutcome:
    """What happened to one job in a worker: ``reason`` is ``None`` on success."""

    id: str
    source: str
    reason: str | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class PrepareReport:
    """The result of :func:`prepare`.

    Attributes:
        done: ids prepared in this run.
        skipped: ids already done by an earlier run (left untouched).
        failed: ``(id, one-line reason)`` of this run's failures (also in ``OUT/errors.jsonl``).
        out: the dataset folder.
        manifest: ``OUT/manifest.jsonl``, or ``None`` when no clip at all is done.
        clips: number of clips in the manifest (all done clips in ``out``, earlier runs included).
        notes: ``(id, note)`` of this run's warnings, e.g. audio taken from the video's track.
    """

    done: list[str]
    skipped: list[str]
    failed: list[tuple[str, str]]
    out: Path
    manifest: Path | None = None
    clips: int = 0
    notes: list[tuple[str, str]] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------- layouts


def _clip_id(text: str) -> str:
    """A file-system and manifest safe clip id (letters, digits, ``.``, ``_``, ``-``)."""
    return _ID_UNSAFE_RE.sub("_", text).strip("._") or "clip"


def _sorted_unique(jobs: list[SourceJob]) -> list[SourceJob]:
    """``jobs`` sorted by id; two sources must not write the same clip folder (ids are sanitised names)."""
    first: dict[str, Path] = {}
    for job in jobs:
        if job.id in first:
            raise LayoutError(f"{first[job.id]} and {job.video} both give the clip id {job.id!r}; rename one of them")
        first[job.id] = job.video
    return sorted(jobs, key=lambda j: j.id)


def _check_root(root: Path) -> None:
    if not root.is_dir():
        raise LayoutError(f"{root} is not a folder; pass the corpus' root folder")


def _mead_job(root: Path, speaker: str, video: Path) -> SourceJob:
    """The job of one MEAD video ``SPEAKER/video/front/<emotion>/level_<n>/<NNN>.mp4``."""
    emotion, level = video.parent.parent.name, video.parent.name
    if emotion not in MEAD_EMOTIONS:
        raise LayoutError(f"{video}: unknown MEAD emotion folder {emotion!r}; expected one of "
                          f"{', '.join(MEAD_EMOTIONS)}")
    match = _LEVEL_RE.match(level)
    if match is None or int(match.group(1)) not in INTENSITIES:
        raise LayoutError(f"{video}: intensity folder {level!r} is not level_1, level_2 or level_3")
    intensity = int(match.group(1))
    audio = root / speaker / "audio" / emotion / level / f"{video.stem}{MEAD_AUDIO_SUFFIX}"
    found = audio.is_file()
    return SourceJob(id=_clip_id(f"{speaker}_{emotion}_{intensity}_{video.stem}"), speaker=speaker,
                     emotion=emotion, intensity=intensity, video=video, audio=audio if found else None,
                     missing_audio=None if found else audio)


def read_mead(root: str | Path) -> list[SourceJob]:
    """Jobs of a MEAD tree (frontal videos; ``.m4a`` audio where present), sorted by id.

    Raises:
        LayoutError: ``root`` is not a folder, holds no MEAD video, or has an unknown emotion/level folder.
    """
    root = Path(root)
    _check_root(root)
    jobs = []
    for speaker_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        front = speaker_dir / "video" / MEAD_VIEW
        jobs += [_mead_job(root, speaker_dir.name, v) for v in sorted(front.glob("*/*/*.mp4"))
                 if not v.name.startswith(".")]
    if not jobs:
        raise LayoutError(f"no MEAD videos under {root}; expected ROOT/<SPEAKER>/video/{MEAD_VIEW}/<emotion>/"
                          "level_<n>/<NNN>.mp4 (e.g. M003/video/front/angry/level_3/001.mp4)")
    return _sorted_unique(jobs)


def read_hdtf(root: str | Path) -> list[SourceJob]:
    """Jobs of an HDTF folder ``ROOT/<name>_<idx>.mp4``: emotion ``talk``, intensity :data:`HDTF_INTENSITY`.

    Raises:
        LayoutError: ``root`` is not a folder or holds no ``.mp4`` file.
    """
    root = Path(root)
    _check_root(root)
    jobs = []
    for video in sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() == ".mp4"
                        and not p.name.startswith(".")):
        match = _HDTF_RE.match(video.stem)
        speaker = match.group("speaker") if match else video.stem
        jobs.append(SourceJob(id=_clip_id(video.stem), speaker=speaker, emotion=TALK, intensity=HDTF_INTENSITY,
                              video=video))
    if not jobs:
        raise LayoutError(f"no HDTF videos in {root}; expected ROOT/<name>_<idx>.mp4 "
                          "(e.g. WRA_KellyAyotte_000.mp4)")
    return _sorted_unique(jobs)


def _find_videos(root: Path, exclude: Path | None) -> list[Path]:
    """Video files under ``root`` (recursive, by extension), skipping hidden files and ``exclude``."""
    from flowvq_cli.video import VIDEO_EXTENSIONS

    excluded = exclude.resolve() if exclude is not None else None
    found = []
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() not in VIDEO_EXTENSIONS or not path.is_file():
            continue
        relative = path.relative_to(root)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if excluded is not None and excluded in path.resolve().parents:
            continue
        found.append(path)
    return found


def read_videos(root: str | Path, labels: str | Path | None = None, *, exclude: str | Path | None = None
                ) -> list[SourceJob]:
    """Jobs of a folder of videos (recursive), labelled by an optional ``labels.csv``.

    The clip id is the path relative to ``root`` without its extension, folders joined by ``__``.

    Args:
        root: folder searched recursively for files with a video extension.
        labels: CSV with columns ``file,emotion[,intensity][,speaker]``; see :func:`read_labels`.
        exclude: a folder to leave out (the output folder when it lies inside ``root``).

    Raises:
        LayoutError: ``root`` is not a folder, holds no video, or two videos map to the same id.
        LabelsError: see :func:`read_labels`.
    """
    root = Path(root)
    _check_root(root)
    videos = _find_videos(root, Path(exclude) if exclude is not None else None)
    if not videos:
        raise LayoutError(f"no videos under {root}; pass a folder holding .mp4/.mov/.mkv/… files")
    relative = {v.relative_to(root).as_posix(): v for v in videos}
    table = read_labels(labels, set(relative)) if labels is not None else {}
    jobs = []
    for rel, video in relative.items():
        emotion, intensity, speaker = table.get(rel, (TALK, DEFAULT_INTENSITY, None))
        clip_id = _clip_id(Path(rel).with_suffix("").as_posix().replace("/", "__"))
        jobs.append(SourceJob(id=clip_id, speaker=speaker or video.stem, emotion=emotion, intensity=intensity,
                              video=video))
    return _sorted_unique(jobs)


def _label_row(row: dict[str, str | None], where: str) -> tuple[str, str, int, str | None]:
    """Validate one labels.csv row → (file, emotion, intensity, speaker or None)."""
    file = (row.get("file") or "").strip()
    emotion = (row.get("emotion") or "").strip().lower()
    if not file:
        raise LabelsError(f"{where}: the file column is empty; give the video's path relative to the folder")
    if emotion not in EMOTIONS:
        raise LabelsError(f"{where}: unknown emotion {emotion!r} for {file}; expected one of {', '.join(EMOTIONS)}")
    text = (row.get("intensity") or "").strip()
    if text and (not text.isdigit() or int(text) not in INTENSITIES):
        raise LabelsError(f"{where}: intensity must be 1, 2 or 3, got {text!r} for {file}")
    speaker = (row.get("speaker") or "").strip() or None
    return Path(file).as_posix(), emotion, int(text) if text else DEFAULT_INTENSITY, speaker


def _check_label_columns(fields: list[str] | None, path: Path) -> None:
    columns = [c.strip() for c in fields or []]
    missing = [c for c in LABEL_COLUMNS_REQUIRED if c not in columns]
    unknown = [c for c in columns if c not in LABEL_COLUMNS_REQUIRED + LABEL_COLUMNS_OPTIONAL]
    if missing or unknown:
        raise LabelsError(f"{path}: header must be file,emotion[,intensity][,speaker] (missing: "
                          f"{', '.join(missing) or 'none'}; unknown: {', '.join(unknown) or 'none'})")


def read_labels(path: str | Path, files: set[str] | None = None) -> dict[str, tuple[str, int, str | None]]:
    """Read ``labels.csv``: ``file → (emotion, intensity, speaker or None)``.

    Columns ``file,emotion[,intensity][,speaker]``; ``file`` is relative to the videos folder, emotion
    one of :data:`~flowvq_cli.labels.EMOTIONS` (case-insensitive), intensity 1–3 (default
    :data:`DEFAULT_INTENSITY`), speaker default the file stem.

    Args:
        path: the CSV file.
        files: the relative paths that exist; a row naming another file is an error.

    Raises:
        LabelsError: unreadable file, bad header, unknown emotion, bad intensity, duplicate or unknown file
            (the message names the line).
    """
    path = Path(path)
    if not path.is_file():
        raise LabelsError(f"labels file not found: {path}; pass a CSV with columns file,emotion[,intensity][,speaker]")
    table: dict[str, tuple[str, int, str | None]] = {}
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh, skipinitialspace=True)
        _check_label_columns(reader.fieldnames, path)
        reader.fieldnames = [c.strip() for c in reader.fieldnames or []]
        for row in reader:
            where = f"{path}:{reader.line_num}"
            file, emotion, intensity, speaker = _label_row(row, where)
            if file in table:
                raise LabelsError(f"{where}: {file} is labelled twice; keep one row per video")
            if files is not None and file not in files:
                raise LabelsError(f"{where}: {file} is not a video in the folder; check the path (relative to it)")
            table[file] = (emotion, intensity, speaker)
    return table


def find_jobs(kind: str, root: str | Path, *, labels: str | Path | None = None,
              exclude: str | Path | None = None) -> list[SourceJob]:
    """The jobs of ``root`` read as layout ``kind`` (one of :data:`LAYOUTS`).

    Raises:
        UsageError: unknown ``kind``, or ``labels`` given for a layout other than ``videos``.
        LayoutError, LabelsError: see the readers.
    """
    if kind not in LAYOUTS:
        raise UsageError(f"unknown layout {kind!r}; use one of {', '.join(LAYOUTS)}")
    if labels is not None and kind != "videos":
        raise UsageError(f"--labels applies to the 'videos' layout only ({kind} folders carry their own labels)")
    if kind == "mead":
        return read_mead(root)
    if kind == "hdtf":
        return read_hdtf(root)
    return read_videos(root, labels, exclude=exclude)


# ---------------------------------------------------------------------------------------------- writing


def save_json(path: Path, obj: dict) -> None:
    """Pretty JSON, atomically and flushed to disk (markers must survive a crash)."""

    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(obj, fh, indent=2, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())

    atomic_write(path, write, fsync=False)


def fit_audio_length(samples: np.ndarray, n_frames: int, fps: float, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Cut or zero-pad ``(N,)`` samples to exactly ``round(n_frames / fps * sr)``: the video's duration."""
    target = round(n_frames / fps * sr)
    if len(samples) >= target:
        return samples[:target]
    return np.concatenate([samples, np.zeros(target - len(samples), dtype=samples.dtype)])


def _write_frames(path: Path, video: Path, crop_matrix: np.ndarray, fps: float) -> None:
    """Aligned ``CROP_SIZE``² crops of every frame (per-frame matrices ``(T, 2, 3)``) → silent H.264 MP4."""
    from flowvq_cli.face.align import Alignment, crop
    from flowvq_cli.video import VideoWriter, iter_frames

    n_frames = len(crop_matrix)
    with VideoWriter(path, fps=fps, size=(CROP_SIZE, CROP_SIZE), force=True, crf=FRAMES_CRF,
                     preset=FRAMES_PRESET) as writer:
        for t, frame in enumerate(iter_frames(video, max_frames=n_frames)):
            writer.write(crop(frame, Alignment.from_matrix(crop_matrix[t], size=CROP_SIZE)))
        if writer.frames_written != n_frames:
            raise InputError(f"{video} decoded to {writer.frames_written} frames on a second read, "
                             f"{n_frames} on the first; re-encode it as H.264 MP4")


def _file_record(path: Path) -> dict:
    return {"path": str(path.resolve()), "size": path.stat().st_size}


def _fresh_clip_dir(out: Path, clip_id: str) -> Path:
    """An empty ``OUT/clips/<id>``: leftovers of an interrupted run (no marker) are removed."""
    clip_dir = out / CLIPS_DIR / clip_id
    if clip_dir.exists():
        shutil.rmtree(clip_dir)
    clip_dir.mkdir(parents=True)
    return clip_dir


def _load_clip_audio(job: SourceJob, n_frames: int, fps: float) -> tuple[np.ndarray, Path, list[str]]:
    """The clip's audio fitted to the video's duration, the file it came from, and notes."""
    from flowvq_cli.audio.load import load_audio

    notes = []
    source = job.audio if job.audio is not None else job.video
    if job.missing_audio is not None:
        notes.append(f"audio file {job.missing_audio} is missing; used the audio track of {job.video.name}")
    samples = load_audio(source).samples
    fitted = fit_audio_length(samples, n_frames, fps)
    padded_s = (len(fitted) - len(samples)) / SAMPLE_RATE
    if padded_s > AUDIO_PAD_NOTE_S:
        notes.append(f"audio is {padded_s:.2f} s shorter than the video; padded with silence")
    return fitted, source, notes


def _write_clip(job: SourceJob, out: Path, frames: bool) -> tuple[str, ...]:
    """Analyse one clip and write its files, the ``done.json`` marker last. Returns the notes."""
    from flowvq_cli.face import rig
    from flowvq_cli.face.analyze import analyze

    analysis = analyze(job.video)
    n_frames, fps = len(analysis.coeffs), float(analysis.fps)
    samples, audio_source, notes = _load_clip_audio(job, n_frames, fps)
    clip_dir = _fresh_clip_dir(out, job.id)
    files = {"coeffs": COEFFS_NAME, "audio": AUDIO_NAME, "identity": IDENTITY_NAME}
    save_npy_atomic(clip_dir / COEFFS_NAME, analysis.coeffs.astype(np.float32), fsync=False)
    save_npy_atomic(clip_dir / IDENTITY_NAME, analysis.identity.astype(np.float32), fsync=False)
    save_wav(clip_dir / AUDIO_NAME, samples)
    if frames:
        _write_frames(clip_dir / FRAMES_NAME, job.video, analysis.crop_matrix, fps)
        files["frames"] = FRAMES_NAME
    marker = {
        "version": MARKER_VERSION, "id": job.id, "speaker": job.speaker, "emotion": job.emotion,
        "intensity": job.intensity, "frames": n_frames, "fps": fps, "frames_with_face": int(analysis.valid.sum()),
        "audio_samples": len(samples), "sample_rate": SAMPLE_RATE, "coeff_layout_version": rig.COEFF_LAYOUT_VERSION,
        "sources": {"video": _file_record(job.video), "audio": _file_record(audio_source)},
        "files": {key: f"{CLIPS_DIR}/{job.id}/{name}" for key, name in files.items()},
        "notes": notes,
    }
    save_json(clip_dir / DONE_NAME, marker)
    return tuple(notes)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def process_job(job: SourceJob, out: Path, frames: bool = True) -> ClipOutcome:
    """Prepare one clip; never raises for a bad clip (the reason comes back in the outcome).

    Known failures (:class:`~flowvq_cli.errors.FlowVQError`) give their message; anything else its type
    and message. A failed clip's folder is removed. Runs in worker processes (a module-level function,
    so it pickles under ``spawn``).
    """
    try:
        notes = _write_clip(job, Path(out), frames)
    except FlowVQError as error:
        reason = _one_line(str(error))
    except Exception as error:  # an unexpected bug must not stop the other clips
        reason = f"{type(error).__name__}: {_one_line(str(error))}"
    else:
        return ClipOutcome(id=job.id, source=str(job.video), notes=notes)
    shutil.rmtree(Path(out) / CLIPS_DIR / job.id, ignore_errors=True)
    return ClipOutcome(id=job.id, source=str(job.video), reason=reason)


# ---------------------------------------------------------------------------------------------- resuming


def read_marker(clip_dir: Path) -> dict | None:
    """The clip's ``done.json``, or ``None`` when it is missing or unreadable (then the clip is not done)."""
    try:
        marker = json.loads((clip_dir / DONE_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) and marker.get("version") == MARKER_VERSION else None


def is_done(job: SourceJob, out: Path, frames: bool = True) -> bool:
    """Whether an earlier run finished ``job``: its marker exists, names the same source video with the
    same size, lists ``frames.mp4`` when frames are asked for, and all listed files exist."""
    marker = read_marker(Path(out) / CLIPS_DIR / job.id)
    if marker is None:
        return False
    try:
        same_source = marker["sources"]["video"]["size"] == job.video.stat().st_size
        files = marker["files"]
    except (KeyError, TypeError, OSError):
        return False
    has_files = all((Path(out) / rel).is_file() for rel in files.values())
    return same_source and has_files and (not frames or "frames" in files)


def collect_clips(out: str | Path) -> list[Clip]:
    """Manifest entries (split ``train``, to be assigned) of every done clip in ``OUT/clips``."""
    clips = []
    for clip_dir in sorted(p for p in (Path(out) / CLIPS_DIR).glob("*") if p.is_dir()):
        marker = read_marker(clip_dir)
        if marker is None:
            continue
        paths = {k: v for k, v in marker["files"].items() if k in ("coeffs", "audio", "frames")}
        clips.append(Clip(id=marker["id"], speaker=marker["speaker"], emotion=marker["emotion"],
                          intensity=int(marker["intensity"]), split="train", fps=float(marker["fps"]),
                          frames=int(marker["frames"]), paths=paths))
    return clips


# ---------------------------------------------------------------------------------------------- running


def _init_worker() -> None:
    """Worker start-up: one OpenCV thread per process (the workers already fill the cores)."""
    import cv2

    cv2.setNumThreads(1)


def _run_serial(jobs: list[SourceJob], out: Path, frames: bool) -> Iterator[ClipOutcome]:
    for job in jobs:
        yield process_job(job, out, frames)


def _run_parallel(jobs: list[SourceJob], out: Path, frames: bool, workers: int) -> Iterator[ClipOutcome]:
    """Jobs over ``workers`` spawned processes (each builds its own MediaPipe graphs); outcomes as they end."""
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=stops.worker_init,
                               initargs=(_init_worker,))
    try:
        futures = [pool.submit(stops.run_task, process_job, job, out, frames) for job in jobs]
        for future in as_completed(futures):
            yield future.result()
    except BrokenProcessPool as error:
        pool.shutdown(wait=False, cancel_futures=True)
        raise PrepareError(f"a worker process died ({error}), e.g. killed for lack of memory; finished clips are "
                           "kept: rerun with fewer --workers, or --workers 1 to see the failing clip") from error
    except BaseException:
        stops.stop_pool(pool)  # workers clean up their temporary files and ffmpeg, then exit
        raise
    pool.shutdown(wait=True)


def _progress(outcomes: Iterable[ClipOutcome], total: int, enabled: bool) -> Iterator[ClipOutcome]:
    """A rich progress bar on stderr around ``outcomes`` (off when disabled or stderr is no terminal)."""
    if not enabled or not sys.stderr.isatty():
        yield from outcomes
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("preparing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task("preparing", total=total)
        for outcome in outcomes:
            yield outcome
            bar.advance(task)


def _log_failure(fh: IO[str], outcome: ClipOutcome) -> None:
    """One line of ``errors.jsonl``: clip id, source video, one-line reason (flushed: survives a crash)."""
    fh.write(json.dumps({"id": outcome.id, "source": outcome.source, "reason": outcome.reason}) + "\n")
    fh.flush()


def _check_options(workers: int, limit: int | None) -> None:
    if workers < 1:
        raise UsageError(f"--workers must be at least 1, got {workers}")
    if limit is not None and limit < 0:
        raise UsageError(f"--limit must be 0 or more, got {limit}")


def _make_out(out: Path) -> None:
    try:
        (out / CLIPS_DIR).mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot create the dataset folder {out} ({error.strerror}); pick a writable place") \
            from error


def prepare(kind: str, root: str | Path, out: str | Path, *, workers: int = 1, labels: str | Path | None = None,
            frames: bool = True, val_speakers: int | float = 0.1, test_speakers: int | float = 0.0, seed: int = 0,
            progress: bool = True, limit: int | None = None, force: bool = False) -> PrepareReport:
    """Turn a corpus into a FlowVQ dataset in ``out`` (resumable; see the module docstring).

    Args:
        kind: source layout, one of :data:`LAYOUTS` (``mead``, ``hdtf``, ``videos``).
        root: the corpus folder.
        out: the dataset folder (created; clips already done there are skipped).
        workers: processes analysing clips in parallel (1 = in this process).
        labels: ``labels.csv`` for the ``videos`` layout.
        frames: also write ``frames.mp4`` (aligned crops; needed only to train the image models).
        val_speakers, test_speakers: speakers held out, a count (int) or a fraction (float).
        seed: seed of the speaker split.
        progress: show a progress bar on stderr (only when it is a terminal).
        limit: prepare at most this many not-yet-done clips in this run (the rest on a later run).
        force: redo the clips of ``root`` that an earlier run finished (others in ``out`` are kept).

    Returns:
        :class:`PrepareReport`. Bad clips do not raise: they are in ``failed`` and ``OUT/errors.jsonl``.

    Raises:
        UsageError: bad option values. LayoutError, LabelsError: the corpus or labels (before any work).
        OutputError: ``out`` cannot be created.
    """
    _check_options(workers, limit)
    root, out = Path(root), Path(out)
    jobs = find_jobs(kind, root, labels=labels, exclude=out)
    _make_out(out)
    done_before = set() if force else {job.id for job in jobs if is_done(job, out, frames)}
    skipped = [job.id for job in jobs if job.id in done_before]
    pending = [job for job in jobs if job.id not in done_before][:limit]
    done, failed, notes = [], [], []
    runner = (_run_serial(pending, out, frames) if workers == 1 or len(pending) <= 1
              else _run_parallel(pending, out, frames, min(workers, len(pending))))
    with open(out / ERRORS_NAME, "w", encoding="utf-8") as errors:
        for outcome in _progress(runner, len(pending), progress):
            if outcome.reason is None:
                done.append(outcome.id)
                notes += [(outcome.id, note) for note in outcome.notes]
            else:
                failed.append((outcome.id, outcome.reason))
                _log_failure(errors, outcome)
    clips = collect_clips(out)
    manifest = None
    if clips:
        split = assign_splits(clips, val_speakers=val_speakers, test_speakers=test_speakers, seed=seed)
        manifest = write_manifest(out, split)
    return PrepareReport(done=sorted(done), skipped=skipped, failed=sorted(failed), out=out, manifest=manifest,
                         clips=len(clips), notes=sorted(notes))
