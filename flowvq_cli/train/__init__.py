"""Training: the generic engine (:mod:`.loop`) and the component trainers (:mod:`.flows`; the image ones:
:mod:`.codebook`, :mod:`.vqig`, with :mod:`.image_export`; :mod:`.images` names them all)."""

from .codebook import train_codebook
from .flows import (
    DEFAULT_WINDOW_FRAMES,
    PRESETS,
    FlowRunResult,
    compute_latent_bank,
    evaluate_nll,
    export_component,
    load_run_model,
    train_expflow,
    train_poseflow,
)
from .image_common import ImageRunResult
from .image_export import export_image_component, load_image_run_model
from .loop import Adversary, TrainConfig, Trainer, TrainingError, TrainResult
from .vqig import train_vqig

__all__ = [
    "DEFAULT_WINDOW_FRAMES",
    "PRESETS",
    "Adversary",
    "FlowRunResult",
    "ImageRunResult",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "TrainingError",
    "compute_latent_bank",
    "evaluate_nll",
    "export_component",
    "export_image_component",
    "load_image_run_model",
    "load_run_model",
    "train_codebook",
    "train_expflow",
    "train_poseflow",
    "train_vqig",
]
