"""Vector quantiser: lookup, gradients, losses, usage statistics, dead-code restart."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from flowvq_cli.vq.quantizer import QuantizerConfig, VectorQuantizer, histogram_perplexity


def make_quantizer(num_codes: int = 16, code_dim: int = 4, seed: int = 0, **kwargs: object) -> VectorQuantizer:
    torch.manual_seed(seed)
    q = VectorQuantizer(QuantizerConfig(num_codes=num_codes, code_dim=code_dim, **kwargs))
    with torch.no_grad():
        q.codebook.normal_()  # spread the codes so every test exercises real choices
    return q


def brute_force_indices(z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """(B, d, h, w), (N, d) → (B, h, w) by explicit differences in float64."""
    flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1]).double()
    dist = ((flat[:, None, :] - codebook.double()[None, :, :]) ** 2).sum(-1)  # (M, N)
    return dist.argmin(dim=1).reshape(z.shape[0], z.shape[2], z.shape[3])


@pytest.mark.parametrize("chunk", [7, 16384])
def test_indices_equal_brute_force_argmin(chunk: int) -> None:
    q = make_quantizer(num_codes=64, code_dim=8, distance_chunk=chunk).eval()
    z = torch.randn(3, 8, 5, 6, generator=torch.Generator().manual_seed(1))
    out = q(z)
    assert out.indices.shape == (3, 5, 6) and out.indices.dtype == torch.long
    assert torch.equal(out.indices, brute_force_indices(z, q.codebook.detach()))
    assert torch.equal(out.z_q, q.get_codebook_feat(out.indices))  # forward value is exactly the code


def test_indices_under_bf16_autocast_match_fp32() -> None:
    q = make_quantizer(num_codes=64, code_dim=8).eval()
    z = torch.randn(2, 8, 4, 4, generator=torch.Generator().manual_seed(2))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        auto = q(z).indices
    assert torch.equal(auto, brute_force_indices(z, q.codebook.detach()))


def test_straight_through_gradient() -> None:
    """d loss / d z equals d loss / d z_q for a decoder applied to the quantised latents."""
    q = make_quantizer().eval()
    torch.manual_seed(3)
    decoder = nn.Conv2d(4, 3, 3, padding=1)
    z = torch.randn(2, 4, 5, 5, requires_grad=True)
    out = q(z)
    decoder(out.z_q).pow(2).sum().backward()

    z_hard = q.get_codebook_feat(out.indices).detach().requires_grad_(True)
    decoder(z_hard).pow(2).sum().backward()
    assert torch.allclose(z.grad, z_hard.grad, atol=1e-6)
    assert q.codebook.grad is None  # the reconstruction path does not reach the codebook


def test_codebook_loss_moves_only_the_codebook() -> None:
    q = make_quantizer().eval()
    z = torch.randn(2, 4, 3, 3, requires_grad=True, generator=torch.Generator().manual_seed(4))
    out = q(z)
    out.codebook_loss.backward()
    assert z.grad is None
    # analytic: d/dc_k mean((c_idx − z)²) = 2 Σ_{positions using k} (c_k − z) / numel
    flat = z.detach().permute(0, 2, 3, 1).reshape(-1, 4)
    idx = out.indices.flatten()
    expected = torch.zeros_like(q.codebook)
    expected.index_add_(0, idx, 2.0 * (q.codebook.detach()[idx] - flat) / flat.numel())
    assert torch.allclose(q.codebook.grad, expected, atol=1e-6)


def test_commit_loss_moves_only_the_encoder() -> None:
    q = make_quantizer(beta=0.3).eval()
    z = torch.randn(2, 4, 3, 3, requires_grad=True, generator=torch.Generator().manual_seed(5))
    out = q(z)
    out.commit_loss.backward()
    assert q.codebook.grad is None
    z_hard = q.get_codebook_feat(out.indices).detach()
    assert torch.allclose(z.grad, 2.0 * 0.3 * (z.detach() - z_hard) / z.numel(), atol=1e-6)
    assert torch.allclose(out.commit_loss, 0.3 * (z.detach() - z_hard).pow(2).mean())


def test_get_codebook_feat_shapes() -> None:
    q = make_quantizer().eval()
    indices = torch.randint(16, (2, 3, 5), generator=torch.Generator().manual_seed(6))
    feat = q.get_codebook_feat(indices)
    assert feat.shape == (2, 4, 3, 5)
    assert torch.equal(feat[1, :, 2, 4], q.codebook.detach()[indices[1, 2, 4]])
    assert torch.equal(q.get_codebook_feat(indices.reshape(-1, 1), (2, 3, 5)), feat)
    with pytest.raises(ValueError, match="code indices"):
        q.get_codebook_feat(torch.full((1, 2, 2), 16))
    with pytest.raises(ValueError, match=r"\(B, h, w\)"):
        q.get_codebook_feat(indices.flatten())


def test_perplexity() -> None:
    assert histogram_perplexity(torch.ones(8)).item() == pytest.approx(8.0)
    assert histogram_perplexity(torch.tensor([5.0, 0.0, 0.0])).item() == pytest.approx(1.0)
    q = make_quantizer(num_codes=4, code_dim=2).eval()
    with torch.no_grad():
        q.codebook.copy_(torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]]))
    z = q.codebook.detach().repeat(3, 1).t().reshape(1, 2, 3, 4)  # each code used 3 times
    assert q(z).perplexity.item() == pytest.approx(4.0, rel=1e-5)


def far_codes_quantizer(dead_code_steps: int, restart_seed: int = 0) -> VectorQuantizer:
    """8 codes; 0-3 near the data (N(0, 1)), 4-7 far away and never chosen."""
    q = make_quantizer(num_codes=8, code_dim=4, dead_code_steps=dead_code_steps, restart_seed=restart_seed)
    with torch.no_grad():
        q.codebook[4:] += 100.0
    return q


def test_dead_code_restart_replaces_exactly_the_dead_codes() -> None:
    q = far_codes_quantizer(dead_code_steps=3).train()
    before = q.codebook.detach().clone()
    z = torch.randn(2, 4, 4, 4, generator=torch.Generator().manual_seed(7))
    used = set(q(z).indices.unique().tolist())  # step 1
    assert used <= {0, 1, 2, 3}
    q(z)  # step 2
    assert torch.equal(q.codebook.detach(), before)  # not dead yet
    out = q(z)  # step 3: codes unused for 3 steps restart
    dead = sorted(set(range(8)) - used)
    assert out.restarted == len(dead)
    after = q.codebook.detach()
    alive = sorted(used)
    assert torch.equal(after[alive], before[alive])
    flat = z.permute(0, 2, 3, 1).reshape(-1, 4)
    for k in dead:
        assert (flat == after[k]).all(dim=1).any(), f"code {k} was not taken from the encoder outputs"
    assert len({tuple(after[k].tolist()) for k in dead}) == len(dead)  # distinct rows (no replacement)
    assert (q.steps_unused[dead] == 0).all() and int(q.step) == 3


def test_dead_code_restart_is_deterministic_and_training_only() -> None:
    z = torch.randn(2, 4, 4, 4, generator=torch.Generator().manual_seed(8))
    runs = []
    for seed in (0, 0, 1):
        q = far_codes_quantizer(dead_code_steps=1, restart_seed=seed).train()
        q(z)
        runs.append(q.codebook.detach().clone())
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], runs[2])

    q = far_codes_quantizer(dead_code_steps=1).eval()
    before = q.codebook.detach().clone()
    for _ in range(3):
        assert q(z).restarted == 0
    assert torch.equal(q.codebook.detach(), before) and int(q.step) == 0

    q = far_codes_quantizer(dead_code_steps=0).train()  # restarts disabled
    q(z)
    assert torch.equal(q.codebook.detach(), before)


def test_usage_statistics() -> None:
    q = far_codes_quantizer(dead_code_steps=0, restart_seed=0).train()
    z = torch.randn(4, 4, 4, 4, generator=torch.Generator().manual_seed(9))
    for _ in range(5):
        q(z)
    assert torch.allclose(q.usage_ema.sum(), torch.tensor(1.0), atol=1e-5)
    assert (q.usage_ema[4:] < 1.0 / 8).all()  # unused codes decay
    assert (q.steps_unused[4:] == 5).all()
    assert 1.0 <= q.usage_perplexity().item() <= 8.0
    assert q.fraction_used() <= 0.5


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        QuantizerConfig(num_codes=1)
    with pytest.raises(ValueError):
        QuantizerConfig(usage_decay=1.0)
    with pytest.raises(ValueError):
        VectorQuantizer(QuantizerConfig(num_codes=4, code_dim=3))(torch.zeros(1, 2, 2, 2))


def test_restart_resumes_identically_from_a_state_dict() -> None:
    """The restart draw depends on (seed, step) only, so a reloaded quantiser restarts like the original."""
    z = torch.randn(2, 4, 4, 4, generator=torch.Generator().manual_seed(10))
    original = far_codes_quantizer(dead_code_steps=2).train()
    original(z)
    resumed = far_codes_quantizer(dead_code_steps=2, restart_seed=0).train()
    with torch.no_grad():
        resumed.codebook.normal_()  # different weights until the state is loaded
    resumed.load_state_dict(original.state_dict())
    assert original(z).restarted == resumed(z).restarted > 0
    assert torch.equal(original.codebook, resumed.codebook)
