"""ExpFlow: emotional expression coefficients (52 ARKit blendshapes) from audio, a source face and an
emotion, as a conditional Glow with a Student's-t mixture prior (paper §3.2, docs/design.md §4).

x_t = exp_t ∈ [0, 1]^52; c_t = [audio a_{t-k..t+k}, source exp s, previous frames x_{t-L..t-1},
emotion e, intensity]; log p(x | c, e) = log p_Z(z | e) + Σ logdet.

Exp parametrisation: the flow works on y = logit(ε + (1 - 2ε) x) (ε = ``exp_eps``, RealNVP's squeeze),
an exact bijection of [0, 1] onto [logit ε, logit(1-ε)] whose log-Jacobian enters the likelihood, so the
NLL is a density over exp itself. The inverse x = (sigmoid(y) - ε) / (1 - 2ε) is exact; sampled y may
fall outside that interval, so generated frames are clamped to [0, 1] (before they are fed back as
history too).

Previous frames before the first one default to the source exp repeated L times (pass ``history`` to
continue a sequence). Intensity: 0 = none/unknown (used for ``talk``), 1..3 = MEAD levels; left out, it is
2 for the MEAD emotions and 0 for ``talk``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from flowvq_cli.face.rig import ARKIT_NAMES
from flowvq_cli.labels import EMOTIONS, TALK_CLASS

from ..errors import UsageError, WeightsError
from . import manifold
from .config import EXP_DIM, ExpFlowConfig
from .priors import MixturePrior
from .sequence import FlowLoss, SequenceFlow, loop_latents

DEFAULT_INTENSITY = 2

EmotionLike = str | int | Sequence[str | int] | Tensor


def emotion_labels(emotion: EmotionLike, batch: int, device: torch.device | str = "cpu") -> Tensor:
    """A name, an index, a list of them or a (B,) tensor -> (B,) long tensor of class indices."""
    if isinstance(emotion, Tensor):
        labels = emotion.to(device=device, dtype=torch.long).reshape(-1)
    else:
        items = list(emotion) if isinstance(emotion, Sequence) and not isinstance(emotion, str) else [emotion]
        for e in items:
            if isinstance(e, str) and e not in EMOTIONS:
                raise UsageError(f"unknown emotion {e!r}; choose one of {', '.join(EMOTIONS)}")
        labels = torch.tensor([EMOTIONS.index(e) if isinstance(e, str) else int(e) for e in items],
                              dtype=torch.long, device=device)
    if labels.numel() == 1:
        labels = labels.expand(batch)
    if labels.shape != (batch,) or labels.min() < 0 or labels.max() >= len(EMOTIONS):
        raise UsageError(f"emotion must give one class in 0..{len(EMOTIONS) - 1} per sequence "
                         f"(batch of {batch}), got {emotion!r}")
    return labels


@dataclass
class ExpBatch:
    """A training batch for ExpFlow (fixed-length windows, no padding)."""

    exp: Tensor  # (B, T, 52) in [0, 1]
    audio: Tensor  # (B, T, F), or (B, T + 2k, F) with k frames of real audio margin on each side
    source: Tensor  # (B, 52) the source face's exp
    emotion: Tensor  # (B,) long, index into EMOTIONS
    intensity: Tensor  # (B,) long, 0 = none (talk), 1..3 = MEAD level
    history: Tensor | None = None  # (B, L, 52) frames before exp[:, 0]; None = source repeated


class ExpFlow(SequenceFlow):
    model_type = "expflow"
    display_name = "ExpFlow"
    component = "expflow"
    config_class = ExpFlowConfig
    resizable_buffers = ("latent_bank", "latent_labels")

    def __init__(self, config: ExpFlowConfig):
        super().__init__(config, EXP_DIM, len(EMOTIONS))
        self.source_proj = nn.Linear(EXP_DIM, config.d_cond)
        self.emotion_emb = nn.Embedding(len(EMOTIONS), config.d_cond)
        self.intensity_emb = nn.Embedding(config.n_intensity + 1, config.d_cond)
        self.prior = MixturePrior(EXP_DIM, len(EMOTIONS), config.prior, config.nu, config.prior_seed)
        self.eps = config.exp_eps
        # training latents per class for manifold projection (set_latent_bank); empty until set
        self.register_buffer("latent_bank", torch.zeros(0, EXP_DIM))  # (N, 52)
        self.register_buffer("latent_labels", torch.zeros(0, dtype=torch.long))  # (N,)
        # the blendshapes the audio drives (jaw*, mouth*): what the consistency loss compares with cons_dims="mouth"
        self.register_buffer("mouth_dims", torch.tensor([n.startswith(("jaw", "mouth")) for n in ARKIT_NAMES]),
                             persistent=False)

    def cons_mask(self) -> Tensor | None:
        return None if self.config.cons_dims == "all" else self.mouth_dims

    # ---- exp <-> flow space

    def to_flow_space(self, x: Tensor) -> tuple[Tensor, Tensor]:
        p = self.eps + (1 - 2 * self.eps) * x.clamp(0.0, 1.0)
        y = p.log() - (-p).log1p()
        logdet = (math.log(1 - 2 * self.eps) - p.log() - (-p).log1p()).sum(-1)  # (B, T)
        return y, logdet

    def from_flow_space(self, y: Tensor) -> Tensor:
        return (torch.sigmoid(y) - self.eps) / (1 - 2 * self.eps)

    def clamp(self, x: Tensor) -> Tensor:
        return x.clamp(0.0, 1.0)

    # ---- conditioning

    def _static(self, source: Tensor, labels: Tensor, intensity: int | Tensor | None) -> Tensor:
        """source (B, 52), labels (B,), intensity -> (B, d_cond)."""
        if intensity is None:
            level = torch.where(labels == TALK_CLASS, 0, DEFAULT_INTENSITY)
        else:
            level = torch.as_tensor(intensity, dtype=torch.long, device=labels.device).expand(labels.shape)
        if level.min() < 0 or level.max() > self.config.n_intensity:
            raise UsageError(f"intensity must be in 0..{self.config.n_intensity}, got {intensity!r}")
        return self.source_proj(source) + self.emotion_emb(labels) + self.intensity_emb(level)

    def _history(self, source: Tensor, history: Tensor | None) -> Tensor:
        if history is not None:
            return history
        return source.unsqueeze(1).expand(-1, self.config.n_history, -1)  # (B, L, 52)

    # ---- training

    def forward(self, batch: ExpBatch, generator: torch.Generator | None = None) -> FlowLoss:
        """L = NLL (class-conditional SMM) + λ_cons · L_cons; see :mod:`flowvq_cli.flow.sequence`.
        In training mode: history dropout, dequantisation noise and actnorm data-init apply."""
        static = self._static(batch.source, batch.emotion, batch.intensity)
        return self._loss(batch.exp, batch.audio, static, batch.emotion,
                          self._history(batch.source, batch.history), generator)

    def nll(self, batch: ExpBatch, generator: torch.Generator | None = None) -> FlowLoss:
        return self(batch, generator)

    def log_prob(self, batch: ExpBatch) -> Tensor:
        """log p(x_t | c_t, e) per frame (B, T), no dropout or noise."""
        static = self._static(batch.source, batch.emotion, batch.intensity)
        return self._log_prob(batch.exp, batch.audio, static, batch.emotion,
                              self._history(batch.source, batch.history))

    # ---- latents: encoding, bank, projection

    def encode(self, exp: Tensor, audio: Tensor, source: Tensor, emotion: EmotionLike,
               intensity: int | Tensor | None = None, history: Tensor | None = None) -> Tensor:
        """Latents of a clip (emotion transfer): exp (B, T, 52), audio (B, T, F), source (B, 52) -> z (B, T, 52)."""
        labels = emotion_labels(emotion, exp.shape[0], exp.device)
        return self._encode(exp, audio, self._static(source, labels, intensity), labels,
                            self._history(source, history))

    @torch.no_grad()
    def set_latent_bank(self, z: Tensor, labels: Tensor, generator: torch.Generator | None = None) -> None:
        """Store training latents for manifold projection: z (N, 52) with labels (N,), or z (B, T, 52) with
        labels (B,), e.g. ``encode`` of the training clips in eval mode. Replaces any earlier bank and keeps
        at most ``bank_per_class`` latents per class (a random subset); saved with the weights."""
        if z.dim() == 3:
            labels = labels.reshape(-1, 1).expand(z.shape[:2])
        z, labels = z.reshape(-1, EXP_DIM), labels.reshape(-1).long()
        keep = []
        for c in labels.unique().tolist():
            rows = (labels == c).nonzero().squeeze(1)
            pick = torch.randperm(rows.numel(), generator=generator)[: self.config.bank_per_class]
            keep.append(rows[pick.to(rows.device)])
        idx = torch.cat(keep) if keep else labels.new_zeros(0)
        self.latent_bank = z[idx].to(self.latent_bank).contiguous()
        self.latent_labels = labels[idx].to(self.latent_labels.device).contiguous()

    def has_latents(self, emotion: EmotionLike) -> bool:
        """Whether the stored training latents cover ``emotion`` (manifold projection is possible)."""
        wanted = set(emotion_labels(emotion, 1).tolist())
        return wanted <= set(self.latent_labels.unique().tolist())

    def project(self, z: Tensor, labels: Tensor) -> Tensor:
        """Manifold projection of z (B, T, 52) onto the bank latents of each sequence's class."""
        missing = set(labels.unique().tolist()) - set(self.latent_labels.unique().tolist())
        if missing:
            names = ", ".join(EMOTIONS[c] for c in sorted(missing))
            raise WeightsError(f"this ExpFlow has no training latents for {names}; call set_latent_bank() "
                               f"after training, or sample with project=False")
        B, T, D = z.shape
        flat_labels = labels.reshape(-1, 1).expand(B, T).reshape(-1)  # (B·T,)
        out = manifold.project(z.reshape(B * T, D), flat_labels, self.latent_bank, self.latent_labels,
                               self.config.manifold_k, self.config.manifold_reg)
        return out.reshape(B, T, D)

    # ---- sampling

    @torch.no_grad()
    def sample(self, audio: Tensor, source_exp: Tensor, emotion: EmotionLike,
               intensity: int | Tensor | None = None, *, generator: torch.Generator | None = None,
               temperature: float = 1.0, project: bool = True, z: Tensor | None = None,
               history: Tensor | None = None) -> Tensor:
        """Generate exp (B, T, 52) in [0, 1] for audio (B, T, F), source_exp (B, 52) and an emotion.

        z=None: draws z_t ~ t_ν(μ_e, τ²I) for every frame (from ``generator``), then, with project=True,
        moves each onto the training-latent manifold. z given (B, T_z, 52), e.g. from ``encode`` on a
        reference clip: used as is (no projection), trimmed to T or looped back and forth to reach T.
        """
        B, T = audio.shape[:2]
        labels = emotion_labels(emotion, B, audio.device)
        if z is None:
            z = self.prior.sample(labels, T, generator, temperature)
            if project:
                z = self.project(z, labels)
        else:
            z = loop_latents(z.to(audio), T)
        static = self._static(source_exp, labels, intensity)
        return self._generate(z, audio, static, labels, self._history(source_exp, history))
