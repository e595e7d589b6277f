"""Helpers shared by the flow tests."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from flowvq_cli.flow import ExpBatch, ExpFlow, ExpFlowConfig, PoseBatch, PoseFlow, PoseFlowConfig


def perturb(module: nn.Module, scale: float = 0.1) -> nn.Module:
    """Move every parameter off its initial value (zero-initialised outputs make couplings identities)."""
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn_like(p))
    return module


def jacobian_blocks(f, x: Tensor) -> Tensor:
    """Jacobian of f: (1, T, D) -> (1, T, D) as (T, D, T, D)."""
    _, T, D = x.shape
    J = torch.autograd.functional.jacobian(lambda v: f(v.reshape(1, T, D)).reshape(T * D), x.reshape(T * D))
    return J.reshape(T, D, T, D)


def assert_causal_and_logdet(J: Tensor, logdet: Tensor) -> None:
    """J (T, D, T, D) must be block lower-triangular (frame t ignores later frames) and its slogdet must
    equal the sum of the per-frame logdets (T,)."""
    T, D = J.shape[:2]
    for t in range(T):
        assert torch.count_nonzero(J[t, :, t + 1:]) == 0, f"frame {t} depends on later frames"
        sign, logabs = torch.linalg.slogdet(J[t, :, t])
        assert sign != 0
        torch.testing.assert_close(logabs, logdet[t], atol=1e-8, rtol=1e-8)
    sign, total = torch.linalg.slogdet(J.reshape(T * D, T * D))
    torch.testing.assert_close(total, logdet.sum(), atol=1e-8, rtol=1e-8)


def exp_batch(B: int = 3, T: int = 6, config: ExpFlowConfig | None = None, emotions: list[int] | None = None
              ) -> ExpBatch:
    config = config or ExpFlowConfig.tiny()
    emotion = torch.tensor(emotions if emotions is not None else [i % 9 for i in range(B)])
    B = emotion.numel()
    # smooth curves strictly inside (0, 1): a clean target, and no clamp kinks for the Jacobian checks
    t = torch.linspace(0, 1, T)
    phase = torch.rand(B, 1, 52)
    exp = 0.5 + 0.4 * torch.sin(2 * torch.pi * (t[None, :, None] + phase)) * torch.rand(B, 1, 52)
    return ExpBatch(exp=exp, audio=torch.randn(B, T, config.audio_dim), source=0.1 + 0.8 * torch.rand(B, 52),
                    emotion=emotion, intensity=torch.arange(B) % (config.n_intensity + 1))


def pose_batch(B: int = 3, T: int = 6, config: PoseFlowConfig | None = None) -> PoseBatch:
    config = config or PoseFlowConfig.tiny()
    t = torch.linspace(0, 1, T)
    pose = 0.2 * torch.sin(2 * torch.pi * (t[None, :, None] + torch.rand(B, 1, 6)))
    return PoseBatch(pose=pose, audio=torch.randn(B, T, config.audio_dim))


def trained_like_exp(batch: ExpBatch) -> ExpFlow:
    """A tiny ExpFlow with data-initialised actnorms and perturbed weights, in eval mode."""
    model = ExpFlow(ExpFlowConfig.tiny()).train()
    model.nll(batch)  # data-init of every multi-actnorm
    return perturb(model).eval()


def trained_like_pose(batch: PoseBatch) -> PoseFlow:
    model = PoseFlow(PoseFlowConfig.tiny()).train()
    model.nll(batch)
    return perturb(model).eval()
