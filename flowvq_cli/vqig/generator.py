"""The vector-quantised image generator VQIG (paper §3.3, docs/design.md §4 "VQIG"), assembled.

    source ──► E (frozen) ──► quantiser (frozen) ──► z_s ─────────────────────────────┐
    source ──► E_w head ─► entry ─┐                                                    │
    source ──► W's encoder ─┐     │                                                    ▼
    coeff window ─► M ─► m ─┴► W ─► flow, occlusion ─► warp(entry) ─► E_w tail ─► z_w ─► Fuse(MHCA + AdaIN(m)) ─► ẑ
    ẑ ─► T ─► logits (B, h·w, N) ─► argmax ─► codebook ─► z_q ─► G (frozen) [+ fidelity skip] ─► image

Everything left of the warp depends only on the source photo: :meth:`VQIG.prepare_source` computes it
once and :meth:`VQIG.render_prepared` reuses it for any number of frames (a batch-1 source serves a
batch of B frames). The frozen parts (E, quantiser, G) are the codebook model ``self.codebook``, held,
not copied; :meth:`VQIG.trainable_parameters` leaves them out, :meth:`VQIG.train` keeps them in eval mode
and :meth:`VQIG.freeze_codebook_parts` (called by trainers) turns their gradients off.

A saved VQIG holds only its own weights; it is loaded *onto* a codebook model, whose configuration and
weights must be the ones it was trained on (checked with a SHA-256 of the codebook's parameters).

Rendering runs under ``torch.inference_mode`` in :attr:`VQIG.render_dtype`: bf16 (fp16 on a GPU without
bf16) on CUDA and on a CPU that computes bf16 in hardware, float32 elsewhere or with ``half_precision =
False``. Batched and frame-by-frame rendering are equal in float32; in bf16 the kernels differ with the batch
size, so they agree only closely.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from flowvq_cli.errors import WeightsError
from flowvq_cli.face.rig import COEFF_LAYOUT_VERSION
from flowvq_cli.modeling import ModelMixin
from flowvq_cli.vq.discriminator import PatchDiscriminator
from flowvq_cli.vq.losses import DiscriminatorLoss, VGG19Features
from flowvq_cli.vq.vqgan import VQGAN
from flowvq_cli.vqig.config import VQIGConfig, VQIGLossConfig
from flowvq_cli.vqig.encoder import WarpedEncoder
from flowvq_cli.vqig.fidelity import FidelitySkip
from flowvq_cli.vqig.fuse import FuseNetwork
from flowvq_cli.vqig.losses import (
    CodeLevelLoss,
    ImageLevelLoss,
    VQIGBatch,
    code_accuracy,
    discriminator_loss,
    image_terms,
    occlusion_loss,
    perceptual_kind,
)
from flowvq_cli.vqig.mapping import MappingNetwork
from flowvq_cli.vqig.transformer import CodeTransformer
from flowvq_cli.vqig.warp import (
    MeshPrior,
    WarpNetwork,
    flow_from_pixel_map,
    flow_warm_start_loss,
    identity_flow,
    resize_flow,
    warp,
)

CODEBOOK_MODULE = "codebook"


@dataclass
class SourceCache:
    """Everything VQIG computes from the source photo alone (batch B_s: 1 for one photo, or B).

    Attributes:
        image: (B_s, 3, H, W) the source.
        coeffs: (B_s, K) its coefficients.
        z_s: (B_s, d, h, w) the frozen encoder's quantised latents (the cross-attention's keys/values).
        entry: (B_s, C_k, H/2^k, W/2^k) E_w's head output, the feature that is warped (the image when k = 0).
        levels: {level: (B_s, C_l, H/2^l, W/2^l)} E_w's head level outputs used by the fidelity skip.
        warp_features: the warping network's source pyramid.
    """

    image: torch.Tensor
    coeffs: torch.Tensor
    z_s: torch.Tensor
    entry: torch.Tensor
    levels: dict[int, torch.Tensor]
    warp_features: list[torch.Tensor]


@dataclass
class VQIGOutput:
    """The code prediction for a batch of B frames.

    Attributes:
        logits: (B, h·w, N) logits over the codebook per position.
        z_fused: (B, d, h, w) ẑ, the fuse network's output (compared with the GT's quantised latents).
        z_w: (B, d, h, w) the warped encoder's output.
        motion: (B, d_m) motion descriptor m.
        flow: (B, 2, S, S) normalised backward flow (with ``config.mesh_prior``: the prior's flow, plus W's
            residual with ``prior_residual``, at the prior's resolution); occlusion: (B, 1, S, S) W's mask
            (with ``config.prior_frame``: ones, W is not run).
        skip_features: {level: (B, C_l, H/2^l, W/2^l)} warped source features for the fidelity skip.
        warped: (B, 3, H, W) the source image warped by ``flow`` (with ``config.prior_frame``: the mesh-warp
            renderer's frame), with ``config.compose`` (else None).
        paint: (B, 1, H, W) the mesh prior's paint opacity (occluded on top of ``occlusion``), or None.
    """

    logits: torch.Tensor
    z_fused: torch.Tensor
    z_w: torch.Tensor
    motion: torch.Tensor
    flow: torch.Tensor
    occlusion: torch.Tensor
    skip_features: dict[int, torch.Tensor]
    warped: torch.Tensor | None = None
    paint: torch.Tensor | None = None

    def visibility(self, size: tuple[int, int]) -> torch.Tensor:
        """(B, 1, *size) how much of the warped photo is used: the occlusion mask, times 1 − ``paint``."""
        return _visibility(self.occlusion, self.paint, size)

    @property
    def indices(self) -> torch.Tensor:
        """(B, h, w) argmax code per position."""
        b, _, h, w = self.z_fused.shape
        return self.logits.argmax(dim=-1).reshape(b, h, w)


@functools.cache
def native_bf16_cpu() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX512-BF16 or AMX), asked once. There bf16 autocast renders
    VQIG about twice as fast as float32 (``benchmarks/bench_vqig.py``); elsewhere bf16 is emulated and slower."""
    probes = (getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
    return any(probe is not None and bool(probe()) for probe in probes)


class VQIG(ModelMixin, nn.Module):
    """Source photo + coefficient windows → frames, through the frozen codebook. See the module docstring."""

    model_type = "flowvq-vqig"

    display_name = "VQIG"
    config_class = VQIGConfig
    component = "vqig"
    coeff_layout_version = COEFF_LAYOUT_VERSION

    def __init__(self, config: VQIGConfig, codebook: VQGAN | None = None) -> None:
        """Build VQIG on ``codebook`` (held, not copied; a fresh random one when None); E_w copies its E."""
        super().__init__()
        if codebook is not None and codebook.config != config.codebook:
            raise ValueError(f"the codebook model's config {codebook.config} differs from config.codebook "
                             f"{config.codebook}; build the VQIG config on the codebook you pass")
        self.config = config
        self.codebook = codebook if codebook is not None else VQGAN(config.codebook)
        self.mapping = MappingNetwork(config)
        self.warping = WarpNetwork(config)
        self.warped_encoder = WarpedEncoder(config.codebook, config.warp_level)
        self.warped_encoder.load_from(self.codebook.encoder)
        self.fuse = FuseNetwork(config)
        self.transformer = CodeTransformer(config)
        self.fidelity = FidelitySkip(config) if config.fidelity_skip else None
        self.codebook.eval()
        # rendering (not training) in bf16/fp16 where the hardware computes it: see render_dtype
        self.half_precision = True

    @property
    def device(self) -> torch.device:
        return self.codebook.quantizer.codebook.device

    # -------------------------------------------------------------- frozen / trainable parts
    def _owned(self) -> nn.ModuleDict:
        """VQIG's own networks (everything but the codebook model), keyed by attribute name."""
        return nn.ModuleDict({name: child for name, child in self.named_children() if name != CODEBOOK_MODULE})

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of M, W, E_w, the fuse network, T and the fidelity skip (never E, C or G)."""
        return self._owned().parameters()

    def freeze_codebook_parts(self) -> None:
        """Turn off gradients of E, the quantiser/codebook and G and put them in eval mode (for trainers)."""
        self.codebook.requires_grad_(False)
        self.codebook.eval()

    def train(self, mode: bool = True) -> VQIG:
        """Set the training mode of VQIG's own networks; the codebook model always stays in eval mode (its
        quantiser must not update usage statistics or restart codes)."""
        super().train(mode)
        self.codebook.eval()
        return self

    # ------------------------------------------------------------------------- the model
    def encode_source(self, source: torch.Tensor, source_coeffs: torch.Tensor) -> SourceCache:
        """Source images (B, 3, H, W) in [-1, 1] and coefficients (B, K) → :class:`SourceCache` (with grad)."""
        self._check_images(source, "source")
        with torch.no_grad():
            z_s = self.codebook.encode(source).z_q  # (B, d, h, w)
        head = self.warped_encoder.head(source)
        levels = {lv: f for lv, f in head.levels.items() if lv in self.config.fidelity_levels}
        return SourceCache(image=source, coeffs=source_coeffs, z_s=z_s, entry=head.out, levels=levels,
                           warp_features=[] if self.config.prior_frame else self.warping.encode_source(source))

    def predict(self, cache: SourceCache, windows: torch.Tensor, prior: MeshPrior | None = None) -> VQIGOutput:
        """Coefficient windows (B, 2w+1, K) for a cached source (batch B or 1) → :class:`VQIGOutput`;
        ``prior``: the mesh-warp renderer's motion for the B frames, needed (only) with ``config.mesh_prior``."""
        b = windows.shape[0]
        if cache.entry.shape[0] not in (1, b):
            raise ValueError(f"a source batch of {cache.entry.shape[0]} cannot drive {b} frames; pass 1 source "
                             "or one per frame")
        m = self.mapping(windows, cache.coeffs)  # (B, d_m)
        if self.config.prior_frame:  # the renderer's frame is used wherever it paints no mouth: W is not run
            flow = self._with_prior(None, prior, b)
            size = self.config.warp_size
            occlusion = torch.ones(b, 1, size, size, device=self.device)
        else:
            motion = self.warping(cache.warp_features, m)
            flow, occlusion = self._with_prior(motion.flow, prior, b), motion.occlusion
        paint = prior.paint.to(self.device) if prior is not None else None
        entry = self._warp_visible(cache.entry.expand(b, -1, -1, -1), flow, occlusion, paint)
        tail = self.warped_encoder.tail(entry)  # z_w (B, d, h, w)
        skips = {lv: self._warp_visible(f.expand(b, -1, -1, -1), flow, occlusion, paint)
                 for lv, f in cache.levels.items()}
        skips.update({lv: f for lv, f in tail.levels.items() if lv in self.config.fidelity_levels})
        z_fused = self.fuse(tail.out, cache.z_s, m)  # (B, d, h, w)
        warped = self._base_frame(cache, flow, prior) if self.config.compose else None
        return VQIGOutput(logits=self.transformer(z_fused), z_fused=z_fused, z_w=tail.out, motion=m, flow=flow,
                          occlusion=occlusion, skip_features=skips, warped=warped, paint=paint)

    def forward(self, source: torch.Tensor, source_coeffs: torch.Tensor, windows: torch.Tensor,
                prior: MeshPrior | None = None) -> VQIGOutput:
        """source (B, 3, H, W), source_coeffs (B, K), windows (B, 2w+1, K) → :class:`VQIGOutput`."""
        return self.predict(self.encode_source(source, source_coeffs), windows, prior)

    def _with_prior(self, flow: torch.Tensor | None, prior: MeshPrior | None, b: int) -> torch.Tensor:
        """W's flow (B, 2, S, S) → the flow used: itself, or (``mesh_prior``) the prior's flow plus W's offset
        from the identity (without ``prior_residual``: the prior's flow alone, and ``flow`` may be None), at
        the prior's resolution."""
        if not self.config.mesh_prior:
            if prior is not None:
                raise ValueError("this VQIG was built without mesh_prior; do not pass a mesh prior")
            return flow
        if prior is None:
            raise ValueError("this VQIG renders on the mesh-warp renderer's motion (config.mesh_prior): pass "
                             "prior=MeshPrior(...) for the frames")
        if len(prior) != b:
            raise ValueError(f"the mesh prior holds {len(prior)} frames, the windows {b}")
        prior_flow = prior.flow.to(self.device).float()
        if not self.config.prior_residual:
            return prior_flow
        size = tuple(prior.flow.shape[-2:])
        return prior_flow + resize_flow(flow, size) - identity_flow(b, size, flow.device)

    def _base_frame(self, cache: SourceCache, flow: torch.Tensor, prior: MeshPrior | None) -> torch.Tensor:
        """The frame the decoded one is composed onto (B, 3, H, W): the source warped by ``flow``, or with
        ``config.prior_frame`` the mesh-warp renderer's own frame (resized to H × W)."""
        b = flow.shape[0]
        if not self.config.prior_frame:
            return warp(cache.image.expand(b, -1, -1, -1), flow)
        if prior is None or prior.frame is None:
            raise ValueError("this VQIG composes on the mesh-warp renderer's frame (config.prior_frame): build the "
                             "prior with MeshPrior.from_render(result, frame=True)")
        return _resize_map(prior.frame.to(self.device, cache.image.dtype), tuple(cache.image.shape[-2:]))

    def decode(self, out: VQIGOutput, fidelity_w: float | None = None, straight_through: bool = False) -> torch.Tensor:
        """Predicted codes → images (B, 3, H, W) through the frozen decoder (and the fidelity skip), composed
        with the warped source where it is visible when ``config.compose``.

        Args:
            out: the prediction.
            fidelity_w: weight of the fidelity skip; None = ``config.fidelity_w``. Ignored without the skip.
            straight_through: look codes up with a straight-through softmax (same values as argmax, but
                gradients reach the logits); for the image-level loss.
        """
        z_q = self._lookup(out.logits, tuple(out.z_fused.shape), straight_through)  # (B, d, h, w)
        decoder = self.codebook.decoder
        if self.fidelity is None:
            frames = decoder(z_q)
        else:
            w = self.config.fidelity_w if fidelity_w is None else fidelity_w
            frames = self.fidelity(decoder, z_q, out.skip_features, w)
        if out.warped is None:
            return frames
        visible = out.visibility(tuple(frames.shape[-2:])).to(frames.dtype)  # (B, 1, H, W)
        return visible * out.warped.to(frames.dtype) + (1.0 - visible) * frames

    def warped_image(self, cache: SourceCache, out: VQIGOutput) -> torch.Tensor:
        """I_w: the source image warped by the predicted flow (B, 3, H, W) (not masked)."""
        if out.warped is not None:  # already warped for the composition
            return out.warped
        b = out.flow.shape[0]
        return warp(cache.image.expand(b, -1, -1, -1), out.flow)

    def _lookup(self, logits: torch.Tensor, shape: tuple[int, ...], straight_through: bool) -> torch.Tensor:
        b, d, h, w = shape
        indices = logits.argmax(dim=-1)  # (B, hw)
        if not straight_through:
            return self.codebook.quantizer.get_codebook_feat(indices, (b, h, w))
        probs = logits.float().softmax(dim=-1)  # (B, hw, N)
        one_hot = F.one_hot(indices, probs.shape[-1]).to(probs.dtype)
        weights = one_hot + (probs - probs.detach())  # value: exactly one-hot; gradient: the softmax's
        codebook = self.codebook.quantizer.codebook.detach()
        z = weights.to(codebook.dtype) @ codebook  # (B, hw, d)
        return z.transpose(1, 2).reshape(b, d, h, w).contiguous()

    def _warp_visible(self, features: torch.Tensor, flow: torch.Tensor, occlusion: torch.Tensor,
                      paint: torch.Tensor | None) -> torch.Tensor:
        """warp(features, flow) · visibility, all at the features' resolution → (B, C, H', W')."""
        mask = _visibility(occlusion, paint, tuple(features.shape[-2:]))  # (B, 1, H', W')
        return warp(features, flow) * mask.to(features.dtype)

    def _check_images(self, images: torch.Tensor, what: str) -> None:
        cb = self.config.codebook
        if images.dim() != 4 or images.shape[1:] != (cb.image_channels, cb.image_size, cb.image_size):
            raise ValueError(f"{what} must be (B, {cb.image_channels}, {cb.image_size}, {cb.image_size}) images "
                             f"in [-1, 1], got {tuple(images.shape)}; resize the aligned crop first")

    # ------------------------------------------------------------------------- inference
    @property
    def render_dtype(self) -> torch.dtype:
        """What rendering computes in: bf16 (fp16 on a GPU without bf16) on CUDA and on a CPU that computes bf16
        in hardware (:func:`native_bf16_cpu`), unless ``half_precision`` is off; float32 otherwise."""
        if self.half_precision and self.device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if self.half_precision and self.device.type == "cpu" and native_bf16_cpu():
            return torch.bfloat16
        return torch.float32

    @property
    def render_precision(self) -> str:
        """:attr:`render_dtype`'s name: ``bfloat16``, ``float16`` or ``float32``."""
        return str(self.render_dtype).removeprefix("torch.")

    @contextlib.contextmanager
    def _inference(self) -> Iterator[None]:
        """inference_mode, plus autocast to :attr:`render_dtype` when that is not float32."""
        dtype = self.render_dtype
        with torch.inference_mode():
            if dtype == torch.float32:
                yield
            else:
                with torch.autocast(self.device.type, dtype=dtype):
                    yield

    def prepare_source(self, source: torch.Tensor, source_coeffs: torch.Tensor) -> SourceCache:
        """Encode the source once, (B_s, 3, H, W) and (B_s, K), for :meth:`render_prepared`."""
        with self._inference():
            return self.encode_source(source.to(self.device), source_coeffs.to(self.device))

    def render_prepared(self, cache: SourceCache, windows: torch.Tensor, fidelity_w: float | None = None,
                        return_output: bool = False, *, prior: MeshPrior | None = None
                        ) -> torch.Tensor | tuple[torch.Tensor, VQIGOutput]:
        """Frames for coefficient windows (B, 2w+1, K) of a prepared source → (B, 3, H, W) float32 in [-1, 1];
        with ``return_output`` also the :class:`VQIGOutput` they were decoded from (flow, occlusion, ...).
        ``prior``: the frames' mesh-warp motion, with ``config.mesh_prior``."""
        if self.config.prior_frame and not return_output and cache.entry.shape[0] == 1 and prior is not None:
            return self._render_painted(cache, windows, fidelity_w, prior)
        with self._inference():
            out = self.predict(cache, windows.to(self.device), prior)
            frames = self.decode(out, fidelity_w).float().clamp(-1.0, 1.0)
        return (frames, out) if return_output else frames

    def _render_painted(self, cache: SourceCache, windows: torch.Tensor, fidelity_w: float | None,
                        prior: MeshPrior) -> torch.Tensor:
        """``prior_frame`` rendering: a frame whose mouth the renderer does not paint is the renderer's frame
        (the composition uses nothing else there), so only the others run through the networks. The same
        frames as rendering all of them."""
        with self._inference():
            flow = self._with_prior(None, prior, windows.shape[0])  # checks the prior against the windows
            frames = self._base_frame(cache, flow, prior).float().clamp(-1.0, 1.0)  # (B, 3, H, W)
            painted = prior.painted().nonzero().flatten().cpu()  # (B',)
            if len(painted):
                sub = prior.select(painted)
                out = self.predict(cache, windows[painted].to(self.device), sub)
                frames[painted.to(frames.device)] = self.decode(out, fidelity_w).float().clamp(-1.0, 1.0)
        return frames

    def render(self, source: torch.Tensor, source_coeffs: torch.Tensor, target_coeff_windows: torch.Tensor,
               fidelity_w: float | None = None, *, prior: MeshPrior | None = None) -> torch.Tensor:
        """source (B_s, 3, H, W) in [-1, 1], source_coeffs (B_s, K), target windows (B, 2w+1, K) with
        B_s = 1 or B → frames (B, 3, H, W) in [-1, 1]. Run in eval mode."""
        return self.render_prepared(self.prepare_source(source, source_coeffs), target_coeff_windows, fidelity_w,
                                    prior=prior)

    # ----------------------------------------------------------------------------- losses
    @property
    def loss_config(self) -> VQIGLossConfig:
        return self.config.loss

    @torch.no_grad()
    def encode_target(self, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """GT frames (B, 3, H, W) → (code indices (B, h, w), quantised latents z_gt (B, d, h, w)) from the frozen
        E and quantiser."""
        self._check_images(target, "target")
        quant = self.codebook.encode(target)
        return quant.indices, quant.z_q.detach()

    def batch_prior(self, batch: VQIGBatch) -> MeshPrior | None:
        """The batch's :class:`MeshPrior` with ``config.mesh_prior`` (else None).

        Raises ValueError when the batch lacks the mesh-warp renderer's ``pixel_map`` or ``paint`` (with
        ``config.prior_frame``: ``mouth_paint`` and ``mesh_frame``).
        """
        if not self.config.mesh_prior:
            return None
        if not self.config.prior_frame:
            needed = {"pixel_map": batch.pixel_map, "paint": batch.paint}
        else:
            needed = {"pixel_map": batch.pixel_map, "mouth_paint": batch.mouth_paint, "mesh_frame": batch.mesh_frame}
        missing = [name for name, value in needed.items() if value is None]
        if missing:
            raise ValueError("this VQIG renders on the mesh-warp renderer's motion (config.mesh_prior): the batch "
                             f"needs its {' and '.join(missing)}")
        return MeshPrior.from_pixel_map(*needed.values())

    def code_level_loss(self, batch: VQIGBatch) -> CodeLevelLoss:
        """Stage 1 (code level): see :class:`~flowvq_cli.vqig.config.VQIGLossConfig`."""
        cfg = self.loss_config
        cache = self.encode_source(batch.source, batch.source_coeffs)
        out = self.predict(cache, batch.target_windows, self.batch_prior(batch))
        indices, z_gt = self.encode_target(batch.target)
        ce = F.cross_entropy(out.logits.float().flatten(0, 1), indices.flatten())
        feature = F.mse_loss(out.z_fused.float(), z_gt.float())
        zero = ce.new_zeros(())
        warp_image = zero
        if cfg.warp_image_weight:
            warp_image = F.l1_loss(self.warped_image(cache, out).float(), batch.target.float())
        flow = self._flow_term(out.flow, batch) if cfg.flow_weight else zero
        total = (cfg.ce_weight * ce + cfg.feature_weight * feature + cfg.warp_image_weight * warp_image
                 + cfg.flow_weight * flow)
        return CodeLevelLoss(total=total, cross_entropy=ce.detach(), feature=feature.detach(),
                             warp_image=warp_image.detach(), flow=flow.detach(),
                             accuracy=code_accuracy(out.logits.detach(), indices))

    def warm_start_loss(self, batch: VQIGBatch) -> torch.Tensor:
        """Masked L1 between W's flow and the batch's mesh-warp flow (scalar); runs only M and W.

        Raises ValueError when the batch has no ``pixel_map``.
        """
        if batch.pixel_map is None:
            raise ValueError("the warm start needs the mesh-warp renderer's flow: set batch.pixel_map")
        m = self.mapping(batch.target_windows, batch.source_coeffs)
        flow = self.warping(self.warping.encode_source(batch.source), m).flow
        return self._flow_term(self._with_prior(flow, self.batch_prior(batch), flow.shape[0]), batch)

    def _flow_term(self, flow: torch.Tensor, batch: VQIGBatch) -> torch.Tensor:
        if batch.pixel_map is None:
            return flow.new_zeros(())
        size = tuple(batch.source.shape[-2:])
        target = flow_from_pixel_map(batch.pixel_map, size).to(flow.device)
        return flow_warm_start_loss(flow.float(), target, batch.mouth_mask)

    def image_level_loss(self, batch: VQIGBatch, disc: PatchDiscriminator, step: int,
                         vgg: VGG19Features | None = None) -> ImageLevelLoss:
        """Stage 2 (image level) at training ``step``: the decoded frame (straight-through code lookup,
        fidelity skip at ``config.fidelity_w``) against the GT frame; with ``config.compose`` and the batch's
        mesh-warp mouth mask, also the occlusion term. ``vgg``: VGG19 features when the image loss names VGG19
        weights. ``disc``'s parameters receive no gradient."""
        cfg = self.loss_config
        out = self.forward(batch.source, batch.source_coeffs, batch.target_windows, self.batch_prior(batch))
        fake = self.decode(out, straight_through=True).float()  # (B, 3, H, W)
        terms = image_terms(fake, batch.target.float(), disc, step, cfg.image, vgg)
        ce = fake.new_zeros(())
        if cfg.image_code_weight:
            indices, _ = self.encode_target(batch.target)
            ce = F.cross_entropy(out.logits.float().flatten(0, 1), indices.flatten())
        occ = fake.new_zeros(())
        if self.config.compose and not self.config.mesh_prior and cfg.occlusion_weight and batch.mouth_mask is not None:
            occ = occlusion_loss(out.occlusion, batch.mouth_mask)
        return ImageLevelLoss(total=terms.total + cfg.image_code_weight * ce + cfg.occlusion_weight * occ,
                              reconstruction=terms.reconstruction, perceptual=terms.perceptual,
                              adversarial=terms.adversarial, adversarial_weight=terms.adversarial_weight,
                              cross_entropy=ce.detach(), perceptual_kind=perceptual_kind(cfg.image, vgg),
                              fake=fake.detach(), occlusion=occ.detach())

    def discriminator_loss(self, batch: VQIGBatch, fake: torch.Tensor, disc: PatchDiscriminator) -> DiscriminatorLoss:
        """The discriminator's objective on the batch's GT frames and ``ImageLevelLoss.fake``."""
        return discriminator_loss(batch.target.float(), fake, disc, self.loss_config.image)

    # ------------------------------------------------------------------------ persistence
    def codebook_fingerprint(self) -> str:
        """SHA-256 of the codebook model's parameters (names, shapes, float32 values)."""
        return codebook_fingerprint(self.codebook)

    def config_metadata(self) -> dict[str, Any]:
        """``config.json`` records the codebook VQIG learnt on (its :func:`codebook_fingerprint`)."""
        return {"codebook_sha256": self.codebook_fingerprint()}

    def weights_module(self) -> nn.Module:
        """Only VQIG's own networks are saved: the codebook model is loaded from its own folder."""
        return self._owned()

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike[str], codebook: VQGAN,  # type: ignore[override]
                        device: torch.device | str = "cpu", *, same_codebook: bool = True) -> VQIG:
        """Load a VQIG written by :meth:`save_pretrained` onto the codebook model it was trained with.

        ``same_codebook=False`` accepts a codebook of the recorded config whose weights differ (a fine-tuned
        one): only to initialise training on it, since the codes no longer mean what this VQIG predicts.

        Raises :class:`WeightsError` for missing/invalid files, another coefficient layout, or a codebook
        whose config or weights differ from the recorded ones. Returned in eval mode on ``device``.
        """
        return super().from_pretrained(directory, device, codebook=codebook, same_codebook=same_codebook)

    @classmethod
    def build(cls, config: VQIGConfig, meta: Mapping[str, Any], folder: Path, *,  # type: ignore[override]
              codebook: VQGAN, same_codebook: bool = True) -> VQIG:
        if codebook.config != config.codebook:
            raise WeightsError(f"VQIG in {folder} was trained on a codebook with config {config.codebook}, "
                               f"not {codebook.config}; load the codebook/ of the same bundle")
        if same_codebook and codebook_fingerprint(codebook) != meta.get("codebook_sha256"):
            raise WeightsError(f"VQIG in {folder} was trained on other codebook weights (SHA-256 mismatch); "
                               "load the codebook/ of the same bundle, or retrain VQIG on this codebook")
        return cls(config, codebook)


def _visibility(occlusion: torch.Tensor, paint: torch.Tensor | None, size: tuple[int, int]) -> torch.Tensor:
    """W's occlusion mask (B, 1, S, S), times 1 − the mesh prior's paint opacity (B, 1, H, W) when given,
    at ``size`` → (B, 1, *size): how much of the warped photo is used."""
    mask = F.interpolate(occlusion, size=size, mode="bilinear", align_corners=False)
    if paint is None:
        return mask
    return mask * (1.0 - _resize_map(paint.to(mask.dtype), size))


def _resize_map(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A mesh-warp map (B, C, h, w) (paint opacity, frame) at ``size``: area-averaged when it shrinks,
    bilinear when it grows, itself when it fits."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if x.shape[-1] > size[-1]:
        return F.interpolate(x, size=size, mode="area")
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def codebook_fingerprint(codebook: VQGAN) -> str:
    """SHA-256 over the codebook model's parameters (sorted names, shapes, float32 little-endian bytes)."""
    digest = hashlib.sha256()
    for name, param in sorted(codebook.named_parameters()):
        digest.update(f"{name}:{tuple(param.shape)};".encode())
        digest.update(param.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


def trained_codebook_sha256(directory: str | os.PathLike[str]) -> str | None:
    """The :func:`codebook_fingerprint` that a VQIG saved in ``directory`` records: the codebook it learnt on."""
    return VQIG.load_config(directory).get("codebook_sha256")
