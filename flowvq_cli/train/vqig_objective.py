"""VQIG's training objective (docs/design.md §4): its batches (triplets with each target frame's coefficient
window), the stage schedule (warm start, code level, image level), the mesh-warp renderer's targets, and
:class:`VQIGObjective`, the module whose forward is one step's losses.

The warm start trains the warping network on the mesh-warp renderer's flow, computed per triplet from the
source frame and ``rig.synthesize(identity, source/target coeffs)`` (:func:`mesh_warp_targets`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from flowvq_cli.data.datasets import (
    FrameTriplet,
    FrameTripletBatch,
    FrameTripletDataset,
    _load_coeffs,
    collate_triplets,
)
from flowvq_cli.errors import UsageError
from flowvq_cli.face import rig
from flowvq_cli.render.meshwarp import MeshWarpConfig, MeshWarpRenderer
from flowvq_cli.vq import PatchDiscriminator, VGG19Features
from flowvq_cli.vqig import VQIG, VQIGBatch

from .image_common import _TripletView, to_uint8

STAGES = ("code", "image", "both")
WARM_START, CODE, IMAGE = "warm_start", "code", "image"
STAGE_INDEX = {WARM_START: 0, CODE: 1, IMAGE: 2}
"""Logged as ``stage`` so a log window that spans a stage boundary is visible."""


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
