"""Warping network W (paper §3.3, after PIRenderer) and the flow utilities around it.

**Flow convention.** A flow field is a dense *backward* map in ``grid_sample``'s normalised coordinates
(``align_corners=False``): ``flow[:, :, y, x] = (u, v)`` says that output pixel (x, y) samples the source
at (u, v), with −1 / +1 the outer edges of the first / last pixel. It is stored channels-first,
(B, 2, H, W), like every other feature map here; :func:`warp` permutes it for ``grid_sample``. The
identity flow of size (H, W) holds the pixel centres ((2x + 1) / W − 1, (2y + 1) / H − 1).

The mesh-warp renderer (``flowvq_cli.render.meshwarp``) returns the same kind of map in source *pixel*
coordinates (x, y), pixel centres at integers, as ``cv2.remap`` reads it; :func:`flow_from_pixel_map`
converts it and :func:`flow_warm_start_loss` supervises W with it.

**Network.** An hourglass over the source downsampled to ``warp_size``: its encoder sees only the
source (computed once per photo, cached); its decoder is modulated by the motion descriptor m through
AdaIN at every level and outputs a flow offset (added to the identity, so a fresh W barely moves
anything) and an occlusion mask in [0, 1] (FOMM): warped features are multiplied by it, so the later
networks know where the source has nothing to offer (e.g. a mouth opening wider than in the photo).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from flowvq_cli.vqig.config import VQIGConfig
from flowvq_cli.vqig.layers import LEAKY_SLOPE, AdaIN, scale_init_

if TYPE_CHECKING:
    from flowvq_cli.render.meshwarp import WarpResult

PAINT_VISIBLE = 0.5 / 255
"""The least paint opacity that can change an 8-bit pixel (by half a level): fainter paint is none."""


# ------------------------------------------------------------------------------ utilities
def identity_flow(batch: int, size: tuple[int, int], device: torch.device | str = "cpu",
                  dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The flow that samples every pixel at its own centre: (B, 2, H, W) for size (H, W)."""
    h, w = size
    ys = (2 * torch.arange(h, device=device, dtype=dtype) + 1) / h - 1  # (H,)
    xs = (2 * torch.arange(w, device=device, dtype=dtype) + 1) / w - 1  # (W,)
    grid = torch.stack([xs[None, :].expand(h, w), ys[:, None].expand(h, w)])  # (2, H, W)
    return grid[None].expand(batch, 2, h, w).contiguous()


def flow_from_pixel_map(pixel_map: torch.Tensor | np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """Source-pixel backward map → normalised flow.

    Args:
        pixel_map: (B, H, W, 2) source pixel coordinates (x, y) sampled by each output pixel, pixel
            centres at integers (the mesh-warp renderer's ``WarpResult.flow``).
        size: (H_src, W_src), the source image the coordinates refer to.

    Returns:
        (B, 2, H, W) flow in ``grid_sample`` coordinates (``align_corners=False``), float32.
    """
    coords = torch.as_tensor(pixel_map).float()
    if coords.dim() != 4 or coords.shape[-1] != 2:
        raise ValueError(f"expected a pixel map (B, H, W, 2), got {tuple(coords.shape)}")
    h_src, w_src = size
    scale = coords.new_tensor([2.0 / w_src, 2.0 / h_src])
    normalised = (2 * coords + 1) * scale / 2 - 1  # (B, H, W, 2): (2x + 1) / W − 1
    return normalised.permute(0, 3, 1, 2).contiguous()  # (B, 2, H, W)


def resize_flow(flow: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resample a flow (B, 2, h, w) to (B, 2, H, W): the offset from the identity is interpolated
    bilinearly and added to the identity of the new size (exact at the borders, unlike interpolating
    the absolute coordinates)."""
    if tuple(flow.shape[-2:]) == tuple(size):
        return flow
    b = flow.shape[0]
    offset = flow - identity_flow(b, tuple(flow.shape[-2:]), flow.device, flow.dtype)
    offset = F.interpolate(offset, size=size, mode="bilinear", align_corners=False)  # (B, 2, H, W)
    return identity_flow(b, size, flow.device, flow.dtype) + offset


def warp(features: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward-warp features (B, C, H, W) by a flow of any resolution (resized to H × W) → (B, C, H, W).

    Samples outside the source repeat its border (faces near the crop edge smear rather than go black).
    Sampling runs in float32 whatever the features' dtype: in bf16 a coordinate in [−1, 1] would be off by
    up to half a pixel at 256².
    """
    grid = resize_flow(flow.float(), tuple(features.shape[-2:])).permute(0, 2, 3, 1)  # (B, H, W, 2)
    out = F.grid_sample(features.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.to(features.dtype)


def flow_warm_start_loss(flow: torch.Tensor, target_flow: torch.Tensor,
                         mouth_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Masked L1 between a predicted flow and the mesh-warp renderer's flow (scalar).

    Args:
        flow: (B, 2, h, w) predicted flow; resized to the target's resolution.
        target_flow: (B, 2, H, W) target flow (:func:`flow_from_pixel_map` of the renderer's map).
        mouth_mask: (B, H, W) bool, True where the renderer painted the mouth interior: its flow there is
            a placeholder, so those pixels are left out. None = every pixel counts.
    """
    pred = resize_flow(flow, tuple(target_flow.shape[-2:]))  # (B, 2, H, W)
    err = (pred - target_flow.to(pred.dtype)).abs().sum(dim=1)  # (B, H, W)
    if mouth_mask is None:
        return err.mean() / 2
    valid = (~mouth_mask.bool()).to(err.dtype)  # (B, H, W)
    return (err * valid).sum() / (2 * valid.sum().clamp_min(1.0))


@dataclass
class MeshPrior:
    """The mesh-warp renderer's motion for B frames, as ``VQIGConfig.mesh_prior`` uses it.

    flow: (B, 2, H, W) normalised backward flow (:func:`flow_from_pixel_map` of ``WarpResult.flow``);
    paint: (B, 1, H, W) in [0, 1]: where the codebook paints over the base frame (``WarpResult.paint``:
    mouth interior and closing lids; with ``frame``: ``WarpResult.mouth_paint``, the mouth interior only);
    frame: (B, 3, H, W) in [-1, 1], the renderer's own frame (its lids painted), the base frame of
    ``VQIGConfig.prior_frame``; None otherwise.
    """

    flow: torch.Tensor
    paint: torch.Tensor
    frame: torch.Tensor | None = None

    @classmethod
    def from_pixel_map(cls, pixel_map: torch.Tensor | np.ndarray, paint: torch.Tensor | np.ndarray,
                       frame: torch.Tensor | np.ndarray | None = None) -> MeshPrior:
        """From the renderer's pixel map (B, H, W, 2) and paint opacity (B, H, W) (source side = H × W), and
        its frames (B, H, W, 3) uint8 or (B, 3, H, W) in [-1, 1] when given."""
        flow = flow_from_pixel_map(pixel_map, tuple(pixel_map.shape[1:3]))
        if frame is not None:
            frame = torch.as_tensor(frame)
            if frame.dtype == torch.uint8:
                frame = frame.permute(0, 3, 1, 2).float() / 127.5 - 1.0
            frame = frame.float().to(flow.device)
        return cls(flow=flow, paint=torch.as_tensor(paint).float()[:, None].to(flow.device), frame=frame)

    @classmethod
    def from_render(cls, result: WarpResult, *, frame: bool = False) -> MeshPrior:
        """From a :class:`~flowvq_cli.render.meshwarp.WarpResult`: its flow and all its paint, or (``frame``)
        its flow, its frames and only the mouth's paint (``VQIGConfig.prior_frame``)."""
        if frame:
            return cls.from_pixel_map(result.flow, result.mouth_paint, result.frames)
        return cls.from_pixel_map(result.flow, result.paint)

    def painted(self) -> torch.Tensor:
        """(B,) bool: the frames where the renderer paints anything that shows (over which the codebook
        paints): an opacity of at least half an 8-bit level somewhere."""
        return self.paint.flatten(1).amax(dim=1) >= PAINT_VISIBLE

    def select(self, index: torch.Tensor) -> MeshPrior:
        """The prior of frames ``index`` (a 1-D index or boolean mask over the B frames)."""
        index = index.to(self.flow.device)
        return MeshPrior(flow=self.flow[index], paint=self.paint[index],
                         frame=self.frame[index] if self.frame is not None else None)

    def __len__(self) -> int:
        return self.flow.shape[0]


# ------------------------------------------------------------------------------- network
@dataclass
class WarpOutput:
    """flow (B, 2, S, S) normalised backward flow; occlusion (B, 1, S, S) in [0, 1] (1 = visible)."""

    flow: torch.Tensor
    occlusion: torch.Tensor


def _conv(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1)


class _UpBlock(nn.Module):
    """×2 nearest up-sampling + conv, concatenation with the source skip, conv, AdaIN(m), LeakyReLU."""

    def __init__(self, in_ch: int, out_ch: int, motion_dim: int, init_gain: float) -> None:
        super().__init__()
        self.up = _conv(in_ch, out_ch)
        self.merge = _conv(2 * out_ch, out_ch)
        self.adain = AdaIN(out_ch, motion_dim, init_gain)

    def forward(self, x: torch.Tensor, skip: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """x (B, C_in, s, s), skip (B, C_out, 2s, 2s), m (B, d_m) → (B, C_out, 2s, 2s)."""
        h = F.leaky_relu(self.up(F.interpolate(x, scale_factor=2.0, mode="nearest")), LEAKY_SLOPE)
        h = self.merge(torch.cat([h, skip.expand(h.shape[0], -1, -1, -1)], dim=1))
        return F.leaky_relu(self.adain(h, m), LEAKY_SLOPE)


class WarpNetwork(nn.Module):
    """W: source pyramid (from :meth:`encode_source`) + m (B, d_m) → :class:`WarpOutput` at ``warp_size``."""

    def __init__(self, config: VQIGConfig) -> None:
        super().__init__()
        self.config = config
        widths = config.warp_channels
        self.conv_in = _conv(config.codebook.image_channels, widths[0])
        self.refine = nn.ModuleList(_conv(c, c) for c in widths)
        self.down = nn.ModuleList(_conv(widths[i], widths[i + 1], stride=2) for i in range(len(widths) - 1))
        self.adain_mid = AdaIN(widths[-1], config.motion_dim, config.init_gain)
        self.up = nn.ModuleList(_UpBlock(widths[i + 1], widths[i], config.motion_dim, config.init_gain)
                                for i in reversed(range(len(widths) - 1)))
        self.flow_head = _conv(widths[0], 2)
        self.occlusion_head = _conv(widths[0], 1)
        self._scale_heads()

    def _scale_heads(self) -> None:
        """Shrink the heads' default initialisation: a flow offset near zero, the config's initial occlusion
        logit (higher with ``mesh_prior``)."""
        config = self.config
        scale_init_(self.flow_head, config.init_gain)
        scale_init_(self.occlusion_head, config.init_gain)
        init = config.prior_occlusion_init if config.mesh_prior else config.occlusion_init
        nn.init.constant_(self.occlusion_head.bias, init)

    def reset_heads(self) -> None:
        """Re-initialise the flow and occlusion heads as a fresh W's, e.g. when a trained W switches to
        ``mesh_prior``."""
        with torch.no_grad():
            self.flow_head.reset_parameters()
            self.occlusion_head.reset_parameters()
        self._scale_heads()

    def encode_source(self, source: torch.Tensor) -> list[torch.Tensor]:
        """Source images (B, 3, H, W) → features per hourglass level, (B, C_i, S/2^i, S/2^i), finest first."""
        size = self.config.warp_size
        x = F.interpolate(source, size=(size, size), mode="area") if source.shape[-1] != size else source
        h = F.leaky_relu(self.conv_in(x), LEAKY_SLOPE)  # (B, C_0, S, S)
        feats: list[torch.Tensor] = []
        for level, refine in enumerate(self.refine):
            if level > 0:
                h = F.leaky_relu(self.down[level - 1](h), LEAKY_SLOPE)  # (B, C_i, S/2^i, S/2^i)
            h = h + F.leaky_relu(refine(h), LEAKY_SLOPE)
            feats.append(h)
        return feats

    def forward(self, source_feats: list[torch.Tensor], m: torch.Tensor) -> WarpOutput:
        """source_feats from :meth:`encode_source` (batch B or 1), m (B, d_m) → flow and occlusion (B, ·, S, S)."""
        deepest = source_feats[-1].expand(m.shape[0], -1, -1, -1)  # (B, C_L, s, s)
        h = F.leaky_relu(self.adain_mid(deepest, m), LEAKY_SLOPE)
        for block, skip in zip(self.up, reversed(source_feats[:-1]), strict=True):
            h = block(h, skip, m)  # (B, C_i, S/2^i, S/2^i)
        offset = self.flow_head(h).float()  # (B, 2, S, S); flows stay float32 (see :func:`warp`)
        flow = identity_flow(h.shape[0], tuple(h.shape[-2:]), h.device) + offset
        return WarpOutput(flow=flow, occlusion=torch.sigmoid(self.occlusion_head(h).float()))
