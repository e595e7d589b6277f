"""The coupling network: a small pre-LN transformer over time with banded causal self-attention.

Frame t attends to frames t-W+1..t (W = ``window``), with a learned bias per head and distance, so the
same weights run two ways that give identical results:

- ``forward(u)``: all frames at once (training, encoding), with a band mask;
- ``step(u_t, cache)``: one new frame against a key/value cache of the last W-1 frames (autoregressive
  sampling). The cache of one layer is a tensor (2, B, H, n, head_dim) holding keys and values, n <= W.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

KVCache = list[Tensor | None]


class CausalSelfAttention(nn.Module):
    def __init__(self, d_model: int, n_heads: int, window: int):
        super().__init__()
        self.n_heads, self.head_dim, self.window = n_heads, d_model // n_heads, window
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        # pos_bias[:, j] is the bias for a key at distance window-1-j from the query (last column: itself),
        # so the n most recent keys of a cache use the view pos_bias[:, window-n:].
        self.pos_bias = nn.Parameter(torch.zeros(n_heads, window))

    def band_bias(self, T: int) -> Tensor:
        """(H, T, T) additive mask: pos_bias inside the causal band of width W, -inf elsewhere."""
        t = torch.arange(T, device=self.pos_bias.device)
        dist = t[:, None] - t[None, :]  # (T, T) query minus key
        inside = (dist >= 0) & (dist < self.window)
        bias = self.pos_bias[:, (self.window - 1 - dist).clamp(0, self.window - 1)]  # (H, T, T)
        return bias.masked_fill(~inside, float("-inf"))

    def _split(self, x: Tensor) -> Tensor:
        B, T, _ = x.shape
        qkv = self.qkv(x).view(B, T, 3, self.n_heads, self.head_dim)
        return qkv.permute(2, 0, 3, 1, 4)  # (3, B, H, T, hd)

    def _merge(self, y: Tensor) -> Tensor:
        B, H, T, hd = y.shape
        return self.proj(y.transpose(1, 2).reshape(B, T, H * hd))  # (B, T, C)

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, T, C) -> (B, T, C), all frames in parallel."""
        q, k, v = self._split(x)
        mask = self.band_bias(x.shape[1]).unsqueeze(0)  # (1, H, T, T)
        return self._merge(F.scaled_dot_product_attention(q, k, v, attn_mask=mask))

    def step(self, x: Tensor, kv: Tensor | None) -> tuple[Tensor, Tensor]:
        """x: (B, 1, C) one new frame; kv: (2, B, H, n, hd) or None -> ((B, 1, C), updated kv)."""
        qkv = self._split(x)  # (3, B, H, 1, hd)
        kv = qkv[1:] if kv is None else torch.cat([kv, qkv[1:]], dim=3)[:, :, :, -self.window:]
        n = kv.shape[3]
        bias = self.pos_bias[:, self.window - n:].unsqueeze(1)  # (H, 1, n)
        return self._merge(F.scaled_dot_product_attention(qkv[0], kv[0], kv[1], attn_mask=bias)), kv


class Block(nn.Module):
    def __init__(self, d_model: int, n_heads: int, window: int, ff_mult: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, n_heads, window)
        self.ln_2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, ff_mult * d_model), nn.GELU(),
                                 nn.Linear(ff_mult * d_model, d_model))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))

    def step(self, x: Tensor, kv: Tensor | None) -> tuple[Tensor, Tensor]:
        a, kv = self.attn.step(self.ln_1(x), kv)
        x = x + a
        return x + self.mlp(self.ln_2(x)), kv


class CouplingTransformer(nn.Module):
    """(B, T, in_dim) -> (B, T, out_dim). The output layer starts at zero, so the coupling it drives
    starts as the identity."""

    def __init__(self, in_dim: int, out_dim: int, d_model: int, n_heads: int, n_layers: int,
                 ff_mult: int, window: int):
        super().__init__()
        self.inp = nn.Linear(in_dim, d_model)
        self.blocks = nn.ModuleList(Block(d_model, n_heads, window, ff_mult) for _ in range(n_layers))
        self.ln_f = nn.LayerNorm(d_model)
        self.out = nn.Linear(d_model, out_dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, u: Tensor) -> Tensor:
        x = self.inp(u)
        for block in self.blocks:
            x = block(x)
        return self.out(self.ln_f(x))

    def new_cache(self) -> KVCache:
        return [None] * len(self.blocks)

    def step(self, u: Tensor, cache: KVCache) -> Tensor:
        """u: (B, 1, in_dim) -> (B, 1, out_dim); updates ``cache`` in place (one entry per block)."""
        x = self.inp(u)
        for i, block in enumerate(self.blocks):
            x, cache[i] = block.step(x, cache[i])
        return self.out(self.ln_f(x))
