"""Resumable training checkpoints, on disk, in safetensors only.

A **training checkpoint** is what a trainer resumes from: ``step-00001000.json`` (step, scalars, the structure
of the optimizer state) next to the tensors it references in a safetensors file. The JSON sidecar is written
last, so a checkpoint exists exactly when its sidecar does; a crash mid-write leaves the previous checkpoints
as they were. Weights for inference are bundles (:mod:`flowvq_cli.bundle`).

Nothing here ever unpickles: ``torch.load`` and ``pickle`` are not used.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from flowvq_cli import __version__
from flowvq_cli.bundle import FileEntry, check_file, utc_now
from flowvq_cli.errors import WeightsError
from flowvq_cli.face.rig import COEFF_LAYOUT_VERSION
from flowvq_cli.fsutil import sha256_file
from flowvq_cli.modeling import SAFETENSORS_SUFFIX, load_safetensors, save_safetensors, write_json

TRAINING_FORMAT = "flowvq-training-state"
TRAINING_FORMAT_VERSION = 1
_STEP_RE = re.compile(r"^step-(\d{8,})\.json$")


@dataclass(frozen=True)
class TrainingState:
    """A resumable training checkpoint as loaded by :func:`load_training_state`.

    ``model_state`` is a flat ``name -> tensor`` dict; ``optimizer_state`` and ``extra`` come back with
    the nesting, key types, tuples and scalars they were saved with (tensors on the requested device).
    """

    path: Path
    step: int
    model_state: dict[str, torch.Tensor]
    optimizer_state: dict[str, Any] | None
    extra: dict[str, Any]
    created: str = ""


def save_training_state(
    path: str | os.PathLike[str],
    model_state: Mapping[str, torch.Tensor],
    optimizer_state: Mapping[str, Any] | None,
    step: int,
    extra: Mapping[str, Any] | None = None,
    keep_last: int | None = None,
) -> Path:
    """Write a resumable checkpoint for ``step`` into the folder ``path``; return its sidecar path.

    Files: ``step-{step:08d}.json`` (step, scalars and the structure of ``optimizer_state``/``extra``)
    and ``step-{step:08d}-{token}.safetensors`` (every tensor, named by where it sits, e.g.
    ``optimizer/state/0/exp_avg``). The tensors are written and fsynced first, the sidecar last, each via
    a temporary file and ``os.replace``: a checkpoint is visible only once complete, and a crash at any
    point leaves all earlier checkpoints (and an earlier save of the same step) intact.

    ``optimizer_state`` and ``extra`` may nest dicts (str or int keys), lists and tuples of tensors,
    numbers, strings, booleans and None — what ``torch.optim.Optimizer.state_dict()`` returns.

    Args:
        path: the run's checkpoint folder (created if needed).
        model_state: ``module.state_dict()``.
        optimizer_state: ``optimizer.state_dict()`` (or None).
        step: the training step this state is at (>= 0).
        extra: anything else to resume (scheduler state, RNG state, EMA weights, ...).
        keep_last: keep only the newest N checkpoints in ``path`` (None keeps all).
    """
    folder = Path(path)
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if keep_last is not None and keep_last < 1:
        raise ValueError(f"keep_last must be >= 1 or None, got {keep_last}")
    tensors: dict[str, torch.Tensor] = {}
    model_keys = list(model_state)
    for key in model_keys:
        tensors[f"model/{key}"] = model_state[key]
    optimizer_tree = _encode(optimizer_state, "optimizer", tensors)
    extra_tree = _encode(dict(extra or {}), "extra", tensors)
    stem = f"step-{step:08d}"
    tensors_name = f"{stem}-{uuid.uuid4().hex[:8]}{SAFETENSORS_SUFFIX}"
    tensors_path = folder / tensors_name
    folder.mkdir(parents=True, exist_ok=True)
    save_safetensors(tensors_path, tensors, {"format": TRAINING_FORMAT})
    sidecar = {
        "format": TRAINING_FORMAT,
        "format_version": TRAINING_FORMAT_VERSION,
        "step": step,
        "created": utc_now(),
        "flowvq_version": __version__,
        "coeff_layout_version": COEFF_LAYOUT_VERSION,
        "tensors": {"file": tensors_name, "sha256": sha256_file(tensors_path),
                    "bytes": tensors_path.stat().st_size},
        "model_keys": model_keys,
        "optimizer": optimizer_tree,
        "extra": extra_tree,
    }
    sidecar_path = folder / f"{stem}.json"
    try:
        write_json(sidecar_path, sidecar, sort_keys=False)
    except BaseException:
        tensors_path.unlink(missing_ok=True)
        raise
    _remove_unreferenced_tensors(folder)
    if keep_last is not None:
        for old in list_training_states(folder)[:-keep_last]:
            _delete_training_state(old)
    return sidecar_path


def list_training_states(path: str | os.PathLike[str]) -> list[Path]:
    """Sidecar paths of the complete checkpoints in folder ``path``, oldest step first."""
    folder = Path(path)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _STEP_RE.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_training_state(path: str | os.PathLike[str]) -> Path | None:
    """Sidecar path of the newest complete checkpoint in folder ``path``, or None if there is none."""
    states = list_training_states(path)
    return states[-1] if states else None


def load_training_state(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> TrainingState:
    """Load a checkpoint written by :func:`save_training_state`.

    Args:
        path: a checkpoint folder (its newest checkpoint is loaded) or one ``step-*.json`` sidecar.
        device: where the tensors go.

    Raises:
        WeightsError: no checkpoint there, or it is damaged (sidecar unreadable, tensors missing,
            truncated or not matching their recorded sha256).
    """
    sidecar_path = Path(path)
    if sidecar_path.is_dir():
        latest = latest_training_state(sidecar_path)
        if latest is None:
            raise WeightsError(f"{sidecar_path} holds no training checkpoint (step-*.json); start without "
                               "--resume or pass the run's checkpoint folder")
        sidecar_path = latest
    sidecar = _read_sidecar(sidecar_path)
    entry = sidecar["tensors"]
    tensors_path = sidecar_path.parent / entry["file"]
    hint = "resume from an earlier checkpoint (pass its step-*.json) or start again"
    check_file(tensors_path.parent, tensors_path.name, FileEntry(entry["sha256"], entry["bytes"]), True, hint)
    tensors = load_safetensors(tensors_path, device)
    try:
        model_state = {key: tensors[f"model/{key}"] for key in sidecar["model_keys"]}
        optimizer_state = _decode(sidecar["optimizer"], tensors)
        extra = _decode(sidecar["extra"], tensors)
    except (KeyError, TypeError, ValueError) as exc:
        raise WeightsError(f"{sidecar_path} does not match {tensors_path.name} ({exc!r}); {hint}") from exc
    return TrainingState(path=sidecar_path, step=int(sidecar["step"]), model_state=model_state,
                         optimizer_state=optimizer_state, extra=extra, created=str(sidecar.get("created", "")))


def _read_sidecar(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise WeightsError(f"{path} does not exist; pass a run's checkpoint folder or one of its step-*.json")
    try:
        sidecar = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WeightsError(f"{path} is not valid JSON ({exc}); resume from an earlier checkpoint") from exc
    if not isinstance(sidecar, dict) or sidecar.get("format") != TRAINING_FORMAT:
        raise WeightsError(f"{path} is not a FlowVQ training checkpoint; pass a step-*.json written by "
                           "save_training_state")
    if sidecar.get("format_version") != TRAINING_FORMAT_VERSION:
        raise WeightsError(f"{path}: training checkpoint format {sidecar.get('format_version')!r} is not "
                           f"supported (this FlowVQ reads {TRAINING_FORMAT_VERSION}); use the FlowVQ that wrote it")
    return sidecar


def _referenced_tensor_files(folder: Path) -> set[str]:
    names: set[str] = set()
    for sidecar in list_training_states(folder):
        try:
            names.add(json.loads(sidecar.read_text(encoding="utf-8"))["tensors"]["file"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return names


def _remove_unreferenced_tensors(folder: Path) -> None:
    """Delete ``step-*.safetensors`` no sidecar refers to (left by a crash or by a re-saved step)."""
    keep = _referenced_tensor_files(folder)
    for path in folder.glob(f"step-*{SAFETENSORS_SUFFIX}"):
        if path.name not in keep:
            path.unlink(missing_ok=True)


def _delete_training_state(sidecar: Path) -> None:
    """Remove a checkpoint: the sidecar first (so it disappears atomically), then its tensors."""
    try:
        tensors_name = json.loads(sidecar.read_text(encoding="utf-8"))["tensors"]["file"]
    except (OSError, ValueError, KeyError, TypeError):
        tensors_name = None
    sidecar.unlink(missing_ok=True)
    if tensors_name:
        (sidecar.parent / tensors_name).unlink(missing_ok=True)


# JSON encoding of nested state: tensors become {"__tensor__": name}, tuples {"__tuple__": [...]},
# dicts with non-string keys {"__dict__": [[key, value], ...]}; everything else is plain JSON.
_TENSOR, _TUPLE, _DICT = "__tensor__", "__tuple__", "__dict__"


def _encode(obj: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """JSON-able structure for ``obj``; its tensors are added to ``tensors`` under unique names."""
    if isinstance(obj, torch.Tensor):
        name = prefix
        n = 1
        while name in tensors:
            n += 1
            name = f"{prefix}#{n}"
        tensors[name] = obj
        return {_TENSOR: name}
    if isinstance(obj, Mapping):
        items = list(obj.items())
        if all(isinstance(k, str) for k, _ in items) and not {_TENSOR, _TUPLE, _DICT} & set(obj):
            return {k: _encode(v, f"{prefix}/{k}", tensors) for k, v in items}
        for key, _ in items:
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                raise TypeError(f"cannot checkpoint a dict key of type {type(key).__name__} at {prefix}")
        return {_DICT: [[k, _encode(v, f"{prefix}/{k}", tensors)] for k, v in items]}
    if isinstance(obj, tuple):
        return {_TUPLE: [_encode(v, f"{prefix}/{i}", tensors) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, f"{prefix}/{i}", tensors) for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot checkpoint a value of type {type(obj).__name__} at {prefix}; store tensors, "
                    "numbers, strings, lists, tuples or dicts")


def _decode(obj: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    """Inverse of :func:`_encode`."""
    if isinstance(obj, dict):
        if set(obj) == {_TENSOR}:
            return tensors[obj[_TENSOR]]
        if set(obj) == {_TUPLE}:
            return tuple(_decode(v, tensors) for v in obj[_TUPLE])
        if set(obj) == {_DICT}:
            return {k: _decode(v, tensors) for k, v in obj[_DICT]}
        return {k: _decode(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    return obj
