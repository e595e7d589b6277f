"""Fuse network (paper §3.3): warped-encoder tokens z_w attend to the source's quantised tokens z_s, then
AdaIN by the motion descriptor m.

z_w carries the target's geometry but loses identity and texture where the warp stretched or tore the
source; z_s (the frozen encoder's quantised source grid, the same codebook space as the output) carries
them undistorted. Multi-head cross-attention (query z_w, key/value z_s) lets every target position fetch
texture from wherever it sits in the source; a learned position embedding is added to queries and keys
so attention can use "where" as well as "what". AdaIN(m) then injects the motion (paper: fidelity from
the attention, motion guidance from AdaIN). Output ẑ lives in the codebook's space (B, d, h, w), where
the code-level loss compares it with the GT frame's quantised latents.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from flowvq_cli.vqig.config import VQIGConfig
from flowvq_cli.vqig.layers import AdaIN

POS_INIT_STD = 0.02  # std of the learned position embeddings (GPT-2's)


class CrossAttention(nn.Module):
    """Multi-head attention of queries (B, T_q, C) over keys/values (B, T_k, C) → (B, T_q, C)."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        b, t_q, c = query.shape
        t_k, hd = key.shape[1], c // self.heads
        q = self.q(query).reshape(b, t_q, self.heads, hd).transpose(1, 2)  # (B, nh, T_q, hd)
        k = self.k(key).reshape(-1, t_k, self.heads, hd).transpose(1, 2)  # (B_k, nh, T_k, hd)
        v = self.v(value).reshape(-1, t_k, self.heads, hd).transpose(1, 2)
        k, v = k.expand(b, -1, -1, -1), v.expand(b, -1, -1, -1)  # a batch-1 source serves B frames
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        return self.proj(out.transpose(1, 2).reshape(b, t_q, c))  # (B, T_q, C)


class FuseNetwork(nn.Module):
    """(z_w (B, d, h, w), z_s (B or 1, d, h, w), m (B, d_m)) → ẑ (B, d, h, w)."""

    def __init__(self, config: VQIGConfig) -> None:
        super().__init__()
        d, dim = config.codebook.latent_dim, config.fuse_dim
        self.in_w = nn.Linear(d, dim)
        self.in_s = nn.Linear(d, dim)
        self.pos = nn.Parameter(torch.randn(1, config.num_tokens, dim) * POS_INIT_STD)
        self.norm_q = nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(dim)
        self.attn = CrossAttention(dim, config.fuse_heads, config.dropout)
        self.adain = AdaIN(dim, config.motion_dim, config.init_gain)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, config.mlp_ratio * dim), nn.GELU(),
                                 nn.Linear(config.mlp_ratio * dim, dim), nn.Dropout(config.dropout))
        self.out = nn.Linear(dim, d)

    def forward(self, z_w: torch.Tensor, z_s: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        b, d, h, w = z_w.shape
        x = self.in_w(z_w.flatten(2).transpose(1, 2))  # (B, hw, C)
        s = self.norm_kv(self.in_s(z_s.flatten(2).transpose(1, 2)))  # (B_s, hw, C)
        q = self.norm_q(x)
        x = x + self.attn(q + self.pos, s + self.pos, s)  # (B, hw, C)
        x = self.adain(x, m)
        x = x + self.mlp(self.norm_mlp(x))
        return self.out(x).transpose(1, 2).reshape(b, d, h, w)  # (B, d, h, w)

