"""Configs of the two coefficient flows (frozen dataclasses with ``tiny`` / ``mini`` / ``base`` presets).

``tiny`` is for tests, ``mini`` is sized for real-time sampling on a 2-core CPU (docs/design.md §8: well under
1 GFLOP per frame for ExpFlow + PoseFlow together), ``base`` is meant for a GPU.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

# Coefficient layout (docs/design.md §2): exp[0:52] (ARKit blendshapes in [0, 1]), pose[52:58].
from flowvq_cli.audio.phone_track import PHONE_SOURCES
from flowvq_cli.face.rig import COEFF_LAYOUT_VERSION, FACE_MODEL_VERSION, N_EXP, N_POSE
from flowvq_cli.modeling import ConfigMixin

EXP_DIM = N_EXP
POSE_DIM = N_POSE
__all__ = ["COEFF_LAYOUT_VERSION", "EXP_DIM", "FACE_MODEL_VERSION", "POSE_DIM"]


@dataclass(frozen=True)
class FlowConfig(ConfigMixin):
    """Architecture shared by ExpFlow and PoseFlow (``to_dict``/``from_dict``: :class:`ConfigMixin`).

    audio_dim: log-mel features per video frame (F); phone_dim: phone features per video frame after them
    (0: none; :data:`flowvq_cli.audio.phone_track.N_PHONES`: pocketsphinx's phones); phone_source: where the
    training clips' phones come from: "text" (aligned to each clip's text) or "speech" (recognised, as
    ``generate`` hears them when no ``--text`` is given); audio_context: the model sees audio frames t-k..t+k;
    audio_layers / audio_hidden: convolutions (and their width) of the audio encoder over that window (1 = one
    linear map, as bundles made before this field existed);
    n_history: previous frames L in the context; n_steps: Glow steps; d_cond: width of the per-frame
    context vector; d_model / n_heads / n_layers / ff_mult: the coupling transformer; attn_window: how
    many frames (this one included) its causal self-attention sees; history_dropout: probability p of
    zeroing a frame's previous-frames context in training; cons_weight / cons_temperature: λ_cons and the
    prior temperature of the consistency loss; dequant_std: Gaussian noise added in flow space in training
    (spreads the point masses of clipped coefficients).
    """

    audio_dim: int = 320
    phone_dim: int = 0
    phone_source: str = "text"
    audio_context: int = 2
    audio_layers: int = 1
    audio_hidden: int = 128
    n_history: int = 8
    n_steps: int = 4
    d_cond: int = 64
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 1
    ff_mult: int = 2
    attn_window: int = 16
    history_dropout: float = 0.3
    cons_weight: float = 0.1
    cons_temperature: float = 1.0
    dequant_std: float = 0.01

    def __post_init__(self) -> None:
        positive = ("audio_dim", "audio_layers", "audio_hidden", "n_history", "n_steps", "d_cond", "d_model",
                    "n_heads", "n_layers", "ff_mult", "attn_window")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{type(self).__name__}.{name} must be >= 1, got {getattr(self, name)}")
        if self.phone_dim < 0:
            raise ValueError(f"phone_dim must be >= 0, got {self.phone_dim}")
        if self.phone_source not in PHONE_SOURCES:
            raise ValueError(f"phone_source must be one of {', '.join(PHONE_SOURCES)}, got {self.phone_source!r}")
        if self.audio_context < 0:
            raise ValueError(f"audio_context must be >= 0, got {self.audio_context}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by n_heads={self.n_heads}")
        if not 0.0 <= self.history_dropout < 1.0:
            raise ValueError(f"history_dropout must be in [0, 1), got {self.history_dropout}")


def with_overrides(config: FlowConfig, assignments: list[str]) -> FlowConfig:
    """``config`` with ``KEY=VALUE`` assignments applied (values parsed as the field's type).

    Raises:
        ValueError: a malformed assignment, an unknown key (the message lists the known ones) or a value
            the field cannot take.
    """
    fields = [f.name for f in dataclasses.fields(config)]
    changes: dict[str, Any] = {}
    for item in assignments:
        key, sep, raw = item.partition("=")
        key, raw = key.strip(), raw.strip()
        if not sep or not key or not raw:
            raise ValueError(f"--set {item!r} is not KEY=VALUE (e.g. --set audio_context=6)")
        if key not in fields:
            raise ValueError(f"--set {key}: unknown {type(config).__name__} field; known: {', '.join(fields)}")
        kind = type(getattr(config, key))
        try:
            changes[key] = kind(float(raw)) if kind is int and float(raw).is_integer() else kind(raw)
        except ValueError:
            raise ValueError(f"--set {key}={raw}: expected a {kind.__name__}") from None
    return dataclasses.replace(config, **changes)


@dataclass(frozen=True)
class ExpFlowConfig(FlowConfig):
    """ExpFlow: adds the prior (SMM, or GMM for the ablation), which blendshapes the consistency loss
    compares (``cons_dims``: all, or the mouth and jaw only; see :mod:`flowvq_cli.flow.sequence`), intensity
    levels, the exp↔flow-space squeeze ``exp_eps`` and manifold projection (k neighbours, LLE regulariser,
    bank size per class)."""

    prior: Literal["smm", "gmm"] = "smm"
    cons_dims: Literal["all", "mouth"] = "all"
    nu: float = 5.0
    prior_seed: int = 0
    n_intensity: int = 3
    exp_eps: float = 0.05
    manifold_k: int = 8
    manifold_reg: float = 1e-3
    bank_per_class: int = 4096

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.cons_dims not in ("all", "mouth"):
            raise ValueError(f"cons_dims must be 'all' or 'mouth', got {self.cons_dims!r}")
        if self.prior not in ("smm", "gmm"):
            raise ValueError(f"prior must be 'smm' or 'gmm', got {self.prior!r}")
        if self.nu <= 0:
            raise ValueError(f"nu must be > 0, got {self.nu}")
        if not 0.0 < self.exp_eps < 0.5:
            raise ValueError(f"exp_eps must be in (0, 0.5), got {self.exp_eps}")

    @classmethod
    def tiny(cls) -> ExpFlowConfig:
        return cls(audio_dim=8, audio_context=1, n_history=2, n_steps=2, d_cond=16, d_model=16, n_heads=2,
                   n_layers=1, ff_mult=2, attn_window=4, history_dropout=0.0, dequant_std=0.0,
                   manifold_k=4, bank_per_class=64)

    @classmethod
    def mini(cls) -> ExpFlowConfig:
        # ±6 frames (±240 ms) of audio through 3 convolutions and a consistency loss on the mouth (λ = 2): on the
        # 800-clip synthetic corpus, lip sync on held-out voices 0.77 after 6000 steps with 12 blinks per minute
        # (the first mini: 0.52, benchmarks/ablation_flows.py and the weights' model card)
        return cls(audio_context=6, audio_layers=3, cons_dims="mouth", cons_weight=2.0)

    @classmethod
    def base(cls) -> ExpFlowConfig:
        return cls(audio_context=8, audio_layers=3, audio_hidden=256, cons_dims="mouth", cons_weight=2.0,
                   n_history=10, n_steps=8, d_cond=256, d_model=256, n_heads=8, n_layers=2, ff_mult=4, attn_window=32)


@dataclass(frozen=True)
class PoseFlowConfig(FlowConfig):
    """PoseFlow: standard Gaussian prior, no emotion, no source pose."""

    @classmethod
    def tiny(cls) -> PoseFlowConfig:
        return cls(audio_dim=8, audio_context=1, n_history=2, n_steps=2, d_cond=16, d_model=16, n_heads=2,
                   n_layers=1, ff_mult=2, attn_window=4, history_dropout=0.0, dequant_std=0.0)

    @classmethod
    def mini(cls) -> PoseFlowConfig:
        return cls(n_steps=3, d_cond=32, d_model=32, n_heads=2, attn_window=16)

    @classmethod
    def base(cls) -> PoseFlowConfig:
        return cls(audio_context=4, n_history=10, n_steps=6, d_cond=128, d_model=128, n_heads=4,
                   n_layers=2, ff_mult=4, attn_window=32)
