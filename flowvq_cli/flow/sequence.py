"""What ExpFlow and PoseFlow share: a conditional Glow over coefficient sequences.

x (B, T, D) --to_flow_space--> y --FlowStack(c)--> z,  c_t = ContextEncoder(audio window, x_{t-L..t-1},
static). Training is teacher-forced and parallel over T; sampling runs the inverse one frame at a time
(the previous frames are the ones just generated) with bounded state: the last L frames and each coupling
transformer's key/value cache of W frames, so the cost per frame does not grow with the sequence.

Consistency loss (the paper's formula was lost; this is our choice). With z̃ ~ p_Z(· | e) at temperature
``cons_temperature`` and the same teacher-forced context c, x̂ = f⁻¹(z̃; c) (parallel reverse pass,
differentiable) and

    L_cons = 1/(B (T-1)) Σ_b Σ_{t=2..T} ‖(x̂_t - x̂_{t-1}) - (x_t - x_{t-1})‖²

i.e. a *sampled* sequence must move like the ground truth from frame to frame. (The data's own latents
would give x̂ = x exactly under teacher forcing, hence prior samples.) ExpFlow can restrict the sum to the
mouth and jaw (``cons_dims="mouth"``): those follow the audio, while a blink or a brow raise is a random
event that a sampled sequence should *not* copy from the ground truth, and comparing them teaches the flow
to suppress them (blinks fell from 15 to 4 per minute with λ_cons = 1 on all dimensions).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ..errors import WeightsError
from ..face.rig import face_model_mismatch
from ..modeling import ModelMixin
from .config import COEFF_LAYOUT_VERSION, FACE_MODEL_VERSION, FlowConfig
from .context import ContextEncoder
from .glow import FlowStack
from .layers import FlowCond


@dataclass
class FlowLoss:
    """Training objective of a coefficient flow (all scalars but ``z``)."""

    loss: Tensor  # nll + λ_cons · cons
    nll: Tensor  # -(1/BT) Σ log p(x_t | c_t, e), nats per frame
    cons: Tensor  # L_cons (0 when λ_cons = 0 or T = 1)
    z: Tensor  # (B, T, D) latents of the batch, detached


def loop_latents(z: Tensor, T: int) -> Tensor:
    """Fit given latents (B, T_z, D) to T frames: trim when T <= T_z, else loop back and forth
    (0, 1, …, T_z-1, T_z-2, …, 0, 1, …) so consecutive latents always come from consecutive frames."""
    T_z = z.shape[1]
    if T <= T_z:
        return z[:, :T]
    period = max(2 * (T_z - 1), 1)
    t = torch.arange(T, device=z.device) % period
    return z[:, torch.where(t < T_z, t, period - t)]


class SequenceFlow(ModelMixin, nn.Module):
    """Base class: subclasses set ``model_type``/``config_class``/``component``, build ``self.prior`` and
    override the flow-space maps when their data is constrained. Saved and loaded by
    :class:`~flowvq_cli.modeling.ModelMixin`, which also checks the coefficient layout; the face model version
    is checked here."""

    config_class: ClassVar[type[FlowConfig]]
    coeff_layout_version = COEFF_LAYOUT_VERSION

    def __init__(self, config: FlowConfig, x_dim: int, n_classes: int):
        super().__init__()
        self.config, self.x_dim = config, x_dim
        c = config
        self.context = ContextEncoder(x_dim, c.audio_dim + c.phone_dim, c.audio_context, c.n_history, c.d_cond,
                                      audio_layers=c.audio_layers, audio_hidden=c.audio_hidden)
        self.flow = FlowStack(x_dim, n_classes, c.n_steps, c.d_cond, c.d_model, c.n_heads, c.n_layers,
                              c.ff_mult, c.attn_window)

    # ---- data space <-> flow space (identity here; ExpFlow squeezes [0, 1] through a logit)

    def to_flow_space(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x (B, T, D) -> (y, log|dy/dx| per frame (B, T))."""
        return x, x.new_zeros(x.shape[:2])

    def from_flow_space(self, y: Tensor) -> Tensor:
        return y

    def clamp(self, x: Tensor) -> Tensor:
        """Map a generated frame into the data's valid range."""
        return x

    # ---- core, in terms of x (B, T, D), audio, static (B, d_cond) | None, labels (B,), history (B, L, D)

    def _cond(self, x: Tensor, audio: Tensor, static: Tensor | None, labels: Tensor, history: Tensor,
              drop: bool = False, generator: torch.Generator | None = None) -> FlowCond:
        B, T, _ = x.shape
        hist = self.context.history_windows(x, history)  # (B, T, L·D)
        if drop and self.config.history_dropout > 0:
            keep = torch.rand(B, T, 1, generator=generator, dtype=x.dtype, device=x.device)
            hist = hist * (keep >= self.config.history_dropout)
        return FlowCond(self.context(self.context.static_part(audio, T, static), hist), labels)

    def _latents(self, x: Tensor, cond: FlowCond, noise: float = 0.0,
                 generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """x -> (z (B, T, D), log|det ∂z_t/∂x_t| per frame (B, T))."""
        y, logdet = self.to_flow_space(x)
        if noise > 0:
            y = y + noise * torch.randn(y.shape, generator=generator, dtype=y.dtype, device=y.device)
        z, ld = self.flow(y, cond)
        return z, logdet + ld

    def cons_mask(self) -> Tensor | None:
        """(D,) bool: the dimensions the consistency loss compares (None: all)."""
        return None

    def _loss(self, x: Tensor, audio: Tensor, static: Tensor | None, labels: Tensor, history: Tensor,
              generator: torch.Generator | None = None) -> FlowLoss:
        c = self.config
        cond = self._cond(x, audio, static, labels, history, drop=self.training, generator=generator)
        z, logdet = self._latents(x, cond, c.dequant_std if self.training else 0.0, generator)
        nll = -(self.prior.log_prob(z, labels) + logdet).mean()
        cons = x.new_zeros(())
        if c.cons_weight > 0 and x.shape[1] > 1:
            z_tilde = self.prior.sample(labels, x.shape[1], generator, c.cons_temperature)
            x_hat = self.from_flow_space(self.flow.inverse(z_tilde, cond))
            diff = x_hat.diff(dim=1) - x.diff(dim=1)  # (B, T-1, D)
            mask = self.cons_mask()
            cons = (diff if mask is None else diff[..., mask]).pow(2).sum(-1).mean()
        return FlowLoss(nll + c.cons_weight * cons, nll, cons, z.detach())

    def _log_prob(self, x: Tensor, audio: Tensor, static: Tensor | None, labels: Tensor,
                  history: Tensor) -> Tensor:
        z, logdet = self._latents(x, self._cond(x, audio, static, labels, history))
        return self.prior.log_prob(z, labels) + logdet  # (B, T)

    def _encode(self, x: Tensor, audio: Tensor, static: Tensor | None, labels: Tensor,
                history: Tensor) -> Tensor:
        return self._latents(x, self._cond(x, audio, static, labels, history))[0]

    def _generate(self, z: Tensor, audio: Tensor, static: Tensor | None, labels: Tensor,
                  history: Tensor) -> Tensor:
        """Autoregressive inverse: z (B, T, D) -> x (B, T, D), frame by frame."""
        B, T, _ = z.shape
        static_part = self.context.static_part(audio, T, static)  # (B, T, d_cond)
        states = self.flow.start_stream(labels)
        hist, frames = history, []  # hist: (B, L, D), the last L frames
        # Per-frame tensors are tiny: intra-op threads only add synchronisation (on a busy 2-core CPU each
        # elementwise op then waits ~1 ms), so the loop runs single-threaded.
        n_threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            for t in range(T):
                c_t = self.context(static_part[:, t:t + 1], hist.reshape(B, 1, -1))  # (B, 1, d_cond)
                x_t = self.clamp(self.from_flow_space(self.flow.inverse_step(z[:, t:t + 1], c_t, states)))
                hist = torch.cat([hist[:, 1:], x_t], dim=1)
                frames.append(x_t)
        finally:
            torch.set_num_threads(n_threads)
        return torch.cat(frames, dim=1)

    # ---- save / load: config.json + model.safetensors (flowvq_cli.modeling), with the face model checked

    def config_metadata(self) -> dict[str, Any]:
        return {"face_model_version": FACE_MODEL_VERSION}

    @classmethod
    def check_metadata(cls, meta: Mapping[str, Any], folder: Path) -> None:
        mismatch = face_model_mismatch(meta.get("face_model_version", 1))
        if mismatch:
            raise WeightsError(f"{folder} {mismatch}")
