"""Training batches and losses of VQIG's two stages (paper §3.3, CodeFormer's recipe; docs/design.md §4).

**Code level** — the networks learn to predict the GT frame's codes:
cross-entropy to the code indices the frozen E + quantiser give the GT frame, plus ‖ẑ − z_gt‖² between
the fused features and the GT's *quantised* latents (the codebook entries themselves, CodeFormer's
target), plus two optional helpers for the warping network: L1 between the warped source I_w and the
GT frame, and the warm start on the mesh-warp renderer's flow.

**Image level** — L1 + perceptual (VGG19 when its weights are given, otherwise the codebook model's
documented substitute: discriminator feature matching + Laplacian-pyramid L1; ``perceptual_kind`` says
which ran) + adversarial (patch discriminator, hinge or non-saturating) on the decoded image. The
decoded image must carry gradients to the code predictor although codes are chosen by argmax: the code
lookup is **straight-through** (forward: exactly the argmax code, so training renders what inference
renders; backward: the gradient of the softmax-weighted mixture of codes). The adaptive adversarial
weight (VQGAN) balances the gradient norms *at the output image*, since the decoder's last layer — where
VQGAN measures them — is frozen here.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F

from flowvq_cli.vq.discriminator import DiscriminatorOutput, PatchDiscriminator
from flowvq_cli.vq.losses import (
    DiscriminatorLoss,
    VGG19Features,
    VQGANLossConfig,
    adaptive_weight,
    discriminator_hinge,
    discriminator_non_saturating,
    generator_adversarial,
    no_parameter_grads,
    perceptual_term,
)


@dataclass
class VQIGBatch:
    """One training batch (images in [-1, 1]).

    Attributes:
        source: (B, 3, H, W) source photos (one frame of the clip, or another clip of the same person).
        source_coeffs: (B, K) the source photos' coefficients.
        target: (B, 3, H, W) ground-truth frames.
        target_windows: (B, 2w+1, K) coefficients of the 2w + 1 frames centred on each target frame.
        pixel_map: (B, H, W, 2) the mesh-warp renderer's backward map (source pixel coordinates) for the
            target frame, for the warm start of the warping network; None when not available.
        mouth_mask: (B, H, W) bool, the renderer's painted mouth interior (left out of the warm start).
        paint: (B, H, W) float in [0, 1], everything the renderer painted (``WarpResult.paint``); with
            ``pixel_map`` the :class:`~flowvq_cli.vqig.warp.MeshPrior` of ``VQIGConfig.mesh_prior``.
        mouth_paint: (B, H, W) float in [0, 1], the mouth interior's part of ``paint``; and
        mesh_frame: (B, 3, H, W) in [-1, 1], the renderer's frame: the prior of ``VQIGConfig.prior_frame``.
    """

    source: torch.Tensor
    source_coeffs: torch.Tensor
    target: torch.Tensor
    target_windows: torch.Tensor
    pixel_map: torch.Tensor | None = None
    mouth_mask: torch.Tensor | None = None
    paint: torch.Tensor | None = None
    mouth_paint: torch.Tensor | None = None
    mesh_frame: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> VQIGBatch:
        """The same batch on ``device``."""
        return VQIGBatch(**{f.name: None if (t := getattr(self, f.name)) is None else t.to(device)
                            for f in fields(self)})


@dataclass
class CodeLevelLoss:
    """Stage-1 objective ``total`` (backpropagate it) and its unweighted terms (detached scalars).

    ``flow`` is 0 when the batch carries no mesh-warp flow; ``accuracy`` is the share of positions whose
    argmax code equals the GT code.
    """

    total: torch.Tensor
    cross_entropy: torch.Tensor
    feature: torch.Tensor
    warp_image: torch.Tensor
    flow: torch.Tensor
    accuracy: torch.Tensor


@dataclass
class ImageLevelLoss:
    """Stage-2 objective ``total`` and its terms (detached scalars).

    ``perceptual`` is already weighted (it may sum several terms, named by ``perceptual_kind``);
    ``adversarial`` is unweighted and ``adversarial_weight`` the λ applied (0 during the warm-up);
    ``fake`` (B, 3, H, W) is the decoded image, detached, for the discriminator's step.
    """

    total: torch.Tensor
    reconstruction: torch.Tensor
    perceptual: torch.Tensor
    adversarial: torch.Tensor
    adversarial_weight: torch.Tensor
    cross_entropy: torch.Tensor
    perceptual_kind: str
    fake: torch.Tensor
    occlusion: torch.Tensor  # the occlusion-mask term (unweighted; 0 without compose or a mouth mask)


@dataclass
class ImageTerms:
    """What :func:`image_terms` returns: the weighted sum ``total`` and its parts."""

    total: torch.Tensor
    reconstruction: torch.Tensor
    perceptual: torch.Tensor
    adversarial: torch.Tensor
    adversarial_weight: torch.Tensor


def perceptual_kind(config: VQGANLossConfig, vgg: VGG19Features | None) -> str:
    """'vgg19', 'disc_feature_matching[+laplacian_pyramid]', 'laplacian_pyramid' or 'none'."""
    if vgg is not None:
        return "vgg19" if config.perceptual_weight else "none"
    kinds = (["disc_feature_matching"] if config.perceptual_weight else []) + (
        ["laplacian_pyramid"] if config.pyramid_levels else [])
    return "+".join(kinds) or "none"


def image_terms(fake: torch.Tensor, real: torch.Tensor, discriminator: PatchDiscriminator, step: int,
                config: VQGANLossConfig, vgg: VGG19Features | None = None) -> ImageTerms:
    """λ_rec‖fake − real‖₁ + L_per + λ_adv·L_adv for images (B, 3, H, W); D's parameters get no gradient."""
    if config.vgg19_weights is not None and vgg is None:
        raise ValueError("the image loss names VGG19 weights: load them with "
                         "flowvq_cli.vq.losses.load_vgg19_features and pass them as vgg")
    real = real.detach()
    reconstruction = F.l1_loss(fake, real)
    lam = 0.0 if step < config.adversarial_warmup_steps else config.adversarial_weight
    with no_parameter_grads(discriminator):
        fake_d = real_d = None
        if vgg is None and (config.perceptual_weight or lam):
            fake_d, real_d = discriminate_pair(discriminator, fake, real)
        perceptual = perceptual_term(fake, real, fake_d, real_d, config, vgg)
        nll = config.reconstruction_weight * reconstruction + perceptual
        adversarial = fake.new_zeros(())
        weight = fake.new_tensor(lam)
        if lam > 0:
            logits = fake_d.logits if fake_d is not None else discriminator(fake).logits
            adversarial = generator_adversarial(logits, config.adversarial)
            if config.adaptive and fake.requires_grad and torch.is_grad_enabled():
                weight = lam * adaptive_weight(nll, adversarial, fake, config.adaptive_eps,
                                               config.max_adaptive_weight)
    return ImageTerms(total=nll + weight * adversarial, reconstruction=reconstruction.detach(),
                      perceptual=perceptual.detach(), adversarial=adversarial.detach(),
                      adversarial_weight=weight.detach())


def discriminate_pair(discriminator: PatchDiscriminator, fake: torch.Tensor,
                      real: torch.Tensor) -> tuple[DiscriminatorOutput, DiscriminatorOutput]:
    """One discriminator pass over fake and real (B, 3, H, W) concatenated → (fake output, real output)."""
    both = discriminator(torch.cat([fake, real], dim=0))
    b = fake.shape[0]
    return (DiscriminatorOutput(both.logits[:b], [f[:b] for f in both.features]),
            DiscriminatorOutput(both.logits[b:], [f[b:] for f in both.features]))


def discriminator_loss(real: torch.Tensor, fake: torch.Tensor, discriminator: PatchDiscriminator,
                       config: VQGANLossConfig) -> DiscriminatorLoss:
    """The discriminator's objective on real frames and (detached) generated ones, (B, 3, H, W) each."""
    fake_d, real_d = discriminate_pair(discriminator, fake.detach(), real.detach())
    if config.adversarial == "hinge":
        total = discriminator_hinge(real_d.logits, fake_d.logits)
    else:
        total = discriminator_non_saturating(real_d.logits, fake_d.logits)
    return DiscriminatorLoss(total=total, real_logits=real_d.logits.detach().mean(),
                             fake_logits=fake_d.logits.detach().mean())


def code_accuracy(logits: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """Share of positions whose argmax of logits (B, T, N) equals indices (B, h, w) (scalar)."""
    return (logits.argmax(dim=-1) == indices.flatten(1)).float().mean()


def occlusion_loss(occlusion: torch.Tensor, mouth_mask: torch.Tensor) -> torch.Tensor:
    """BCE between an occlusion mask (B, 1, h, w) in [0, 1] and 1 − the mesh-warp renderer's mouth mask
    (B, H, W) bool, at the mask's resolution (scalar, float32)."""
    size = tuple(mouth_mask.shape[-2:])
    visible = F.interpolate(occlusion.float(), size=size, mode="bilinear", align_corners=False)[:, 0]
    target = (~mouth_mask.bool()).float()
    return F.binary_cross_entropy(visible.clamp(1e-4, 1 - 1e-4), target)
