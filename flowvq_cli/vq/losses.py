"""Training losses of the codebook model (docs/design.md §4):

    L_G = λ_rec‖I − Î‖₁ + λ_per·L_per + λ_adv(step)·L_adv + ‖sg[z] − z_q‖² + β‖z − sg[z_q]‖²

**Perceptual term.** VGG19 features (relu1_2, relu2_2, relu3_4, relu4_4, relu5_4; L1, equal weights)
run *only* when a local safetensors file with VGG19 weights is given (``vgg19_weights``); they are
never downloaded and never unpickled. No such weights can be obtained here, so the default is a
substitute, reported by :attr:`VQGANLoss.perceptual_kind` so the training log says which one ran:

- ``disc_feature_matching``: L1 between the patch discriminator's hidden activations of the real and
  the reconstructed image (pix2pixHD's feature-matching loss). The discriminator is trained on these
  very images, so its features are tuned to what separates real faces from reconstructions — the role
  the ImageNet features play in a VGG loss — and it costs one extra discriminator pass.
- ``+laplacian_pyramid`` (``pyramid_levels`` > 0): L1 between the Laplacian pyramids of the two images,
  each band weighted equally. Plain L1 is dominated by low frequencies; per-band L1 gives edges and
  fine texture (teeth, wrinkles) their own share of the loss, and it works from step 0, before the
  discriminator has learned anything.

**Adversarial term.** Hinge (default) or non-saturating loss on the patch logits. λ_adv is 0 before
``adversarial_warmup_steps``; afterwards either fixed or VQGAN's adaptive weight
λ_adv·‖∇_w L_nll‖ / (‖∇_w L_adv‖ + ε) at the decoder's last layer w. The discriminator trains from step
0 (its features feed the feature-matching substitute); only the generator's adversarial term waits.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from flowvq_cli.errors import WeightsError
from flowvq_cli.modeling import load_safetensors, load_state_checked
from flowvq_cli.vq.discriminator import DiscriminatorOutput, PatchDiscriminator
from flowvq_cli.vq.vqgan import VQOutput

AdversarialKind = Literal["hinge", "non_saturating"]

# torchvision's VGG19 "features" layout: conv widths, "M" = 2×2 max-pool. Layer i of the Sequential
# below is layer i of torchvision's ``vgg19().features``, so its state-dict keys load unchanged.
VGG19_LAYOUT: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
                                       512, 512, 512, 512, "M", 512, 512, 512, 512)
# Indices (in that Sequential) of the ReLUs tapped: relu1_2, relu2_2, relu3_4, relu4_4, relu5_4.
VGG19_TAPS: tuple[int, ...] = (3, 8, 17, 26, 35)
# The ImageNet statistics VGG19 was trained with (inputs in [0, 1]).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# ------------------------------------------------------------------------------ VGG19
class VGG19Features(nn.Module):
    """Fixed VGG19 feature extractor (no torchvision): images (B, 3, H, W) in [-1, 1] → 5 feature maps.

    Constructed with random weights; :func:`load_vgg19_features` fills them from a safetensors file.
    Its parameters never require gradients.
    """

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = 3
        for item in VGG19_LAYOUT:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(in_ch, int(item), 3, padding=1), nn.ReLU()]
                in_ch = int(item)
        self.features = nn.Sequential(*layers[: VGG19_TAPS[-1] + 1])
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGG19Features:
        """Stays in eval mode: a fixed feature extractor."""
        return super().train(False)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        h = ((images + 1.0) / 2.0 - self.mean) / self.std  # (B, 3, H, W), ImageNet-normalised
        taps: list[torch.Tensor] = []
        for index, layer in enumerate(self.features):
            h = layer(h)
            if index in VGG19_TAPS:
                taps.append(h)
        return taps


def load_vgg19_features(path: str | os.PathLike[str]) -> VGG19Features:
    """VGG19 features from a local safetensors file holding torchvision's ``vgg19`` state dict.

    Only ``features.*`` tensors are used (``classifier.*`` is ignored). Raises :class:`WeightsError`
    for a missing, non-safetensors or unreadable file, and for missing or mis-shaped tensors.
    """
    state = load_safetensors(path, what="VGG19 weights")
    features = {name: tensor for name, tensor in state.items() if name.startswith("features.")}
    if not features:
        raise WeightsError(f"VGG19 weights: {path} has no 'features.*' tensors; save torchvision's "
                           "vgg19().state_dict() (or its features) with safetensors")
    net = VGG19Features()
    load_state_checked(net, features, "VGG19 weights")
    return net


# ---------------------------------------------------------------------- loss pieces
def laplacian_pyramid(images: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """Band-pass pyramid of (B, C, H, W) images: ``levels`` detail bands (finest first) + the low-pass.

    Each band is x − up(down(x)) (2×2 average pooling, bilinear up-sampling); the bands and the last
    low-pass sum back to the image level by level.
    """
    bands: list[torch.Tensor] = []
    current = images
    for _ in range(levels):
        if min(current.shape[-2:]) < 2:
            break
        low = F.avg_pool2d(current, 2)  # (B, C, H/2, W/2)
        up = F.interpolate(low, size=current.shape[-2:], mode="bilinear", align_corners=False)
        bands.append(current - up)
        current = low
    bands.append(current)
    return bands


def laplacian_pyramid_l1(fake: torch.Tensor, real: torch.Tensor, levels: int) -> torch.Tensor:
    """Mean over pyramid bands of the per-band L1 distance (scalar)."""
    pairs = zip(laplacian_pyramid(fake, levels), laplacian_pyramid(real, levels), strict=True)
    return torch.stack([F.l1_loss(f, r) for f, r in pairs]).mean()


def feature_matching_l1(fake: list[torch.Tensor], real: list[torch.Tensor]) -> torch.Tensor:
    """Mean over layers of L1(fake features, detached real features) (scalar)."""
    return torch.stack([F.l1_loss(f, r.detach()) for f, r in zip(fake, real, strict=True)]).mean()


def discriminator_hinge(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """½(mean relu(1 − D(real)) + mean relu(1 + D(fake)))."""
    return 0.5 * (F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean())


def discriminator_non_saturating(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """½(mean softplus(−D(real)) + mean softplus(D(fake))) — binary cross-entropy on logits."""
    return 0.5 * (F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean())


def generator_adversarial(fake_logits: torch.Tensor, kind: AdversarialKind) -> torch.Tensor:
    """Generator's adversarial loss: −mean D(fake) (hinge) or mean softplus(−D(fake)) (non-saturating)."""
    return -fake_logits.mean() if kind == "hinge" else F.softplus(-fake_logits).mean()


def adaptive_weight(nll: torch.Tensor, adversarial: torch.Tensor, last_layer: torch.Tensor,
                    eps: float, max_weight: float) -> torch.Tensor:
    """‖∇_w nll‖ / (‖∇_w adversarial‖ + eps), clamped to [0, max_weight], detached (VQGAN)."""
    nll_grad = torch.autograd.grad(nll, last_layer, retain_graph=True)[0]
    adv_grad = torch.autograd.grad(adversarial, last_layer, retain_graph=True)[0]
    return (nll_grad.norm() / (adv_grad.norm() + eps)).clamp(0.0, max_weight).detach()


@contextlib.contextmanager
def no_parameter_grads(module: nn.Module) -> Iterator[None]:
    """Within the block, ``module``'s parameters do not require grad (restored afterwards), so a loss can
    backpropagate *through* the discriminator to the generator without touching its gradients."""
    flags = [(p, p.requires_grad) for p in module.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


# --------------------------------------------------------------------------- the loss
@dataclass(frozen=True)
class VQGANLossConfig:
    """Weights and switches of :class:`VQGANLoss` (the paper's values were lost; VQGAN's are used).

    Attributes:
        reconstruction_weight: λ_rec of the pixel L1.
        perceptual_weight: λ_per, for VGG19 or (without VGG weights) discriminator feature matching.
        vgg19_weights: local safetensors file of torchvision's VGG19 state dict; None = substitute.
        pyramid_levels: Laplacian-pyramid bands of the substitute; 0 = off. Unused with VGG19.
        pyramid_weight: weight of the pyramid L1.
        adversarial: "hinge" or "non_saturating".
        adversarial_weight: λ_adv (the factor on the adaptive weight when ``adaptive`` is on).
        adaptive: scale λ_adv by ‖∇L_nll‖ / ‖∇L_adv‖ at the decoder's last layer.
        adaptive_eps: ε of that ratio.
        max_adaptive_weight: clamp of that ratio.
        adversarial_warmup_steps: λ_adv = 0 for steps < this.
    """

    reconstruction_weight: float = 1.0
    perceptual_weight: float = 1.0
    vgg19_weights: str | None = None
    pyramid_levels: int = 4
    pyramid_weight: float = 1.0
    adversarial: AdversarialKind = "hinge"
    adversarial_weight: float = 0.8
    adaptive: bool = True
    adaptive_eps: float = 1e-4
    max_adaptive_weight: float = 1e4
    adversarial_warmup_steps: int = 10_000

    def __post_init__(self) -> None:
        if self.adversarial not in ("hinge", "non_saturating"):
            raise ValueError(f"adversarial must be 'hinge' or 'non_saturating', got {self.adversarial!r}")
        if self.pyramid_levels < 0 or self.adversarial_warmup_steps < 0:
            raise ValueError("pyramid_levels and adversarial_warmup_steps must be >= 0")

    @classmethod
    def tiny(cls) -> VQGANLossConfig:
        """For tests: 2 pyramid bands, adversarial term from step 10."""
        return cls(pyramid_levels=2, adversarial_warmup_steps=10)


@dataclass
class GeneratorLoss:
    """Terms of the encoder/codebook/decoder objective (all scalars; ``total`` is what to backpropagate).

    ``adversarial`` is the unweighted generator loss (0 during the warm-up); ``adversarial_weight`` the
    λ applied to it; ``perceptual_kind`` names the perceptual term that ran.
    """

    total: torch.Tensor
    reconstruction: torch.Tensor
    perceptual: torch.Tensor
    adversarial: torch.Tensor
    adversarial_weight: torch.Tensor
    codebook: torch.Tensor
    commit: torch.Tensor
    perceptual_kind: str


@dataclass
class DiscriminatorLoss:
    """Discriminator objective ``total`` and the mean real / fake logits (for logging)."""

    total: torch.Tensor
    real_logits: torch.Tensor
    fake_logits: torch.Tensor


class VQGANLoss(nn.Module):
    """Generator and discriminator objectives of the codebook model.

    Build it with :meth:`from_config` (which loads VGG19 when ``config.vgg19_weights`` is set), or pass a
    ready :class:`VGG19Features`. Usage per step::

        out = model(images)
        g = loss.generator_loss(images, out, disc, step, last_layer=model.last_layer)
        g.total.backward(); g_opt.step()
        d = loss.discriminator_loss(images, out.recon, disc)
        d.total.backward(); d_opt.step()
    """

    def __init__(self, config: VQGANLossConfig, vgg: VGG19Features | None = None) -> None:
        super().__init__()
        if config.vgg19_weights is not None and vgg is None:
            raise ValueError("config.vgg19_weights is set: build the loss with VQGANLoss.from_config(config)")
        self.config = config
        self.vgg = vgg

    @classmethod
    def from_config(cls, config: VQGANLossConfig) -> VQGANLoss:
        vgg = load_vgg19_features(config.vgg19_weights) if config.vgg19_weights is not None else None
        return cls(config, vgg)

    @property
    def perceptual_kind(self) -> str:
        """Which perceptual term runs: 'vgg19', 'disc_feature_matching[+laplacian_pyramid]' or 'none'."""
        if self.config.perceptual_weight == 0 and (self.vgg is not None or self.config.pyramid_levels == 0):
            return "none"
        if self.vgg is not None:
            return "vgg19"
        kinds = ["disc_feature_matching"] if self.config.perceptual_weight else []
        if self.config.pyramid_levels:
            kinds.append("laplacian_pyramid")
        return "+".join(kinds)

    def adversarial_weight_at(self, step: int) -> float:
        """λ_adv before any adaptive scaling: 0 during the warm-up, ``adversarial_weight`` afterwards."""
        return 0.0 if step < self.config.adversarial_warmup_steps else self.config.adversarial_weight

    def generator_loss(self, images: torch.Tensor, out: VQOutput, discriminator: PatchDiscriminator,
                       step: int, last_layer: torch.Tensor | None = None) -> GeneratorLoss:
        """Objective of E, C and G for images (B, 3, H, W) and the model output ``out`` at ``step``.

        ``last_layer`` (``model.last_layer``) enables the adaptive adversarial weight; without it, or
        when gradients are off, λ_adv is used as is. The discriminator's parameters get no gradient.
        """
        cfg = self.config
        recon = out.recon
        reconstruction = F.l1_loss(recon, images)
        lam = self.adversarial_weight_at(step)
        with no_parameter_grads(discriminator):
            fake_d = real_d = None
            if self.vgg is None and (cfg.perceptual_weight or lam):
                fake_d, real_d = _discriminate_pair(discriminator, recon, images.detach())
            perceptual = self._perceptual(images, recon, fake_d, real_d)
            nll = cfg.reconstruction_weight * reconstruction + perceptual
            adversarial = recon.new_zeros(())
            weight = recon.new_tensor(lam)
            if lam > 0:
                fake_logits = fake_d.logits if fake_d is not None else discriminator(recon).logits
                adversarial = generator_adversarial(fake_logits, cfg.adversarial)
                if cfg.adaptive and last_layer is not None and torch.is_grad_enabled():
                    weight = lam * adaptive_weight(nll, adversarial, last_layer, cfg.adaptive_eps,
                                                   cfg.max_adaptive_weight)
        total = nll + weight * adversarial + out.codebook_loss + out.commit_loss
        return GeneratorLoss(total=total, reconstruction=reconstruction.detach(), perceptual=perceptual.detach(),
                             adversarial=adversarial.detach(), adversarial_weight=weight.detach(),
                             codebook=out.codebook_loss.detach(), commit=out.commit_loss.detach(),
                             perceptual_kind=self.perceptual_kind)

    def _perceptual(self, images: torch.Tensor, recon: torch.Tensor, fake_d: DiscriminatorOutput | None,
                    real_d: DiscriminatorOutput | None) -> torch.Tensor:
        """Weighted perceptual term (already multiplied by its weights; scalar)."""
        return perceptual_term(recon, images, fake_d, real_d, self.config, self.vgg)

    def discriminator_loss(self, images: torch.Tensor, recon: torch.Tensor,
                           discriminator: PatchDiscriminator) -> DiscriminatorLoss:
        """Objective of the discriminator on real images and (detached) reconstructions (B, 3, H, W)."""
        fake_d, real_d = _discriminate_pair(discriminator, recon.detach(), images.detach())
        if self.config.adversarial == "hinge":
            total = discriminator_hinge(real_d.logits, fake_d.logits)
        else:
            total = discriminator_non_saturating(real_d.logits, fake_d.logits)
        return DiscriminatorLoss(total=total, real_logits=real_d.logits.detach().mean(),
                                 fake_logits=fake_d.logits.detach().mean())


def _discriminate_pair(discriminator: PatchDiscriminator, fake: torch.Tensor,
                       real: torch.Tensor) -> tuple[DiscriminatorOutput, DiscriminatorOutput]:
    """Run D once on fake and real images (B, 3, H, W) concatenated, so both see the same weights (one
    spectral-norm power iteration per call); returns (fake output, real output)."""
    both = discriminator(torch.cat([fake, real], dim=0))
    b = fake.shape[0]
    return (DiscriminatorOutput(both.logits[:b], [f[:b] for f in both.features]),
            DiscriminatorOutput(both.logits[b:], [f[b:] for f in both.features]))


def perceptual_term(fake: torch.Tensor, real: torch.Tensor, fake_d: DiscriminatorOutput | None,
                    real_d: DiscriminatorOutput | None, config: VQGANLossConfig,
                    vgg: VGG19Features | None) -> torch.Tensor:
    """Weighted perceptual term (scalar): VGG19 feature L1 when local VGG19 weights are loaded, otherwise the
    documented substitute, discriminator feature matching + Laplacian-pyramid L1. Shared by the codebook
    and VQIG trainers."""
    if vgg is not None:
        if not config.perceptual_weight:
            return fake.new_zeros(())
        pairs = zip(vgg(fake), vgg(real.detach()), strict=True)
        return config.perceptual_weight * torch.stack([F.l1_loss(f, r.detach()) for f, r in pairs]).mean()
    term = fake.new_zeros(())
    if config.perceptual_weight and fake_d is not None and real_d is not None:
        term = term + config.perceptual_weight * feature_matching_l1(fake_d.features, real_d.features)
    if config.pyramid_levels:
        term = term + config.pyramid_weight * laplacian_pyramid_l1(fake, real, config.pyramid_levels)
    return term
