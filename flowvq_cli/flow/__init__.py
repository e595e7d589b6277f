"""Normalizing-flow coefficient generators: ExpFlow (expression, SMM prior) and PoseFlow (head pose).

Trainer-facing API: ``model.nll(batch) -> FlowLoss``, ``model.log_prob(batch)``, ``model.encode(...)``,
``model.sample(...)``, ``ExpFlow.set_latent_bank(z, labels)``, ``save_pretrained`` / ``from_pretrained``.
"""

from .config import COEFF_LAYOUT_VERSION, EXP_DIM, POSE_DIM, ExpFlowConfig, FlowConfig, PoseFlowConfig
from .expflow import EMOTIONS, ExpBatch, ExpFlow, emotion_labels
from .layers import AffineCoupling, FlowCond, InvertibleLinearLU, MultiActNorm
from .manifold import lle_weights, project
from .poseflow import PoseBatch, PoseFlow
from .priors import MixturePrior, StandardNormal, sample_gamma
from .sequence import FlowLoss, loop_latents

__all__ = [
    "COEFF_LAYOUT_VERSION",
    "EMOTIONS",
    "EXP_DIM",
    "POSE_DIM",
    "AffineCoupling",
    "ExpBatch",
    "ExpFlow",
    "ExpFlowConfig",
    "FlowCond",
    "FlowConfig",
    "FlowLoss",
    "InvertibleLinearLU",
    "MixturePrior",
    "MultiActNorm",
    "PoseBatch",
    "PoseFlow",
    "PoseFlowConfig",
    "StandardNormal",
    "emotion_labels",
    "lle_weights",
    "loop_latents",
    "project",
    "sample_gamma",
]
