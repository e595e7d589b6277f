"""Training: the generic engine (:mod:`.loop`) and the component trainers (:mod:`.flows`, :mod:`.images`)."""

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
from .images import ImageRunResult, export_image_component, load_image_run_model, train_codebook, train_vqig
from .loop import Adversary, TrainConfig, Trainer, TrainingError, TrainResult

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
