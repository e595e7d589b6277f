"""Vector quantiser: nearest-code lookup, straight-through gradients, usage statistics, dead-code restart.

Given encoder features ``z`` of shape (B, d, h, w) and a codebook C of shape (N, d), every position is
replaced by its nearest code (squared L2). The paper's losses (docs/design.md §4, "Codebook") are

    codebook loss   = mean ‖sg[z] − z_q‖²        (moves the codes toward the encoder outputs)
    commitment loss = β · mean ‖z − sg[z_q]‖²     (keeps the encoder close to its codes)

and the straight-through estimator passes the decoder's gradient at z_q unchanged to z.

Training also keeps code-usage statistics (an EMA of each code's share of the positions, and how many
training steps each code has gone unused). Codes unused for ``dead_code_steps`` steps are re-initialised
from randomly chosen encoder outputs of the current batch. The choice is drawn from a generator seeded
with ``(restart_seed, step)``, so a run is reproducible and a resumed run (the step counter is a saved
buffer) restarts exactly as the uninterrupted one would have.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

# A restart's generator seed is (restart_seed << _SEED_STEP_BITS) + step: distinct for every (seed, step).
_SEED_STEP_BITS = 31


@dataclass(frozen=True)
class QuantizerConfig:
    """Codebook hyper-parameters.

    Attributes:
        num_codes: N, the number of codebook entries.
        code_dim: d, the width of one code (equal to the encoder's output channels).
        beta: β, the weight of the commitment loss.
        usage_decay: decay of the exponential moving average of code usage (closer to 1 = slower).
        dead_code_steps: a code unused for this many consecutive training steps is restarted from a
            random current encoder output; 0 disables restarts.
        restart_seed: seed of the restart draws (combined with the step counter).
        distance_chunk: positions per chunk in the nearest-code search (bounds the (chunk, N) distance
            matrix's memory).
    """

    num_codes: int = 1024
    code_dim: int = 256
    beta: float = 0.25
    usage_decay: float = 0.99
    dead_code_steps: int = 200
    restart_seed: int = 0
    distance_chunk: int = 16384

    def __post_init__(self) -> None:
        if self.num_codes < 2 or self.code_dim < 1:
            raise ValueError(f"need num_codes >= 2 and code_dim >= 1, got {self.num_codes}, {self.code_dim}")
        if not 0.0 <= self.usage_decay < 1.0:
            raise ValueError(f"usage_decay must be in [0, 1), got {self.usage_decay}")
        if self.dead_code_steps < 0 or self.distance_chunk < 1:
            raise ValueError("dead_code_steps must be >= 0 and distance_chunk >= 1")
        if not 0 <= self.restart_seed < 2**_SEED_STEP_BITS:
            raise ValueError(f"restart_seed must be in [0, 2**{_SEED_STEP_BITS}), got {self.restart_seed}")


@dataclass
class QuantizerOutput:
    """What :meth:`VectorQuantizer.forward` returns.

    Attributes:
        z_q: (B, d, h, w) quantised features; carries straight-through gradients to the input ``z``.
        indices: (B, h, w) int64 code index per position.
        codebook_loss: scalar, mean ‖sg[z] − z_q‖².
        commit_loss: scalar, β · mean ‖z − sg[z_q]‖² (β already applied).
        perplexity: scalar, exp(entropy) of this batch's code histogram (1 … N).
        restarted: number of dead codes re-initialised during this call (0 outside training).
    """

    z_q: torch.Tensor
    indices: torch.Tensor
    codebook_loss: torch.Tensor
    commit_loss: torch.Tensor
    perplexity: torch.Tensor
    restarted: int = 0


def histogram_perplexity(counts: torch.Tensor) -> torch.Tensor:
    """exp(entropy) of a histogram of code counts or probabilities, shape (N,) → scalar in [1, N]."""
    probs = counts.float() / counts.float().sum().clamp_min(torch.finfo(torch.float32).tiny)
    entropy = -(probs * torch.log(probs.clamp_min(torch.finfo(torch.float32).tiny))).sum()
    return torch.exp(entropy)


class VectorQuantizer(nn.Module):
    """Nearest-neighbour vector quantiser with a learned codebook (VQ-VAE / VQGAN style).

    Buffers (saved with the model): ``usage_ema`` (N,) EMA of each code's share of the positions,
    ``steps_unused`` (N,) training steps since each code was last chosen, ``step`` () training steps seen.
    """

    def __init__(self, config: QuantizerConfig) -> None:
        super().__init__()
        self.config = config
        n, d = config.num_codes, config.code_dim
        # Uniform in ±1/N, the VQGAN convention: small codes near the origin, where a fresh encoder's
        # outputs are; dead-code restarts move unused ones onto the data.
        self.codebook = nn.Parameter(torch.empty(n, d).uniform_(-1.0 / n, 1.0 / n))
        self.register_buffer("usage_ema", torch.full((n,), 1.0 / n))
        self.register_buffer("steps_unused", torch.zeros(n, dtype=torch.long))
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    # ------------------------------------------------------------------ lookup
    @torch.no_grad()
    def nearest_indices(self, flat: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code for each row of ``flat`` (M, d) → (M,) int64.

        Squared distances via the expanded form ‖z‖² − 2 z·c + ‖c‖², in float32 (also under autocast),
        computed in chunks of ``distance_chunk`` rows.
        """
        codes = self.codebook.detach().float()
        code_sq = (codes * codes).sum(dim=1)  # (N,)
        out = torch.empty(flat.shape[0], dtype=torch.long, device=flat.device)
        with torch.autocast(device_type=flat.device.type, enabled=False):
            for start in range(0, flat.shape[0], self.config.distance_chunk):
                rows = flat[start : start + self.config.distance_chunk].float()  # (m, d)
                dist = (rows * rows).sum(dim=1, keepdim=True) - 2.0 * rows @ codes.t() + code_sq  # (m, N)
                out[start : start + rows.shape[0]] = dist.argmin(dim=1)
        return out

    def get_codebook_feat(self, indices: torch.Tensor, shape: tuple[int, int, int] | None = None) -> torch.Tensor:
        """Codes for given indices as a feature map.

        Args:
            indices: (B, h, w) int64, or flat (M,) / (M, 1) together with ``shape``.
            shape: (B, h, w) of the flat indices; omit it when ``indices`` is already (B, h, w).

        Returns:
            (B, d, h, w) features, in the codebook's dtype.
        """
        if shape is not None:
            indices = indices.reshape(shape)
        if indices.dim() != 3:
            raise ValueError(f"indices must be (B, h, w) or flat with shape=(B, h, w); got {tuple(indices.shape)}")
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= self.config.num_codes):
            raise ValueError(f"code indices must lie in [0, {self.config.num_codes}); got "
                             f"[{int(indices.min())}, {int(indices.max())}]")
        feat = F.embedding(indices.long(), self.codebook)  # (B, h, w, d)
        return feat.permute(0, 3, 1, 2).contiguous()  # (B, d, h, w)

    # ----------------------------------------------------------------- forward
    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        """Quantise ``z`` (B, d, h, w); in training mode also update usage and restart dead codes."""
        if z.dim() != 4 or z.shape[1] != self.config.code_dim:
            raise ValueError(f"expected z of shape (B, {self.config.code_dim}, h, w), got {tuple(z.shape)}")
        b, d, h, w = z.shape
        flat = z.permute(0, 2, 3, 1).reshape(-1, d)  # (B·h·w, d)
        indices = self.nearest_indices(flat.detach())  # (B·h·w,)
        codes = self.get_codebook_feat(indices, (b, h, w))  # (B, d, h, w), codebook dtype, grad to codebook

        # Losses in float32 (also under autocast): the codebook gradient must not be rounded to bf16.
        codebook_loss = F.mse_loss(codes.float(), z.detach().float())
        commit_loss = self.config.beta * F.mse_loss(z.float(), codes.detach().float())
        # Straight-through: the value is exactly the code, and d z_q / d z = I.
        z_q = codes.detach().to(z.dtype) + (z - z.detach())

        counts = torch.bincount(indices, minlength=self.config.num_codes)  # (N,)
        restarted = 0
        if self.training:
            restarted = self._update_usage(counts, flat.detach())
        return QuantizerOutput(
            z_q=z_q,
            indices=indices.reshape(b, h, w),
            codebook_loss=codebook_loss,
            commit_loss=commit_loss,
            perplexity=histogram_perplexity(counts),
            restarted=restarted,
        )

    # ------------------------------------------------------------ statistics
    @torch.no_grad()
    def _update_usage(self, counts: torch.Tensor, flat: torch.Tensor) -> int:
        """Update usage buffers with this batch's histogram (N,); restart dead codes. Returns #restarted."""
        decay = self.config.usage_decay
        share = counts.float() / max(int(flat.shape[0]), 1)
        self.usage_ema.mul_(decay).add_(share, alpha=1.0 - decay)
        self.steps_unused.add_(1).masked_fill_(counts > 0, 0)
        self.step.add_(1)
        if self.config.dead_code_steps == 0:
            return 0
        dead = torch.nonzero(self.steps_unused >= self.config.dead_code_steps).flatten()
        if dead.numel() == 0:
            return 0
        return self.restart_codes(dead, flat)

    @torch.no_grad()
    def restart_codes(self, codes: torch.Tensor, candidates: torch.Tensor) -> int:
        """Re-initialise ``codes`` (K,) int64 from rows of ``candidates`` (M, d), reproducibly.

        Rows are drawn without replacement when M ≥ K, otherwise with replacement, from a generator
        seeded by (restart_seed, step). The restarted codes' counters are reset.
        """
        generator = torch.Generator(device=candidates.device)
        generator.manual_seed((self.config.restart_seed << _SEED_STEP_BITS) + int(self.step))
        k, m = codes.numel(), candidates.shape[0]
        if m >= k:
            rows = torch.randperm(m, generator=generator, device=candidates.device)[:k]
        else:
            rows = torch.randint(m, (k,), generator=generator, device=candidates.device)
        self.codebook.index_copy_(0, codes, candidates[rows].to(self.codebook.dtype))
        self.steps_unused[codes] = 0
        self.usage_ema[codes] = 1.0 / self.config.num_codes
        return k

    def usage_perplexity(self) -> torch.Tensor:
        """exp(entropy) of the EMA usage: how many codes are effectively in use (scalar, 1 … N)."""
        return histogram_perplexity(self.usage_ema)

    def fraction_used(self, within_steps: int = 1) -> float:
        """Share of codes chosen at least once within the last ``within_steps`` training steps."""
        return float((self.steps_unused < within_steps).float().mean())
