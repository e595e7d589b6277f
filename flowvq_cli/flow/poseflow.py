"""PoseFlow: head pose (pitch, yaw, roll, tx, ty, log-scale) from audio and pose history
(paper §3.2, docs/design.md §4).

Same flow steps as ExpFlow, but c_t = [audio a_{t-k..t+k}, previous poses x_{t-L..t-1}] (no source pose,
no emotion), a standard Gaussian prior, and the pose is modelled as is (unconstrained). The caller handles
the pose's scale (the log-scale entry is relative to the source face). Previous poses before the first
frame default to zeros (a frontal, centred, unscaled head); pass ``history`` to continue a sequence.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .config import POSE_DIM, PoseFlowConfig
from .priors import StandardNormal
from .sequence import FlowLoss, SequenceFlow, loop_latents


@dataclass
class PoseBatch:
    """A training batch for PoseFlow (fixed-length windows, no padding)."""

    pose: Tensor  # (B, T, 6)
    audio: Tensor  # (B, T, F), or (B, T + 2k, F) with k frames of real audio margin on each side
    history: Tensor | None = None  # (B, L, 6) poses before pose[:, 0]; None = zeros


class PoseFlow(SequenceFlow):
    model_type = "poseflow"
    display_name = "PoseFlow"
    component = "poseflow"
    config_class = PoseFlowConfig

    def __init__(self, config: PoseFlowConfig):
        super().__init__(config, POSE_DIM, n_classes=1)
        self.prior = StandardNormal(POSE_DIM)

    def _labels(self, x: Tensor) -> Tensor:
        return torch.zeros(x.shape[0], dtype=torch.long, device=x.device)  # the single actnorm class

    def _history(self, x: Tensor, history: Tensor | None) -> Tensor:
        if history is not None:
            return history
        return x.new_zeros(x.shape[0], self.config.n_history, POSE_DIM)  # (B, L, 6)

    def forward(self, batch: PoseBatch, generator: torch.Generator | None = None) -> FlowLoss:
        """L_pose = NLL (Gaussian prior) + λ_cons · L_cons; see :mod:`flowvq_cli.flow.sequence`."""
        x = batch.pose
        return self._loss(x, batch.audio, None, self._labels(x), self._history(x, batch.history), generator)

    def nll(self, batch: PoseBatch, generator: torch.Generator | None = None) -> FlowLoss:
        return self(batch, generator)

    def log_prob(self, batch: PoseBatch) -> Tensor:
        """log p(x_t | c_t) per frame (B, T), no dropout or noise."""
        x = batch.pose
        return self._log_prob(x, batch.audio, None, self._labels(x), self._history(x, batch.history))

    def encode(self, pose: Tensor, audio: Tensor, history: Tensor | None = None) -> Tensor:
        """pose (B, T, 6), audio (B, T, F) -> z (B, T, 6)."""
        return self._encode(pose, audio, None, self._labels(pose), self._history(pose, history))

    @torch.no_grad()
    def sample(self, audio: Tensor, *, generator: torch.Generator | None = None, temperature: float = 1.0,
               z: Tensor | None = None, history: Tensor | None = None) -> Tensor:
        """Generate pose (B, T, 6) for audio (B, T, F). z given (B, T_z, 6): trimmed or looped back and
        forth to T frames, as in ExpFlow.sample."""
        B, T = audio.shape[:2]
        labels = torch.zeros(B, dtype=torch.long, device=audio.device)
        z = self.prior.sample(labels, T, generator, temperature) if z is None else loop_latents(z.to(audio), T)
        return self._generate(z, audio, None, labels, self._history(z, history))
