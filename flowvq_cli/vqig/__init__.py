"""The vector-quantised image generator (VQIG, paper §3.3): source photo + coefficients → frames through the
frozen codebook model. Start at :class:`VQIG` (``generator.py``)."""

from flowvq_cli.vqig.config import VQIGConfig, VQIGLossConfig
from flowvq_cli.vqig.generator import VQIG, SourceCache, VQIGOutput, codebook_fingerprint, trained_codebook_sha256
from flowvq_cli.vqig.losses import CodeLevelLoss, ImageLevelLoss, VQIGBatch
from flowvq_cli.vqig.warp import MeshPrior, flow_from_pixel_map, flow_warm_start_loss, identity_flow, resize_flow, warp

__all__ = [
    "VQIG",
    "CodeLevelLoss",
    "ImageLevelLoss",
    "MeshPrior",
    "SourceCache",
    "VQIGBatch",
    "VQIGConfig",
    "VQIGLossConfig",
    "VQIGOutput",
    "codebook_fingerprint",
    "flow_from_pixel_map",
    "flow_warm_start_loss",
    "identity_flow",
    "resize_flow",
    "trained_codebook_sha256",
    "warp",
]
