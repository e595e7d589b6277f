"""VQIG on the tiny codebook: shapes, frozen parts, gradients per stage, E_w init, save/load, batched
rendering, the fidelity skip, and a code-level loss that falls."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from flowvq_cli.errors import WeightsError
from flowvq_cli.modeling import CONFIG_NAME
from flowvq_cli.vq import VQGAN, DiscriminatorConfig, PatchDiscriminator, VQGANConfig
from flowvq_cli.vqig import VQIG, VQIGBatch, VQIGConfig, identity_flow, warp
from flowvq_cli.vqig.generator import native_bf16_cpu

BATCH = 3


def codebook_model(seed: int = 0) -> VQGAN:
    torch.manual_seed(seed)
    return VQGAN(VQGANConfig.tiny()).eval()


def tiny_vqig(seed: int = 0, **overrides: object) -> VQIG:
    config = replace(VQIGConfig.tiny(), **overrides)
    codebook = codebook_model(seed)
    torch.manual_seed(seed + 1)
    return VQIG(config, codebook)


def make_batch(config: VQIGConfig, batch: int = BATCH, seed: int = 0, with_flow: bool = False) -> VQIGBatch:
    g = torch.Generator().manual_seed(seed)
    size = config.codebook.image_size

    def images() -> torch.Tensor:
        coarse = torch.rand(batch, 3, 8, 8, generator=g) * 2 - 1
        return F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)

    coeffs = torch.rand(batch, config.coeff_dim, generator=g) * 0.5
    windows = coeffs[:, None] + 0.1 * torch.randn(batch, config.window_frames, config.coeff_dim, generator=g)
    pixel_map = mouth = None
    if with_flow:
        ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
                                indexing="ij")
        pixel_map = (torch.stack([xs, ys], dim=-1) + torch.tensor([1.5, -0.5]))[None].repeat(batch, 1, 1, 1)
        mouth = torch.zeros(batch, size, size, dtype=torch.bool)
        mouth[:, size // 2 :, size // 3 : 2 * size // 3] = True
    return VQIGBatch(source=images(), source_coeffs=coeffs, target=images(), target_windows=windows,
                     pixel_map=pixel_map, mouth_mask=mouth)


def tiny_disc() -> PatchDiscriminator:
    torch.manual_seed(5)
    return PatchDiscriminator(DiscriminatorConfig.tiny())


# ----------------------------------------------------------------------------------- shapes
def test_forward_decode_and_render_shapes() -> None:
    model = tiny_vqig()
    cfg = model.config
    batch = make_batch(cfg)
    out = model(batch.source, batch.source_coeffs, batch.target_windows)
    h, d, n = cfg.codebook.latent_size, cfg.codebook.latent_dim, cfg.codebook.num_codes
    assert out.logits.shape == (BATCH, h * h, n)
    assert out.z_fused.shape == out.z_w.shape == (BATCH, d, h, h)
    assert out.indices.shape == (BATCH, h, h) and out.indices.dtype == torch.long
    assert out.motion.shape == (BATCH, cfg.motion_dim)
    assert out.flow.shape == (BATCH, 2, cfg.warp_size, cfg.warp_size)
    assert out.occlusion.shape == (BATCH, 1, cfg.warp_size, cfg.warp_size)
    assert ((out.occlusion >= 0) & (out.occlusion <= 1)).all()
    widths = cfg.codebook.level_channels
    for level in cfg.fidelity_levels:
        side = cfg.codebook.image_size // 2**level
        assert out.skip_features[level].shape == (BATCH, widths[level], side, side)
    assert model.decode(out).shape == batch.target.shape
    model.eval()
    frames = model.render(batch.source[:1], batch.source_coeffs[:1], batch.target_windows)
    assert frames.shape == batch.target.shape and frames.abs().max() <= 1.0


def test_bad_inputs_raise_clear_errors() -> None:
    model = tiny_vqig().eval()
    batch = make_batch(model.config)
    with pytest.raises(ValueError, match="coefficient windows"):
        model.render(batch.source, batch.source_coeffs, batch.target_windows[:, :3])
    with pytest.raises(ValueError, match="source must be"):
        model.render(batch.source[:, :, :16], batch.source_coeffs, batch.target_windows)
    with pytest.raises(ValueError, match="cannot drive"):
        model.render(batch.source[:2], batch.source_coeffs[:2], batch.target_windows)
    with pytest.raises(ValueError, match=r"differs from config\.codebook"):
        VQIG(VQIGConfig.tiny(), VQGAN(replace(VQGANConfig.tiny(), num_codes=16)))


# ------------------------------------------------------------------------ frozen / trainable
def test_warped_encoder_starts_as_a_copy_of_the_encoder() -> None:
    model = tiny_vqig()
    e, e_w = model.codebook.encoder.state_dict(), model.warped_encoder.encoder.state_dict()
    assert e.keys() == e_w.keys()
    assert all(torch.equal(e[k], e_w[k]) for k in e)
    assert all(a is not b for a, b in zip(model.codebook.encoder.parameters(), model.warped_encoder.parameters(),
                                          strict=True))
    # head → identity warp → tail reproduces E (the split at warp_level loses nothing)
    x = make_batch(model.config).source
    head = model.warped_encoder.head(x)
    z_w = model.warped_encoder.tail(warp(head.out, identity_flow(BATCH, tuple(head.out.shape[-2:])))).out
    torch.testing.assert_close(z_w, model.codebook.encoder(x), atol=1e-5, rtol=1e-5)


def test_trainable_parameters_exclude_the_codebook_model() -> None:
    model = tiny_vqig()
    frozen = {id(p) for p in model.codebook.parameters()}
    trainable = list(model.trainable_parameters())
    assert trainable and not any(id(p) in frozen for p in trainable)
    assert len(trainable) + len(frozen) == len(list(model.parameters()))
    model.train()
    assert not model.codebook.training and not model.codebook.quantizer.training
    assert model.transformer.training and model.warped_encoder.training


def _train_steps(model: VQIG, stage: str, steps: int) -> None:
    opt = torch.optim.Adam(model.trainable_parameters(), lr=1e-3)
    disc = tiny_disc()
    model.train()
    for step in range(steps):
        batch = make_batch(model.config, seed=step, with_flow=True)
        opt.zero_grad()
        if stage == "code":
            loss = model.code_level_loss(batch).total
        else:
            loss = model.image_level_loss(batch, disc, step=100 + step).total
        loss.backward()
        opt.step()


@pytest.mark.parametrize("freeze", [True, False])
def test_codebook_parts_stay_bit_identical(freeze: bool) -> None:
    model = tiny_vqig()
    if freeze:
        model.freeze_codebook_parts()
        assert not any(p.requires_grad for p in model.codebook.parameters())
    before = {k: v.clone() for k, v in model.codebook.state_dict().items()}  # incl. quantiser statistics
    owned_before = [p.detach().clone() for p in model.trainable_parameters()]
    _train_steps(model, "code", 3)
    _train_steps(model, "image", 3)
    after = model.codebook.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert any(not torch.equal(a, p) for a, p in zip(owned_before, model.trainable_parameters(), strict=True))


def _grads(model: VQIG) -> dict[str, torch.Tensor | None]:
    owned = model._owned()
    return {name: p.grad for name, p in owned.named_parameters()}


def test_every_trainable_parameter_gets_a_gradient_in_each_stage() -> None:
    model = tiny_vqig().train()
    model.freeze_codebook_parts()
    batch = make_batch(model.config, with_flow=True)
    model.code_level_loss(batch).total.backward()
    for name, grad in _grads(model).items():
        if name.startswith("fidelity."):  # the code level never decodes
            assert grad is None, name
        else:
            assert grad is not None and grad.abs().sum() > 0, name
    model.zero_grad(set_to_none=True)
    disc = tiny_disc()
    loss = model.image_level_loss(batch, disc, step=100)
    assert loss.adversarial_weight > 0 and loss.perceptual_kind == "disc_feature_matching+laplacian_pyramid"
    loss.total.backward()
    for name, grad in _grads(model).items():
        assert grad is not None and grad.abs().sum() > 0, name
    assert all(p.grad is None for p in disc.parameters())
    d_loss = model.discriminator_loss(batch, loss.fake, disc)
    d_loss.total.backward()
    assert all(p.grad is not None for p in disc.parameters())


def test_warm_start_loss_trains_only_mapping_and_warping() -> None:
    model = tiny_vqig().train()
    batch = make_batch(model.config, with_flow=True)
    model.warm_start_loss(batch).backward()
    for name, grad in _grads(model).items():
        used = name.startswith(("mapping.", "warping.")) and "occlusion" not in name  # the flow alone
        assert (grad is not None) == used, name
    with pytest.raises(ValueError, match="pixel_map"):
        model.warm_start_loss(make_batch(model.config))


def test_code_level_loss_falls_on_a_fixed_batch() -> None:
    model = tiny_vqig().train()
    model.freeze_codebook_parts()
    batch = make_batch(model.config, batch=2)
    opt = torch.optim.Adam(model.trainable_parameters(), lr=3e-3)
    losses, ces = [], []
    for _ in range(40):
        opt.zero_grad()
        loss = model.code_level_loss(batch)
        loss.total.backward()
        opt.step()
        losses.append(loss.total.item())
        ces.append(loss.cross_entropy.item())
    assert sum(losses[-5:]) < 0.5 * sum(losses[:5])
    assert ces[-1] < 0.5 * ces[0]


# ---------------------------------------------------------------------------- inference
@pytest.mark.parametrize("fidelity_skip", [True, False])
def test_batched_rendering_equals_frame_by_frame(fidelity_skip: bool) -> None:
    model = tiny_vqig(fidelity_skip=fidelity_skip).eval()
    model.half_precision = False  # exact batching; bf16 kernels differ with the batch size
    batch = make_batch(model.config, batch=4)
    one_photo = model.render(batch.source[:1], batch.source_coeffs[:1], batch.target_windows)
    per_frame = torch.cat([model.render(batch.source[:1], batch.source_coeffs[:1], batch.target_windows[i : i + 1])
                           for i in range(4)])
    torch.testing.assert_close(one_photo, per_frame, atol=1e-5, rtol=1e-5)
    cache = model.prepare_source(batch.source[:1], batch.source_coeffs[:1])  # the cache is reusable
    torch.testing.assert_close(model.render_prepared(cache, batch.target_windows), one_photo)
    photos = model.render(batch.source, batch.source_coeffs, batch.target_windows)  # one photo per frame
    per_photo = torch.cat([model.render(batch.source[i : i + 1], batch.source_coeffs[i : i + 1],
                                        batch.target_windows[i : i + 1]) for i in range(4)])
    torch.testing.assert_close(photos, per_photo, atol=1e-5, rtol=1e-5)


def test_fidelity_skip_off_and_on() -> None:
    plain = tiny_vqig(fidelity_skip=False).eval()
    skip = tiny_vqig(fidelity_skip=True).eval()
    assert plain.fidelity is None and skip.fidelity is not None
    batch = make_batch(skip.config)
    with torch.no_grad():
        out = skip(batch.source, batch.source_coeffs, batch.target_windows)
        z_q = skip.codebook.quantizer.get_codebook_feat(out.indices)
        codebook_only = skip.codebook.decoder(z_q)
        assert torch.equal(skip.decode(out, fidelity_w=0.0), codebook_only)  # w = 0: exactly the paper's G
        with_skip = skip.decode(out, fidelity_w=1.0)
        assert with_skip.shape == codebook_only.shape and not torch.equal(with_skip, codebook_only)
        # the straight-through lookup renders exactly what the argmax lookup renders
        torch.testing.assert_close(skip.decode(out, straight_through=True), skip.decode(out), atol=0, rtol=0)
        # without the skip, decode is the codebook decoder of the argmax codes
        out_plain = plain(batch.source, batch.source_coeffs, batch.target_windows)
        z_plain = plain.codebook.quantizer.get_codebook_feat(out_plain.indices)
        assert torch.equal(plain.decode(out_plain), plain.codebook.decoder(z_plain))


def test_compose_pastes_the_warped_source_where_it_is_visible() -> None:
    model = tiny_vqig(compose=True).eval()
    plain = tiny_vqig(compose=False).eval()  # same seed: same weights, no composition
    batch = make_batch(model.config)
    with torch.no_grad():
        out = model(batch.source, batch.source_coeffs, batch.target_windows)
        assert out.warped is not None and plain(batch.source, batch.source_coeffs, batch.target_windows).warped is None
        torch.testing.assert_close(out.warped, warp(batch.source, out.flow))
        codes_only = plain.decode(plain(batch.source, batch.source_coeffs, batch.target_windows))
        visible = F.interpolate(out.occlusion, size=codes_only.shape[-2:], mode="bilinear", align_corners=False)
        torch.testing.assert_close(model.decode(out), visible * out.warped + (1 - visible) * codes_only)
        out.occlusion.fill_(1.0)  # everything visible: the frame is the warped photo, whatever the codes
        torch.testing.assert_close(model.decode(out), out.warped)
    model.train()
    loss = model.image_level_loss(batch, tiny_disc(), step=0)
    assert loss.occlusion == 0  # no mesh-warp mouth mask in the batch: no occlusion term
    loss.total.backward()  # the composed frame trains W (flow and occlusion) directly
    for head in (model.warping.flow_head, model.warping.occlusion_head):
        assert head.weight.grad is not None and head.weight.grad.abs().sum() > 0


def mesh_prior_batch(config: VQIGConfig, seed: int = 0) -> VQIGBatch:
    """A batch with a mesh-warp motion: a 1.5 px shift, and the lower middle painted (the mouth)."""
    batch = make_batch(config, seed=seed, with_flow=True)
    batch.paint = batch.mouth_mask.float()
    return batch


def test_mesh_prior_renders_on_the_mesh_motion() -> None:
    """With ``mesh_prior`` the flow is the prior's plus W's offset, the photo is used only where W calls it
    visible and the prior paints nothing, and the codebook's frame shows where the prior paints."""
    with pytest.raises(ValueError, match="needs compose"):
        replace(VQIGConfig.tiny(), mesh_prior=True)
    model = tiny_vqig(compose=True, mesh_prior=True).eval()
    batch = mesh_prior_batch(model.config)
    prior = model.batch_prior(batch)
    assert prior.flow.shape == (BATCH, 2, 32, 32) and prior.paint.shape == (BATCH, 1, 32, 32)
    with torch.no_grad():
        with pytest.raises(ValueError, match="pass prior"):
            model(batch.source, batch.source_coeffs, batch.target_windows)
        with pytest.raises(ValueError, match="without mesh_prior"):
            tiny_vqig(compose=True)(batch.source, batch.source_coeffs, batch.target_windows, prior)
        with pytest.raises(ValueError, match="holds 1 frames"):
            model(batch.source, batch.source_coeffs, batch.target_windows, replace(prior, flow=prior.flow[:1]))
        model.warping.flow_head.weight.zero_()  # no offset: exactly the prior's motion
        out = model(batch.source, batch.source_coeffs, batch.target_windows, prior)
        assert out.occlusion.min() > 0.999  # a fresh mask uses all of the photo the prior leaves
        torch.testing.assert_close(out.flow, prior.flow)
        torch.testing.assert_close(out.warped, warp(batch.source, prior.flow))
        s = batch.source  # output (x, y) samples the source at (x + 1.5, y − 0.5): the mean of four pixels
        quad = (s[..., :-1, 1:-1] + s[..., :-1, 2:] + s[..., 1:, 1:-1] + s[..., 1:, 2:]) / 4  # (.., y−1.., x+1..)
        torch.testing.assert_close(out.warped[..., 1:, :-2], quad)
        out.occlusion.fill_(1.0)
        frame = model.decode(out)
        codes = model.decode(replace(out, warped=None))  # the codebook's frame alone
        painted = batch.mouth_mask[:, None].expand_as(frame)
        torch.testing.assert_close(frame[painted], codes[painted])
        torch.testing.assert_close(frame[~painted], out.warped[~painted])
        torch.testing.assert_close(out.visibility((32, 32)), 1 - batch.paint[:, None])
    model.train()
    loss = model.image_level_loss(batch, tiny_disc(), step=0)
    loss.total.backward()  # W's offset still learns
    assert model.warping.flow_head.weight.grad.abs().sum() > 0
    assert model.code_level_loss(batch).total.isfinite()
    assert model.warm_start_loss(batch).isfinite()


def test_mesh_prior_without_residual_uses_the_prior_flow_as_it_is() -> None:
    model = tiny_vqig(compose=True, mesh_prior=True, prior_residual=False).train()
    batch = mesh_prior_batch(model.config)
    with torch.no_grad():
        model.warping.flow_head.bias.fill_(0.3)  # an offset W would add with the residual
    out = model(batch.source, batch.source_coeffs, batch.target_windows, model.batch_prior(batch))
    torch.testing.assert_close(out.flow, model.batch_prior(batch).flow)
    model.image_level_loss(batch, tiny_disc(), step=0).total.backward()
    assert model.warping.flow_head.weight.grad is None  # unused: only the occlusion head learns in W's output
    assert model.warping.occlusion_head.weight.grad.abs().sum() > 0


def test_rendering_in_half_precision_where_the_cpu_computes_bf16() -> None:
    """Rendering runs in bf16 on a CPU with hardware bf16 (float32 elsewhere, and always with
    ``half_precision`` off), close to the float32 frames."""
    model = tiny_vqig().eval()
    batch = make_batch(model.config, batch=4)
    assert model.render_dtype == (torch.bfloat16 if native_bf16_cpu() else torch.float32)
    half = model.render(batch.source[:1], batch.source_coeffs[:1], batch.target_windows)
    model.half_precision = False
    assert model.render_dtype == torch.float32
    full = model.render(batch.source[:1], batch.source_coeffs[:1], batch.target_windows)
    assert half.dtype == full.dtype == torch.float32
    if native_bf16_cpu():
        assert 0 < (half - full).abs().mean() < 0.02
    else:
        torch.testing.assert_close(half, full, atol=0, rtol=0)


def test_prior_frame_composes_on_the_renderers_frame() -> None:
    """With ``prior_frame`` the base frame is the renderer's own (its lids kept) and the codebook paints only
    the mouth paint; the config and the batch refuse what cannot work."""
    for bad in ({"mesh_prior": True}, {"mesh_prior": True, "prior_residual": False, "compose": False}):
        with pytest.raises(ValueError):
            replace(VQIGConfig.tiny(), prior_frame=True, **{"compose": True, **bad})
    model = tiny_vqig(compose=True, mesh_prior=True, prior_residual=False, prior_frame=True).eval()
    model.half_precision = False  # the skipping is exact in float32 (bf16 kernels differ with the batch size)
    batch = mesh_prior_batch(model.config)
    with pytest.raises(ValueError, match="mouth_paint and mesh_frame"):
        model.batch_prior(batch)
    g = torch.Generator().manual_seed(3)
    batch.mesh_frame = torch.rand(BATCH, 3, 32, 32, generator=g) * 2 - 1  # e.g. the lids painted shut
    batch.mouth_paint = batch.paint
    batch.paint = torch.ones_like(batch.paint)  # everything the renderer painted: not what the codebook paints
    prior = model.batch_prior(batch)
    torch.testing.assert_close(prior.paint[:, 0], batch.mouth_paint)
    with torch.no_grad():
        with pytest.raises(ValueError, match="frame=True"):
            model(batch.source, batch.source_coeffs, batch.target_windows, replace(prior, frame=None))
        out = model(batch.source, batch.source_coeffs, batch.target_windows, prior)
        torch.testing.assert_close(out.flow, prior.flow)  # the features still move with the prior's flow
        torch.testing.assert_close(out.warped, batch.mesh_frame)
        assert torch.equal(out.occlusion, torch.ones_like(out.occlusion))  # W is not run
        frame, codes = model.decode(out), model.decode(replace(out, warped=None))
        painted = batch.mouth_mask[:, None].expand_as(frame)
        torch.testing.assert_close(frame[~painted], batch.mesh_frame[~painted])
        torch.testing.assert_close(frame[painted], codes[painted])
        # a frame of another size is resized to the model's
        big = replace(prior, frame=F.interpolate(batch.mesh_frame, scale_factor=2.0, mode="nearest"))
        torch.testing.assert_close(model(batch.source, batch.source_coeffs, batch.target_windows, big).warped,
                                   batch.mesh_frame, atol=1e-5, rtol=0)
        # rendering skips the frames whose mouth is not painted: they are the renderer's frames, and the
        # others are what rendering every frame gives
        cache = model.prepare_source(batch.source[:1], batch.source_coeffs[:1])
        shut = prior.select(torch.tensor([0, 2]))
        shut.paint[0] = 0.0  # frame 0: nothing painted
        every = model.render_prepared(cache, batch.target_windows[[0, 2]], return_output=True, prior=shut)[0]
        fast = model.render_prepared(cache, batch.target_windows[[0, 2]], prior=shut)
        torch.testing.assert_close(fast, every)
        assert torch.equal(fast[0], shut.frame[0].clamp(-1, 1))
    model.train()
    model.image_level_loss(batch, tiny_disc(), step=0).total.backward()
    assert all(p.grad is None for p in model.warping.parameters())  # W takes no part
    assert model.transformer.embed.weight.grad.abs().sum() > 0


def test_occlusion_term_teaches_the_mouth_mask() -> None:
    from flowvq_cli.vqig.losses import occlusion_loss

    mouth = torch.zeros(2, 32, 32, dtype=torch.bool)
    mouth[:, 20:26, 10:22] = True
    right = (~mouth).float()[:, None]  # (B, 1, H, W): visible except the mouth
    assert occlusion_loss(right, mouth) < 1e-3 < occlusion_loss(torch.full_like(right, 0.95), mouth)
    model = tiny_vqig(compose=True).train()
    batch = make_batch(model.config, with_flow=True)
    opt = torch.optim.Adam(model.warping.occlusion_head.parameters(), lr=0.05)
    terms = []
    for _ in range(25):
        opt.zero_grad()
        loss = model.image_level_loss(batch, tiny_disc(), step=0)
        loss.total.backward()
        opt.step()
        terms.append(float(loss.occlusion))
    assert terms[0] > 0 and terms[-1] < 0.6 * terms[0]


def test_image_level_warp_variant() -> None:
    """warp_level 0: the source image itself is warped and fully re-encoded (the paper's wording)."""
    model = tiny_vqig(warp_level=0).train()
    batch = make_batch(model.config)
    out = model(batch.source, batch.source_coeffs, batch.target_windows)
    assert out.skip_features[0].shape[1] == model.config.codebook.level_channels[0]
    model.code_level_loss(batch).total.backward()
    assert model.warped_encoder.encoder.conv_in.weight.grad is not None


# ---------------------------------------------------------------------------- save / load
def test_save_load_gives_identical_outputs(tmp_path: Path) -> None:
    model = tiny_vqig()
    _train_steps(model, "code", 1)  # weights that differ from a fresh init
    model.eval()
    batch = make_batch(model.config)
    expected = model.render(batch.source[:1], batch.source_coeffs[:1], batch.target_windows)
    model.save_pretrained(tmp_path)
    payload = json.loads((tmp_path / CONFIG_NAME).read_text())
    assert payload["coeff_layout_version"] == 1 and payload["config"]["codebook"]["num_codes"] == 32
    loaded = VQIG.from_pretrained(tmp_path, codebook=model.codebook)
    assert loaded.config == model.config and not loaded.training
    got = loaded.render(batch.source[:1], batch.source_coeffs[:1], batch.target_windows)
    assert torch.equal(got, expected)


def test_load_refuses_mismatches(tmp_path: Path) -> None:
    model = tiny_vqig()
    model.save_pretrained(tmp_path)
    with pytest.raises(WeightsError, match="other codebook weights"):
        VQIG.from_pretrained(tmp_path, codebook=codebook_model(seed=7))
    with pytest.raises(WeightsError, match="codebook with config"):
        VQIG.from_pretrained(tmp_path, codebook=VQGAN(replace(VQGANConfig.tiny(), num_codes=16)))
    payload = json.loads((tmp_path / CONFIG_NAME).read_text())
    (tmp_path / CONFIG_NAME).write_text(json.dumps({**payload, "coeff_layout_version": 2}))
    with pytest.raises(WeightsError, match="coefficient layout version 2"):
        VQIG.from_pretrained(tmp_path, codebook=model.codebook)
    (tmp_path / CONFIG_NAME).write_text(json.dumps({**payload, "config": {**payload["config"], "bogus": 1}}))
    with pytest.raises(WeightsError, match="unknown fields"):
        VQIG.from_pretrained(tmp_path, codebook=model.codebook)
    other = tmp_path / "other"
    tiny_vqig(transformer_layers=1).save_pretrained(other)
    (other / CONFIG_NAME).write_text(json.dumps(payload))  # weights of a 1-layer T under a 2-layer config
    with pytest.raises(WeightsError, match="do not match this architecture"):
        VQIG.from_pretrained(other, codebook=model.codebook)
    with pytest.raises(WeightsError, match="missing"):
        VQIG.from_pretrained(tmp_path / "nowhere", codebook=model.codebook)


def test_config_round_trip_and_presets() -> None:
    for config in (VQIGConfig.tiny(), VQIGConfig.mini(), VQIGConfig.base()):
        assert VQIGConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError, match="fidelity_levels"):
        replace(VQIGConfig.tiny(), fidelity_levels=(2,))
    with pytest.raises(ValueError, match="warp_level"):
        replace(VQIGConfig.tiny(), warp_level=3)
