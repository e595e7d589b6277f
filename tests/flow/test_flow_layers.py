"""Flow layers and steps: exact inverses, log-determinants against autograd, data-init, streaming."""

from __future__ import annotations

import pytest
import torch
from flow_testutils import assert_causal_and_logdet, jacobian_blocks, perturb

from flowvq_cli.flow import AffineCoupling, FlowCond, InvertibleLinearLU, MultiActNorm
from flowvq_cli.flow.glow import FlowStack, FlowStep
from flowvq_cli.flow.transformer import CouplingTransformer

D, C, D_COND = 6, 3, 5


def make_layer(kind: str) -> torch.nn.Module:
    if kind == "actnorm":
        return MultiActNorm(D, C)
    if kind == "invconv":
        return InvertibleLinearLU(D)
    if kind == "coupling":
        return AffineCoupling(D, D_COND, d_model=8, n_heads=2, n_layers=2, ff_mult=2, window=3)
    if kind == "step":
        return FlowStep(D, C, D_COND, d_model=8, n_heads=2, n_layers=1, ff_mult=2, window=3)
    return FlowStack(D, C, 3, D_COND, d_model=8, n_heads=2, n_layers=1, ff_mult=2, window=3)


KINDS = ["actnorm", "invconv", "coupling", "step", "stack"]


def cond_for(B: int, T: int) -> FlowCond:
    return FlowCond(context=torch.randn(B, T, D_COND), labels=torch.arange(B) % C)


@pytest.mark.parametrize("kind", KINDS)
def test_inverse_of_forward(kind: str):
    layer = perturb(make_layer(kind)).eval()
    x, cond = torch.randn(4, 7, D), cond_for(4, 7)
    z, logdet = layer(x, cond)
    assert z.shape == x.shape and logdet.shape == (4, 7)
    torch.testing.assert_close(layer.inverse(z, cond), x, atol=1e-8, rtol=0)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("T", [1, 5])
def test_logdet_is_jacobian_slogdet(kind: str, T: int):
    """Per frame and over a whole sequence; with T=5 > window the coupling's band mask is exercised and the
    Jacobian over the sequence must be block lower-triangular."""
    layer = perturb(make_layer(kind)).eval()
    x, cond = torch.randn(1, T, D), cond_for(1, T)
    J = jacobian_blocks(lambda v: layer(v, cond)[0], x)
    assert_causal_and_logdet(J, layer(x, cond)[1][0])


@pytest.mark.parametrize("kind", KINDS)
def test_every_parameter_gets_a_gradient(kind: str):
    layer = perturb(make_layer(kind)).train()
    x, cond = torch.randn(6, 5, D), cond_for(6, 5)
    z, logdet = layer(x, cond)
    (z.pow(2).sum() - logdet.sum()).backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_coupling_starts_as_identity():
    layer = make_layer("coupling")
    x, cond = torch.randn(2, 4, D), cond_for(2, 4)
    z, logdet = layer(x, cond)
    torch.testing.assert_close(z, x, atol=1e-14, rtol=0)
    torch.testing.assert_close(logdet, torch.zeros(2, 4), atol=1e-14, rtol=0)


def test_coupling_scale_is_bounded():
    layer = make_layer("coupling")
    with torch.no_grad():
        layer.net.out.bias.fill_(1e3)  # huge raw scale: s = sigmoid(raw + 2) / sigmoid(2) < 1.14
    _, logdet = layer(torch.randn(1, 3, D), cond_for(1, 3))
    assert logdet.max() <= (D - D // 2) * torch.log(1 + torch.exp(torch.tensor(-2.0))) + 1e-12


def test_actnorm_data_init_gives_zero_mean_unit_variance_per_class():
    layer = MultiActNorm(D, C).train()
    labels = torch.tensor([0, 0, 1, 2, 2, 2])
    shift = torch.tensor([-3.0, 0.5, 10.0])[labels].view(-1, 1, 1)
    scale = torch.tensor([0.1, 2.0, 5.0])[labels].view(-1, 1, 1)
    x = shift + scale * torch.randn(6, 50, D)
    z, _ = layer(x, FlowCond(torch.zeros(6, 50, 1), labels))
    for c in range(C):
        zc = z[labels == c].reshape(-1, D)
        torch.testing.assert_close(zc.mean(0), torch.zeros(D), atol=1e-10, rtol=0)
        torch.testing.assert_close(zc.std(0, unbiased=False), torch.ones(D), atol=1e-10, rtol=0)
    assert layer.initialized.all()
    before = layer.log_scale.detach().clone()
    layer(3 * x, FlowCond(torch.zeros(6, 50, 1), labels))  # initialised classes are not re-initialised
    assert torch.equal(layer.log_scale, before)


def test_actnorm_initialises_only_the_classes_it_has_seen():
    layer = MultiActNorm(D, C).train()
    layer(torch.randn(2, 4, D) + 5, FlowCond(torch.zeros(2, 4, 1), torch.tensor([1, 1])))
    assert layer.initialized.tolist() == [False, True, False]
    assert torch.equal(layer.bias[0], torch.zeros(D)) and layer.bias[1].mean() < -4
    layer.eval()
    layer(torch.randn(2, 4, D), FlowCond(torch.zeros(2, 4, 1), torch.tensor([0, 2])))  # eval: no init
    assert layer.initialized.tolist() == [False, True, False]


def test_actnorm_flag_survives_state_dict():
    layer = MultiActNorm(D, C).train()
    layer(torch.randn(3, 4, D), FlowCond(torch.zeros(3, 4, 1), torch.arange(3)))
    fresh = MultiActNorm(D, C)
    fresh.load_state_dict(layer.state_dict())
    assert fresh.initialized.all()


def test_invconv_weight_is_lu_parametrised():
    layer = perturb(InvertibleLinearLU(D))
    W = layer.weight()
    torch.testing.assert_close(torch.linalg.slogdet(W)[1], layer.log_s.sum())
    torch.testing.assert_close(layer.inverse_weight() @ W, torch.eye(D), atol=1e-12, rtol=0)


def test_stacked_stream_inverse_equals_parallel_inverse():
    """Frame-by-frame inverse with key/value caches == all frames at once, also past the window."""
    stack = perturb(make_layer("stack")).eval()
    z, cond = torch.randn(2, 9, D), cond_for(2, 9)
    states = stack.start_stream(cond.labels)
    frames = [stack.inverse_step(z[:, t:t + 1], cond.context[:, t:t + 1], states) for t in range(9)]
    torch.testing.assert_close(torch.cat(frames, dim=1), stack.inverse(z, cond), atol=1e-10, rtol=0)


def test_transformer_step_matches_forward_and_is_causal():
    net = perturb(CouplingTransformer(4, 3, d_model=8, n_heads=2, n_layers=2, ff_mult=2, window=3)).eval()
    u = torch.randn(2, 8, 4)
    cache = net.new_cache()
    steps = torch.cat([net.step(u[:, t:t + 1], cache) for t in range(8)], dim=1)
    torch.testing.assert_close(steps, net(u), atol=1e-12, rtol=0)
    assert all(kv.shape[3] == 3 for kv in cache)  # bounded: the window, not the sequence
    u2 = u.clone()
    u2[:, 5:] += 1.0
    torch.testing.assert_close(net(u2)[:, :5], net(u)[:, :5], atol=0, rtol=0)
