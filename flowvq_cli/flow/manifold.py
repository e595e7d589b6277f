"""Manifold projection (paper §3.2, after LLE): replace a sampled latent by the affine combination of its
k nearest training latents of the same class that reconstructs it best.

w = argmin_w ‖z - Σ_i w_i z_i‖²  s.t.  Σ_i w_i = 1.
With G = (z_i - z)(z_j - z)ᵀ (the k×k local Gram matrix) the solution is w ∝ G⁻¹ 1, normalised to sum 1;
G is regularised as G + (reg · tr(G)/k + tiny) I because it is singular whenever k > D or z sits on a
neighbour.
"""

from __future__ import annotations

import torch
from torch import Tensor


def lle_weights(z: Tensor, neighbours: Tensor, reg: float = 1e-3) -> Tensor:
    """z (N, D), neighbours (N, k, D) -> weights (N, k), each row summing to 1."""
    diff = neighbours - z.unsqueeze(1)  # (N, k, D)
    gram = diff @ diff.transpose(1, 2)  # (N, k, k)
    k = gram.shape[-1]
    trace = torch.diagonal(gram, dim1=1, dim2=2).sum(-1)  # (N,)
    ridge = reg * trace / k + torch.finfo(gram.dtype).eps
    gram = gram + ridge[:, None, None] * torch.eye(k, dtype=gram.dtype, device=gram.device)
    w = torch.linalg.solve(gram, torch.ones(gram.shape[:2], dtype=gram.dtype, device=gram.device))  # (N, k)
    return w / w.sum(-1, keepdim=True)


def project(z: Tensor, labels: Tensor, bank: Tensor, bank_labels: Tensor, k: int, reg: float = 1e-3,
            chunk: int = 4096) -> Tensor:
    """Project each z onto its class's training latents.

    z (N, D), labels (N,) class of each row, bank (M, D), bank_labels (M,) -> (N, D).
    Every class in ``labels`` must have at least one bank entry (k is capped at that class's count).
    Queries run in chunks so memory stays bounded for long sequences.
    """
    out = torch.empty_like(z)
    for c in labels.unique().tolist():
        rows = (labels == c).nonzero().squeeze(1)
        bank_c = bank[bank_labels == c]  # (M_c, D)
        if bank_c.shape[0] == 0:
            raise ValueError(f"no bank latents for class {c}")
        k_c = min(k, bank_c.shape[0])
        for start in range(0, rows.numel(), chunk):
            idx = rows[start:start + chunk]
            nn_idx = torch.cdist(z[idx], bank_c).topk(k_c, dim=1, largest=False).indices  # (n, k)
            neighbours = bank_c[nn_idx]  # (n, k, D)
            w = lle_weights(z[idx], neighbours, reg)
            out[idx] = (w.unsqueeze(-1) * neighbours).sum(1)
    return out
