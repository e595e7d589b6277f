"""The dataset manifest: ``DATASET/manifest.jsonl``, one JSON object per clip (docs/design.md §6).

Every producer (``flowvq prepare mead|hdtf|videos``, ``flowvq synth``) writes this format and every
trainer reads it. A clip line::

    {"id": "M003_angry_3_001", "speaker": "M003", "emotion": "angry", "intensity": 3,
     "split": "train", "fps": 25.0, "frames": 112,
     "paths": {"coeffs": "clips/M003_angry_3_001/coeffs.npy",
               "audio": "clips/M003_angry_3_001/audio.wav",
               "frames": "clips/M003_angry_3_001/frames.mp4"}}

Paths are relative to the dataset folder; ``frames`` is optional (only where image models train).
Splits are by speaker, never by clip: :func:`assign_splits` guarantees that.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from flowvq_cli.errors import InputError
from flowvq_cli.labels import EMOTIONS, INTENSITIES

MANIFEST_NAME = "manifest.jsonl"
SPLITS = ("train", "val", "test")
REQUIRED_PATHS = ("coeffs", "audio")
OPTIONAL_PATHS = ("frames",)
FACE_KEY_FILE = "face.txt"
"""Beside a clip's ``coeffs.npy``, when present: sha256 of the face photo its frames were rendered from
(``flowvq synth`` reshapes one photo into many identity meshes; this says which photo, i.e. which faces a
training split saw)."""
STILL_FILE = "still.png"
"""Beside a clip's ``coeffs.npy``, when present: a 256² photo of the clip's person at rest (``flowvq synth``
renders the source photo with the clip's face shape and the photo's own expression and pose): what a user
of a real clip would analyse with ``flowvq analyze still.png --out id.npz`` to fix the identity with
``--identity``."""


@dataclass(frozen=True)
class Clip:
    """One manifest line. ``paths`` are relative to the dataset root."""

    id: str
    speaker: str
    emotion: str
    intensity: int
    split: str
    fps: float
    frames: int
    paths: dict[str, str] = field(default_factory=dict)

    def path(self, root: Path, key: str) -> Path:
        """Absolute path of one of this clip's files (``coeffs``, ``audio``, ``frames``)."""
        return Path(root) / self.paths[key]

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


class ManifestError(InputError):
    """A manifest line that does not follow the format; the message names the file and line."""


def _validate(obj: dict, where: str) -> Clip:
    missing = [k for k in ("id", "speaker", "emotion", "intensity", "split", "fps", "frames", "paths") if k not in obj]
    if missing:
        raise ManifestError(f"{where}: missing field(s) {', '.join(missing)}")
    if obj["emotion"] not in EMOTIONS:
        raise ManifestError(f"{where}: unknown emotion {obj['emotion']!r}; expected one of {', '.join(EMOTIONS)}")
    if obj["split"] not in SPLITS:
        raise ManifestError(f"{where}: unknown split {obj['split']!r}; expected one of {', '.join(SPLITS)}")
    if int(obj["intensity"]) not in INTENSITIES:
        raise ManifestError(f"{where}: intensity must be 1, 2 or 3, got {obj['intensity']!r}")
    if not float(obj["fps"]) > 0 or int(obj["frames"]) < 1:
        raise ManifestError(f"{where}: fps must be > 0 and frames ≥ 1 (got {obj['fps']}, {obj['frames']})")
    paths = obj["paths"]
    if not isinstance(paths, dict) or any(k not in paths for k in REQUIRED_PATHS):
        raise ManifestError(f"{where}: paths must hold {', '.join(REQUIRED_PATHS)}")
    unknown = set(paths) - set(REQUIRED_PATHS) - set(OPTIONAL_PATHS)
    if unknown:
        raise ManifestError(f"{where}: unknown path key(s) {', '.join(sorted(unknown))}")
    return Clip(id=str(obj["id"]), speaker=str(obj["speaker"]), emotion=obj["emotion"],
                intensity=int(obj["intensity"]), split=obj["split"], fps=float(obj["fps"]),
                frames=int(obj["frames"]), paths={k: str(v) for k, v in paths.items()})


def read_manifest(root: str | Path, *, check_files: bool = True) -> list[Clip]:
    """Read and validate ``root/manifest.jsonl``.

    Raises :class:`ManifestError` naming the line for malformed JSON, unknown emotions/splits, duplicate
    ids, a speaker found in two splits, or (with ``check_files``) a listed file that does not exist.
    """
    root = Path(root)
    path = root / MANIFEST_NAME
    if not path.is_file():
        raise ManifestError(f"{root} is not a FlowVQ dataset (no {MANIFEST_NAME}); "
                            "make one with `flowvq prepare` or `flowvq synth`")
    clips: list[Clip] = []
    seen: set[str] = set()
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path}:{n}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ManifestError(f"{where}: not valid JSON ({exc.msg})") from None
            clip = _validate(obj, where)
            if clip.id in seen:
                raise ManifestError(f"{where}: duplicate clip id {clip.id!r}")
            seen.add(clip.id)
            if check_files:
                for key, rel in clip.paths.items():
                    if not (root / rel).exists():
                        raise ManifestError(f"{where}: {key} file {rel} is missing")
            clips.append(clip)
    _check_speaker_splits(clips, path)
    return clips


def _check_speaker_splits(clips: Iterable[Clip], path: Path) -> None:
    split_of: dict[str, str] = {}
    for c in clips:
        prev = split_of.setdefault(c.speaker, c.split)
        if prev != c.split:
            raise ManifestError(f"{path}: speaker {c.speaker!r} is in both {prev!r} and {c.split!r}; "
                                "splits must be by speaker")


def write_manifest(root: str | Path, clips: Iterable[Clip]) -> Path:
    """Write the whole manifest atomically (temp file + rename), clips sorted by id."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    path = root / MANIFEST_NAME
    tmp = path.with_name(f".{MANIFEST_NAME}.tmp")
    ordered = sorted(clips, key=lambda c: c.id)
    _check_speaker_splits(ordered, path)
    with open(tmp, "w", encoding="utf-8") as fh:
        for c in ordered:
            fh.write(c.to_json() + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


def assign_splits(clips: Iterable[Clip], *, val_speakers: int | float = 0.1, test_speakers: int | float = 0.0,
                  seed: int = 0, fixed: dict[str, str] | None = None) -> list[Clip]:
    """Give every clip the split of its speaker; speakers are drawn at random (seeded).

    ``val_speakers``/``test_speakers``: a count (int) or a fraction of speakers (float); at least one
    speaker stays in train. ``fixed`` maps speakers to a split that overrides the draw.
    """
    clips = list(clips)
    speakers = sorted({c.speaker for c in clips})
    rng = random.Random(seed)
    order = speakers[:]
    rng.shuffle(order)

    def count(spec: int | float) -> int:
        return int(spec) if isinstance(spec, int) else round(spec * len(speakers))

    n_val, n_test = count(val_speakers), count(test_speakers)
    n_val = min(n_val, max(0, len(speakers) - 1))
    n_test = min(n_test, max(0, len(speakers) - 1 - n_val))
    split_of = {s: "train" for s in speakers}
    split_of.update({s: "val" for s in order[:n_val]})
    split_of.update({s: "test" for s in order[n_val : n_val + n_test]})
    split_of.update(fixed or {})
    return [replace(c, split=split_of[c.speaker]) for c in clips]
