"""FlowVQ's expression reader: MediaPipe's Blendshape V2 model in PyTorch (differentiable).

Blendshape V2 (``face_blendshapes.tflite`` in MediaPipe's ``face_landmarker.task``, Apache-2.0) maps
146 of the 478 FaceMesh landmarks, as (x, y) image pixels, to 52 ARKit-style scores in [0, 1]. It
learned from real faces what each blendshape looks like, and it is what webcam-to-ARKit users get, so
FlowVQ reads every expression with it and calibrates its rig to it (``docs/design.md``, "The face
model"). ``scripts/convert_blendshape_v2.py`` converts the weights once into
``flowvq_cli/assets/blendshape_v2.safetensors``; ``tests/face/test_reader.py`` checks parity with
MediaPipe's own scores.

The network, as the .tflite computes it (shapes for one face)::

    p (146, 2) pixels -> centred, divided by the mean distance to the centre, times 0.5
    tokens = Linear_146->96(p^T)^T            (96, 2)   points mixed into 96 tokens
    x = [extra; Linear_2->64(tokens)]         (97, 64)  a learned extra token first
    4 x mixer block:
        x = x + (MLP_97->384->97 (LN(x)^T))^T           token mixing, ReLU inside
        x = x + MLP_64->256->64 (LN(x))                 channel mixing, ReLU inside
    scores = sigmoid(Linear_64->52(x[0]))     (52,)     ``_neutral`` first, no ``tongueOut``

``LN`` is a layer norm over the 64 channels with a scale and no offset (epsilon 1e-6).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

from flowvq_cli.face.rig import ARKIT_NAMES, N_EXP
from flowvq_cli.modeling import load_safetensors

LANDMARK_SUBSET: tuple[int, ...] = (
    0, 1, 4, 5, 6, 7, 8, 10, 13, 14, 17, 21, 33, 37, 39, 40, 46, 52, 53, 54, 55, 58, 61, 63, 65, 66,
    67, 70, 78, 80, 81, 82, 84, 87, 88, 91, 93, 95, 103, 105, 107, 109, 127, 132, 133, 136, 144, 145,
    146, 148, 149, 150, 152, 153, 154, 155, 157, 158, 159, 160, 161, 162, 163, 168, 172, 173, 176, 178,
    181, 185, 191, 195, 197, 234, 246, 249, 251, 263, 267, 269, 270, 276, 282, 283, 284, 285, 288, 291,
    293, 295, 296, 297, 300, 308, 310, 311, 312, 314, 317, 318, 321, 323, 324, 332, 334, 336, 338, 356,
    361, 362, 365, 373, 374, 375, 377, 378, 379, 380, 381, 382, 384, 385, 386, 387, 388, 389, 390, 397,
    398, 400, 402, 405, 409, 415, 454, 466, 468, 469, 470, 471, 472, 473, 474, 475, 476, 477,
)  # fmt: skip
"""The 146 FaceMesh indices (of 478, irises last) the model reads, in its input order (MediaPipe's
``kLandmarksSubsetIdxs``)."""

READER_NAMES: tuple[str, ...] = (
    "_neutral", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft", "eyeBlinkRight",
    "eyeLookDownLeft", "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight", "eyeLookOutLeft",
    "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight", "eyeSquintLeft", "eyeSquintRight",
    "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft", "jawOpen", "jawRight", "mouthClose",
    "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft", "mouthFrownRight", "mouthFunnel",
    "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthPressLeft", "mouthPressRight",
    "mouthPucker", "mouthRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower",
    "mouthShrugUpper", "mouthSmileLeft", "mouthSmileRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthUpperUpLeft", "mouthUpperUpRight", "noseSneerLeft", "noseSneerRight",
)  # fmt: skip
"""The model's 52 outputs in order (``_neutral`` first; it has no ``tongueOut``)."""

UNREAD = ("tongueOut",)
"""FlowVQ blendshapes the reader has no output for (read as 0)."""
UNREAD_LOGIT = -20.0
"""Their logit (:meth:`BlendshapeReader.read` with ``logits=True``): a score of 2e-9."""

WEIGHTS_FILE = Path(__file__).resolve().parents[1] / "assets" / "blendshape_v2.safetensors"


@dataclass(frozen=True)
class ReaderConfig:
    """Blendshape V2's sizes. ``ReaderConfig()`` is the shipped model; ``tiny()`` is for tests."""

    n_points: int = len(LANDMARK_SUBSET)
    n_tokens: int = 96
    channels: int = 64
    token_hidden: int = 384
    channel_hidden: int = 256
    n_blocks: int = 4
    n_outputs: int = len(READER_NAMES)
    input_scale: float = 0.5
    eps: float = 1e-6

    @classmethod
    def tiny(cls) -> ReaderConfig:
        return cls(n_tokens=6, channels=5, token_hidden=7, channel_hidden=9, n_blocks=1)


class ScaleOnlyLayerNorm(nn.Module):
    """Layer norm over the last axis with a learned scale and no offset (as Blendshape V2 has)."""

    def __init__(self, channels: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(-1, keepdim=True)
        var = (x - mean).square().mean(-1, keepdim=True)
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight


def _mlp(width: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, width))


class MixerBlock(nn.Module):
    """Token mixing then channel mixing, each a residual MLP after a layer norm: (B, N, C) -> (B, N, C)."""

    def __init__(self, n_tokens: int, config: ReaderConfig) -> None:
        super().__init__()
        self.norm1 = ScaleOnlyLayerNorm(config.channels, config.eps)
        self.token_mlp = _mlp(n_tokens, config.token_hidden)
        self.norm2 = ScaleOnlyLayerNorm(config.channels, config.eps)
        self.channel_mlp = _mlp(config.channels, config.channel_hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.token_mlp(self.norm1(x).transpose(1, 2)).transpose(1, 2)  # mix over N
        return x + self.channel_mlp(self.norm2(x))  # mix over C


class BlendshapeReader(nn.Module):
    """Blendshape V2: (B, 146, 2) landmark pixels -> (B, 52) scores in the model's order (``READER_NAMES``).

    Use :meth:`read` for FaceMesh's 478 points and FlowVQ's blendshape order.
    """

    def __init__(self, config: ReaderConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or ReaderConfig()
        self.point_mixer = nn.Linear(config.n_points, config.n_tokens)
        self.embed = nn.Linear(2, config.channels)
        self.extra_token = nn.Parameter(torch.zeros(1, 1, config.channels))
        self.blocks = nn.ModuleList(MixerBlock(config.n_tokens + 1, config) for _ in range(config.n_blocks))
        self.head = nn.Linear(config.channels, config.n_outputs)
        subset = torch.tensor(LANDMARK_SUBSET if config.n_points == len(LANDMARK_SUBSET) else range(config.n_points))
        self.register_buffer("subset", subset, persistent=False)
        order = [READER_NAMES.index(n) if n in READER_NAMES else -1 for n in ARKIT_NAMES]
        self.register_buffer("to_arkit", torch.tensor(order), persistent=False)

    def forward(self, points: torch.Tensor, logits: bool = False) -> torch.Tensor:
        centred = points - points.mean(1, keepdim=True)  # (B, P, 2)
        spread = centred.norm(dim=-1).mean(1, keepdim=True).unsqueeze(-1)  # (B, 1, 1)
        x = centred / spread * self.config.input_scale
        x = self.point_mixer(x.transpose(1, 2)).transpose(1, 2)  # (B, 96, 2)
        x = self.embed(x)  # (B, 96, 64)
        x = torch.cat([self.extra_token.expand(len(x), -1, -1), x], dim=1)  # (B, 97, 64)
        for block in self.blocks:
            x = block(x)
        head = self.head(x[:, 0])  # (B, 52)
        return head if logits else torch.sigmoid(head)

    def read(self, landmarks: torch.Tensor, logits: bool = False) -> torch.Tensor:
        """FaceMesh landmarks (B, 478, >=2) in image pixels -> (B, 52) in ``ARKIT_NAMES`` order.

        Only x and y are used; blendshapes in :data:`UNREAD` read 0. Differentiable. ``logits``: the scores
        before the sigmoid (:data:`UNREAD_LOGIT` for :data:`UNREAD`), whose gradient does not vanish where a
        score sits at 0 or 1 (``scripts/calibrate_rig.py`` learns from them).
        """
        scores = self(landmarks[:, self.subset, :2], logits=logits)
        pad = UNREAD_LOGIT if logits else 0.0
        padded = torch.cat([scores, scores.new_full((len(scores), 1), pad)], dim=1)  # index -1 -> pad
        return padded[:, self.to_arkit]

    @classmethod
    def from_file(cls, path: str | Path = WEIGHTS_FILE) -> BlendshapeReader:
        """The shipped reader (weights from the safetensors file written by the conversion script)."""
        reader = cls(ReaderConfig())
        tensors = load_safetensors(path, what="the Blendshape V2 reader")
        reader.load_state_dict({k: v.float() for k, v in tensors.items()})
        return reader.eval().requires_grad_(False)


@lru_cache(maxsize=1)
def default_reader() -> BlendshapeReader:
    """The shipped Blendshape V2 reader, float32, eval mode, no gradients on its weights (cached)."""
    return BlendshapeReader.from_file()


def read_blendshapes(landmarks: np.ndarray) -> np.ndarray:
    """Read FaceMesh landmarks with the shipped reader: (478, >=2) or (T, 478, >=2) pixels -> (T, 52).

    Returns float32 scores in ``ARKIT_NAMES`` order (``tongueOut`` 0). Rows with NaN landmarks read NaN.
    """
    pts = np.asarray(landmarks, dtype=np.float32)
    pts = pts[None] if pts.ndim == 2 else pts
    out = np.full((len(pts), N_EXP), np.nan, np.float32)
    valid = np.isfinite(pts[:, :, :2]).all(axis=(1, 2))
    if valid.any():
        reader = default_reader()  # loaded outside no_grad: its weights stay usable with autograd elsewhere
        with torch.no_grad():
            out[valid] = reader.read(torch.from_numpy(pts[valid, :, :2])).numpy()
    return out
