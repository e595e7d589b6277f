"""A small training engine shared by every FlowVQ component (flows, codebook, VQIG).

A component supplies a model, datasets and two functions; the engine does the rest::

    trainer = Trainer(model, train_set, loss_fn, TrainConfig(steps=2000), run_dir, val_set=val_set,
                      eval_fn=eval_fn, collate_fn=collate_windows, init_fn=init_fn)
    result = trainer.fit(resume=False)

- ``loss_fn(model, batch, generator) -> {"loss": Tensor, other scalars...}``: one training forward. The
  model may be wrapped in DistributedDataParallel, so call ``model(...)``; take every random draw from
  ``generator``.
- ``eval_fn(model, batch) -> {name: scalar}``: validation metrics, averaged over the val set weighted
  by batch size (the unwrapped model, in eval mode, under ``no_grad``).
- ``init_fn(model)``: runs once on a fresh model before training and before DDP wraps it (data-dependent
  initialisation, e.g. actnorm); it must do the same on every rank.

Optional pieces for the image components (codebook, VQIG); the flows use none of them:

- ``with_step=True``: ``loss_fn(model, batch, generator, step)`` also gets the 0-based step (stage
  schedules, adversarial warm-up). ``loss_fn`` may return non-scalar tensors too (e.g. the generated
  images, detached): only scalars are logged, everything is passed on to the adversary.
- ``parameters(model)``: which parameters the optimizer updates (default: all of them), e.g. only the
  trainable ones of a model built around frozen parts.
- ``adversary``: an :class:`Adversary` (a GAN discriminator) with its own AdamW optimizer, stepped right
  after each model step on what ``loss_fn`` returned; its weights and optimizer state are checkpointed and
  restored with the model's.
- ``sample_fn(model, step)``: rank 0 calls it at every validation step (e.g. to write sample images).

Run folder: ``train_log.jsonl`` (one JSON object per event: start, train, val, checkpoint, end; the
start event records ``meta``, e.g. which perceptual loss ran) and ``checkpoints/`` (atomic, resumable
:func:`~flowvq_cli.training_state.save_training_state` files: model, optimizer, scheduler, step, RNG states).

Stopping: under the CLI, Ctrl-C, SIGTERM and SIGHUP raise :class:`flowvq_cli.stops.Interrupted`, which
is held back until the optimizer step in progress has finished (:func:`flowvq_cli.stops.deferred`);
rank 0 then writes a checkpoint of that step (atomically, like every checkpoint), logs an
``interrupted`` event and lets the stop go on, so ``--resume`` continues from exactly there.

Determinism and resuming. The batch of step s is a pure function of (seed, s): a seeded
``DistributedSampler`` (also with one process) started part-way into the epoch on resume, and datasets
that draw per-item randomness from (seed, epoch, index). The model's randomness at step s comes from a
generator seeded from (seed, s, rank). So a resumed run repeats the uninterrupted one bit for bit, for
any number of workers. Global RNG states (torch, CUDA, numpy, random) are saved and restored as well,
for code that uses them.

Distributed (``torchrun``): ``WORLD_SIZE``/``RANK``/``LOCAL_RANK`` in the environment start
``torch.distributed`` (gloo on CPU, nccl on CUDA); each process reads its own shard of every epoch,
``batch_size`` is per process (global batch = batch_size × world size), gradients are averaged by DDP,
and only rank 0 evaluates, logs and writes checkpoints.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from flowvq_cli import stops
from flowvq_cli.errors import FlowVQError, OutputError, UsageError
from flowvq_cli.modeling import check_device_name, resolve_device
from flowvq_cli.training_state import latest_training_state, load_training_state, save_training_state

LOG_NAME = "train_log.jsonl"
CHECKPOINT_DIRNAME = "checkpoints"
PRECISIONS = ("fp32", "bf16")
SEED_BITS = 63

LossFn = Callable[..., Mapping[str, Tensor]]
"""``(model, batch, generator) -> {"loss": Tensor, ...}``; with ``with_step=True`` also ``step`` (int) last."""
EvalFn = Callable[[nn.Module, Any], Mapping[str, Tensor | float]]
InitFn = Callable[[nn.Module], None]
ParametersFn = Callable[[nn.Module], Iterable[nn.Parameter]]
SampleFn = Callable[[nn.Module, int], None]
AdversaryLossFn = Callable[[nn.Module, Any, Mapping[str, Tensor], int], Mapping[str, Tensor] | None]
ADVERSARY_PREFIX = "d_"


class TrainingError(FlowVQError):
    """Training cannot go on (diverged, too little data); the message says what to change."""


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and bookkeeping of one training run.

    steps: optimizer steps in total; batch_size: items per process and step; lr: peak learning rate of
    AdamW; warmup: steps of linear warm-up, followed by a cosine decay to ``lr · final_lr_ratio``;
    grad_clip: max global gradient norm (0 = off); eval_every / save_every: validation / checkpoint
    interval in steps (the last step always does both; 0 = only then); eval_batches: cap on validation
    batches (None = the whole val split); keep_last: checkpoints kept; log_every: steps per logged
    average; device: ``auto`` (CUDA when usable), ``cpu`` or ``cuda``; num_workers: DataLoader worker
    processes; precision: ``fp32`` or ``bf16`` (autocast; weights and optimizer stay fp32).
    """

    steps: int = 20_000
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup: int = 500
    final_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    eval_every: int = 1000
    eval_batches: int | None = 50
    save_every: int = 1000
    keep_last: int = 3
    log_every: int = 20
    seed: int = 0
    device: str = "auto"
    num_workers: int = 0
    precision: str = "fp32"

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "keep_last", "log_every"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("warmup", "eval_every", "save_every", "num_workers", "grad_clip", "weight_decay"):
            if getattr(self, name) < 0:
                raise UsageError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not self.lr > 0 or not 0 <= self.final_lr_ratio <= 1:
            raise UsageError(f"need lr > 0 and 0 <= final_lr_ratio <= 1, got {self.lr}, {self.final_lr_ratio}")
        if self.precision not in PRECISIONS:
            raise UsageError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        check_device_name(self.device)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Adversary:
    """A network trained against the model (a GAN discriminator), with its own AdamW optimizer (constant lr).

    After every model step the engine calls ``loss_fn(module, batch, outputs, step)``, where ``outputs`` is
    what the model's loss function returned at that step (non-scalar entries included, e.g. the generated
    images); it returns ``{"loss": Tensor, other scalars...}`` — logged with the prefix ``d_`` — or None to
    skip the step (e.g. before an adversarial stage starts). Under DDP its gradients are averaged over the
    ranks by an all-reduce; its gradient norm is clipped like the model's.
    """

    module: nn.Module
    loss_fn: AdversaryLossFn
    lr: float
    betas: tuple[float, float] = (0.5, 0.9)
    weight_decay: float = 0.0


@dataclass(frozen=True)
class TrainResult:
    """What :meth:`Trainer.fit` returns (on every rank; ``checkpoint`` is rank 0's last save)."""

    run_dir: Path
    step: int
    checkpoint: Path | None
    train: dict[str, float]  # the last logged training averages
    val: dict[str, float] | None  # the last validation metrics (None: no val set)
    rank: int = 0
    world_size: int = 1


# ---------------------------------------------------------------------------------------------- helpers


def lr_factor(step: int, config: TrainConfig) -> float:
    """Learning-rate multiplier after ``step`` optimizer steps: linear warm-up, then cosine decay."""
    if step < config.warmup:
        return (step + 1) / config.warmup
    span = max(1, config.steps - config.warmup)
    progress = min(1.0, (step - config.warmup) / span)
    return config.final_lr_ratio + (1 - config.final_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def step_seed(seed: int, step: int, rank: int) -> int:
    """Seed of the model's random draws at ``step`` on ``rank`` (independent streams, no state to save)."""
    return int(np.random.SeedSequence([seed, step, rank]).generate_state(1, np.uint64)[0]) >> (64 - SEED_BITS)


def move_to(batch: Any, device: torch.device) -> Any:
    """A batch on ``device``: tensors, objects with ``.to(device)``, dicts/lists/tuples of them."""
    if isinstance(batch, Tensor) or hasattr(batch, "to"):
        return batch.to(device)
    if isinstance(batch, Mapping):
        return {k: move_to(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to(v, device) for v in batch)
    return batch


def _batch_size(batch: Any) -> int:
    """Items in a batch (the first dimension of its first tensor)."""
    if isinstance(batch, Tensor):
        return batch.shape[0]
    fields = batch.values() if isinstance(batch, Mapping) else (
        [getattr(batch, f.name) for f in dataclasses.fields(batch)] if dataclasses.is_dataclass(batch) else batch)
    return next(_batch_size(v) for v in fields if isinstance(v, (Tensor, Mapping)) or dataclasses.is_dataclass(v))


def _scalars(out: Mapping[str, Tensor | float]) -> dict[str, float]:
    """The scalar entries of a loss function's output as floats (non-scalar tensors are left out)."""
    return {k: float(v.detach()) if isinstance(v, Tensor) else float(v) for k, v in out.items()
            if not isinstance(v, Tensor) or v.numel() == 1}


def rng_state() -> dict[str, Any]:
    """Global RNG states (torch CPU, CUDA, numpy, random) in checkpointable form."""
    _, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
                  "cached": float(cached)},
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"].cpu())
    np_state = state["numpy"]
    np.random.set_state(("MT19937", np_state["keys"].numpy().astype(np.uint32), np_state["pos"],
                         np_state["has_gauss"], np_state["cached"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


class ResumableSampler(DistributedSampler):
    """``DistributedSampler`` (seeded shuffle, one shard per rank, drop_last) that can start part-way into
    an epoch: set ``start`` (in items of this rank's shard) after ``set_epoch``."""

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int, seed: int):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=True)
        self.start = 0

    def __iter__(self) -> Iterator[int]:
        return iter(list(super().__iter__())[self.start:])

    def __len__(self) -> int:
        return self.num_samples - self.start


# ---------------------------------------------------------------------------------------------- distributed


@dataclass(frozen=True)
class DistInfo:
    """This process's place in a ``torchrun`` job (a single process: rank 0 of 1)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def is_main_process() -> bool:
    """Whether this process is rank 0 of a ``torchrun`` job, or runs alone (torchrun's ``RANK``; no process
    group needed)."""
    return int(os.environ.get("RANK", "0")) == 0


def init_distributed(device_name: str) -> tuple[DistInfo, torch.device, bool]:
    """Read torchrun's environment; start the process group when needed.

    Returns (info, device, whether this call started the group and must destroy it).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    info = DistInfo(int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0")), world)
    device = resolve_device(device_name, info.local_rank)
    if world <= 1 or dist.is_initialized():
        return info, device, False
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return info, device, True


def _all_finite(value: Tensor, info: DistInfo) -> bool:
    """Whether ``value`` is finite on every rank (one all-reduce when distributed)."""
    flag = torch.tensor([0.0 if torch.isfinite(value).all() else 1.0], device=value.device)
    if info.distributed:
        dist.all_reduce(flag)
    return bool(flag.item() == 0.0)


# ---------------------------------------------------------------------------------------------- logging


class RunLog:
    """Append-only JSONL event log (rank 0 only; other ranks' writes are no-ops)."""

    def __init__(self, path: Path, enabled: bool):
        self.path, self.enabled = path, enabled
        if enabled:
            path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, event: str, **fields: Any) -> None:
        if not self.enabled:
            return
        record = {"event": event, "time": round(time.time(), 3), **fields}
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, default=str) + "\n")


class Progress:
    """Rich progress bar on stderr (step, loss, lr, it/s) when stderr is a terminal; otherwise one plain
    line per logged average. ``quiet`` silences both."""

    def __init__(self, total: int, start: int, enabled: bool, title: str):
        from rich.console import Console

        self.console = Console(stderr=True)
        self.enabled = enabled
        self.bar = None
        if enabled and self.console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            self.bar = RichProgress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                    TextColumn("{task.fields[stats]}"), TimeRemainingColumn(),
                                    console=self.console, transient=False)
            self.task = self.bar.add_task(title, total=total, completed=start, stats="")
            self.bar.start()

    def update(self, step: int, stats: Mapping[str, float], lr: float, it_s: float, logged: bool) -> None:
        text = " ".join(f"{k} {v:.4g}" for k, v in stats.items()) + f" lr {lr:.2e} {it_s:.2f} it/s"
        if self.bar is not None:
            self.bar.update(self.task, completed=step, stats=text)
        elif self.enabled and logged:
            print(f"step {step}: {text}", file=sys.stderr, flush=True)

    def note(self, text: str) -> None:
        if self.enabled:
            self.console.print(text, highlight=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


# ---------------------------------------------------------------------------------------------- trainer


class Trainer:
    """Runs :class:`TrainConfig` on one component (see the module docstring)."""

    def __init__(self, model: nn.Module, train_set: Dataset, loss_fn: LossFn, config: TrainConfig,
                 run_dir: str | os.PathLike[str], *, val_set: Dataset | None = None, eval_fn: EvalFn | None = None,
                 collate_fn: Callable[[list[Any]], Any] | None = None, init_fn: InitFn | None = None,
                 meta: Mapping[str, Any] | None = None, component: str = "model", quiet: bool = False,
                 with_step: bool = False, parameters: ParametersFn | None = None, adversary: Adversary | None = None,
                 sample_fn: SampleFn | None = None, find_unused_parameters: bool = False):
        self.model, self.train_set, self.val_set = model, train_set, val_set
        self.loss_fn, self.eval_fn, self.init_fn = loss_fn, eval_fn, init_fn
        self.collate_fn, self.config = collate_fn, config
        self.run_dir, self.checkpoint_dir = Path(run_dir), Path(run_dir) / CHECKPOINT_DIRNAME
        self.meta, self.component, self.quiet = dict(meta or {}), component, quiet
        self.with_step, self.parameters, self.adversary = with_step, parameters, adversary
        self.sample_fn, self.find_unused_parameters = sample_fn, find_unused_parameters
        self.adversary_optimizer: torch.optim.Optimizer | None = None
        self._step, self._saved_step = 0, None  # the last finished step; the last one checkpointed

    # ---- setup

    def _restore(self, optimizer: torch.optim.Optimizer, scheduler: Any, device: torch.device) -> int:
        state = load_training_state(self.checkpoint_dir, device="cpu")
        self.model.load_state_dict(state.model_state)
        self.model.to(device)
        optimizer.load_state_dict(state.optimizer_state)
        scheduler.load_state_dict(state.extra["scheduler"])
        if self.adversary is not None:
            if "adversary" not in state.extra:
                raise TrainingError(f"{state.path} holds no discriminator state; it was not written by this "
                                    "trainer, start a new run instead of --resume")
            self.adversary.module.load_state_dict(state.extra["adversary"]["module"])
            self.adversary.module.to(device)
            self.adversary_optimizer.load_state_dict(state.extra["adversary"]["optimizer"])
        set_rng_state(state.extra["rng"])
        return state.step

    def _save(self, step: int, optimizer: torch.optim.Optimizer, scheduler: Any) -> Path:
        extra = {"scheduler": scheduler.state_dict(), "rng": rng_state(), "train_config": self.config.to_dict(),
                 "component": self.component}
        if self.adversary is not None:
            extra["adversary"] = {"module": self.adversary.module.state_dict(),
                                  "optimizer": self.adversary_optimizer.state_dict()}
        return save_training_state(self.checkpoint_dir, self.model.state_dict(), optimizer.state_dict(), step,
                                   extra=extra, keep_last=self.config.keep_last)

    def _loader(self, sampler: ResumableSampler, epoch: int, step_in_epoch: int) -> DataLoader:
        c = self.config
        sampler.set_epoch(epoch)
        sampler.start = step_in_epoch * c.batch_size
        if hasattr(self.train_set, "set_epoch"):
            self.train_set.set_epoch(epoch)
        return DataLoader(self.train_set, batch_size=c.batch_size, sampler=sampler, collate_fn=self.collate_fn,
                          num_workers=c.num_workers, drop_last=True,
                          generator=torch.Generator().manual_seed(c.seed + epoch))

    # ---- one step, validation

    def _train_step(self, model: nn.Module, batch: Any, optimizer: torch.optim.Optimizer, scheduler: Any,
                    step: int, info: DistInfo, device: torch.device) -> dict[str, float]:
        c = self.config
        model.train()
        generator = torch.Generator(device=device).manual_seed(step_seed(c.seed, step, info.rank))
        batch = move_to(batch, device)
        args = (step,) if self.with_step else ()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=c.precision == "bf16"):
            out = self.loss_fn(model, batch, generator, *args)
        loss = out["loss"]
        if not _all_finite(loss.detach(), info):
            raise TrainingError(f"the loss is not finite at step {step}; lower --lr or set --grad-clip, then "
                                "continue from the last checkpoint with --resume")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for p in self.model.parameters() if p.grad is not None]
        grad_norm = torch.nn.utils.clip_grad_norm_(params, c.grad_clip if c.grad_clip > 0 else float("inf"))
        optimizer.step()
        scheduler.step()
        metrics = _scalars(out)
        metrics["grad_norm"] = float(grad_norm)
        if self.adversary is not None:
            metrics.update(self._adversary_step(batch, out, step, info, device))
        return metrics

    def _adversary_step(self, batch: Any, out: Mapping[str, Tensor], step: int, info: DistInfo,
                        device: torch.device) -> dict[str, float]:
        """One optimizer step of the adversary on this step's batch and model outputs (see :class:`Adversary`)."""
        adv, c = self.adversary, self.config
        adv.module.train()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=c.precision == "bf16"):
            d_out = adv.loss_fn(adv.module, batch, out, step)
        if d_out is None:
            return {}
        if not _all_finite(d_out["loss"].detach(), info):
            raise TrainingError(f"the discriminator loss is not finite at step {step}; lower --lr, then continue "
                                "from the last checkpoint with --resume")
        self.adversary_optimizer.zero_grad(set_to_none=True)
        d_out["loss"].backward()
        params = [p for p in adv.module.parameters() if p.grad is not None]
        if info.distributed:
            for p in params:
                dist.all_reduce(p.grad)
                p.grad.div_(info.world_size)
        grad_norm = torch.nn.utils.clip_grad_norm_(params, c.grad_clip if c.grad_clip > 0 else float("inf"))
        self.adversary_optimizer.step()
        metrics = {ADVERSARY_PREFIX + k: v for k, v in _scalars(d_out).items()}
        metrics[ADVERSARY_PREFIX + "grad_norm"] = float(grad_norm)
        return metrics

    @torch.no_grad()
    def evaluate(self, device: torch.device) -> dict[str, float]:
        """Mean of ``eval_fn`` over the val set (at most ``eval_batches`` batches), weighted by batch size."""
        if self.val_set is None or self.eval_fn is None:
            return {}
        if hasattr(self.val_set, "set_epoch"):
            self.val_set.set_epoch(0)
        loader = DataLoader(self.val_set, batch_size=self.config.batch_size, shuffle=False,
                            collate_fn=self.collate_fn, num_workers=self.config.num_workers)
        was_training = self.model.training
        self.model.eval()
        totals: dict[str, float] = {}
        count = 0
        for n, batch in enumerate(loader):
            if self.config.eval_batches is not None and n >= self.config.eval_batches:
                break
            size = _batch_size(batch)
            for k, v in self.eval_fn(self.model, move_to(batch, device)).items():
                totals[k] = totals.get(k, 0.0) + float(v) * size
            count += size
        self.model.train(was_training)
        return {k: v / max(count, 1) for k, v in totals.items()}

    # ---- the loop

    def fit(self, resume: bool = False) -> TrainResult:
        """Train to ``config.steps`` (continuing from the newest checkpoint with ``resume``)."""
        c = self.config
        info, device, owns_group = init_distributed(c.device)
        try:
            return self._fit(resume, info, device)
        finally:
            if owns_group:
                dist.destroy_process_group()

    def _fit(self, resume: bool, info: DistInfo, device: torch.device) -> TrainResult:
        c = self.config
        if not resume and latest_training_state(self.checkpoint_dir) is not None:
            raise OutputError(f"{self.run_dir} already holds training checkpoints; pass --resume to continue "
                              "that run, or choose another output folder")
        self.model.to(device)
        params = self.parameters(self.model) if self.parameters is not None else self.model.parameters()
        optimizer = torch.optim.AdamW(params, lr=c.lr, weight_decay=c.weight_decay)
        if self.adversary is not None:
            adv = self.adversary
            adv.module.to(device)
            self.adversary_optimizer = torch.optim.AdamW(adv.module.parameters(), lr=adv.lr, betas=adv.betas,
                                                         weight_decay=adv.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, c))
        if resume:
            start = self._restore(optimizer, scheduler, device)
        else:
            start = 0
            if self.init_fn is not None:
                self.init_fn(self.model)
        model = self.model
        if info.distributed:
            model = DistributedDataParallel(self.model, find_unused_parameters=self.find_unused_parameters)
        sampler = ResumableSampler(self.train_set, info.world_size, info.rank, c.seed)
        per_epoch = sampler.num_samples // c.batch_size
        if per_epoch == 0:
            raise TrainingError(f"the training set has {len(self.train_set)} items, fewer than batch size "
                                f"{c.batch_size} × {info.world_size} process(es); lower --batch-size")
        log = RunLog(self.run_dir / LOG_NAME, info.is_main)
        log.write("start" if start == 0 else "resume", step=start, component=self.component, config=c.to_dict(),
                  world_size=info.world_size, device=str(device), meta=self.meta,
                  parameters=sum(p.numel() for p in self.model.parameters()),
                  train_items=len(self.train_set), val_items=len(self.val_set) if self.val_set is not None else 0)
        progress = Progress(c.steps, start, info.is_main and not self.quiet, self.component)
        self._saved_step = start if resume else None
        self._step = start
        try:
            return self._run(model, optimizer, scheduler, sampler, per_epoch, start, info, device, log, progress)
        except stops.Interrupted as stop:
            progress.close()
            self._save_on_stop(stop, optimizer, scheduler, info, log)
            raise
        finally:
            progress.close()

    def _save_on_stop(self, stop: stops.Interrupted, optimizer: torch.optim.Optimizer, scheduler: Any,
                      info: DistInfo, log: RunLog) -> None:
        """A stop signal between steps: rank 0 checkpoints the last finished step (unless it just did) and
        tells the user how to go on."""
        step = self._step
        if not info.is_main:
            return
        if step > 0 and step != self._saved_step:
            path = self._save(step, optimizer, scheduler)
            log.write("checkpoint", step=step, path=str(path))
        log.write("interrupted", step=step, signal=stop.name)
        if step > 0:
            stop.note = f"checkpoint of step {step} in {self.checkpoint_dir}; continue with --resume"

    def _run(self, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, sampler: ResumableSampler,
             per_epoch: int, start: int, info: DistInfo, device: torch.device, log: RunLog,
             progress: Progress) -> TrainResult:
        c = self.config
        step, checkpoint, val = start, None, None
        window: dict[str, float] = {}
        last: dict[str, float] = {}
        tick, window_steps = time.perf_counter(), 0
        while step < c.steps:
            epoch, offset = divmod(step, per_epoch)
            for batch in self._loader(sampler, epoch, offset):
                with stops.deferred():  # a stop signal waits for this step to finish
                    metrics = self._train_step(model, batch, optimizer, scheduler, step, info, device)
                    step = self._step = step + 1
                window_steps += 1
                for k, v in metrics.items():
                    window[k] = window.get(k, 0.0) + v
                it_s = window_steps / max(time.perf_counter() - tick, 1e-9)
                logged = step % c.log_every == 0 or step == c.steps
                lr = scheduler.get_last_lr()[0]
                progress.update(step, {"loss": window["loss"] / window_steps}, lr, it_s, logged)
                if logged:
                    last = {k: v / window_steps for k, v in window.items()}
                    log.write("train", step=step, lr=lr, it_s=round(it_s, 3), **last)
                    window, tick, window_steps = {}, time.perf_counter(), 0
                if self._due(step, c.eval_every) and self.val_set is not None:
                    val = self._validate(step, info, device, log, progress)
                if self._due(step, c.eval_every) and self.sample_fn is not None and info.is_main:
                    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                        self.sample_fn(self.model, step)
                if self._due(step, c.save_every) and info.is_main:
                    checkpoint = self._save(step, optimizer, scheduler)
                    self._saved_step = step
                    log.write("checkpoint", step=step, path=str(checkpoint))
                if step >= c.steps:
                    break
        if info.distributed:
            dist.barrier()  # the final checkpoint exists before any rank returns
        log.write("end", step=step, train=last, val=val)
        return TrainResult(self.run_dir, step, checkpoint, last, val, info.rank, info.world_size)

    def _due(self, step: int, every: int) -> bool:
        return step == self.config.steps or (every > 0 and step % every == 0)

    def _validate(self, step: int, info: DistInfo, device: torch.device, log: RunLog,
                  progress: Progress) -> dict[str, float] | None:
        """Rank 0 evaluates; the others wait at a barrier. The global RNG is left untouched."""
        val = None
        if info.is_main:
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                val = self.evaluate(device)
            log.write("val", step=step, **val)
            progress.note(f"step {step}: val " + " ".join(f"{k} {v:.4g}" for k, v in val.items()))
        if info.distributed:
            dist.barrier()
        return val


RUN_FILE = "run.json"
"""What a run folder was started with (component, preset, model config, data); ``--resume`` rebuilds from it."""


class RunSpec:
    """Base of the trainers' run descriptions (frozen dataclasses), stored as ``run_dir/run.json``.

    Subclasses set ``made_by``: the command that makes such folders, named when one cannot be read.
    """

    made_by: ClassVar[str] = "flowvq train"

    def save(self, run_dir: Path) -> None:
        """Write ``run_dir/run.json``, atomically."""
        from flowvq_cli.fsutil import atomic_write

        run_dir.mkdir(parents=True, exist_ok=True)
        text = json.dumps(dataclasses.asdict(self), indent=2) + "\n"
        atomic_write(run_dir / RUN_FILE, lambda tmp: tmp.write_text(text, encoding="utf-8"), fsync=False)

    @classmethod
    def load(cls, run_dir: Path) -> Any:
        """Read ``run_dir/run.json``; a clear WeightsError naming :attr:`made_by` when it cannot."""
        from flowvq_cli.errors import WeightsError

        path = run_dir / RUN_FILE
        try:
            return cls(**json.loads(path.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError, TypeError) as e:
            raise WeightsError(f"{path}: cannot read the run description ({e}); pass a folder made by "
                               f"`{cls.made_by}`") from e

    @classmethod
    def resumed(cls, run_dir: Path, component: str, config: Any) -> Any:
        """The run described in ``run_dir``, or None when it has no ``run.json`` yet; UsageError when it is
        another component's, or was started with another preset (``config``: a preset name, or a config
        object: "custom")."""
        if not (run_dir / RUN_FILE).is_file():
            return None
        spec = cls.load(run_dir)
        requested = config if isinstance(config, str) else "custom"
        if spec.component != component or spec.preset != requested:
            raise UsageError(f"{run_dir} is a {spec.component} run with config {spec.preset!r}, not {component} "
                             f"{requested!r}; resume with the same command that started it")
        return spec
