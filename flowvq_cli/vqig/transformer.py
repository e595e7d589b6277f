"""Code-prediction transformer T (paper §3.3, after CodeFormer): fused features → logits over the codebook.

The h·w positions of ẑ (B, d, h, w) become tokens (plus a learned position embedding); pre-LayerNorm
self-attention blocks mix them globally (a mouth token can look at the eyes' expression); a final
linear layer gives one logit per codebook entry and position, (B, h·w, N). Inference takes the argmax
code at every position and decodes it with the frozen decoder.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from flowvq_cli.vqig.config import VQIGConfig
from flowvq_cli.vqig.fuse import POS_INIT_STD


class SelfAttentionBlock(nn.Module):
    """x + Attn(LN(x)), then x + MLP(LN(x)): (B, T, C) → (B, T, C)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim),
                                 nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        qkv = self.qkv(self.norm1(x)).reshape(b, t, 3, self.heads, c // self.heads)  # (B, T, 3, nh, hd)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, nh, T, hd)
        att = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        x = x + self.proj(att.transpose(1, 2).reshape(b, t, c))  # (B, T, C)
        return x + self.mlp(self.norm2(x))


class CodeTransformer(nn.Module):
    """T: ẑ (B, d, h, w) → logits (B, h·w, N)."""

    def __init__(self, config: VQIGConfig) -> None:
        super().__init__()
        dim = config.transformer_dim
        self.embed = nn.Linear(config.codebook.latent_dim, dim)
        self.pos = nn.Parameter(torch.randn(1, config.num_tokens, dim) * POS_INIT_STD)
        self.blocks = nn.Sequential(*(SelfAttentionBlock(dim, config.transformer_heads, config.mlp_ratio,
                                                         config.dropout)
                                      for _ in range(config.transformer_layers)))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, config.codebook.num_codes)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.embed(z.flatten(2).transpose(1, 2)) + self.pos  # (B, hw, C)
        return self.head(self.norm(self.blocks(x)))  # (B, hw, N)
