"""Patch discriminator, adversarial warm-up and weights, perceptual terms, VGG19 loading, a short fit."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from flowvq_cli.errors import WeightsError
from flowvq_cli.vq.discriminator import DiscriminatorConfig, PatchDiscriminator
from flowvq_cli.vq.losses import (
    VGG19Features,
    VQGANLoss,
    VQGANLossConfig,
    adaptive_weight,
    discriminator_hinge,
    discriminator_non_saturating,
    generator_adversarial,
    laplacian_pyramid,
    laplacian_pyramid_l1,
    load_vgg19_features,
)
from flowvq_cli.vq.vqgan import VQGAN, VQGANConfig


def images(batch: int = 2, seed: int = 0, size: int = 32) -> torch.Tensor:
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def setup(seed: int = 0, **loss_kwargs: object) -> tuple[VQGAN, PatchDiscriminator, VQGANLoss]:
    torch.manual_seed(seed)
    config = dataclasses.replace(VQGANLossConfig.tiny(), **loss_kwargs)
    return VQGAN(VQGANConfig.tiny()), PatchDiscriminator(DiscriminatorConfig.tiny()), VQGANLoss(config)


# ------------------------------------------------------------------ discriminator
@pytest.mark.parametrize("spectral", [True, False])
def test_patch_discriminator_shapes(spectral: bool) -> None:
    cfg = DiscriminatorConfig(base_channels=8, max_channels=32, num_layers=2, norm_groups=4, spectral_norm=spectral)
    disc = PatchDiscriminator(cfg)
    out = disc(images(size=64))
    assert out.logits.shape == (2, 1, 64 // 4 - 2, 64 // 4 - 2)
    assert [f.shape[1] for f in out.features] == [8, 16, 32]
    has_sn = any("parametrizations" in name for name, _ in disc.named_parameters())
    assert has_sn == spectral


def test_adversarial_loss_values() -> None:
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0])
    assert discriminator_hinge(real, fake).item() == pytest.approx(0.5 * (0.25 + 0.5))
    expected = 0.5 * (F.softplus(-real).mean() + F.softplus(fake).mean())
    assert discriminator_non_saturating(real, fake).item() == pytest.approx(expected.item())
    assert generator_adversarial(fake, "hinge").item() == pytest.approx(1.0)
    assert generator_adversarial(fake, "non_saturating").item() == pytest.approx(F.softplus(-fake).mean().item())


# ------------------------------------------------------------------ warm-up / weights
@pytest.mark.parametrize("kind", ["hinge", "non_saturating"])
def test_warmup_gives_zero_adversarial_weight_before_the_warmup_step(kind: str) -> None:
    model, disc, loss = setup(adversarial_warmup_steps=5, adaptive=False, adversarial_weight=0.7, adversarial=kind)
    assert [loss.adversarial_weight_at(s) for s in (0, 4, 5, 100)] == [0.0, 0.0, 0.7, 0.7]
    x = images()
    before = loss.generator_loss(x, model(x), disc, step=4, last_layer=model.last_layer)
    assert before.adversarial_weight.item() == 0.0 and before.adversarial.item() == 0.0
    after = loss.generator_loss(x, model(x), disc, step=5, last_layer=model.last_layer)
    assert after.adversarial_weight.item() == pytest.approx(0.7)
    assert after.adversarial.item() != 0.0


def test_generator_loss_leaves_discriminator_gradients_alone() -> None:
    model, disc, loss = setup(adversarial_warmup_steps=0)
    x = images()
    g = loss.generator_loss(x, model(x), disc, step=0, last_layer=model.last_layer)
    g.total.backward()
    assert all(p.grad is None for p in disc.parameters())
    assert all(p.requires_grad for p in disc.parameters())  # restored after the call
    assert model.last_layer.grad is not None


def test_adaptive_weight_matches_its_formula() -> None:
    model, disc, loss = setup(adversarial_warmup_steps=0, adversarial_weight=0.5)
    disc.eval()  # no spectral-norm power iteration: the recomputation below sees the same weights
    x = images()
    out = model(x)
    g = loss.generator_loss(x, out, disc, step=0, last_layer=model.last_layer)
    w = model.last_layer
    # recompute ‖∇nll‖ / (‖∇adv‖ + ε) independently
    with torch.no_grad():
        real_feats = disc(x).features
    fake = disc(out.recon)
    nll = (F.l1_loss(out.recon, x)
           + torch.stack([F.l1_loss(f, r) for f, r in zip(fake.features, real_feats, strict=True)]).mean()
           + laplacian_pyramid_l1(out.recon, x, loss.config.pyramid_levels))
    adv = -fake.logits.mean()
    expected = 0.5 * adaptive_weight(nll, adv, w, loss.config.adaptive_eps, loss.config.max_adaptive_weight)
    assert g.adversarial_weight.item() == pytest.approx(expected.item(), rel=1e-4)
    assert g.adversarial_weight.item() > 0


def test_discriminator_loss_only_moves_the_discriminator() -> None:
    model, disc, loss = setup()
    x = images()
    out = model(x)
    d = loss.discriminator_loss(x, out.recon, disc)
    d.total.backward()
    assert all(p.grad is None for p in model.parameters())
    assert all(p.grad is not None for p in disc.parameters())


# ------------------------------------------------------------------ perceptual
def test_perceptual_kind_is_reported() -> None:
    assert setup()[2].perceptual_kind == "disc_feature_matching+laplacian_pyramid"
    assert setup(pyramid_levels=0)[2].perceptual_kind == "disc_feature_matching"
    assert setup(perceptual_weight=0.0)[2].perceptual_kind == "laplacian_pyramid"
    assert setup(perceptual_weight=0.0, pyramid_levels=0)[2].perceptual_kind == "none"
    assert VQGANLoss(VQGANLossConfig(), vgg=VGG19Features()).perceptual_kind == "vgg19"
    with pytest.raises(ValueError, match="from_config"):
        VQGANLoss(VQGANLossConfig(vgg19_weights="vgg19.safetensors"))
    model, disc, loss = setup()
    x = images()
    assert loss.generator_loss(x, model(x), disc, step=0).perceptual_kind == loss.perceptual_kind


def test_feature_matching_and_pyramid_vanish_on_identical_images() -> None:
    model, disc, loss = setup()
    x = images()
    out = model(x)
    out.recon = x.clone().requires_grad_(True)
    g = loss.generator_loss(x, out, disc, step=0)
    assert g.perceptual.item() == pytest.approx(0.0, abs=1e-7)
    assert g.reconstruction.item() == 0.0


def test_laplacian_pyramid_reconstructs_and_separates_bands() -> None:
    x = images(batch=1, size=16)
    bands = laplacian_pyramid(x, levels=3)
    assert [b.shape[-1] for b in bands] == [16, 8, 4, 2]
    recon = bands[-1]
    for band in reversed(bands[:-1]):
        recon = band + F.interpolate(recon, size=band.shape[-2:], mode="bilinear", align_corners=False)
    assert torch.allclose(recon, x, atol=1e-5)
    # a checkerboard is all high frequency: only the finest band differs from a flat image's
    flat = torch.zeros(1, 1, 16, 16)
    checker = (torch.arange(16)[:, None] + torch.arange(16)[None, :]).remainder(2).float().view(1, 1, 16, 16) - 0.5
    assert laplacian_pyramid_l1(checker, flat, 3).item() == pytest.approx(0.5 / 4)


def random_vgg_state(dtype: torch.dtype = torch.float16) -> dict[str, torch.Tensor]:
    """A random VGG19 state with torchvision's key names (plus a classifier tensor, which is ignored)."""
    state = {name: torch.randn(t.shape, generator=torch.Generator().manual_seed(i)).to(dtype) * 0.01
             for i, (name, t) in enumerate(VGG19Features().state_dict().items())}
    state["classifier.0.bias"] = torch.zeros(4096, dtype=dtype)
    return state


def test_vgg19_loader(tmp_path: Path) -> None:
    state = random_vgg_state()
    good = tmp_path / "vgg19.safetensors"
    save_file(state, good)
    net = load_vgg19_features(good)
    assert torch.equal(net.features[0].weight, state["features.0.weight"].float())
    assert not any(p.requires_grad for p in net.parameters())
    feats = net(images(batch=1))
    assert [f.shape[1] for f in feats] == [64, 128, 256, 512, 512]

    loss = VQGANLoss.from_config(VQGANLossConfig(vgg19_weights=str(good)))
    assert loss.perceptual_kind == "vgg19"
    model, disc, _ = setup()
    x = images(batch=1)
    g = loss.generator_loss(x, model(x), disc, step=0)
    assert g.perceptual.item() > 0

    mismatched = dict(state)
    mismatched["features.10.weight"] = torch.zeros(256, 64, 3, 3, dtype=torch.float16)
    bad = tmp_path / "vgg19_bad.safetensors"
    save_file(mismatched, bad)
    with pytest.raises(WeightsError, match=r"features\.10\.weight.*shape \(256, 64, 3, 3\).*\(256, 128, 3, 3\)"):
        load_vgg19_features(bad)


def test_vgg19_loader_refuses_other_files(tmp_path: Path) -> None:
    pickled = tmp_path / "vgg19.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, pickled)
    with pytest.raises(WeightsError, match=r"not a \.safetensors file"):
        load_vgg19_features(pickled)
    garbage = tmp_path / "vgg19.safetensors"
    garbage.write_bytes(b"\x00" * 64)
    with pytest.raises(WeightsError, match="not a readable safetensors"):
        load_vgg19_features(garbage)
    with pytest.raises(WeightsError, match="does not exist"):
        load_vgg19_features(tmp_path / "absent.safetensors")
    unrelated = tmp_path / "other.safetensors"
    save_file({"encoder.weight": torch.zeros(2)}, unrelated)
    with pytest.raises(WeightsError, match="no 'features"):
        load_vgg19_features(unrelated)


# ------------------------------------------------------------------ a short fit
def test_loss_falls_on_a_fixed_batch() -> None:
    """40 steps of the full objective (adversarial term on from step 10) on one batch of smooth images."""
    model, disc, loss = setup(seed=1)
    model.train()
    disc.train()
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 32), torch.linspace(-1, 1, 32), indexing="ij")
    x = torch.stack([torch.stack([xx, yy, xx * yy]), torch.stack([yy, -xx, 0.5 * xx])])  # (2, 3, 32, 32)
    g_opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    d_opt = torch.optim.Adam(disc.parameters(), lr=2e-3)
    recon_errors = []
    for step in range(40):
        out = model(x)
        g = loss.generator_loss(x, out, disc, step, last_layer=model.last_layer)
        g_opt.zero_grad()
        g.total.backward()
        g_opt.step()
        d = loss.discriminator_loss(x, out.recon, disc)
        d_opt.zero_grad()
        d.total.backward()
        d_opt.step()
        recon_errors.append(g.reconstruction.item())
        assert torch.isfinite(g.total) and torch.isfinite(d.total)
    assert sum(recon_errors[-5:]) / 5 < 0.6 * sum(recon_errors[:5]) / 5
