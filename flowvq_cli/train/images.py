"""Trainers of the image components: the codebook model (VQGAN) and the image generator VQIG (docs/design.md §4).

Both run on the generic :class:`~flowvq_cli.train.loop.Trainer` (resumable atomic checkpoints, validation
on the held-out speakers of the ``val`` split, JSONL log, DDP) like the flow trainers, with a run folder::

    run.json            what to rebuild the model and datasets from (checked on --resume)
    train_log.jsonl     start event: meta.perceptual_kind says which perceptual loss ran
    checkpoints/        model + optimizer + discriminator + its optimizer + RNG states
    samples/step-XXXXXX.png   at every validation step: input | reconstruction (codebook),
                              source | target | output (VQIG), one row per fixed sample item
    export/codebook | export/vqig   ``save_pretrained`` of the newest checkpoint

**Codebook** (:func:`train_codebook`): every training frame (the ``target`` of a
:class:`~flowvq_cli.data.datasets.FrameTripletDataset` item, so each frame once per epoch) through
:class:`~flowvq_cli.vq.VQGAN`; generator loss :class:`~flowvq_cli.vq.VQGANLoss` (L1 + perceptual — VGG19
only when local weights are given, else the documented substitute — + adversarial after
``adversarial_warmup_steps`` + codebook/commitment), dead codes restarted by the quantiser in training
mode; the :class:`~flowvq_cli.vq.PatchDiscriminator` is stepped right after each generator step, on that
step's reconstructions, by its own AdamW (betas (0.5, 0.9), constant lr). Validation: L1 and PSNR of
the reconstructions of held-out frames.

**VQIG** (:func:`train_vqig`): loads the exported (frozen) codebook, builds :class:`~flowvq_cli.vqig.VQIG`,
calls ``freeze_codebook_parts()`` and optimises only ``trainable_parameters()``. Steps follow a schedule:
``warm_start_steps`` of the warping network on the mesh-warp renderer's flow (computed per triplet from
the source frame and ``rig.synthesize(identity, source/target coeffs)``; skipped when a training clip has
no ``identity.npy``), then the code-level stage, then the image-level stage with a discriminator
(``stage="both"``: ``code_steps`` code-level steps, by default half of the rest). Validation: L1 / PSNR of
the rendered frames, code accuracy and L1 of the warped source, on held-out speakers; the start event
says whether their faces occur in the training split.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset

from flowvq_cli.data.datasets import (
    CROP_STREAM,
    IDENTITY_FILE,
    EmptySplitError,
    FrameTriplet,
    FrameTripletBatch,
    FrameTripletDataset,
    _load_coeffs,
    collate_triplets,
)
from flowvq_cli.data.image_augment import ImageAugmentConfig
from flowvq_cli.data.manifest import FACE_KEY_FILE, Clip
from flowvq_cli.errors import UsageError
from flowvq_cli.face import rig
from flowvq_cli.image import save_image
from flowvq_cli.modeling import resolve_device
from flowvq_cli.render.meshwarp import MeshWarpConfig, MeshWarpRenderer
from flowvq_cli.training_state import load_training_state
from flowvq_cli.vq import (
    VQGAN,
    DiscriminatorConfig,
    PatchDiscriminator,
    VGG19Features,
    VQGANConfig,
    VQGANLoss,
    VQGANLossConfig,
    load_vgg19_features,
)
from flowvq_cli.vqig import VQIG, VQIGBatch, VQIGConfig, trained_codebook_sha256
from flowvq_cli.vqig.losses import code_accuracy, discriminator_loss, perceptual_kind

from .flows import EXPORT_DIRNAME, PRESETS
from .loop import RUN_FILE, Adversary, RunSpec, TrainConfig, Trainer, TrainResult, is_main_process

SAMPLES_DIRNAME = "samples"
SAMPLE_ITEMS = 4
"""Rows of a sample grid (fixed items of the val split, or of the training split without one)."""
STAGES = ("code", "image", "both")
WARM_START, CODE, IMAGE = "warm_start", "code", "image"
STAGE_INDEX = {WARM_START: 0, CODE: 1, IMAGE: 2}
"""Logged as ``stage`` so a log window that spans a stage boundary is visible."""


@dataclass(frozen=True)
class ImageRunResult:
    """A finished (or resumed-to-the-end) codebook or VQIG run."""

    training: TrainResult
    model: VQGAN | VQIG  # the trained model (unwrapped; on this rank)
    export_dir: Path | None  # None on ranks other than 0, or with export=False


# ---------------------------------------------------------------------------------------------- data


@dataclass(frozen=True)
class VQIGTrainBatch:
    """Triplets plus each target frame's coefficient window.

    triplets: the :class:`FrameTripletBatch` (images (B, 3, S, S) in [-1, 1], coeffs (B, 58), identity
    (B, 468, 3) or None); target_windows: (B, 2w+1, 58) coefficients centred on each target frame.
    """

    triplets: FrameTripletBatch
    target_windows: Tensor

    @property
    def target(self) -> Tensor:
        """(B, 3, S, S) ground-truth frames."""
        return self.triplets.target

    def to(self, device: torch.device | str) -> VQIGTrainBatch:
        return VQIGTrainBatch(self.triplets.to(device), self.target_windows.to(device))

    def vqig(self, **mesh: Tensor) -> VQIGBatch:
        """The :class:`VQIGBatch` of these triplets, with the mesh-warp renderer's flow, masks and frames
        (:func:`mesh_warp_targets`) when given."""
        t = self.triplets
        return VQIGBatch(source=t.source, source_coeffs=t.source_coeffs, target=t.target,
                         target_windows=self.target_windows, **mesh)

    def vqig_with_mesh(self) -> VQIGBatch:
        """:meth:`vqig` with everything the mesh-warp renderer gives (needs the clips' identity meshes)."""
        return self.vqig(**mesh_warp_targets(self.triplets))

    def vqig_for(self, model: VQIG) -> VQIGBatch:
        """The batch ``model`` renders from: with the mesh-warp renderer's motion when it has ``mesh_prior``."""
        return self.vqig_with_mesh() if model.config.mesh_prior else self.vqig()


class _TripletView(Dataset):
    """A view of a :class:`FrameTripletDataset`: same items and epochs, each item changed by ``__getitem__``."""

    def __init__(self, base: FrameTripletDataset):
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    def set_epoch(self, epoch: int) -> None:
        self.base.set_epoch(epoch)


class WindowedTriplets(_TripletView):
    """A :class:`FrameTripletDataset` whose items also carry the target frame's coefficient window.

    Item ``i`` is ``(triplet, window)``: window (2w+1, 58) holds the coefficients of frames
    ``t − w … t + w`` of the target's clip, clamped to its usable frames (the first / last frame repeats
    at the clip's ends, as at inference). Batch with :func:`collate_windowed_triplets`.
    """

    def __init__(self, base: FrameTripletDataset, window: int):
        if window < 0:
            raise ValueError(f"window must be >= 0, got {window}")
        super().__init__(base)
        self.window = window

    def __getitem__(self, i: int) -> tuple[FrameTriplet, Tensor]:
        n, t, usable = self.base.index[i]
        coeffs = _load_coeffs(self.base.root, self.base.clips[n])  # (frames, 58), memory-mapped
        frames = np.clip(np.arange(t - self.window, t + self.window + 1), 0, usable - 1)
        return self.base[i], torch.from_numpy(np.array(coeffs[frames], dtype=np.float32))  # (2w+1, 58)


def collate_windowed_triplets(items: Sequence[tuple[FrameTriplet, Tensor]]) -> VQIGTrainBatch:
    """Stack :class:`WindowedTriplets` items into a :class:`VQIGTrainBatch`."""
    return VQIGTrainBatch(collate_triplets([t for t, _ in items]), torch.stack([w for _, w in items]))


def clip_face_key(root: str | os.PathLike[str], clip: Clip) -> str | None:
    """Which face a clip shows: its ``face.txt`` (the photo's sha256, written by ``flowvq synth``, whose
    clips reshape one photo into many face shapes), else the SHA-256 of its ``identity.npy``, else None.

    Two clips rendered from the same photo share the key; a val clip whose key no training clip has shows
    a face the training never saw.
    """
    folder = clip.path(Path(root), "coeffs").parent
    if (folder / FACE_KEY_FILE).is_file():
        return (folder / FACE_KEY_FILE).read_text().strip()
    path = folder / IDENTITY_FILE
    if not path.is_file():
        return None
    array = np.ascontiguousarray(np.load(path, allow_pickle=False), dtype=np.float32)
    return hashlib.sha256(array.tobytes()).hexdigest()


def _face_note(train_set: FrameTripletDataset, val_set: FrameTripletDataset | None) -> str:
    """Whether the val clips' faces (identity meshes) occur in the training split, in words."""
    if val_set is None:
        return "no validation split"
    seen = {clip_face_key(train_set.root, c) for c in train_set.clips}
    keys = [clip_face_key(val_set.root, c) for c in val_set.clips]
    if any(k is None for k in keys):
        return "unknown (some val clips have no identity.npy)"
    unseen = sum(k not in seen for k in keys)
    if unseen == 0:
        return f"all {len(keys)} val clips show faces seen in training (held-out speakers, not faces)"
    return f"{unseen} of {len(keys)} val clips show faces never seen in training"


def _datasets(data: str | os.PathLike[str], size: int, seed: int,
              augment: dict[str, Any] | None = None) -> tuple[FrameTripletDataset, FrameTripletDataset | None, str]:
    """Training and val triplets at ``size``² (val None when the split is empty) and a note on the val set.
    ``augment`` (an :class:`ImageAugmentConfig` as a dict, or None) changes the training items only."""
    aug = ImageAugmentConfig(**augment) if augment is not None else None
    train_set = FrameTripletDataset(data, "train", size=size, seed=seed, augment=aug)
    try:
        val_set = FrameTripletDataset(data, "val", size=size, seed=seed)
        note = f"{len(val_set)} frames of held-out speakers ({len(val_set.clips)} clips)"
    except EmptySplitError as e:
        val_set, note = None, f"none ({e})"
    return train_set, val_set, note


class RandomCrops(_TripletView):
    """A :class:`FrameTripletDataset` whose target frames are cut to a random ``crop``² square (codebook
    training: the convolutions see every texture at its real scale, for (size / crop)² less compute per
    item). The offset comes from ``default_rng((seed, epoch, i, 2))``; the source frame is dropped."""

    def __init__(self, base: FrameTripletDataset, crop: int):
        if not 8 <= crop <= base.size:
            raise UsageError(f"--crop must be in [8, {base.size}] (the frame side), got {crop}")
        super().__init__(base)
        self.crop = crop

    def __getitem__(self, i: int) -> FrameTriplet:
        item = self.base[i]
        y, x = self.base.rng(i, CROP_STREAM).integers(self.base.size - self.crop + 1, size=2)
        target = item.target[:, y : y + self.crop, x : x + self.crop].contiguous()  # (3, crop, crop)
        return dataclasses.replace(item, source=target, target=target, identity=None)


# ---------------------------------------------------------------------------------------------- helpers


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, DistributedDataParallel) else model


def psnr_per_image(pred: Tensor, target: Tensor) -> Tensor:
    """PSNR in dB of images (B, 3, H, W) in [-1, 1] (peak = the full range) → (B,)."""
    mse = ((pred.float() - target.float()) / 2).pow(2).flatten(1).mean(dim=1)  # (B,) on the [0, 1] scale
    return -10.0 * torch.log10(mse.clamp_min(1e-10))


def to_uint8(images: Tensor) -> np.ndarray:
    """Images (B, 3, H, W) in [-1, 1] → (B, H, W, 3) uint8 RGB."""
    scaled = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round()
    return scaled.to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def save_grid(path: Path, columns: Sequence[Tensor]) -> Path:
    """Write a PNG with one column per tensor (each (B, 3, H, W) in [-1, 1]) and one row per item."""
    rows = np.concatenate([to_uint8(c) for c in columns], axis=2)  # (B, H, k·W, 3)
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_image(path, np.concatenate(list(rows), axis=0))  # (B·H, k·W, 3)


def _sample_path(run_dir: Path, step: int) -> Path:
    return run_dir / SAMPLES_DIRNAME / f"step-{step:06d}.png"


def _fixed_items(dataset: Dataset, n: int) -> list[Any]:
    """The first ``n`` items at epoch 0 (the same rows in every sample grid)."""
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(0)
    return [dataset[i] for i in range(min(n, len(dataset)))]


def _vgg(weights: str | os.PathLike[str] | None) -> VGG19Features | None:
    return load_vgg19_features(weights) if weights is not None else None


def _follow(module: nn.Module | None, device: torch.device) -> None:
    """Move a helper network (VGG19) to where the batch is, once."""
    if module is not None and next(module.buffers()).device != device:
        module.to(device)


# ---------------------------------------------------------------------------------------------- run spec


@dataclass(frozen=True)
class _ImageRunSpec(RunSpec):
    """Everything ``run.json`` of an image run records: enough to rebuild the model and the datasets."""

    made_by: ClassVar[str] = "flowvq train codebook|vqig"

    component: str  # "codebook" or "vqig"
    preset: str
    model_config: dict[str, Any]
    data: str
    size: int
    discriminator: dict[str, Any] | None
    loss: dict[str, Any] | None = None  # codebook: VQGANLossConfig (VQIG's losses live in its config)
    codebook: str | None = None  # vqig: the exported codebook folder
    stage: str | None = None
    warm_start_steps: int = 0
    code_steps: int = 0
    augment: dict[str, Any] | None = None  # ImageAugmentConfig of the training items; None = off
    crop: int | None = None  # codebook: random crop side of the training frames; None = whole frames
    init_from: str | None = None  # exported codebook / VQIG whose weights a fresh run starts from

    def discriminator_config(self) -> DiscriminatorConfig:
        return DiscriminatorConfig(**self.discriminator)

    def loss_config(self) -> VQGANLossConfig:
        return VQGANLossConfig(**self.loss)

    def build_codebook(self) -> VQGAN:
        return VQGAN(VQGANConfig.from_dict(dict(self.model_config)))

    def build_vqig(self) -> VQIG:
        """VQIG on the frozen codebook loaded from ``self.codebook`` (its gradients off)."""
        model = VQIG(VQIGConfig.from_dict(dict(self.model_config)), VQGAN.from_pretrained(self.codebook))
        model.freeze_codebook_parts()
        return model


def _check_resume(run_dir: Path, component: str, config: Any) -> _ImageRunSpec | None:
    """The resumed run's spec when ``run.json`` exists (checked against the request), else None."""
    if not (run_dir / RUN_FILE).is_file():
        return None
    spec = _ImageRunSpec.load(run_dir)
    requested = config if isinstance(config, str) else "custom"
    if spec.component != component or spec.preset != requested:
        raise UsageError(f"{run_dir} is a {spec.component} run with config {spec.preset!r}, not {component} "
                         f"{requested!r}; resume with the same command that started it")
    return spec


def _preset(preset: str, what: str) -> str:
    if preset not in PRESETS:
        raise UsageError(f"unknown {what} config {preset!r}; choose one of {', '.join(PRESETS)}")
    return preset


# ---------------------------------------------------------------------------------------------- codebook


def codebook_configs(config: str | VQGANConfig, size: int) -> tuple[VQGANConfig, DiscriminatorConfig,
                                                                    VQGANLossConfig]:
    """Model, discriminator and loss configs of a codebook preset (``tiny``/``mini``/``base``) at ``size``²
    images; a :class:`VQGANConfig` is used as is (its ``image_size`` must be ``size``) with mini's others."""
    if isinstance(config, VQGANConfig):
        if config.image_size != size:
            raise UsageError(f"the codebook config has image_size={config.image_size}, but size={size}; "
                             "make them equal")
        return config, DiscriminatorConfig.mini(), VQGANLossConfig()
    name = _preset(config, "codebook")
    try:
        model = dataclasses.replace(getattr(VQGANConfig, name)(), image_size=size)
    except ValueError as e:
        raise UsageError(f"--size {size} does not fit the {name} codebook ({e}); choose a multiple of "
                         f"{getattr(VQGANConfig, name)().downsample_factor}") from e
    loss = VQGANLossConfig.tiny() if name == "tiny" else VQGANLossConfig()
    return model, getattr(DiscriminatorConfig, name)(), loss


def _codebook_loss_fn(criterion: VQGANLoss, disc: PatchDiscriminator) -> Callable[..., dict[str, Tensor]]:
    def loss_fn(model: nn.Module, batch: FrameTripletBatch, generator: torch.Generator,
                step: int) -> dict[str, Tensor]:
        images = batch.target  # (B, 3, S, S)
        _follow(criterion.vgg, images.device)
        out = model(images)
        g = criterion.generator_loss(images, out, disc, step, last_layer=_unwrap(model).last_layer)
        return {"loss": g.total, "rec": g.reconstruction, "per": g.perceptual, "adv": g.adversarial,
                "adv_weight": g.adversarial_weight, "codebook": g.codebook, "commit": g.commit,
                "perplexity": out.perplexity.detach(), "restarted": torch.tensor(float(out.restarted)),
                "recon": out.recon.detach()}

    return loss_fn


def _codebook_adversary(criterion: VQGANLoss, disc: PatchDiscriminator, lr: float) -> Adversary:
    def d_loss(module: nn.Module, batch: FrameTripletBatch, outputs: dict[str, Tensor],
               step: int) -> dict[str, Tensor]:
        d = criterion.discriminator_loss(batch.target, outputs["recon"], module)
        return {"loss": d.total, "real": d.real_logits, "fake": d.fake_logits}

    return Adversary(disc, d_loss, lr)


def _codebook_eval(model: nn.Module, batch: FrameTripletBatch) -> dict[str, Tensor]:
    out = model(batch.target)
    recon = out.recon.clamp(-1, 1)
    return {"l1": F.l1_loss(recon, batch.target), "psnr": psnr_per_image(recon, batch.target).mean(),
            "perplexity": out.perplexity}


def _codebook_samples(run_dir: Path, items: list[FrameTriplet]) -> Callable[[nn.Module, int], None]:
    images = torch.stack([it.target for it in items])  # (K, 3, S, S)

    @torch.no_grad()
    def sample_fn(model: nn.Module, step: int) -> None:
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        recon = model(images.to(device)).recon
        model.train(was_training)
        save_grid(_sample_path(run_dir, step), [images, recon.cpu()])

    return sample_fn


def train_codebook(data: str | os.PathLike[str], out: str | os.PathLike[str], config: str | VQGANConfig = "mini",
                   train: TrainConfig = TrainConfig(), resume: bool = False, *, size: int = 256,
                   vgg19_weights: str | os.PathLike[str] | None = None, loss: VQGANLossConfig | None = None,
                   disc_lr: float | None = None, augment: ImageAugmentConfig | None = ImageAugmentConfig(),
                   crop: int | None = None, quiet: bool = False, export: bool = True,
                   init_from: str | os.PathLike[str] | None = None) -> ImageRunResult:
    """Train the codebook model (VQGAN + patch discriminator) on the frames of ``data``; export to
    ``out/export/codebook``.

    Args:
        config: preset (``tiny``, ``mini``, ``base``; image side set to ``size``) or a :class:`VQGANConfig`.
        train: optimisation settings of the generator (E, C, G): steps, batch size, lr, ...
        resume: continue from the newest checkpoint in ``out/checkpoints`` (settings from ``run.json``).
        size: side of the training images (frames are resized to it once, into the dataset's cache).
        vgg19_weights: a local safetensors file of torchvision's VGG19; without it the perceptual term is
            the documented substitute, and ``meta.perceptual_kind`` in the log says so.
        loss: loss weights (default: the preset's); ``adversarial_warmup_steps`` delays the GAN term.
        disc_lr: the discriminator's learning rate (default: ``train.lr``).
        augment: colour and lighting changes of the training frames (None = off).
        crop: train on random crop² squares of the frames (None = whole frames); validation and samples
            use whole frames.
        export: ``save_pretrained`` the newest checkpoint at the end (rank 0).
        init_from: an exported codebook (``RUN/export/codebook``, a bundle's ``codebook/``) of the same
            architecture whose weights a fresh run starts from (fine-tuning on new data); the export holds
            no discriminator, so that starts afresh: give it an ``adversarial_warmup_steps`` to catch up.
    """
    run_dir = Path(out)
    spec = _check_resume(run_dir, "codebook", config) if resume else None
    fresh = spec is None
    if spec is None:
        model_cfg, disc_cfg, loss_cfg = codebook_configs(config, size)
        loss_cfg = loss or loss_cfg
        if vgg19_weights is not None:
            loss_cfg = dataclasses.replace(loss_cfg, vgg19_weights=str(Path(vgg19_weights).resolve()))
        name = config if isinstance(config, str) else "custom"
        spec = _ImageRunSpec("codebook", name, model_cfg.to_dict(), str(Path(data).resolve()), size,
                             dataclasses.asdict(disc_cfg), dataclasses.asdict(loss_cfg),
                             augment=dataclasses.asdict(augment) if augment is not None else None, crop=crop,
                             init_from=str(Path(init_from).resolve()) if init_from is not None else None)
        if is_main_process():
            spec.save(run_dir)
    train_set, val_set, val_note = _datasets(data, spec.size, train.seed, spec.augment)
    train_items = RandomCrops(train_set, spec.crop) if spec.crop is not None else train_set
    torch.manual_seed(train.seed)  # the same initial weights on every rank and in every rerun
    model, disc = spec.build_codebook(), PatchDiscriminator(spec.discriminator_config())
    if fresh and spec.init_from is not None:
        _init_codebook(model, spec.init_from)
    criterion = VQGANLoss.from_config(spec.loss_config())
    meta = {"preset": spec.preset, "image_size": spec.size, "perceptual_kind": criterion.perceptual_kind,
            "adversarial_warmup_steps": criterion.config.adversarial_warmup_steps, "validation": val_note,
            "validation_metric": "l1, psnr (dB) of reconstructions in eval mode",
            "discriminator_parameters": sum(p.numel() for p in disc.parameters()),
            "augment": spec.augment, "crop": spec.crop, "init_from": spec.init_from}
    trainer = Trainer(model, train_items, _codebook_loss_fn(criterion, disc), train, run_dir, val_set=val_set,
                      eval_fn=_codebook_eval, collate_fn=collate_triplets, meta=meta, component="codebook",
                      quiet=quiet, with_step=True, adversary=_codebook_adversary(criterion, disc, disc_lr or train.lr),
                      sample_fn=_codebook_samples(run_dir, _fixed_items(val_set or train_set, SAMPLE_ITEMS)))
    result = trainer.fit(resume=resume)
    export_dir = export_image_component(run_dir) if export and result.rank == 0 else None
    return ImageRunResult(result, model, export_dir)


def _init_codebook(model: VQGAN, init_from: str) -> None:
    """Load an exported codebook model's weights (and code usage statistics) into ``model``."""
    start = VQGAN.from_pretrained(init_from)
    if start.config != model.config:
        raise UsageError(f"--init-from {init_from}: that codebook has config {start.config}, not {model.config}; "
                         "start from a codebook trained with the same preset and --size")
    model.load_state_dict(start.state_dict())


# ---------------------------------------------------------------------------------------------- VQIG


@dataclass(frozen=True)
class StageSchedule:
    """Which VQIG objective runs at each step: ``warm_start`` for the first ``warm_start_steps``, then
    ``code`` for ``code_steps``, then ``image`` to the end."""

    steps: int
    warm_start_steps: int
    code_steps: int

    @classmethod
    def build(cls, steps: int, stage: str, warm_start_steps: int, code_steps: int | None) -> StageSchedule:
        """The schedule of ``stage`` (``code``, ``image`` or ``both``) over ``steps`` steps."""
        if stage not in STAGES:
            raise UsageError(f"unknown stage {stage!r}; choose one of {', '.join(STAGES)}")
        if not 0 <= warm_start_steps <= steps:
            raise UsageError(f"warm_start_steps must be in [0, {steps}] (the run's steps), got {warm_start_steps}")
        rest = steps - warm_start_steps
        if stage == "code":
            code = rest
        elif stage == "image":
            code = 0
        else:
            code = rest // 2 if code_steps is None else code_steps
        if not 0 <= code <= rest:
            raise UsageError(f"code_steps must be in [0, {rest}] (steps after the warm start), got {code}")
        return cls(steps, warm_start_steps, code)

    @property
    def image_start(self) -> int:
        """First step of the image-level stage."""
        return self.warm_start_steps + self.code_steps

    def stage_at(self, step: int) -> str:
        if step < self.warm_start_steps:
            return WARM_START
        return CODE if step < self.image_start else IMAGE


def mesh_warp_targets(batch: FrameTripletBatch) -> dict[str, Tensor]:
    """The mesh-warp renderer's render of each source frame moved to its target's coefficients.

    The source and target meshes are ``rig.synthesize(identity, coeffs)`` (256² crop pixels) scaled to
    the frames' side S; the renderer warps the source frame (uint8) to the target mesh.

    Returns:
        :class:`~flowvq_cli.vqig.losses.VQIGBatch`'s mesh fields, on the batch's device: pixel_map
        (B, S, S, 2) float32 source pixel coordinates (x, y) per output pixel, mouth_mask (B, S, S) bool
        (painted mouth interior), paint and mouth_paint (B, S, S) float32 (the opacity of everything
        painted: mouth interior, closing lids; of the mouth interior alone) and mesh_frame (B, 3, S, S) in
        [-1, 1] (the rendered frame).

    Raises:
        ValueError: the batch has no identity meshes.
    """
    if batch.identity is None:
        raise ValueError("the mesh-warp flow needs every clip's identity.npy")
    size = batch.source.shape[-1]
    scale = size / rig.CROP_SIZE
    sources = to_uint8(batch.source)  # (B, S, S, 3)
    identity = batch.identity.detach().cpu().double().numpy()  # (B, 468, 3)
    coeffs = torch.stack([batch.source_coeffs, batch.target_coeffs], dim=1).detach().cpu().double().numpy()
    warp_config = MeshWarpConfig(size=size)
    frames = []
    for b in range(len(sources)):
        meshes = rig.synthesize(identity[b], coeffs[b]) * scale  # (2, 468, 3): source, target
        frames.append(MeshWarpRenderer(sources[b], meshes[0], warp_config).render_one(meshes[1]))
    device = batch.source.device

    def stacked(values: list[np.ndarray]) -> Tensor:
        return torch.from_numpy(np.stack(values)).to(device)

    return {"pixel_map": stacked([f.flow for f in frames]).float(),
            "mouth_mask": stacked([f.mouth_mask for f in frames]),
            "paint": stacked([f.paint for f in frames]).float(),
            "mouth_paint": stacked([f.mouth_paint for f in frames]).float(),
            "mesh_frame": stacked([f.frame for f in frames]).permute(0, 3, 1, 2).float() / 127.5 - 1.0}


class VQIGObjective(nn.Module):
    """VQIG and its stage schedule as one module whose forward is a training step's objective, so DDP
    sees exactly one forward per step. Only ``self.vqig`` holds weights."""

    def __init__(self, vqig: VQIG, schedule: StageSchedule):
        super().__init__()
        self.vqig, self.schedule = vqig, schedule

    def forward(self, batch: VQIGTrainBatch, step: int, discriminator: PatchDiscriminator | None = None,
                vgg: VGG19Features | None = None) -> dict[str, Tensor]:
        """The losses of ``step``'s stage: {"loss", terms..., "stage"}; the image stage adds ``fake``
        (B, 3, H, W), the decoded frames (detached) for the discriminator."""
        stage = self.schedule.stage_at(step)
        tag = {"stage": torch.tensor(float(STAGE_INDEX[stage]))}
        cfg = self.vqig.config
        if stage == WARM_START:
            flow = self.vqig.warm_start_loss(batch.vqig_with_mesh())
            return {"loss": flow, "flow": flow.detach(), **tag}
        if stage == CODE:
            c = self.vqig.code_level_loss(batch.vqig_for(self.vqig))
            return {"loss": c.total, "ce": c.cross_entropy, "feature": c.feature, "warp_l1": c.warp_image,
                    "code_accuracy": c.accuracy, **tag}
        if discriminator is None:
            raise ValueError("the image-level stage needs the discriminator")
        inputs = batch.vqig()
        occlusion_term = (cfg.compose and not cfg.mesh_prior and cfg.loss.occlusion_weight
                          and batch.triplets.identity is not None)
        if cfg.mesh_prior or occlusion_term:  # the prior, or the mouth mask that teaches the occlusion
            inputs = batch.vqig_with_mesh()
        i = self.vqig.image_level_loss(inputs, discriminator, step - self.schedule.image_start, vgg)
        return {"loss": i.total, "rec": i.reconstruction, "per": i.perceptual, "adv": i.adversarial,
                "adv_weight": i.adversarial_weight, "ce": i.cross_entropy, "occ": i.occlusion, "fake": i.fake,
                **tag}


def vqig_config(config: str | VQIGConfig, codebook: VQGAN) -> VQIGConfig:
    """The preset's VQIG config (``tiny``/``mini``/``base``) built on ``codebook``'s configuration; a
    :class:`VQIGConfig` must already name that codebook configuration."""
    if isinstance(config, VQIGConfig):
        if config.codebook != codebook.config:
            raise UsageError("the VQIG config's codebook differs from the loaded codebook's config; build it with "
                             "codebook=VQGAN.from_pretrained(...).config")
        return config
    name = _preset(config, "VQIG")
    try:
        return dataclasses.replace(getattr(VQIGConfig, name)(), codebook=codebook.config)
    except ValueError as e:
        raise UsageError(f"the {name} VQIG config does not fit this codebook ({e}); train the codebook with "
                         f"the same preset ({name})") from e


def _has_identity(dataset: FrameTripletDataset) -> bool:
    return all((c.path(dataset.root, "coeffs").parent / IDENTITY_FILE).is_file() for c in dataset.clips)


def _vqig_loss_fn(disc: PatchDiscriminator | None, vgg: VGG19Features | None) -> Callable[..., dict[str, Tensor]]:
    def loss_fn(model: nn.Module, batch: VQIGTrainBatch, generator: torch.Generator,
                step: int) -> dict[str, Tensor]:
        _follow(vgg, batch.target.device)
        return model(batch, step, disc, vgg)

    return loss_fn


def _vqig_adversary(config: VQIGConfig, disc: PatchDiscriminator, lr: float) -> Adversary:
    def d_loss(module: nn.Module, batch: VQIGTrainBatch, outputs: dict[str, Tensor],
               step: int) -> dict[str, Tensor] | None:
        if "fake" not in outputs:  # not in the image-level stage yet
            return None
        d = discriminator_loss(batch.target.float(), outputs["fake"], module, config.loss.image)
        return {"loss": d.total, "real": d.real_logits, "fake": d.fake_logits}

    return Adversary(disc, d_loss, lr)


def _vqig_eval(model: nn.Module, batch: VQIGTrainBatch) -> dict[str, Tensor]:
    vqig: VQIG = model.vqig
    b = batch.vqig_for(vqig)
    cache = vqig.encode_source(b.source, b.source_coeffs)
    out = vqig.predict(cache, b.target_windows, vqig.batch_prior(b))
    frames = vqig.decode(out).float().clamp(-1, 1)
    indices, _ = vqig.encode_target(b.target)
    return {"l1": F.l1_loss(frames, b.target), "psnr": psnr_per_image(frames, b.target).mean(),
            "code_accuracy": code_accuracy(out.logits, indices),
            "warp_l1": F.l1_loss(vqig.warped_image(cache, out).float(), b.target)}


def _vqig_samples(run_dir: Path, items: list[tuple[FrameTriplet, Tensor]]) -> Callable[[nn.Module, int], None]:
    batch = collate_windowed_triplets(items)

    @torch.no_grad()
    def sample_fn(model: nn.Module, step: int) -> None:
        vqig: VQIG = model.vqig
        was_training = vqig.training
        vqig.eval()
        b = batch.to(vqig.device).vqig_for(vqig)
        frames = vqig.decode(vqig(b.source, b.source_coeffs, b.target_windows, vqig.batch_prior(b))).float()
        vqig.train(was_training)
        save_grid(_sample_path(run_dir, step), [batch.triplets.source, batch.target, frames.cpu()])

    return sample_fn


def _vqig_spec(data: str | os.PathLike[str], codebook: str | os.PathLike[str], config: str | VQIGConfig,
               train: TrainConfig, stage: str, warm_start_steps: int, code_steps: int | None,
               augment: ImageAugmentConfig | None, compose: bool | None, mesh_prior: bool | None,
               prior_residual: bool | None, prior_frame: bool | None, init_from: str | os.PathLike[str] | None,
               adversarial_warmup: int | None) -> _ImageRunSpec:
    cb = VQGAN.from_pretrained(codebook)
    cfg = vqig_config(config, cb)
    if compose is not None:
        cfg = dataclasses.replace(cfg, compose=compose)
    if mesh_prior is not None:
        if mesh_prior and compose is False:
            raise UsageError("--mesh-prior needs --compose (the prior says where the warped photo is visible)")
        cfg = dataclasses.replace(cfg, mesh_prior=mesh_prior, compose=cfg.compose or mesh_prior)
    if prior_residual is not None:
        cfg = dataclasses.replace(cfg, prior_residual=prior_residual)
    if prior_frame is not None:
        if prior_frame and not (cfg.mesh_prior and not cfg.prior_residual):
            raise UsageError("--prior-frame needs --mesh-prior --no-prior-residual (the renderer's frame is the "
                             "photo warped by the prior's flow alone)")
        cfg = dataclasses.replace(cfg, prior_frame=prior_frame)
    if adversarial_warmup is not None:
        image = dataclasses.replace(cfg.loss.image, adversarial_warmup_steps=adversarial_warmup)
        cfg = dataclasses.replace(cfg, loss=dataclasses.replace(cfg.loss, image=image))
    schedule = StageSchedule.build(train.steps, stage, warm_start_steps, code_steps)
    name = config if isinstance(config, str) else "custom"
    disc = dataclasses.asdict(getattr(DiscriminatorConfig, name)() if name in PRESETS else DiscriminatorConfig.mini())
    return _ImageRunSpec("vqig", name, cfg.to_dict(), str(Path(data).resolve()), cfg.codebook.image_size,
                         disc if stage != "code" else None, codebook=str(Path(codebook).resolve()), stage=stage,
                         warm_start_steps=schedule.warm_start_steps, code_steps=schedule.code_steps,
                         augment=dataclasses.asdict(augment) if augment is not None else None,
                         init_from=str(Path(init_from).resolve()) if init_from is not None else None)


def _init_vqig(vqig: VQIG, init_from: str) -> bool:
    """Load an exported VQIG's own weights into ``vqig`` (same architecture; the switches ``compose``,
    ``mesh_prior`` and ``fidelity_w`` and the loss weights may differ; the codebook may be a fine-tuned one
    of the same config, e.g. ``flowvq train codebook --init-from`` on new faces, which the VQIG then learns
    to predict). Starting a ``mesh_prior`` run from a VQIG without it, W's flow and occlusion heads are
    re-initialised: the flow's output becomes a residual on the prior (the whole motion it learnt would count
    twice), and the mask starts at all visible (the prior marks what the photo lacks). Returns whether the
    codebook's weights are those ``init_from`` was trained on."""
    start = VQIG.from_pretrained(init_from, codebook=vqig.codebook, same_codebook=False)
    cfg = vqig.config
    switches = {"compose": cfg.compose, "mesh_prior": cfg.mesh_prior, "prior_residual": cfg.prior_residual,
                "prior_frame": cfg.prior_frame, "fidelity_w": cfg.fidelity_w, "loss": cfg.loss}
    if dataclasses.replace(start.config, **switches) != cfg:
        raise UsageError(f"--init-from {init_from}: that VQIG has another architecture than config "
                         f"{cfg}; start from a VQIG trained with the same preset")
    vqig._owned().load_state_dict(start._owned().state_dict())
    if cfg.mesh_prior and not start.config.mesh_prior:
        vqig.warping.reset_heads()
    return trained_codebook_sha256(init_from) == vqig.codebook_fingerprint()


def train_vqig(data: str | os.PathLike[str], out: str | os.PathLike[str], codebook: str | os.PathLike[str],
               config: str | VQIGConfig = "mini", train: TrainConfig = TrainConfig(), resume: bool = False, *,
               stage: str = "both", warm_start_steps: int = 0, code_steps: int | None = None,
               vgg19_weights: str | os.PathLike[str] | None = None, disc_lr: float | None = None,
               augment: ImageAugmentConfig | None = ImageAugmentConfig(), quiet: bool = False,
               export: bool = True, compose: bool | None = None, mesh_prior: bool | None = None,
               prior_residual: bool | None = None, prior_frame: bool | None = None,
               init_from: str | os.PathLike[str] | None = None,
               adversarial_warmup: int | None = None) -> ImageRunResult:
    """Train VQIG on the frozen codebook exported at ``codebook``; export to ``out/export/vqig``.

    Args:
        codebook: a folder written by ``VQGAN.save_pretrained`` (e.g. ``RUN/export/codebook``); its image
            side is the training resolution.
        config: preset (``tiny``, ``mini``, ``base``; built on the codebook's configuration) or a
            :class:`VQIGConfig` on that codebook (its ``loss`` holds both stages' weights).
        train: optimisation settings of VQIG's own networks (``trainable_parameters()`` only).
        resume: continue from the newest checkpoint (settings from ``run.json``).
        stage: ``code`` (code level only), ``image`` (image level only) or ``both`` (code, then image).
        warm_start_steps: first steps training the warping network on the mesh-warp renderer's flow; 0 =
            none; ignored (and logged) when a training clip has no ``identity.npy``.
        code_steps: code-level steps with ``stage="both"`` (default: half of the steps after the warm start).
        vgg19_weights: local VGG19 safetensors for the image-level perceptual term (else the substitute).
        disc_lr: the discriminator's learning rate (default: ``train.lr``).
        augment: one colour and lighting change per item, the same on its source and target (None = off).
        compose: override the preset's ``VQIGConfig.compose`` (None = keep it).
        mesh_prior: override the preset's ``VQIGConfig.mesh_prior`` (None = keep it); True implies
            ``compose`` and needs every training clip's ``identity.npy``.
        prior_residual: override ``VQIGConfig.prior_residual`` (None = keep it).
        prior_frame: override ``VQIGConfig.prior_frame`` (None = keep it); True needs ``mesh_prior`` without
            ``prior_residual``.
        init_from: an exported VQIG (``RUN/export/vqig``) on the same codebook whose weights a fresh run
            starts from (fine-tuning, e.g. ``stage="image"`` with ``compose=True``); a resumed run ignores it.
        adversarial_warmup: steps before the image stage's adversarial term starts (None = the preset's; the
            step counts from the run's start, warm start and code level included).
    """
    run_dir = Path(out)
    spec = _check_resume(run_dir, "vqig", config) if resume else None
    fresh = spec is None
    size = spec.size if spec is not None else VQGAN.from_pretrained(codebook).config.image_size
    aug = spec.augment if spec is not None else (dataclasses.asdict(augment) if augment is not None else None)
    train_set, val_set, val_note = _datasets(data, size, train.seed, aug)
    if spec is None:
        if warm_start_steps and not _has_identity(train_set):
            warm_start_steps = 0
            val_note += "; warm start skipped: a training clip has no identity.npy"
        spec = _vqig_spec(data, codebook, config, train, stage, warm_start_steps, code_steps, augment, compose,
                          mesh_prior, prior_residual, prior_frame, init_from, adversarial_warmup)
        if VQIGConfig.from_dict(dict(spec.model_config)).mesh_prior and not _has_identity(train_set):
            raise UsageError(f"--mesh-prior needs the mesh-warp renderer's motion, so every training clip of {data} "
                             "needs its identity.npy (made by flowvq prepare / synth)")
        if is_main_process():
            spec.save(run_dir)
    torch.manual_seed(train.seed)
    vqig = spec.build_vqig()
    init_codebook = None  # whether the VQIG started from was trained on this very codebook
    if fresh and spec.init_from is not None:
        init_codebook = "same" if _init_vqig(vqig, spec.init_from) else "fine-tuned since"
    schedule = StageSchedule(train.steps, spec.warm_start_steps, spec.code_steps)
    model = VQIGObjective(vqig, schedule)
    disc = PatchDiscriminator(spec.discriminator_config()) if spec.discriminator is not None else None
    vgg = _vgg(vgg19_weights)
    window = vqig.config.window
    train_items = WindowedTriplets(train_set, window)
    val_items = WindowedTriplets(val_set, window) if val_set is not None else None
    meta = {"preset": spec.preset, "image_size": spec.size, "codebook": spec.codebook, "stage": spec.stage,
            "compose": vqig.config.compose, "mesh_prior": vqig.config.mesh_prior,
            "prior_residual": vqig.config.prior_residual, "prior_frame": vqig.config.prior_frame,
            "init_from": spec.init_from, "init_codebook": init_codebook,
            "schedule": dataclasses.asdict(schedule), "validation": val_note,
            "val_faces": _face_note(train_set, val_set), "augment": spec.augment,
            "perceptual_kind": perceptual_kind(vqig.config.loss.image, vgg) if disc is not None else "none",
            "validation_metric": "l1, psnr (dB), code_accuracy, warp_l1 of eval-mode renders"}
    trainer = Trainer(model, train_items, _vqig_loss_fn(disc, vgg), train, run_dir, val_set=val_items,
                      eval_fn=_vqig_eval, collate_fn=collate_windowed_triplets, meta=meta, component="vqig",
                      quiet=quiet, with_step=True, parameters=lambda m: m.vqig.trainable_parameters(),
                      adversary=_vqig_adversary(vqig.config, disc, disc_lr or train.lr) if disc is not None else None,
                      sample_fn=_vqig_samples(run_dir, _fixed_items(val_items or train_items, SAMPLE_ITEMS)),
                      find_unused_parameters=True)
    result = trainer.fit(resume=resume)
    export_dir = export_image_component(run_dir) if export and result.rank == 0 else None
    return ImageRunResult(result, vqig, export_dir)


# ---------------------------------------------------------------------------------------------- export


def load_image_run_model(run_dir: str | os.PathLike[str], device: str = "cpu") -> VQGAN | VQIG:
    """The codebook model or VQIG of an image run at its newest checkpoint, in eval mode."""
    run_dir = Path(run_dir)
    spec = _ImageRunSpec.load(run_dir)
    state = load_training_state(run_dir / "checkpoints", device="cpu")
    if spec.component == "codebook":
        model: VQGAN | VQIG = spec.build_codebook()
        model.load_state_dict(state.model_state)
    else:
        model = spec.build_vqig()
        VQIGObjective(model, StageSchedule(1, 0, 0)).load_state_dict(state.model_state)
    return model.to(resolve_device(device)).eval()


def export_image_component(run_dir: str | os.PathLike[str], device: str = "cpu") -> Path:
    """``save_pretrained`` an image run's newest checkpoint into ``run_dir/export/<codebook|vqig>``;
    returns that folder. A VQIG export loads with ``VQIG.from_pretrained(dir, codebook=...)`` on the
    codebook recorded in ``run.json``."""
    run_dir = Path(run_dir)
    spec = _ImageRunSpec.load(run_dir)
    return load_image_run_model(run_dir, device).save_pretrained(run_dir / EXPORT_DIRNAME / spec.component)

