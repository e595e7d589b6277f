"""Per-frame conditioning vector c_t of the coefficient flows.

c_t = out(GELU(audio_t + history_t + static)), where
- audio_t: 1-D convolutions over the audio window a_{t-k..t+k} (look-ahead of k frames; one linear layer,
  or ``audio_layers`` with GELUs between them),
- history_t: a linear map of the previous frames x_{t-L..t-1} (flattened),
- static: one vector per sequence (ExpFlow: source exp + emotion + intensity; PoseFlow: none).

Audio and static parts do not depend on generated frames, so sampling computes them once for the whole
sequence (``static_part``) and only the history part per frame.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def audio_encoder(audio_dim: int, d_out: int, k: int, layers: int, hidden: int) -> nn.Module:
    """Unpadded 1-D convolutions over time whose receptive field is exactly 2k + 1 frames: (B, F, T + 2k) ->
    (B, d_out, T). One layer is a linear map of the window; more layers (GELU between them, the half-width
    ``k`` split among them) can tell phonemes apart before the flow sees them."""
    if layers == 1:
        return nn.Conv1d(audio_dim, d_out, kernel_size=2 * k + 1)
    halves = [k // layers + (1 if i < k % layers else 0) for i in range(layers)]
    widths = [audio_dim] + [hidden] * (layers - 1) + [d_out]
    modules: list[nn.Module] = []
    for i, half in enumerate(halves):
        modules.append(nn.Conv1d(widths[i], widths[i + 1], kernel_size=2 * half + 1))
        if i < layers - 1:
            modules.append(nn.GELU())
    return nn.Sequential(*modules)


class ContextEncoder(nn.Module):
    def __init__(self, x_dim: int, audio_dim: int, audio_context: int, n_history: int, d_cond: int,
                 audio_layers: int = 1, audio_hidden: int = 128):
        super().__init__()
        self.k, self.n_history = audio_context, n_history
        self.audio = audio_encoder(audio_dim, d_cond, audio_context, audio_layers, audio_hidden)
        self.history = nn.Linear(n_history * x_dim, d_cond)
        self.out = nn.Linear(d_cond, d_cond)

    def static_part(self, audio: Tensor, T: int, static: Tensor | None) -> Tensor:
        """audio (B, T, F), zero-padded by k frames at both ends, or (B, T + 2k, F) already carrying those
        k frames of margin; static (B, d_cond) or None -> (B, T, d_cond)."""
        if audio.shape[1] == T:
            audio = F.pad(audio, (0, 0, self.k, self.k))  # (B, T + 2k, F)
        elif audio.shape[1] != T + 2 * self.k:
            raise ValueError(f"audio has {audio.shape[1]} frames; expected {T} or {T + 2 * self.k} (with a "
                             f"margin of {self.k} frames on each side)")
        part = self.audio(audio.transpose(1, 2)).transpose(1, 2)  # (B, T, d_cond)
        return part if static is None else part + static.unsqueeze(1)

    def history_windows(self, x: Tensor, history: Tensor) -> Tensor:
        """Previous-frames context of every frame: x (B, T, D), history (B, L, D) = the L frames before
        x[:, 0] -> (B, T, L·D), row t = x_{t-L..t-1} flattened oldest first."""
        B, T, D = x.shape
        seq = torch.cat([history, x[:, :-1]], dim=1)  # (B, L + T - 1, D)
        windows = seq.unfold(1, self.n_history, 1)  # (B, T, D, L)
        return windows.transpose(2, 3).reshape(B, T, self.n_history * D)

    def forward(self, static_part: Tensor, history: Tensor) -> Tensor:
        """static_part (B, T, d_cond), history (B, T, L·D) -> c (B, T, d_cond)."""
        return self.out(F.gelu(static_part + self.history(history)))
