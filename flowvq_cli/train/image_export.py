"""Export of an image run: its codebook model or VQIG at the newest checkpoint, loaded or written with
``save_pretrained`` into ``run_dir/export/<codebook|vqig>``."""

from __future__ import annotations

import os
from pathlib import Path

from flowvq_cli.modeling import resolve_device
from flowvq_cli.training_state import load_training_state
from flowvq_cli.vq import VQGAN
from flowvq_cli.vqig import VQIG

from .flows import EXPORT_DIRNAME
from .image_common import _ImageRunSpec
from .vqig_objective import StageSchedule, VQIGObjective


def load_image_run_model(run_dir: str | os.PathLike[str], device: str = "cpu") -> VQGAN | VQIG:
    """The codebook model or VQIG of an image run at its newest checkpoint, in eval mode."""
    run_dir = Path(run_dir)
    spec = _ImageRunSpec.load(run_dir)
    state = load_training_state(run_dir / "checkpoints", device="cpu")
    if spec.component == "codebook":
        model: VQGAN | VQIG = spec.build_codebook()
        model.load_state_dict(state.model_state)
    else:
        model = spec.build_vqig()
        VQIGObjective(model, StageSchedule(1, 0, 0)).load_state_dict(state.model_state)
    return model.to(resolve_device(device)).eval()


def export_image_component(run_dir: str | os.PathLike[str], device: str = "cpu") -> Path:
    """``save_pretrained`` an image run's newest checkpoint into ``run_dir/export/<codebook|vqig>``;
    returns that folder. A VQIG export loads with ``VQIG.from_pretrained(dir, codebook=...)`` on the
    codebook recorded in ``run.json``."""
    run_dir = Path(run_dir)
    spec = _ImageRunSpec.load(run_dir)
    return load_image_run_model(run_dir, device).save_pretrained(run_dir / EXPORT_DIRNAME / spec.component)
