"""Codebook model: shapes, inference modes, save/load, config checks, the CPU budget of `mini`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch.utils.flop_counter import FlopCounterMode

from flowvq_cli.errors import WeightsError
from flowvq_cli.modeling import CONFIG_NAME, WEIGHTS_NAME
from flowvq_cli.vq.vqgan import VQGAN, VQGANConfig

# docs/design.md §8: ≈70 GFLOP/s in 3×3 convs on the 2-core machine; 0.3 s per 256² frame → ≲ 10 GFLOP.
MINI_DECODER_GFLOP_BUDGET = 10.0


def tiny_model(seed: int = 0) -> VQGAN:
    torch.manual_seed(seed)
    return VQGAN(VQGANConfig.tiny())


def images(batch: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, 3, 32, 32, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_forward_shapes_and_fields() -> None:
    model = tiny_model().train()
    cfg = model.config
    out = model(images())
    h = cfg.latent_size
    assert h == 8
    assert out.recon.shape == (2, 3, 32, 32)
    assert out.indices.shape == (2, h, h) and out.indices.dtype == torch.long
    assert out.z.shape == out.z_q.shape == (2, cfg.latent_dim, h, h)
    assert out.codebook_loss.ndim == out.commit_loss.ndim == 0
    assert torch.allclose(out.vq_loss, out.codebook_loss + out.commit_loss)
    assert 1.0 <= out.perplexity.item() <= cfg.num_codes


def test_every_parameter_gets_a_gradient() -> None:
    model = tiny_model().train()
    out = model(images())
    (out.recon.abs().mean() + out.vq_loss).backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


def test_encode_decode_indices_agree_with_forward() -> None:
    model = tiny_model().eval()
    x = images()
    with torch.no_grad():
        out = model(x)
        enc = model.encode(x)
        assert torch.equal(enc.indices, out.indices)
        assert torch.allclose(model.decode_indices(enc.indices), out.recon, atol=1e-6)
        assert torch.allclose(model.decode(enc.z_q), out.recon, atol=1e-6)


def test_decode_indices_inference_mode_and_bf16_autocast() -> None:
    model = tiny_model().eval()
    indices = torch.randint(model.config.num_codes, (3, 8, 8), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        ref = model.decode_indices(indices)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model.decode_indices(indices)
    assert ref.shape == low.shape == (3, 3, 32, 32)
    assert torch.isfinite(low).all()
    assert (low.float() - ref).abs().max() < 0.1 * ref.abs().max() + 1e-2


def test_deterministic_given_seed() -> None:
    a, b = tiny_model(seed=3).eval(), tiny_model(seed=3).eval()
    with torch.no_grad():
        assert torch.equal(a(images()).recon, b(images()).recon)


def test_save_load_identical_outputs(tmp_path: Path) -> None:
    model = tiny_model().train()
    for _ in range(2):  # move the usage statistics away from their initial values
        model(images())
    model.eval()
    folder = model.save_pretrained(tmp_path / "codebook")
    assert sorted(p.name for p in folder.iterdir()) == [CONFIG_NAME, WEIGHTS_NAME]
    loaded = VQGAN.from_pretrained(folder)
    assert loaded.config == model.config and not loaded.training
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name]), name
    x = images(seed=5)
    with torch.no_grad():
        assert torch.equal(model(x).recon, loaded(x).recon)
        assert torch.equal(model.encode(x).indices, loaded.encode(x).indices)


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="missing"):
        VQGAN.from_pretrained(tmp_path / "nowhere")
    folder = tiny_model().save_pretrained(tmp_path / "m")

    state = load_file(folder / WEIGHTS_NAME)
    state["decoder.conv_out.weight"] = torch.zeros(1, 1, 1, 1)
    save_file(state, folder / WEIGHTS_NAME)
    with pytest.raises(WeightsError, match=r"decoder\.conv_out\.weight.*shape"):
        VQGAN.from_pretrained(folder)

    del state["decoder.conv_out.weight"]
    save_file(state, folder / WEIGHTS_NAME)
    with pytest.raises(WeightsError, match="missing 1"):
        VQGAN.from_pretrained(folder)

    (folder / WEIGHTS_NAME).write_bytes(b"not a safetensors file")
    with pytest.raises(WeightsError, match="not a readable safetensors"):
        VQGAN.from_pretrained(folder)

    payload = json.loads((folder / CONFIG_NAME).read_text())
    payload["config"]["colour"] = "blue"
    (folder / CONFIG_NAME).write_text(json.dumps(payload))
    with pytest.raises(WeightsError, match="unknown fields"):
        VQGAN.from_pretrained(folder)
    payload["model_type"] = "something-else"
    (folder / CONFIG_NAME).write_text(json.dumps(payload))
    with pytest.raises(WeightsError, match="something-else"):
        VQGAN.from_pretrained(folder)


def test_weights_for_another_config_are_refused(tmp_path: Path) -> None:
    folder = tiny_model().save_pretrained(tmp_path / "m")
    other = VQGANConfig.tiny().to_dict() | {"num_codes": 64}
    payload = json.loads((folder / CONFIG_NAME).read_text()) | {"config": other}
    (folder / CONFIG_NAME).write_text(json.dumps(payload))
    with pytest.raises(WeightsError, match=r"quantizer\.codebook"):
        VQGAN.from_pretrained(folder)


def test_config_validation_and_round_trip() -> None:
    with pytest.raises(ValueError, match="divisible"):
        VQGANConfig(image_size=100)
    with pytest.raises(ValueError, match="norm_groups"):
        VQGANConfig(base_channels=12, norm_groups=8)
    for preset in (VQGANConfig.tiny(), VQGANConfig.mini(), VQGANConfig.base()):
        assert VQGANConfig.from_dict(json.loads(json.dumps(preset.to_dict()))) == preset
    assert VQGANConfig.mini().latent_size == VQGANConfig.base().latent_size == 16


def test_mini_decoder_within_cpu_flop_budget() -> None:
    cfg = VQGANConfig.mini()
    model = VQGAN(cfg).eval()
    indices = torch.zeros(1, cfg.latent_size, cfg.latent_size, dtype=torch.long)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        frame = model.decode_indices(indices)
    assert frame.shape == (1, 3, 256, 256)
    assert counter.get_total_flops() / 1e9 < MINI_DECODER_GFLOP_BUDGET


def test_training_step_under_bf16_autocast() -> None:
    model = tiny_model().train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(images())
    (out.recon.float().abs().mean() + out.vq_loss).backward()
    assert out.codebook_loss.dtype == torch.float32
    assert model.quantizer.codebook.grad is not None and model.quantizer.codebook.grad.dtype == torch.float32
    assert torch.isfinite(model.quantizer.codebook.grad).all()
