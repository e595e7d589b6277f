"""Training: the generic engine (:mod:`.loop`) and the component trainers (:mod:`.flows`, ...)."""

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
from .loop import TrainConfig, Trainer, TrainingError, TrainResult

__all__ = [
    "DEFAULT_WINDOW_FRAMES",
    "PRESETS",
    "FlowRunResult",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "TrainingError",
    "compute_latent_bank",
    "evaluate_nll",
    "export_component",
    "load_run_model",
    "train_expflow",
    "train_poseflow",
]
