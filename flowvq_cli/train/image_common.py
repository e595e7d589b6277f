"""What both image trainers (:mod:`.codebook`, :mod:`.vqig`) use: the run's description and result, the
training and val datasets, sample grids and small helpers (docs/design.md §4).

Both trainers run on the generic :class:`~flowvq_cli.train.loop.Trainer` (resumable atomic checkpoints,
validation on the held-out speakers of the ``val`` split, JSONL log, DDP) like the flow trainers, with a run
folder::

    run.json            what to rebuild the model and datasets from (checked on --resume)
    train_log.jsonl     start event: meta.perceptual_kind says which perceptual loss ran
    checkpoints/        model + optimizer + discriminator + its optimizer + RNG states
    samples/step-XXXXXX.png   at every validation step: input | reconstruction (codebook),
                              source | target | output (VQIG), one row per fixed sample item
    export/codebook | export/vqig   ``save_pretrained`` of the newest checkpoint (:mod:`.image_export`)
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset

from flowvq_cli.data.datasets import IDENTITY_FILE, EmptySplitError, FrameTripletDataset
from flowvq_cli.data.image_augment import ImageAugmentConfig
from flowvq_cli.data.manifest import FACE_KEY_FILE, Clip
from flowvq_cli.errors import UsageError
from flowvq_cli.image import save_image
from flowvq_cli.vq import VQGAN, DiscriminatorConfig, VGG19Features, VQGANConfig, VQGANLossConfig, load_vgg19_features
from flowvq_cli.vqig import VQIG, VQIGConfig

from .flows import PRESETS
from .loop import RunSpec, TrainResult

SAMPLES_DIRNAME = "samples"
SAMPLE_ITEMS = 4
"""Rows of a sample grid (fixed items of the val split, or of the training split without one)."""


@dataclass(frozen=True)
class ImageRunResult:
    """A finished (or resumed-to-the-end) codebook or VQIG run."""

    training: TrainResult
    model: VQGAN | VQIG  # the trained model (unwrapped; on this rank)
    export_dir: Path | None  # None on ranks other than 0, or with export=False


# ---------------------------------------------------------------------------------------------- data


class _TripletView(Dataset):
    """A view of a :class:`FrameTripletDataset`: same items and epochs, each item changed by ``__getitem__``."""

    def __init__(self, base: FrameTripletDataset):
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    def set_epoch(self, epoch: int) -> None:
        self.base.set_epoch(epoch)


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
    return _ImageRunSpec.resumed(run_dir, component, config)


def _preset(preset: str, what: str) -> str:
    if preset not in PRESETS:
        raise UsageError(f"unknown {what} config {preset!r}; choose one of {', '.join(PRESETS)}")
    return preset
