"""Training ExpFlow and PoseFlow (paper §3.2) on a FlowVQ dataset, with the generic :class:`Trainer`.

``train_expflow(data, out, "mini", TrainConfig(...))`` does, in ``out`` (the run folder):

1. ``run.json``: component, preset, model config (``audio_dim`` = the dataset's feature dim), data and
   window settings; a resumed run rebuilds everything from it.
2. Datasets: :class:`~flowvq_cli.data.datasets.CoeffSequenceDataset` windows of the train split (random
   source frame, optional audio augmentation) and of the val split (held-out speakers: no augmentation,
   first-frame source). A dataset without a val split trains without validation (noted in the log).
3. Actnorm data-init before the first step, on a batch holding up to :data:`INIT_WINDOWS_PER_CLASS`
   windows of every emotion in the training set (the same on every rank).
4. Training on the model's loss (NLL + λ_cons·L_cons, with history dropout); validation metric: the NLL
   in nats per frame without dropout or noise (:func:`evaluate_nll`).
5. Export (:func:`export_component`): the last checkpoint's weights; for ExpFlow first the latent bank
   for manifold projection (training windows encoded in eval mode, ``set_latent_bank``); then
   ``save_pretrained(out/export/<component>)``, ready for ``write_bundle``.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from flowvq_cli.audio.augment import AugmentConfig
from flowvq_cli.audio.features import AudioFeatureConfig
from flowvq_cli.audio.phone_track import N_PHONES
from flowvq_cli.data.datasets import CoeffSequenceDataset, CoeffWindowBatch, EmptySplitError, collate_windows
from flowvq_cli.errors import UsageError
from flowvq_cli.flow import ExpBatch, ExpFlow, ExpFlowConfig, PoseBatch, PoseFlow, PoseFlowConfig
from flowvq_cli.flow.config import FlowConfig
from flowvq_cli.flow.sequence import SequenceFlow
from flowvq_cli.modeling import resolve_device
from flowvq_cli.training_state import load_training_state

from .loop import RunSpec, TrainConfig, Trainer, TrainResult, is_main_process

EXPORT_DIRNAME = "export"
PRESETS = ("tiny", "mini", "base")
DEFAULT_WINDOW_FRAMES = 50
"""Frames per training window (2 s at 25 fps)."""
INIT_WINDOWS_PER_CLASS = 8
"""Windows per emotion class in the actnorm data-init batch."""
BANK_OVERSAMPLE = 2
"""Encoded latents per class for the manifold bank, as a multiple of ``bank_per_class`` (before subsampling)."""
EXPORT_BATCH = 16


@dataclass(frozen=True)
class _FlowKind:
    """What differs between the two flows for training."""

    name: str
    model_class: type[SequenceFlow]
    config_class: type[FlowConfig]
    to_batch: Callable[[CoeffWindowBatch], Any]


def exp_batch(batch: CoeffWindowBatch) -> ExpBatch:
    """The ExpFlow batch of a corpus's windows (history included)."""
    return ExpBatch(exp=batch.exp, audio=batch.audio, source=batch.source, emotion=batch.emotion,
                    intensity=batch.intensity, history=batch.exp_history)


def pose_batch(batch: CoeffWindowBatch) -> PoseBatch:
    """The PoseFlow batch of a corpus's windows (history included)."""
    return PoseBatch(pose=batch.pose, audio=batch.audio, history=batch.pose_history)


KINDS = {
    "expflow": _FlowKind("expflow", ExpFlow, ExpFlowConfig, exp_batch),
    "poseflow": _FlowKind("poseflow", PoseFlow, PoseFlowConfig, pose_batch),
}


@dataclass(frozen=True)
class FlowRunResult:
    """A finished (or resumed-to-the-end) flow training run."""

    training: TrainResult
    model: SequenceFlow  # the trained model (unwrapped; on this rank)
    export_dir: Path | None  # None on ranks other than 0, or with export=False


def _kind_of(model: nn.Module) -> _FlowKind:
    for kind in KINDS.values():
        if isinstance(model, kind.model_class):
            return kind
    raise TypeError(f"expected an ExpFlow or PoseFlow, got {type(model).__name__}")


def model_config(component: str, preset: str | FlowConfig, audio_dim: int) -> FlowConfig:
    """The preset's config (``tiny``/``mini``/``base``) with ``audio_dim`` set to the dataset's features."""
    kind = KINDS[component]
    if isinstance(preset, FlowConfig):
        if preset.audio_dim != audio_dim:
            raise UsageError(f"the {component} config has audio_dim={preset.audio_dim} but the dataset's audio "
                             f"features have {audio_dim} per frame; set audio_dim={audio_dim}")
        if preset.phone_dim not in (0, N_PHONES):
            raise UsageError(f"phone_dim is 0 (no phone features) or {N_PHONES} (pocketsphinx's phones), "
                             f"not {preset.phone_dim}")
        return preset
    if preset not in PRESETS:
        raise UsageError(f"unknown {component} config {preset!r}; choose one of {', '.join(PRESETS)}")
    return dataclasses.replace(getattr(kind.config_class, preset)(), audio_dim=audio_dim)


# ---------------------------------------------------------------------------------------------- metrics


@torch.no_grad()
def evaluate_nll(model: ExpFlow | PoseFlow, dataset: CoeffSequenceDataset, *, batch_size: int = EXPORT_BATCH,
                 max_batches: int | None = None) -> float:
    """Mean negative log-likelihood (nats per frame) of the dataset's windows under ``model`` (eval mode,
    no history dropout or dequantisation noise). ExpFlow: -log p(exp | c, e); PoseFlow: -log p(pose | c)."""
    kind = _kind_of(model)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, collate_fn=collate_windows)
    total, frames = 0.0, 0
    for n, batch in enumerate(loader):
        if max_batches is not None and n >= max_batches:
            break
        log_p = model.log_prob(kind.to_batch(batch.to(device)))  # (B, T)
        total += float(-log_p.sum())
        frames += log_p.numel()
    model.train(was_training)
    return total / max(frames, 1)


def _loss_fn(kind: _FlowKind) -> Callable[[nn.Module, CoeffWindowBatch, torch.Generator], dict[str, Tensor]]:
    def loss_fn(model: nn.Module, batch: CoeffWindowBatch, generator: torch.Generator) -> dict[str, Tensor]:
        out = model(kind.to_batch(batch), generator)
        return {"loss": out.loss, "nll": out.nll.detach(), "cons": out.cons.detach()}

    return loss_fn


def _eval_fn(kind: _FlowKind) -> Callable[[nn.Module, CoeffWindowBatch], dict[str, Tensor]]:
    def eval_fn(model: nn.Module, batch: CoeffWindowBatch) -> dict[str, Tensor]:
        return {"nll": -model.log_prob(kind.to_batch(batch)).mean()}

    return eval_fn


def _init_fn(kind: _FlowKind, dataset: CoeffSequenceDataset, seed: int) -> Callable[[nn.Module], None]:
    """Actnorm data-init: one training-mode forward on a class-balanced batch (identical on every rank)."""
    def init_fn(model: nn.Module) -> None:
        dataset.set_epoch(0)
        items = [dataset[i] for i in dataset.class_balanced_indices(INIT_WINDOWS_PER_CLASS, seed)]
        device = next(model.parameters()).device
        generator = torch.Generator(device=device).manual_seed(seed)
        model.train()
        with torch.no_grad():
            model(kind.to_batch(collate_windows(items).to(device)), generator)

    return init_fn


# ---------------------------------------------------------------------------------------------- run setup


@dataclass(frozen=True)
class _RunSpec(RunSpec):
    """Everything ``run.json`` records: enough to rebuild the model and the datasets."""

    made_by: ClassVar[str] = "flowvq train expflow|poseflow"

    component: str
    preset: str
    model_config: dict[str, Any]
    data: str
    window_frames: int
    hop: int | None
    audio_config: dict[str, Any]
    augment: dict[str, Any] | None

    def build_model(self) -> SequenceFlow:
        kind = KINDS[self.component]
        return kind.model_class(kind.config_class.from_dict(self.model_config))

    def dataset(self, split: str, seed: int, data: str | None = None, augment: bool = True,
                source: str = "random") -> CoeffSequenceDataset:
        config = KINDS[self.component].config_class.from_dict(self.model_config)
        aug = AugmentConfig(**_tuples(self.augment)) if augment and self.augment is not None else None
        return CoeffSequenceDataset(data or self.data, split, self.window_frames,
                                    AudioFeatureConfig(**self.audio_config), audio_context=config.audio_context,
                                    n_history=config.n_history, hop=self.hop, augment=aug, seed=seed, source=source,
                                    phones=config.phone_dim > 0, phones_from=config.phone_source)


def _tuples(values: dict[str, Any]) -> dict[str, Any]:
    """JSON turned the config's tuples into lists; turn them back."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}


def _resolve_spec(component: str, data: str | os.PathLike[str], run_dir: Path, config: str | FlowConfig,
                  resume: bool, window_frames: int, hop: int | None, audio_config: AudioFeatureConfig,
                  augment: AugmentConfig | None) -> _RunSpec:
    """A new run's spec (written to run.json by rank 0), or the resumed run's (checked against the request)."""
    spec = _RunSpec.resumed(run_dir, component, config) if resume else None
    if spec is not None:
        return spec
    cfg = model_config(component, config, audio_config.video_feature_dim)
    spec = _RunSpec(component, config if isinstance(config, str) else "custom", cfg.to_dict(),
                    str(Path(data).resolve()), window_frames, hop, dataclasses.asdict(audio_config),
                    dataclasses.asdict(augment) if augment is not None else None)
    if is_main_process():
        spec.save(run_dir)
    return spec


# ---------------------------------------------------------------------------------------------- training


def _train_flow(component: str, data: str | os.PathLike[str], out: str | os.PathLike[str],
                config: str | FlowConfig, train: TrainConfig, resume: bool, *, window_frames: int,
                hop: int | None, audio_config: AudioFeatureConfig, augment: AugmentConfig | None, quiet: bool,
                export: bool) -> FlowRunResult:
    kind, run_dir = KINDS[component], Path(out)
    spec = _resolve_spec(component, data, run_dir, config, resume, window_frames, hop, audio_config, augment)
    train_set = spec.dataset("train", train.seed, str(data))
    train_set.warm_cache()
    try:
        val_set = spec.dataset("val", train.seed, str(data), augment=False, source="first")
        val_set.warm_cache()
        val_note = f"{len(val_set)} windows of held-out speakers"
    except EmptySplitError as e:
        val_set, val_note = None, f"none ({e})"
    torch.manual_seed(train.seed)  # the same initial weights on every rank and in every rerun
    model = spec.build_model()
    meta = {"preset": spec.preset, "validation": val_note, "window_frames": spec.window_frames,
            "augment": spec.augment is not None, "validation_metric": "nll (nats/frame, eval mode)"}
    trainer = Trainer(model, train_set, _loss_fn(kind), train, run_dir, val_set=val_set, eval_fn=_eval_fn(kind),
                      collate_fn=collate_windows, init_fn=_init_fn(kind, train_set, train.seed), meta=meta,
                      component=component, quiet=quiet)
    result = trainer.fit(resume=resume)
    export_dir = export_component(run_dir, data=str(data), seed=train.seed) if export and result.rank == 0 else None
    return FlowRunResult(result, model, export_dir)


def train_expflow(data: str | os.PathLike[str], out: str | os.PathLike[str], config: str | ExpFlowConfig = "mini",
                  train: TrainConfig = TrainConfig(), resume: bool = False, *,
                  window_frames: int = DEFAULT_WINDOW_FRAMES, hop: int | None = None,
                  audio_config: AudioFeatureConfig = AudioFeatureConfig(), augment: AugmentConfig | None = None,
                  quiet: bool = False, export: bool = True) -> FlowRunResult:
    """Train ExpFlow on dataset ``data`` into run folder ``out``; export to ``out/export/expflow``.

    Args:
        config: preset (``tiny``, ``mini``, ``base``) or an :class:`ExpFlowConfig` whose ``audio_dim``
            matches ``audio_config``.
        train: optimisation settings (steps, batch size, lr, ...).
        resume: continue from the newest checkpoint in ``out/checkpoints`` (same settings as the start).
        window_frames / hop: window length and stride (frames at 25 fps).
        augment: audio augmentation of the training windows (None: off).
        export: compute the latent bank and ``save_pretrained`` at the end (rank 0).
    """
    return _train_flow("expflow", data, out, config, train, resume, window_frames=window_frames, hop=hop,
                       audio_config=audio_config, augment=augment, quiet=quiet, export=export)


def train_poseflow(data: str | os.PathLike[str], out: str | os.PathLike[str], config: str | PoseFlowConfig = "mini",
                   train: TrainConfig = TrainConfig(), resume: bool = False, *,
                   window_frames: int = DEFAULT_WINDOW_FRAMES, hop: int | None = None,
                   audio_config: AudioFeatureConfig = AudioFeatureConfig(), augment: AugmentConfig | None = None,
                   quiet: bool = False, export: bool = True) -> FlowRunResult:
    """Train PoseFlow on dataset ``data`` into run folder ``out``; export to ``out/export/poseflow``.
    Arguments as in :func:`train_expflow`."""
    return _train_flow("poseflow", data, out, config, train, resume, window_frames=window_frames, hop=hop,
                       audio_config=audio_config, augment=augment, quiet=quiet, export=export)


# ---------------------------------------------------------------------------------------------- export


def load_run_model(run_dir: str | os.PathLike[str], device: str = "cpu") -> SequenceFlow:
    """The model of a flow run at its newest checkpoint, in eval mode."""
    run_dir = Path(run_dir)
    model = _RunSpec.load(run_dir).build_model()
    state = load_training_state(run_dir / "checkpoints", device="cpu")
    model.load_state_dict(state.model_state)
    return model.to(resolve_device(device)).eval()


@torch.no_grad()
def compute_latent_bank(model: ExpFlow, dataset: CoeffSequenceDataset, seed: int = 0) -> int:
    """Encode class-balanced training windows (eval mode) and store them as ``model``'s latent bank.
    Returns the number of latents kept."""
    per_class = math.ceil(BANK_OVERSAMPLE * model.config.bank_per_class / dataset.window_frames)
    indices = dataset.class_balanced_indices(per_class, seed)
    device = next(model.parameters()).device
    model.eval()
    latents, labels = [], []
    for chunk in range(0, len(indices), EXPORT_BATCH):
        b = collate_windows([dataset[i] for i in indices[chunk:chunk + EXPORT_BATCH]]).to(device)
        latents.append(model.encode(b.exp, b.audio, b.source, b.emotion, b.intensity, b.exp_history))  # (B, T, 52)
        labels.append(b.emotion)
    model.set_latent_bank(torch.cat(latents), torch.cat(labels), generator=torch.Generator().manual_seed(seed))
    return int(model.latent_labels.numel())


def export_component(run_dir: str | os.PathLike[str], *, data: str | None = None, seed: int = 0,
                     device: str = "cpu") -> Path:
    """Export a flow run's newest checkpoint to ``run_dir/export/<component>`` (config.json +
    model.safetensors); ExpFlow gets its manifold-projection latent bank first. ``data`` overrides the
    dataset path recorded in run.json (a moved dataset). Returns the export folder."""
    run_dir = Path(run_dir)
    spec = _RunSpec.load(run_dir)
    model = load_run_model(run_dir, device)
    if isinstance(model, ExpFlow):
        dataset = spec.dataset("train", seed, data, augment=False)
        compute_latent_bank(model, dataset, seed)
    return model.save_pretrained(run_dir / EXPORT_DIRNAME / spec.component)
