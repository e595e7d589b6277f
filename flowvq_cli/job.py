"""One generation job's conventions, shared by the API (:mod:`flowvq_cli.api`) and batch files
(:mod:`flowvq_cli.batch`): the default frame rate, the pose keywords, where the video goes and what the job
produced. The API re-exports these names and batch's, so this module sits below both and imports neither.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from flowvq_cli import __version__
from flowvq_cli.errors import OutputError
from flowvq_cli.face import export

DEFAULT_FPS = 25.0
POSE_KINDS = ("generated", "still")


@dataclass
class GenerationResult:
    """What one job produced. ``coeffs`` (T, 58); ``path`` is None when no file was written."""

    path: Path | None
    coeffs: np.ndarray
    fps: float
    seed: int
    emotion: str
    intensity: int
    duration: float
    renderer: str
    weights: str
    timings: dict[str, float] = field(default_factory=dict)
    precision: str = "float32"  # what the renderer computed in (VQIG: bfloat16 / float16 where it uses them)
    bilabials: int | None = None  # p/b/m phones whose lips were shut (``text`` / ``phones``); None: not asked

    @property
    def n_frames(self) -> int:
        return len(self.coeffs)

    def summary(self) -> dict:
        """JSON-ready summary (also written into the MP4's metadata)."""
        return {"output": str(self.path) if self.path else None, "frames": self.n_frames, "fps": self.fps,
                "duration": round(self.duration, 3), "seed": self.seed, "emotion": self.emotion,
                "intensity": self.intensity, "renderer": self.renderer, "precision": self.precision,
                "weights": self.weights, **({} if self.bilabials is None else {"bilabials": self.bilabials}),
                "flowvq_version": __version__, "timings_s": {k: round(v, 3) for k, v in self.timings.items()}}


def default_output_name(face: str | Path, audio: str | Path, emotion: str, seed: int) -> str:
    """``face_speech_angry_s3.mp4`` from the inputs' stems."""
    return f"{Path(face).stem}_{Path(audio).stem}_{emotion}_s{seed}.mp4"


def resolve_output(out: str | Path | None, face: str | Path, audio: str | Path, emotion: str, seed: int,
                   *, force: bool) -> Path:
    """A file path for the video: ``out`` as a file, ``out`` as a folder (created; the name derived from
    the inputs), or the derived name in the current folder. Checked before any work is done."""
    name = default_output_name(face, audio, emotion, seed)
    if out is None:
        path = Path(name)
    else:
        out = Path(out)
        is_folder = out.is_dir() or str(out).endswith(("/", "\\")) or out.suffix == ""
        if is_folder:
            out.mkdir(parents=True, exist_ok=True)
            path = out / name
        else:
            if not out.parent.exists():
                raise OutputError(f"cannot write {out}: folder {out.parent} does not exist; create it, or pass "
                                  f"--out {out.parent}/ to have it created")
            path = out
    export.check_output(path, force=force)
    return path
