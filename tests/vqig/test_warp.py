"""Flow utilities: the pixel-map convention (against cv2.remap), identity, resizing, the warm-start loss."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from flowvq_cli.vqig.warp import flow_from_pixel_map, flow_warm_start_loss, identity_flow, resize_flow, warp


def smooth_image(batch: int = 2, size: int = 24, seed: int = 0) -> torch.Tensor:
    """Low-frequency random images (B, 3, size, size) in [0, 1]."""
    coarse = torch.rand(batch, 3, 6, 6, generator=torch.Generator().manual_seed(seed))
    return F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)


def pixel_identity(batch: int, h: int, w: int) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    return torch.stack([xs, ys], dim=-1)[None].expand(batch, h, w, 2)  # (B, H, W, 2): (x, y)


def test_identity_pixel_map_gives_identity_grid() -> None:
    flow = flow_from_pixel_map(pixel_identity(2, 20, 24), (20, 24))
    assert flow.shape == (2, 2, 20, 24)
    torch.testing.assert_close(flow, identity_flow(2, (20, 24)))
    grid = F.affine_grid(torch.eye(2, 3)[None].expand(2, 2, 3), [2, 3, 20, 24], align_corners=False)
    torch.testing.assert_close(flow.permute(0, 2, 3, 1), grid)
    image = torch.rand(2, 3, 20, 24)
    torch.testing.assert_close(warp(image, flow), image, atol=1e-5, rtol=0)


def test_flow_from_pixel_map_matches_cv2_remap() -> None:
    """The renderer's maps are read by cv2.remap; our warp of the converted flow must sample the same."""
    image = smooth_image(1)
    rng = np.random.default_rng(0)
    base = pixel_identity(1, 24, 24)[0].numpy()
    shift = np.stack([np.full((24, 24), 2.0), np.full((24, 24), -1.0)], axis=-1)  # integer shift: exact
    wobble = 0.8 * np.sin(base[..., ::-1] / 4.0) + rng.uniform(-0.3, 0.3, size=base.shape)  # fractional
    for offset, tol in ((shift, 1e-5), (wobble, 2e-2)):
        pixel_map = (base + offset).astype(np.float32)
        src = image[0].permute(1, 2, 0).numpy()
        expected = cv2.remap(src, pixel_map[..., 0], pixel_map[..., 1], cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REPLICATE)
        ours = warp(image, flow_from_pixel_map(pixel_map[None], (24, 24)))[0].permute(1, 2, 0).numpy()
        inner = (slice(3, -3), slice(3, -3))  # away from the borders, where both replicate edges
        np.testing.assert_allclose(ours[inner], expected[inner], atol=tol)


def test_resize_flow_keeps_identity_and_offsets() -> None:
    ident = identity_flow(1, (8, 8))
    torch.testing.assert_close(resize_flow(ident, (32, 32)), identity_flow(1, (32, 32)))
    shifted = ident + torch.tensor([0.1, -0.2]).view(1, 2, 1, 1)
    torch.testing.assert_close(resize_flow(shifted, (16, 16)) - identity_flow(1, (16, 16)),
                               torch.tensor([0.1, -0.2]).view(1, 2, 1, 1).expand(1, 2, 16, 16))


def test_warm_start_loss_is_masked_l1() -> None:
    target = flow_from_pixel_map(pixel_identity(2, 16, 16), (16, 16))
    assert flow_warm_start_loss(target, target).item() == pytest.approx(0.0, abs=1e-7)
    pred = target.clone()
    pred[:, :, :4] += 0.5  # wrong only in the top rows
    mask = torch.zeros(2, 16, 16, dtype=torch.bool)
    assert flow_warm_start_loss(pred, target).item() == pytest.approx(0.5 * 4 / 16)
    mask[:, :4] = True  # ... which the renderer marked as mouth interior
    assert flow_warm_start_loss(pred, target, mask).item() == pytest.approx(0.0, abs=1e-7)
    low = resize_flow(target, (8, 8))  # a coarse prediction is compared at the target's resolution
    assert flow_warm_start_loss(low, target).item() == pytest.approx(0.0, abs=1e-6)
