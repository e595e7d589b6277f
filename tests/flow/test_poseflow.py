"""PoseFlow: invertibility, likelihood, sampling, save/load."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from flow_testutils import assert_causal_and_logdet, jacobian_blocks, perturb, pose_batch, trained_like_pose

from flowvq_cli.flow import PoseFlow, PoseFlowConfig


def test_round_trip_and_causal_likelihood():
    batch = pose_batch(B=1, T=4)
    model = trained_like_pose(batch)
    z = model.encode(batch.pose, batch.audio)
    torch.testing.assert_close(model.sample(batch.audio, z=z), batch.pose, atol=1e-8, rtol=0)
    J = jacobian_blocks(lambda x: model.encode(x, batch.audio), batch.pose)
    assert_causal_and_logdet(J, model.log_prob(batch)[0] - model.prior.log_prob(z)[0])


def test_audio_with_margin_equals_zero_padding():
    batch = pose_batch(B=2, T=5)
    model = trained_like_pose(batch)
    k = model.config.audio_context
    padded = torch.nn.functional.pad(batch.audio, (0, 0, k, k))
    torch.testing.assert_close(model.encode(batch.pose, padded), model.encode(batch.pose, batch.audio))


@pytest.mark.usefixtures("single_thread")
def test_every_parameter_gets_a_gradient_and_nll_falls():
    batch = pose_batch(B=4, T=8)
    model = perturb(PoseFlow(PoseFlowConfig.tiny())).train()
    model.nll(batch).loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    model = PoseFlow(PoseFlowConfig.tiny()).train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    history = []
    for _ in range(50):
        out = model.nll(batch)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        history.append(out.nll.item())
    assert history[-1] < history[0] - 2.0, history[::10]


def test_sampling_is_seeded_and_save_load_is_identical(tmp_path: Path):
    batch = pose_batch(B=2, T=6)
    model = trained_like_pose(batch)
    a = model.sample(batch.audio, generator=torch.Generator().manual_seed(0))
    b = model.sample(batch.audio, generator=torch.Generator().manual_seed(0))
    c = model.sample(batch.audio, generator=torch.Generator().manual_seed(1))
    assert a.shape == (2, 6, 6) and torch.equal(a, b) and not torch.equal(a, c)
    loaded = PoseFlow.from_pretrained(model.save_pretrained(tmp_path / "poseflow"))
    assert torch.equal(loaded.sample(batch.audio, generator=torch.Generator().manual_seed(0)), a)
    torch.testing.assert_close(loaded.log_prob(batch), model.log_prob(batch), atol=0, rtol=0)
