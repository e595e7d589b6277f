"""The codebook model's trainer (docs/design.md §4): :func:`train_codebook`.

Every training frame (the ``target`` of a :class:`~flowvq_cli.data.datasets.FrameTripletDataset` item, so
each frame once per epoch, or a random square of it: :class:`RandomCrops`) goes through
:class:`~flowvq_cli.vq.VQGAN`; generator loss :class:`~flowvq_cli.vq.VQGANLoss` (L1 + perceptual — VGG19
only when local weights are given, else the documented substitute — + adversarial after
``adversarial_warmup_steps`` + codebook/commitment), dead codes restarted by the quantiser in training
mode; the :class:`~flowvq_cli.vq.PatchDiscriminator` is stepped right after each generator step, on that
step's reconstructions, by its own AdamW (betas (0.5, 0.9), constant lr). Validation: L1 and PSNR of
the reconstructions of held-out frames.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from flowvq_cli.data.datasets import CROP_STREAM, FrameTriplet, FrameTripletBatch, FrameTripletDataset, collate_triplets
from flowvq_cli.data.image_augment import ImageAugmentConfig
from flowvq_cli.errors import UsageError
from flowvq_cli.vq import VQGAN, DiscriminatorConfig, PatchDiscriminator, VQGANConfig, VQGANLoss, VQGANLossConfig

from .image_common import (
    SAMPLE_ITEMS,
    ImageRunResult,
    _check_resume,
    _datasets,
    _fixed_items,
    _follow,
    _ImageRunSpec,
    _preset,
    _sample_path,
    _TripletView,
    _unwrap,
    psnr_per_image,
    save_grid,
)
from .image_export import export_image_component
from .loop import Adversary, TrainConfig, Trainer, is_main_process


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
