"""Analytic mesh-warp renderer: piecewise-affine warp of a source crop by the projected face mesh.

Given the source crop (256², aligned) and its fitted mesh, each target mesh (the same 468 vertices
moved by new coefficients) defines, triangle by triangle, an affine map from output pixels back to
source pixels (including the triangles that span the lips, so a photo with parted lips keeps its own
teeth). Around the face an *outer ring* of control points, triangulated once in the source,
carries hair, neck and background: the inner ring follows the head's similarity motion, the outer
ring half of it, and the crop border stays put, so the surroundings bend smoothly instead of tearing.

Triangles are rasterised into a triangle-id image far-to-near (the face over the ring, and within the
face by depth), which handles self-occlusion under yaw. Where the target's lips part further than the
source's, the *mouth interior* (dark cavity, upper and lower teeth, tongue) is painted between the
inner-lip contours, faded in by how much wider the opening is than the source's at that column. Where an
eye closes (the target's lids nearer than the source's), the *closed lid* is drawn over it, faded in with
the closure: from the fold above the eye down to the lash line, pixels darker than the skin under the eye
are lightened towards it, and a soft lash line is drawn. Without it a closing eye only pulls down whatever
lies above it, which on a hooded lid or behind glasses is dark: the eye looks narrowed, not shut.

Outputs are the frames, the dense backward flow (for every output pixel, the source pixel it samples:
what the VQIG warping network is warm-started on) and the mouth-interior mask.

Rendering is vectorised per frame (one rasterisation pass, one gather, one ``cv2.remap``); see
``benchmarks/bench_meshwarp.py`` for the speed.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import NamedTuple

import cv2
import numpy as np
from scipy.spatial import Delaunay

from flowvq_cli.face.canonical import load_canonical

SUBPIXEL_BITS = 4  # fixed-point bits for cv2 rasterisation
SUBPIXEL = 1 << SUBPIXEL_BITS
MOUTH_MASK_ALPHA = 0.5  # painted-interior opacity above which a pixel counts as mouth interior
INTERPOLATIONS = {"cubic": cv2.INTER_CUBIC, "linear": cv2.INTER_LINEAR}  # MeshWarpConfig.interpolation


@dataclass(frozen=True)
class MeshWarpConfig:
    """Constants of the renderer (all in crop pixels or fractions of the face size)."""

    size: int = 256
    ring_radii: tuple[float, ...] = (1.25, 1.7)  # ring distances from the face centre, in face radii
    ring_follow: tuple[float, ...] = (1.0, 0.5)  # how much of the head's similarity motion each ring follows
    ring_points: int = 24  # control points per ring
    border_points: int = 8  # control points per crop edge (fixed)
    upper_teeth: float = 0.13  # visible upper-incisor height, fraction of mouth width
    lower_teeth: float = 0.08  # visible lower-incisor height, fraction of mouth width
    tooth_count: int = 8  # teeth across the mouth width (for the gap lines)
    teeth_rgb: tuple[int, int, int] = (236, 230, 218)
    cavity_rgb: tuple[int, int, int] = (52, 18, 20)
    tongue_rgb: tuple[int, int, int] = (176, 84, 88)
    min_gap_px: float = 0.75  # lips closer than this are treated as closed
    fade_gap: float = 0.06  # extra opening (mouth widths) over the source's at which the interior is opaque
    lid_from: float = 0.3  # eye closure (1 - target opening / source opening) at which the lid paint starts
    lid_full: float = 0.9  # closure at which it reaches lid_opacity
    lid_opacity: float = 0.85  # the painted lid's opacity over the warped pixels (some texture shows through)
    lid_skin_quantile: float = 0.5  # skin pixels under the eye brighter than this quantile give the lid colour
    lash_shade: float = 0.5  # lash line colour = lid colour × this
    lash_opacity: float = 0.6
    # How the photo is sampled at the warped positions. Bilinear sampling at sub-pixel offsets averages
    # neighbouring pixels: on unseen-face clips it keeps 0.59 of the face's Laplacian variance, bicubic 0.88,
    # the clips' real frames 0.95, and PSNR to them rises 0.2 dB (benchmarks/eval_renderers.py).
    interpolation: str = "cubic"

    def __post_init__(self) -> None:
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, got {self.interpolation!r}")


@dataclass(frozen=True)
class WarpResult:
    """frames (B, H, W, 3) uint8; flow (B, H, W, 2) float32 = source (x, y) sampled by each output pixel;
    mouth_mask (B, H, W) bool = painted mouth interior (its flow is only a placeholder); paint (B, H, W)
    float32 in [0, 1] = the opacity of everything painted over the warped photo (mouth interior, closing
    lids): where the photo has nothing to offer; mouth_paint (B, H, W) float32 in [0, 1] = the mouth
    interior's part of it (``paint`` without the lids)."""

    frames: np.ndarray
    flow: np.ndarray
    mouth_mask: np.ndarray
    paint: np.ndarray
    mouth_paint: np.ndarray


class RenderedFrame(NamedTuple):
    """One frame of :class:`WarpResult` (no batch axis)."""

    frame: np.ndarray
    flow: np.ndarray
    mouth_mask: np.ndarray
    paint: np.ndarray
    mouth_paint: np.ndarray


@dataclass(frozen=True)
class _Eye:
    """Vertex indices of one eye, each ordered from the image's left to its right (canonical x)."""

    upper: np.ndarray  # upper lid contour (lash line), corners included
    lower: np.ndarray  # lower lid contour, corners included
    fold: np.ndarray  # the next ring of vertices above the upper contour
    below: np.ndarray  # the next ring of vertices below the lower contour


@cache
def _eyes() -> tuple[_Eye, _Eye]:
    """Both eyes' contours and the ring above each upper lid (found from the triangles)."""
    can = load_canonical()
    v = np.asarray(can.vertices)
    tris = np.asarray(can.triangles)
    eyes = []
    for side in ("left", "right"):
        upper = np.asarray(can.groups[f"eye_upper_{side}"])
        lower = np.asarray(can.groups[f"eye_lower_{side}"])
        contour = set(upper.tolist()) | set(lower.tolist())
        rings = []
        for lid, above in ((np.setdiff1d(upper, lower), True), (np.setdiff1d(lower, upper), False)):
            touching = np.unique(tris[np.isin(tris, lid).any(axis=1)])
            # Canonical y points up: the fold is the ring of neighbours above the upper contour, ``below``
            # the ring under the lower one.
            rings.append(np.array([i for i in touching if i not in contour
                                   and (v[i, 1] > v[lid, 1].min() if above else v[i, 1] < v[lid, 1].max())]))
        eyes.append(_Eye(*(idx[np.argsort(v[idx, 0])] for idx in (upper, lower, *rings))))
    return eyes[0], eyes[1]


@cache
def _topology() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(face triangles, face-oval ring order, upper and lower inner lip indices ordered from the
    subject's right mouth corner to the left one)."""
    can = load_canonical()
    v = np.asarray(can.vertices)
    oval = np.asarray(can.groups["face_oval"])
    centre = v[oval, :2].mean(axis=0)
    oval = oval[np.argsort(np.arctan2(v[oval, 1] - centre[1], v[oval, 0] - centre[0]))]
    upper = np.asarray(can.groups["lips_upper_inner"])
    lower = np.asarray(can.groups["lips_lower_inner"])
    upper = upper[np.argsort(v[upper, 0])]
    lower = lower[np.argsort(v[lower, 0])]
    return np.asarray(can.triangles), oval, upper, lower


def _similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares 2D similarity (2, 3) mapping src (N, 2) onto dst (N, 2)."""
    m, _ = cv2.estimateAffinePartial2D(src.astype(np.float32), dst.astype(np.float32), method=cv2.LMEDS)
    if m is None:
        m = np.hstack([np.eye(2), (dst.mean(0) - src.mean(0))[:, None]])
    return m.astype(np.float64)


def _affines(dst_tri: np.ndarray, src_tri: np.ndarray) -> np.ndarray:
    """Per-triangle affine maps (N, 2, 3) sending dst triangle corners (N, 3, 2) to src corners."""
    ones = np.ones((*dst_tri.shape[:2], 1))
    a = np.concatenate([dst_tri, ones], axis=2)  # (N, 3, 3) rows [x y 1]
    det = np.linalg.det(a)
    a[np.abs(det) < 1e-9] += np.eye(3) * 1e-6  # degenerate (collapsed) triangles: regularise
    return np.swapaxes(np.linalg.solve(a, src_tri), 1, 2)  # (N, 2, 3)


def _affine(points: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Points (N, 2) through the (2, 3) affine map ``m``."""
    return points @ m[:, :2].T + m[:, 2]


class MeshWarpRenderer:
    """Warp one source crop to many target meshes.

    source_rgb: (H, W, 3) uint8 aligned crop; source_mesh: (468, 3) crop pixels (x, y, z).
    """

    def __init__(self, source_rgb: np.ndarray, source_mesh: np.ndarray, config: MeshWarpConfig | None = None):
        self.config = config or MeshWarpConfig()
        self.source = np.ascontiguousarray(source_rgb)
        self.source_mesh = np.asarray(source_mesh, np.float64)
        self.face_tris, self.oval, self.upper_lip, self.lower_lip = _topology()
        ring_src = self._ring_points(self.source_mesh[:, :2])
        border = self._border_points()
        self.ring_src = ring_src
        pts = np.vstack([self.source_mesh[self.oval, :2], ring_src, border])
        tri = Delaunay(pts).simplices
        oval_path = self.source_mesh[self.oval, :2].astype(np.float32)
        centroids = pts[tri].mean(axis=1).astype(np.float32)
        inside = np.array([cv2.pointPolygonTest(oval_path, tuple(map(float, c)), False) > 0 for c in centroids])
        self.outer_tris = tri[~inside]  # indices into [oval, rings, border]
        self.outer_src = pts
        self.mouth_colour_scale = self._source_brightness()
        self.eyes = _eyes()
        self.lid_rgb = [self._lid_colour(eye) for eye in self.eyes]
        self.eye_gap = [self._eye_gap(self.source_mesh[:, :2], eye) for eye in self.eyes]

    # -- control points -------------------------------------------------------------------------
    def _ring_points(self, mesh2d: np.ndarray) -> np.ndarray:
        """Rings of points around the face (R·K, 2) in the source."""
        c = self.config
        oval = mesh2d[self.oval]
        centre = oval.mean(axis=0)
        radius = np.linalg.norm(oval - centre, axis=1).mean()
        ang = np.linspace(0.0, 2 * np.pi, c.ring_points, endpoint=False)
        circle = np.stack([np.cos(ang), np.sin(ang)], axis=1)  # (K, 2)
        rings = [centre + r * radius * circle for r in c.ring_radii]
        lo, hi = 1.0, c.size - 2.0
        return np.clip(np.vstack(rings), lo, hi)  # keep inside the border so Delaunay stays valid

    def _border_points(self) -> np.ndarray:
        n, s = self.config.border_points, self.config.size - 1.0
        t = np.linspace(0.0, s, n + 1)[:-1]
        return np.vstack([np.stack([t, np.zeros_like(t)], 1), np.stack([np.full_like(t, s), t], 1),
                          np.stack([s - t, np.full_like(t, s)], 1), np.stack([np.zeros_like(t), s - t], 1)])

    def _source_brightness(self) -> float:
        """Scale of the painted mouth colours: darker photos get darker teeth."""
        lips = self.source_mesh[np.r_[self.upper_lip, self.lower_lip], :2]
        x0, y0 = np.clip(lips.min(0).astype(int) - 8, 0, self.config.size - 1)
        x1, y1 = np.clip(lips.max(0).astype(int) + 8, 1, self.config.size)
        patch = self.source[y0:y1, x0:x1].astype(np.float32)
        return float(np.clip(patch.mean() / 150.0, 0.45, 1.15)) if patch.size else 1.0

    def _outer_targets(self, mesh2d: np.ndarray) -> np.ndarray:
        """Target positions of [oval, rings, border] for one target mesh."""
        c = self.config
        m = _similarity(self.source_mesh[:, :2], mesh2d)  # head motion, source → target
        k = c.ring_points
        moved = []
        for i, follow in enumerate(c.ring_follow):
            ring = self.ring_src[i * k : (i + 1) * k]
            full = _affine(ring, m)
            moved.append(ring + follow * (full - ring))
        border = self.outer_src[len(self.oval) + len(self.ring_src) :]
        return np.vstack([mesh2d[self.oval], *moved, border])

    # -- rendering ------------------------------------------------------------------------------
    def _triangle_ids(self, dst_tris: np.ndarray, order: np.ndarray) -> np.ndarray:
        """Rasterise triangles (N, 3, 2) in ``order`` (later ones on top): (H, W) int32 ids, -1 = none."""
        s = self.config.size
        ids = np.full((s, s), -1, np.int32)
        fixed = np.round(dst_tris * SUBPIXEL).astype(np.int32)
        for i in order:
            cv2.fillConvexPoly(ids, fixed[i], int(i), lineType=cv2.LINE_8, shift=SUBPIXEL_BITS)
        return ids

    def render_one(self, target_mesh: np.ndarray) -> RenderedFrame:
        """One target mesh (468, 3) → :class:`RenderedFrame` (frame (H, W, 3) uint8, flow (H, W, 2), mouth
        mask (H, W), paint and mouth-paint opacity (H, W) float32)."""
        s = self.config.size
        tgt2d = np.asarray(target_mesh[:, :2], np.float64)
        outer_dst = self._outer_targets(tgt2d)
        dst = np.vstack([outer_dst[self.outer_tris], tgt2d[self.face_tris]])  # (N, 3, 2)
        src = np.vstack([self.outer_src[self.outer_tris], self.source_mesh[self.face_tris, :2]])
        n_outer = len(self.outer_tris)
        depth = np.asarray(target_mesh[self.face_tris, 2]).mean(axis=1)  # z: negative = nearer the camera
        order = np.r_[np.arange(n_outer), n_outer + np.argsort(-depth)]  # background, then far → near
        ids = self._triangle_ids(dst, order)
        aff = _affines(dst, src).astype(np.float32)  # (N, 2, 3)
        ys, xs = np.mgrid[0:s, 0:s].astype(np.float32)
        a = aff[np.maximum(ids, 0)]  # (H, W, 2, 3)
        flow = a[..., 0] * xs[..., None] + a[..., 1] * ys[..., None] + a[..., 2]  # (H, W, 2)
        frame = cv2.remap(self.source, flow[..., 0], flow[..., 1], INTERPOLATIONS[self.config.interpolation],
                          borderMode=cv2.BORDER_REPLICATE)
        alpha = self._mouth_alpha(tgt2d)  # (H, W) float32 in [0, 1]
        mouth = alpha > MOUTH_MASK_ALPHA
        paint = alpha.copy()
        if (alpha > 0).any():
            ys, xs = np.nonzero(alpha > 0)
            frame = self._blend_mouth(frame, tgt2d, ys, xs, xs, ys, alpha[ys, xs])
        frame = self.paint_lids(frame, tgt2d, paint)
        return RenderedFrame(frame, flow, mouth, paint, alpha)

    def paint_lids(self, image: np.ndarray, tgt2d: np.ndarray, paint: np.ndarray | None = None,
                   to_image: np.ndarray | None = None) -> np.ndarray:
        """``image`` (H, W, 3) uint8 with the closing lids of target points ``tgt2d`` (468, 2) (frame pixels)
        painted in; each lid's opacity max-ed into ``paint`` (H, W) when given. ``to_image``: (2, 3)
        similarity frame → image pixels (default: the frame itself), so the lids can be drawn at another
        resolution (``face.paste.WarpPaste``: the photo's); soft edge and lash line scale with it."""
        for eye, rgb, gap in zip(self.eyes, self.lid_rgb, self.eye_gap, strict=True):
            closure = 1.0 - self._eye_gap(tgt2d, eye) / gap if gap > 0 else 0.0
            if closure > self.config.lid_from:
                image = self._paint_lid(image, tgt2d, eye, rgb, closure, paint, to_image)
        return image

    def render(self, target_meshes: np.ndarray) -> WarpResult:
        """Batch of target meshes (B, 468, 3) → :class:`WarpResult` with B frames."""
        outs = [self.render_one(m) for m in np.asarray(target_meshes)]
        return WarpResult(*(np.stack(field) for field in zip(*outs, strict=True)))

    # -- closed eyelids -------------------------------------------------------------------------
    @staticmethod
    def _eye_gap(mesh2d: np.ndarray, eye: _Eye) -> float:
        """Mean lid opening (pixels) over the eye's width: lower contour minus upper, column by column."""
        up, lo = mesh2d[eye.upper], mesh2d[eye.lower]
        x = np.linspace(up[0, 0], up[-1, 0], 9)[1:-1]
        return float(np.mean(np.interp(x, lo[:, 0], lo[:, 1]) - np.interp(x, up[:, 0], up[:, 1])))

    def _lid_colour(self, eye: _Eye) -> np.ndarray:
        """(3,) float32 RGB of the skin around the source's eye: the brighter pixels of the band under the
        lower lid (the upper lid's own band holds lashes and shadow, and behind glasses the rim)."""
        src = self.source_mesh[:, :2]
        band = np.zeros(self.source.shape[:2], np.uint8)
        poly = np.vstack([src[eye.lower], src[eye.below][::-1]])
        cv2.fillPoly(band, [np.round(poly * SUBPIXEL).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=SUBPIXEL_BITS)
        pixels = self.source[band > 0].astype(np.float32)
        if len(pixels) < 4:  # a tiny face: the eye's bounding box and its surroundings
            x0, y0 = np.floor(src[eye.upper].min(axis=0) - 2).astype(int)
            x1, y1 = np.ceil(src[eye.lower].max(axis=0) + 2).astype(int)
            pixels = self.source[max(y0, 0) : y1 + 1, max(x0, 0) : x1 + 1].reshape(-1, 3).astype(np.float32)
        luma = pixels @ np.array([0.299, 0.587, 0.114], np.float32)
        bright = pixels[luma >= np.quantile(luma, self.config.lid_skin_quantile)]
        return np.median(bright, axis=0).astype(np.float32)

    def _paint_lid(self, frame: np.ndarray, tgt2d: np.ndarray, eye: _Eye, rgb: np.ndarray, closure: float,
                   paint: np.ndarray | None = None, to_image: np.ndarray | None = None) -> np.ndarray:
        """Blend the closed lid (fold → lash line, soft-edged) and its lash line into ``frame``; its opacity
        is max-ed into ``paint`` (H, W) when given. ``to_image``: as :meth:`paint_lids`."""
        c = self.config
        scale = 1.0
        if to_image is not None:  # frame → image pixels; the soft edge and the lash line scale too
            to_image = np.asarray(to_image, np.float64)
            tgt2d = _affine(tgt2d, to_image)
            scale = float(np.sqrt(abs(np.linalg.det(to_image[:, :2]))))
        strength = c.lid_opacity * float(np.clip((closure - c.lid_from) / (c.lid_full - c.lid_from), 0.0, 1.0))
        poly = np.vstack([tgt2d[eye.fold], tgt2d[eye.lower][::-1]])
        x0, y0 = np.maximum(np.floor(poly.min(axis=0)).astype(int) - int(np.ceil(3 * scale)), 0)
        x1, y1 = np.minimum(np.ceil(poly.max(axis=0)).astype(int) + int(np.ceil(4 * scale)), frame.shape[1::-1])
        if x1 <= x0 or y1 <= y0:
            return frame
        # Mask and lash line drawn in the eye's box only (this runs on every frame with a closing eye).
        shift = np.array([x0, y0], np.float64)
        mask = np.zeros((y1 - y0, x1 - x0), np.float32)
        cv2.fillPoly(mask, [np.round((poly - shift) * SUBPIXEL).astype(np.int32)], 1.0, lineType=cv2.LINE_AA,
                     shift=SUBPIXEL_BITS)
        patch = frame[y0:y1, x0:x1].astype(np.float32)
        # Lighten only: pixels darker than the lid's skin (the iris, the lid's shadow, a rim dragged down)
        # move towards it, lighter ones (the lid's own highlights) stay.
        skin = np.maximum(patch, rgb)
        lash = np.zeros_like(mask)
        line = np.round((tgt2d[eye.upper] - shift) * SUBPIXEL).astype(np.int32)
        cv2.polylines(lash, [line], isClosed=False, color=1.0, thickness=max(1, round(scale)), lineType=cv2.LINE_AA,
                      shift=SUBPIXEL_BITS)
        lash_a = c.lash_opacity * lash[..., None]
        skin = skin * (1.0 - lash_a) + (rgb * c.lash_shade) * lash_a
        alpha = cv2.GaussianBlur(mask, (0, 0), 0.7 * scale)[..., None] * strength
        out = frame.copy()
        out[y0:y1, x0:x1] = np.clip(alpha * skin + (1.0 - alpha) * patch, 0, 255).astype(np.uint8)
        if paint is not None:
            np.maximum(paint[y0:y1, x0:x1], alpha[..., 0], out=paint[y0:y1, x0:x1])
        return out

    # -- mouth interior -------------------------------------------------------------------------
    def _mouth_polygon(self, tgt2d: np.ndarray) -> np.ndarray:
        return np.vstack([tgt2d[self.upper_lip], tgt2d[self.lower_lip][::-1]])

    def _gap_profile(self, mesh2d: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Lip gap (in mouth widths) at relative positions ``u`` ∈ [0, 1] across the mouth."""
        up, lo = mesh2d[self.upper_lip], mesh2d[self.lower_lip]
        left_x, right_x = min(up[0, 0], lo[0, 0]), max(up[-1, 0], lo[-1, 0])
        width = max(right_x - left_x, 1.0)
        x = left_x + u * width
        return (np.interp(x, lo[:, 0], lo[:, 1]) - np.interp(x, up[:, 0], up[:, 1])) / width

    def _interior_opacity(self, tgt2d: np.ndarray, xs: np.ndarray) -> np.ndarray:
        """(N,) float32 opacity at x positions (N,) inside the inner-lip polygon: by how much the target
        opening exceeds the source's at the same place across the mouth."""
        up, lo = tgt2d[self.upper_lip], tgt2d[self.lower_lip]
        left_x, right_x = min(up[0, 0], lo[0, 0]), max(up[-1, 0], lo[-1, 0])
        u = np.clip((xs - left_x) / max(right_x - left_x, 1.0), 0.0, 1.0)
        extra = self._gap_profile(tgt2d, u) - self._gap_profile(self.source_mesh[:, :2], u)
        return np.clip(extra / self.config.fade_gap, 0.0, 1.0).astype(np.float32)

    def _mouth_pixels(self, tgt2d: np.ndarray, shape: tuple[int, int], to_image: np.ndarray | None = None
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Pixels (ys, xs) of an image of ``shape`` inside the target's inner-lip polygon and their frame
        positions (fx, fy); ``to_image`` as :meth:`paint_lids` (default: the frame itself)."""
        poly = self._mouth_polygon(tgt2d)
        if to_image is not None:
            to_image = np.asarray(to_image, np.float64)
            poly = _affine(poly, to_image)
        h, w = shape
        x0, y0 = np.clip(np.floor(poly.min(axis=0)).astype(int), 0, [w, h])
        x1, y1 = np.clip(np.ceil(poly.max(axis=0)).astype(int) + 1, 0, [w, h])
        if x1 <= x0 or y1 <= y0:
            empty = np.zeros(0, np.int64)
            return empty, empty, empty, empty
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)  # the polygon's box only
        fixed = np.round(poly * SUBPIXEL).astype(np.int32) - np.array([x0, y0], np.int32) * SUBPIXEL
        cv2.fillPoly(mask, [fixed], 1, lineType=cv2.LINE_8, shift=SUBPIXEL_BITS)
        ys, xs = np.nonzero(mask)
        ys, xs = ys + y0, xs + x0
        if to_image is None:
            return ys, xs, xs, ys
        back = _affine(np.stack([xs, ys], axis=1), np.linalg.inv(np.vstack([to_image, [0.0, 0.0, 1.0]]))[:2])
        return ys, xs, back[:, 0], back[:, 1]  # frame positions of the image pixels

    def _mouth_alpha(self, tgt2d: np.ndarray) -> np.ndarray:
        """(H, W) opacity of the painted interior: inside the target's inner-lip polygon, by how much the
        target opening exceeds the source's at the same place across the mouth."""
        s = self.config.size
        alpha = np.zeros((s, s), np.float32)
        ys, xs, fx, _ = self._mouth_pixels(tgt2d, (s, s))
        if len(xs):
            alpha[ys, xs] = self._interior_opacity(tgt2d, fx)
        return alpha

    def paint_mouth(self, image: np.ndarray, tgt2d: np.ndarray, to_image: np.ndarray | None = None) -> np.ndarray:
        """``image`` (H, W, 3) uint8 with the mouth interior of target points ``tgt2d`` (468, 2) (frame pixels)
        drawn in, each pixel at its own frame position. ``to_image``: as :meth:`paint_lids`, so the interior
        can be drawn at another resolution (``face.paste.WarpPaste``: the photo's)."""
        ys, xs, fx, fy = self._mouth_pixels(tgt2d, image.shape[:2], to_image)
        if len(xs) == 0:
            return image
        return self._blend_mouth(image, tgt2d, ys, xs, fx, fy, self._interior_opacity(tgt2d, fx))

    def _mouth_colour(self, tgt2d: np.ndarray, xf: np.ndarray, yf: np.ndarray) -> np.ndarray:
        """(N, 3) float32 colour of cavity, teeth and tongue at positions (N,) between the lip contours."""
        c = self.config
        up, lo = tgt2d[self.upper_lip], tgt2d[self.lower_lip]
        left_x, right_x = min(up[0, 0], lo[0, 0]), max(up[-1, 0], lo[-1, 0])
        width = max(right_x - left_x, 1.0)
        y_up = np.interp(xf, up[:, 0], up[:, 1])
        y_lo = np.interp(xf, lo[:, 0], lo[:, 1])
        gap = np.maximum(y_lo - y_up, c.min_gap_px)
        d_up = (yf - y_up) / width  # distance below the upper lip, in mouth widths
        d_lo = (y_lo - yf) / width  # distance above the lower lip
        u = np.clip((xf - left_x) / width, 0.0, 1.0)  # 0 … 1 across the mouth
        centre_fall = 1.0 - 0.55 * (2.0 * np.abs(u - 0.5)) ** 2  # darker towards the corners
        colour = np.tile(np.asarray(c.cavity_rgb, np.float32), (len(xf), 1))
        rel = (yf - y_up) / gap  # 0 at the upper lip, 1 at the lower lip
        tongue = np.clip((rel - 0.55) / 0.45, 0.0, 1.0)[:, None]
        colour = colour * (1 - tongue) + np.asarray(c.tongue_rgb, np.float32) * tongue * 0.8
        lower_h = np.minimum(c.lower_teeth, np.maximum(gap / width - c.upper_teeth, 0.0))
        teeth = (d_up < c.upper_teeth) | (d_lo < lower_h)
        phase = (u * c.tooth_count) % 1.0
        gaps = np.exp(-((phase - 0.5) ** 2) / 0.004)  # thin darker lines between teeth
        edge = np.where(d_up < c.upper_teeth, d_up / c.upper_teeth, d_lo / np.maximum(lower_h, 1e-6))
        shade = (1.0 - 0.25 * edge) * (1.0 - 0.35 * gaps)
        colour[teeth] = np.asarray(c.teeth_rgb, np.float32) * shade[teeth, None]
        colour *= (centre_fall * self.mouth_colour_scale)[:, None]
        return colour

    def _blend_mouth(self, image: np.ndarray, tgt2d: np.ndarray, ys: np.ndarray, xs: np.ndarray, fx: np.ndarray,
                     fy: np.ndarray, opacity: np.ndarray) -> np.ndarray:
        """Blend cavity, teeth and tongue into ``image`` at pixels (ys, xs) (frame positions fx, fy) with
        ``opacity`` (N,), column by column between the lip contours."""
        colour = self._mouth_colour(tgt2d, fx.astype(np.float32), fy.astype(np.float32))
        a = opacity[:, None]
        out = image.copy()
        out[ys, xs] = np.clip(a * colour + (1 - a) * out[ys, xs], 0, 255).astype(np.uint8)
        return out
