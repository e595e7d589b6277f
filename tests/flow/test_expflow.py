"""ExpFlow: whole-model invertibility and log-likelihood, training, sampling, transfer, save/load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from flow_testutils import assert_causal_and_logdet, exp_batch, jacobian_blocks, perturb, trained_like_exp
from torch.utils.flop_counter import FlopCounterMode

from flowvq_cli.errors import UsageError, WeightsError
from flowvq_cli.face.rig import FACE_MODEL_VERSION
from flowvq_cli.flow import (
    EMOTIONS,
    ExpBatch,
    ExpFlow,
    ExpFlowConfig,
    PoseBatch,
    PoseFlow,
    PoseFlowConfig,
    emotion_labels,
    loop_latents,
)


def sample_kwargs(batch: ExpBatch) -> dict:
    return {"audio": batch.audio, "source_exp": batch.source, "emotion": batch.emotion,
            "intensity": batch.intensity}


def test_exp_parametrisation_is_exact_on_the_unit_interval():
    model = ExpFlow(ExpFlowConfig.tiny())
    x = torch.cat([torch.zeros(1, 1, 52), torch.ones(1, 1, 52), torch.rand(1, 3, 52)], dim=1)
    y, _ = model.to_flow_space(x)
    torch.testing.assert_close(model.from_flow_space(y), x, atol=1e-12, rtol=0)
    assert model.clamp(model.from_flow_space(torch.tensor([-50.0, 50.0]))).tolist() == [0.0, 1.0]


def test_transfer_round_trip_sample_of_encode_is_identity():
    """f(f⁻¹(x_ref)): the autoregressive, cached, frame-by-frame inverse reproduces the reference from its
    own latents (T = 9 > attention window 4)."""
    batch = exp_batch(B=3, T=9)
    model = trained_like_exp(batch)
    z = model.encode(batch.exp, batch.audio, batch.source, batch.emotion, batch.intensity)
    assert z.shape == (3, 9, 52)
    x = model.sample(**sample_kwargs(batch), z=z)
    torch.testing.assert_close(x, batch.exp, atol=1e-8, rtol=0)


def test_log_prob_is_prior_plus_jacobian_and_the_model_is_causal():
    """Over a 3-frame sequence (previous-frame context included) the Jacobian dz/dx is block
    lower-triangular and log p(x) = log p_Z(z) + log|det dz/dx|."""
    batch = exp_batch(B=1, T=3, emotions=[4])
    model = trained_like_exp(batch)

    def encode(x):
        return model.encode(x, batch.audio, batch.source, batch.emotion, batch.intensity)

    J = jacobian_blocks(encode, batch.exp)
    log_pz = model.prior.log_prob(encode(batch.exp), batch.emotion)[0]
    assert_causal_and_logdet(J, model.log_prob(batch)[0] - log_pz)


def test_every_parameter_gets_a_gradient():
    batch = exp_batch(B=9, T=5)  # every emotion, every intensity level
    model = perturb(ExpFlow(ExpFlowConfig.tiny())).train()
    out = model.nll(batch)
    out.loss.backward()
    assert out.cons > 0
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.usefixtures("single_thread")
def test_nll_falls_on_a_fixed_batch():
    batch = exp_batch(B=6, T=8)
    model = ExpFlow(ExpFlowConfig.tiny()).train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    history = []
    for _ in range(50):
        out = model.nll(batch)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        history.append(out.nll.item())
    assert history[-1] < history[0] - 20.0, history[::10]


def test_consistency_loss_formula():
    """L_cons = mean_{b,t} ‖Δx̂_t - Δx_t‖² with x̂ = f⁻¹(z̃; teacher-forced context), z̃ ~ p(z | e)."""
    batch = exp_batch(B=2, T=5)
    model = trained_like_exp(batch)
    out = model.nll(batch, generator=torch.Generator().manual_seed(3))
    z_tilde = model.prior.sample(batch.emotion, 5, torch.Generator().manual_seed(3), 1.0)
    static = model._static(batch.source, batch.emotion, batch.intensity)
    cond = model._cond(batch.exp, batch.audio, static, batch.emotion, model._history(batch.source, None))
    x_hat = model.from_flow_space(model.flow.inverse(z_tilde, cond))
    expected = ((x_hat.diff(dim=1) - batch.exp.diff(dim=1)) ** 2).sum(-1).mean()
    torch.testing.assert_close(out.cons, expected)
    torch.testing.assert_close(out.loss, out.nll + model.config.cons_weight * out.cons)
    torch.testing.assert_close(out.nll, -model.log_prob(batch).mean())


def test_consistency_loss_on_the_mouth_only_ignores_blinks_and_brows():
    import dataclasses

    from flowvq_cli.face.rig import ARKIT_NAMES

    batch = exp_batch(B=2, T=5)
    model = trained_like_exp(batch)
    mouth = dataclasses.replace(model.config, cons_dims="mouth")
    masked = ExpFlow(mouth)
    masked.load_state_dict(model.state_dict())
    masked.eval()
    keep = [i for i, n in enumerate(ARKIT_NAMES) if n.startswith(("jaw", "mouth"))]
    assert masked.cons_mask().nonzero().flatten().tolist() == keep and len(keep) == 27
    z_tilde = model.prior.sample(batch.emotion, 5, torch.Generator().manual_seed(3), 1.0)
    static = model._static(batch.source, batch.emotion, batch.intensity)
    cond = model._cond(batch.exp, batch.audio, static, batch.emotion, model._history(batch.source, None))
    x_hat = model.from_flow_space(model.flow.inverse(z_tilde, cond))
    expected = ((x_hat.diff(dim=1) - batch.exp.diff(dim=1))[..., keep] ** 2).sum(-1).mean()
    out = masked.nll(batch, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(out.cons, expected)


def test_history_dropout_changes_the_context_only_in_training():
    config = ExpFlowConfig(**{**ExpFlowConfig.tiny().to_dict(), "history_dropout": 0.5, "cons_weight": 0.0})
    batch = exp_batch(B=2, T=6)
    model = ExpFlow(config).train()
    model.nll(batch)  # data-init
    perturb(model)
    a = model.nll(batch, generator=torch.Generator().manual_seed(0)).nll
    b = model.nll(batch, generator=torch.Generator().manual_seed(1)).nll
    assert a != b
    model.eval()
    assert model.nll(batch, torch.Generator().manual_seed(0)).nll == model.nll(batch, torch.Generator()).nll


def test_sampling_is_seeded_and_in_range():
    batch = exp_batch(B=2, T=7)
    model = trained_like_exp(batch)
    model.set_latent_bank(model.encode(batch.exp, batch.audio, batch.source, batch.emotion), batch.emotion)
    for project in (False, True):
        a = model.sample(**sample_kwargs(batch), generator=torch.Generator().manual_seed(1), project=project)
        b = model.sample(**sample_kwargs(batch), generator=torch.Generator().manual_seed(1), project=project)
        c = model.sample(**sample_kwargs(batch), generator=torch.Generator().manual_seed(2), project=project)
        assert a.shape == (2, 7, 52) and torch.equal(a, b) and not torch.equal(a, c)
        assert a.min() >= 0 and a.max() <= 1


def test_projection_needs_a_latent_bank():
    batch = exp_batch(B=1, T=3)
    model = trained_like_exp(batch)
    with pytest.raises(WeightsError, match="set_latent_bank"):
        model.sample(**sample_kwargs(batch), project=True)
    model.sample(**sample_kwargs(batch), project=False)


def test_latent_bank_keeps_at_most_bank_per_class():
    model = ExpFlow(ExpFlowConfig.tiny())  # bank_per_class = 64
    z, labels = torch.randn(4, 40, 52), torch.tensor([0, 0, 3, 5])
    model.set_latent_bank(z, labels, generator=torch.Generator().manual_seed(0))
    counts = torch.bincount(model.latent_labels, minlength=9)
    assert counts[0] == 64 and counts[3] == 40 and counts[5] == 40 and counts.sum() == 144
    for row, c in zip(model.latent_bank, model.latent_labels, strict=True):  # rows keep their own labels
        assert (z[labels == c].reshape(-1, 52) == row).all(-1).any()


def test_given_latents_are_trimmed_or_looped_back_and_forth():
    z = torch.arange(3.0).view(1, 3, 1)
    assert loop_latents(z, 2).flatten().tolist() == [0, 1]
    assert loop_latents(z, 8).flatten().tolist() == [0, 1, 2, 1, 0, 1, 2, 1]
    assert loop_latents(z[:, :1], 3).flatten().tolist() == [0, 0, 0]
    batch = exp_batch(B=1, T=4)
    model = trained_like_exp(batch)
    z_ref = model.encode(batch.exp, batch.audio, batch.source, batch.emotion)
    longer = model.sample(torch.randn(1, 10, 8), batch.source, batch.emotion, z=z_ref)
    assert longer.shape == (1, 10, 52)


def test_emotion_and_intensity_arguments():
    assert emotion_labels("talk", 2).tolist() == [8, 8]
    assert emotion_labels(["angry", 4], 2).tolist() == [0, 4]
    assert EMOTIONS.index("surprised") == 7
    with pytest.raises(UsageError, match="unknown emotion 'bored'"):
        emotion_labels("bored", 1)
    with pytest.raises(UsageError):
        emotion_labels([1, 2, 3], 2)
    model = ExpFlow(ExpFlowConfig.tiny())
    source, labels = torch.rand(2, 52), torch.tensor([0, 8])
    default = model._static(source, labels, None)  # 2 for MEAD emotions, 0 for talk
    torch.testing.assert_close(default, model._static(source, labels, torch.tensor([2, 0])))
    with pytest.raises(UsageError, match="intensity"):
        model._static(source, labels, 4)


def test_save_load_gives_identical_outputs(tmp_path: Path):
    batch = exp_batch(B=2, T=5)
    model = trained_like_exp(batch)
    model.set_latent_bank(model.encode(batch.exp, batch.audio, batch.source, batch.emotion), batch.emotion)
    model.save_pretrained(tmp_path / "expflow")
    assert sorted(p.name for p in (tmp_path / "expflow").iterdir()) == ["config.json", "model.safetensors"]
    meta = json.loads((tmp_path / "expflow" / "config.json").read_text())
    assert meta["coeff_layout_version"] == 1 and meta["model_type"] == "expflow"
    loaded = ExpFlow.from_pretrained(tmp_path / "expflow")
    assert not loaded.training and loaded.config == model.config
    assert torch.equal(loaded.latent_bank, model.latent_bank)
    assert all(step.actnorm.initialized.any() for step in loaded.flow.steps)
    torch.testing.assert_close(loaded.log_prob(batch), model.log_prob(batch), atol=0, rtol=0)
    a = model.sample(**sample_kwargs(batch), generator=torch.Generator().manual_seed(5))
    b = loaded.sample(**sample_kwargs(batch), generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_loading_rejects_another_layout_or_model(tmp_path: Path):
    ExpFlow(ExpFlowConfig.tiny()).save_pretrained(tmp_path / "m")
    config_path = tmp_path / "m" / "config.json"
    meta = json.loads(config_path.read_text())
    with pytest.raises(WeightsError, match="not 'poseflow'"):
        PoseFlow.from_pretrained(tmp_path / "m")
    config_path.write_text(json.dumps({**meta, "coeff_layout_version": 2}))
    with pytest.raises(WeightsError, match="coefficient layout version 2"):
        ExpFlow.from_pretrained(tmp_path / "m")
    assert meta["face_model_version"] == FACE_MODEL_VERSION
    config_path.write_text(json.dumps({k: v for k, v in meta.items() if k != "face_model_version"}))
    with pytest.raises(WeightsError, match="face model 1"):  # flows from before the calibrated face model
        ExpFlow.from_pretrained(tmp_path / "m")
    config_path.write_text(json.dumps({**meta, "config": {**meta["config"], "n_steps": 3}}))
    with pytest.raises(WeightsError, match=r"model\.safetensors"):
        ExpFlow.from_pretrained(tmp_path / "m")
    with pytest.raises(WeightsError, match=r"config\.json"):
        ExpFlow.from_pretrained(tmp_path / "missing")


def test_gmm_ablation_switch():
    config = ExpFlowConfig(**{**ExpFlowConfig.tiny().to_dict(), "prior": "gmm"})
    model = ExpFlow(config)
    assert model.prior.kind == "gmm"
    assert torch.isfinite(model.nll(exp_batch(B=2, T=3, config=config)).loss)


def test_mini_configs_fit_the_cpu_budget():
    """ExpFlow + PoseFlow mini: far below 1 GFLOP per frame (docs/design.md §8)."""
    exp_model, pose_model = ExpFlow(ExpFlowConfig.mini()).eval(), PoseFlow(PoseFlowConfig.mini()).eval()
    T, F = 32, ExpFlowConfig.mini().audio_dim
    batch = ExpBatch(torch.rand(1, T, 52), torch.randn(1, T, F), torch.rand(1, 52), torch.tensor([4]),
                     torch.tensor([2]))
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        exp_model.log_prob(batch)
        pose_model.log_prob(PoseBatch(torch.randn(1, T, 6), torch.randn(1, T, F)))
    assert counter.get_total_flops() / T < 1e8


@pytest.mark.parametrize(("k", "layers"), [(2, 1), (2, 3), (6, 3), (5, 2)])
def test_audio_encoder_sees_exactly_its_window(k: int, layers: int):
    from flowvq_cli.flow.context import ContextEncoder

    torch.manual_seed(0)
    enc = ContextEncoder(x_dim=3, audio_dim=4, audio_context=k, n_history=2, d_cond=8, audio_layers=layers,
                         audio_hidden=16).double()
    T, t = 20, 9
    audio = torch.randn(1, T, 4, dtype=torch.float64, requires_grad=True)
    enc.static_part(audio, T, None)[0, t].sum().backward()
    seen = (audio.grad[0].abs().sum(-1) > 0).nonzero().flatten().tolist()
    assert seen == list(range(t - k, t + k + 1))


def test_configs_without_audio_layers_load_as_one_linear_layer():
    values = ExpFlowConfig.tiny().to_dict()
    del values["audio_layers"], values["audio_hidden"]  # a bundle written before these fields existed
    model = ExpFlow(ExpFlowConfig.from_dict(values))
    assert isinstance(model.context.audio, torch.nn.Conv1d)
