"""VQIG's trainer (docs/design.md §4): :func:`train_vqig`.

It loads the exported (frozen) codebook, builds :class:`~flowvq_cli.vqig.VQIG`, calls
``freeze_codebook_parts()`` and optimises only ``trainable_parameters()``. Steps follow a schedule
(:class:`~flowvq_cli.train.vqig_objective.StageSchedule`): ``warm_start_steps`` of the warping network on
the mesh-warp renderer's flow (skipped when a training clip has no ``identity.npy``), then the code-level
stage, then the image-level stage with a discriminator (``stage="both"``: ``code_steps`` code-level steps,
by default half of the rest). Validation: L1 / PSNR of the rendered frames, code accuracy and L1 of the
warped source, on held-out speakers; the start event says whether their faces occur in the training split.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from flowvq_cli.data.datasets import IDENTITY_FILE, FrameTriplet, FrameTripletDataset
from flowvq_cli.data.image_augment import ImageAugmentConfig
from flowvq_cli.errors import UsageError
from flowvq_cli.vq import VQGAN, DiscriminatorConfig, PatchDiscriminator, VGG19Features
from flowvq_cli.vqig import VQIG, VQIGConfig, trained_codebook_sha256
from flowvq_cli.vqig.losses import code_accuracy, discriminator_loss, perceptual_kind

from .flows import PRESETS
from .image_common import (
    SAMPLE_ITEMS,
    ImageRunResult,
    _check_resume,
    _datasets,
    _face_note,
    _fixed_items,
    _follow,
    _ImageRunSpec,
    _preset,
    _sample_path,
    _vgg,
    psnr_per_image,
    save_grid,
)
from .image_export import export_image_component
from .loop import Adversary, TrainConfig, Trainer, is_main_process
from .vqig_objective import (
    StageSchedule,
    VQIGObjective,
    VQIGTrainBatch,
    WindowedTriplets,
    collate_windowed_triplets,
)


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
