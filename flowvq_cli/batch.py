"""Batch jobs: many videos from a CSV or JSONL file of jobs, one loaded :class:`~flowvq_cli.api.FlowVQ`.

``flowvq batch`` reads the jobs (:func:`read_jobs`: one row per video, paths relative to the file), keeps
this machine's shard of them (:func:`parse_shard`) and runs them (:func:`run_batch`): a failing row is
reported, never fatal, and several runs may share one output folder. The API re-exports these names, so this
module does not import it: the model is typed by what the jobs call on it (:class:`Runner`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from flowvq_cli.errors import DiskFullError, FlowVQError, InputError, OutputError, UsageError
from flowvq_cli.job import DEFAULT_FPS, POSE_KINDS, GenerationResult, resolve_output

JOB_FIELDS = ("face", "audio", "emotion", "intensity", "seed", "out", "pose", "pose_scale", "temperature", "ref",
              "ref_emotion", "coeffs", "eyes", "text", "phones")
FLAGS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}
"""How a yes/no column (``phones``) may be written, in any case; JSONL may also give a JSON boolean."""


@dataclass(frozen=True)
class Job:
    """One row of a batch file. ``row`` is its 1-based data row number (for messages and reports)."""

    row: int
    face: str
    audio: str
    emotion: str = "neutral"
    intensity: int = 2
    seed: int = 0
    out: str | None = None
    pose: str = "generated"
    pose_scale: float = 1.0
    temperature: float = 1.0
    ref: str | None = None
    ref_emotion: str = "neutral"
    coeffs: str | None = None
    eyes: str = "auto"
    text: str | None = None  # what the speech says: its phones lead the lips
    phones: bool = False  # without text: the phones pocketsphinx recognises lead the lips


def read_jobs(path: str | Path) -> list[Job]:
    """Jobs from a CSV (header row with the field names) or JSONL file; relative paths are taken relative
    to the batch file's folder. Unknown columns and missing face/audio are errors naming the row."""
    import csv

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} does not exist; pass a CSV or JSONL file of jobs")
    if path.suffix.lower() == ".jsonl":
        rows = []
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if line.strip():
                try:
                    rows.append((n, json.loads(line)))
                except json.JSONDecodeError as exc:
                    raise InputError(f"{path}:{n}: not valid JSON ({exc.msg})") from None
    elif path.suffix.lower() == ".csv":
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            rows = [(n, {k: v for k, v in r.items() if v not in (None, "")}) for n, r in enumerate(reader, 2)]
    else:
        raise InputError(f"{path}: batch files are .csv or .jsonl")
    return [_job(path, n, r) for n, r in rows]


def _job(path: Path, n: int, row: dict) -> Job:
    unknown = set(row) - set(JOB_FIELDS)
    if unknown:
        raise InputError(f"{path}:{n}: unknown column(s) {', '.join(sorted(unknown))}; known: {', '.join(JOB_FIELDS)}")
    if "face" not in row or "audio" not in row:
        raise InputError(f"{path}:{n}: every job needs face and audio")
    base = path.parent

    def rel(v: str | None) -> str | None:
        return None if v is None else str(base / v) if not Path(v).is_absolute() else v

    try:
        return Job(row=n, face=rel(row["face"]), audio=rel(row["audio"]), emotion=row.get("emotion", "neutral"),
                   intensity=int(row.get("intensity", 2)), seed=int(row.get("seed", 0)), out=rel(row.get("out")),
                   pose=_job_pose(row.get("pose", "generated"), rel), pose_scale=float(row.get("pose_scale", 1.0)),
                   temperature=float(row.get("temperature", 1.0)), ref=rel(row.get("ref")),
                   ref_emotion=row.get("ref_emotion", "neutral"), coeffs=rel(row.get("coeffs")),
                   eyes=row.get("eyes", "auto"), text=row.get("text") or None, phones=_flag(row.get("phones", False)))
    except ValueError as exc:
        raise InputError(f"{path}:{n}: {exc}") from None


def _flag(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).strip().lower() not in FLAGS:
        raise ValueError(f"phones must be yes or no (or true/false, 1/0), got {value!r}")
    return FLAGS[str(value).strip().lower()]


def _job_pose(pose: str, rel: Callable[[str], str | None]) -> str:
    """A pose keyword stays as is; a coefficient file path is made relative to the batch file."""
    return pose if pose in (*POSE_KINDS, "reference") else str(rel(pose))


def parse_shard(spec: str | None) -> tuple[int, int]:
    """``i/n`` (1-based) → (i, n); None → (1, 1)."""
    if spec is None:
        return 1, 1
    try:
        i, n = (int(x) for x in spec.split("/"))
    except ValueError:
        raise UsageError(f"--shard must look like 2/4 (this machine's part / number of parts), got {spec!r}") from None
    if not 1 <= i <= n:
        raise UsageError(f"--shard {spec}: the part must be between 1 and {n}")
    return i, n


class Runner(Protocol):
    """What runs the jobs: a loaded :class:`flowvq_cli.api.FlowVQ` (its :meth:`generate` and :meth:`transfer`)."""

    def generate(self, face: str, audio: str, *, emotion: str, intensity: int, seed: int, temperature: float,
                 pose: str, pose_scale: float, fps: float, out: Path, paste_back: bool, force: bool,
                 coeffs_out: str | None, eyes: str, text: str | None, phones: bool) -> GenerationResult: ...

    def transfer(self, face: str, audio: str, ref: str, *, ref_emotion: str, seed: int, pose: str,
                 pose_scale: float, fps: float, out: Path, paste_back: bool, force: bool, coeffs_out: str | None,
                 eyes: str, text: str | None, phones: bool) -> GenerationResult: ...


@dataclass
class JobOutcome:
    row: int
    status: str  # "done", "skipped" or "failed"
    output: str | None = None
    error: str | None = None


def run_batch(model: Runner, jobs: list[Job], *, out_dir: str | Path | None = None, shard: tuple[int, int] = (1, 1),
              skip_existing: bool = False, force: bool = False, paste_back: bool = True, fps: float = DEFAULT_FPS,
              on_job: Callable[[JobOutcome], None] | None = None) -> list[JobOutcome]:
    """Run this shard's jobs (rows i, i+n, ...) with one loaded model; a failing row is reported, never
    fatal. Each job's seed is its own, so a row gives the same video wherever it stands in the batch.

    Several runs may share one output folder (see docs/stops.md): every file appears complete or not at
    all; without ``force`` the first run to finish a file keeps it. With ``skip_existing`` a row is also
    skipped when its output is being written by another live run, or was finished by one meanwhile.
    Temporary files that killed runs left in an output folder are removed first. A full disk stops the
    batch (:class:`~flowvq_cli.errors.DiskFullError`) instead of failing every row after it."""
    part, parts = shard
    outcomes = []
    for k, job in enumerate(jobs):
        if k % parts != part - 1:
            continue
        out = job.out or (str(Path(out_dir) / "") if out_dir is not None else None)
        try:
            tag = "transfer" if job.ref else job.emotion.strip().lower()
            target = resolve_output(out, job.face, job.audio, tag, job.seed, force=True)
            outcome = _batch_row(model, job, target, skip_existing=skip_existing, force=force,
                                 paste_back=paste_back, fps=fps)
        except DiskFullError:
            raise  # every later row would fail the same way: stop with the one line
        except FlowVQError as exc:
            outcome = JobOutcome(job.row, "failed", error=str(exc))
        outcomes.append(outcome)
        if on_job is not None:
            on_job(outcome)
    return outcomes


def _batch_row(model: Runner, job: Job, target: Path, *, skip_existing: bool, force: bool, paste_back: bool,
               fps: float) -> JobOutcome:
    """One batch row: skipped (done, or another run is on it), done, or an :class:`OutputError` from the
    run that lost the race to an existing file."""
    from flowvq_cli.fsutil import being_written, sweep_once

    sweep_once(target.parent)
    if skip_existing and (target.exists() or being_written(target)):
        return JobOutcome(job.row, "skipped", str(target))
    try:
        result = _run_job(model, job, target, force=force, paste_back=paste_back, fps=fps)
    except OutputError:
        if skip_existing and not force and target.exists():  # another run finished it first
            return JobOutcome(job.row, "skipped", str(target))
        raise
    return JobOutcome(job.row, "done", str(result.path))


def _run_job(model: Runner, job: Job, target: Path, *, force: bool, paste_back: bool, fps: float) -> GenerationResult:
    if job.ref:
        return model.transfer(job.face, job.audio, job.ref, ref_emotion=job.ref_emotion, seed=job.seed, pose=job.pose,
                              pose_scale=job.pose_scale, fps=fps, out=target, paste_back=paste_back, force=force,
                              coeffs_out=job.coeffs, eyes=job.eyes, text=job.text, phones=job.phones)
    return model.generate(job.face, job.audio, emotion=job.emotion, intensity=job.intensity, seed=job.seed,
                          temperature=job.temperature, pose=job.pose, pose_scale=job.pose_scale, fps=fps, out=target,
                          paste_back=paste_back, force=force, coeffs_out=job.coeffs, eyes=job.eyes, text=job.text,
                          phones=job.phones)
