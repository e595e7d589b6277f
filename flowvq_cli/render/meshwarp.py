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
inner-lip contours, faded in by how much wider the opening is than the source's at that column.

Where an eye closes (the target's lids nearer than the source's), the warp alone only stretches the photo's
thin band of lid margin and lashes (on a hooded lid, or behind glasses, dark) over the eye, which then
looks narrowed and smeared, not shut. So the *closed lid* is drawn from the lid's own skin, faded in with
the closure: between the crease (the fold ring of vertices above the eye) and the lash line, each pixel
takes the photo's skin as far above the photo's crease as it lies below the target's, at the same place
across the eye (the skin between crease and brow, mirrored across the crease, so it meets the warped skin
above without a seam), stopping short of where that skin darkens into the brow or a glasses rim, and
matched in colour to the skin around the eye. A soft lash line in the photo's lash colour and a faint
crease are darkened in along its edges. The lower lid rises by itself: the rig's eyeBlink meets the lids a
fifth of the way up from the lower one.

The *eyeball* does not stretch with the lids. The face mesh spans the eye opening with triangles between
the lid contours, so lids that open wider (eyeWide, or a smiling photo's squint relaxed) would stretch the
iris into a tall smear, revealing no white. Where the target's lids are further apart than the photo's,
each pixel inside the opening samples the photo through the eye's rigid motion instead (the similarity that
carries the photo's eye corners onto the target's): the eyeball moves with the head, the lids slide over
it. Where that reaches past what the photo's opening shows, the eyeball is drawn: the photo's opening
continued from its nearest pixels, the iris as a disc (FaceMesh's iris landmarks give its centre and
radius), darker at its rim, and the sclera around it in the photo's own colours, shaded under the lid.
Lids that close still squeeze the eye, and the closing lid is drawn over it (below).

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
from flowvq_cli.face.paste import FLOW_JUMP, INTERPOLATIONS, SEAM_BLUR, flow_jumps, soften_seams

SUBPIXEL_BITS = 4  # fixed-point bits for cv2 rasterisation
SUBPIXEL = 1 << SUBPIXEL_BITS
MOUTH_MASK_ALPHA = 0.5  # painted-interior opacity above which a pixel counts as mouth interior
MIN_OPEN_GAP = 0.02  # a photo whose lips part less than this (mouth widths, per column) has them closed
MIN_TRIANGLE_AREA = 0.5  # px²: a face triangle collapsed below this (closed lips, lids) is not drawn
LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # RGB -> luma (Rec. 601)


@dataclass(frozen=True)
class MeshWarpConfig:
    """Constants of the renderer (all in crop pixels or fractions of the face size)."""

    size: int = 256
    ring_radii: tuple[float, ...] = (1.25, 1.7)  # ring distances from the face centre, in face radii
    ring_follow: tuple[float, ...] = (1.0, 0.5)  # how much of the head's similarity motion each ring follows
    ring_points: int = 24  # control points per ring
    border_points: int = 8  # control points per crop edge (fixed)
    # The mouth model, in mouth widths of the source: the upper teeth hang from the skull, the lower stand
    # on the jaw (both carried by a similarity fitted to skull / jaw vertices), behind the lips.
    upper_crown: float = 0.16  # upper incisor crown height (incisal edge to gum line) at the centre
    lower_crown: float = 0.11  # lower incisor crown height
    overbite: float = 0.04
    lower_show: float = 0.05  # most of the lower teeth that shows above the lower lip
    lower_span: float = 0.3  # lower teeth show this far (mouth widths) either side of the middle (the arch turns)
    rest_show: float = 0.035  # upper incisal edge below the lip line of a closed-lip photo
    tooth_widths: tuple[float, ...] = (0.115, 0.09, 0.08, 0.07, 0.065, 0.06)  # from the midline outwards
    tooth_gap: float = 0.02  # width (sigma) of the soft shade between two teeth
    tooth_gap_shade: float = 0.05  # how much darker the middle of a separation is
    corner_shade: float = 0.6  # teeth and cavity this much darker at the mouth corners (buccal corridor)
    min_gap_px: float = 0.75  # lips closer than this are treated as closed
    lip_inset: float = 0.4  # closed lips sample the photo's lips this far (of their thickness) from the opening
    fade_gap: float = 0.06  # extra opening (mouth widths) over the source's at which the interior is opaque
    lip_line: float = 0.8  # opacity of the shaded line where closed lips meet (at the mouth's centre)
    lip_line_width: float = 0.03  # its width, mouth widths
    lip_line_open: float = 0.04  # lip gap (mouth widths) at which the line has faded out (the interior shows)
    # The closing lid: between the lid crease (the fold ring above the eye) and the lash line the warp only
    # stretches the photo's thin band of lid margin and lashes; the lid is drawn instead from the photo's skin
    # above its own crease, mirrored across the crease (so it joins the skin above without a seam).
    lid_from: float = 0.3  # eye closure (1 - target opening / source opening) at which the lid starts to show
    lid_full: float = 0.9  # closure at which it is fully drawn
    lid_reach: float = 0.75  # the mirror samples at most this share of the way from the crease up to the brow
    lid_dark: float = 0.8  # ... and stops short of where the skin there falls below this share of its light
    lid_stretch: float = 2.0  # ... stretching the skin at most this much to fit; past that it folds back
    lid_edge: float = 0.8  # width of the lid's soft edges, crop pixels
    lid_margin: float = 0.5  # the lid reaches this far past the lash line (covers the eye's last row), crop px
    lid_gain: tuple[float, float] = (0.85, 1.1)  # bounds of the lid's colour match (per channel) to the skin
    lid_corner: float = 0.15  # the lid fades out over this much (eye widths) towards each corner
    lid_shade: float = 0.1  # the lid darker towards the lash line by this much (it turns under, over the eye)
    lash_opacity: float = 0.7  # lash line opacity in the middle (in the photo's lash colour), half at the corners
    lash_width: float = 0.6  # lash line sigma, crop pixels
    # The eyeball inside the lids' opening: carried rigidly by the eye's corners; drawn where it shows more
    # than the photo's opening (less ``eye_inset``, which leaves its lash line out).
    eye_inset: float = 0.75  # crop pixels
    eye_widen: float = 0.1  # lids this much further apart (a share of the photo's opening) carry it fully rigidly
    eye_feather: float = 1.0  # the drawn eyeball fades in over this far from a pixel past the photo's opening
    iris_edge: float = 0.7  # the iris disc's soft edge, crop pixels
    limbus_shade: float = 0.35  # the iris this much darker at its rim (the limbal ring)
    sclera_shade: float = 0.88  # revealed sclera, in the lid's shadow, this share of the photo's sclera light
    iris_radius: float = 0.2  # eye widths (corner to corner): the iris radius when no iris landmarks are given
    lash_past: float = 0.06  # the lash line runs this far (eye widths) past the corners
    crease_shade: float = 0.04  # darkening along the crease in the middle, none at the corners
    crease_width: float = 1.0  # crease line sigma, crop pixels
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
    fold: np.ndarray  # the next ring of vertices above the upper contour (the lid crease)
    below: np.ndarray  # the next ring of vertices below the lower contour
    brow: np.ndarray  # the brow's lower contour


@dataclass(frozen=True)
class _Eyeball:
    """One eye of the source crop, for drawing its eyeball where the target's lids open wider."""

    corners: np.ndarray  # (2, 2) the eye's corners, crop pixels
    outside: np.ndarray  # (S, S) float32: crop pixels outside the photo's opening less its lash line, 0 in it
    padded: np.ndarray  # (S, S, 3) uint8: the photo, and past its opening (less eye_inset) that's nearest pixel
    iris: np.ndarray  # (2,) the iris centre, crop pixels
    radius: float  # the iris radius, crop pixels
    sclera_rgb: np.ndarray  # (3,) float32
    iris_rgb: np.ndarray  # (3,) float32


def _edge_distance(points: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """(N,) distance of points (N, 2) to the closed polygon ``poly`` (M, 2)'s outline (sub-pixel, unsigned)."""
    a, b = poly, np.roll(poly, -1, axis=0)  # (M, 2) edges a -> b
    ab = b - a
    t = np.clip(((points[:, None] - a[None]) * ab[None]).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-12)[None],
                0.0, 1.0)  # (N, M)
    nearest = a[None] + t[..., None] * ab[None]
    return np.sqrt(((points[:, None] - nearest) ** 2).sum(-1)).min(axis=1)


def _polygon_pixels(poly: np.ndarray, width: int, height: int) -> np.ndarray:
    """(N, 2) float64 x, y of the pixels of a ``width`` × ``height`` image inside the polygon (M, 2)."""
    x0, y0 = np.maximum(np.floor(poly.min(axis=0)).astype(int) - 1, 0)
    x1, y1 = np.minimum(np.ceil(poly.max(axis=0)).astype(int) + 2, [width, height])
    if x1 <= x0 or y1 <= y0:
        return np.zeros((0, 2))
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(mask, [np.round((poly - [x0, y0]) * SUBPIXEL).astype(np.int32)], 1, lineType=cv2.LINE_8,
                 shift=SUBPIXEL_BITS)
    ys, xs = np.nonzero(mask)
    return np.stack([xs + x0, ys + y0], axis=1).astype(np.float64)


@cache
def _eyes() -> tuple[_Eye, _Eye]:
    """Both eyes' contours, the rings above the upper lid and below the lower one (found from the triangles),
    and the brow's lower contour."""
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
        brow = np.asarray(can.groups[f"brow_lower_{side}"])
        eyes.append(_Eye(*(idx[np.argsort(v[idx, 0])] for idx in (upper, lower, *rings, brow))))
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


@cache
def _lip_columns() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Upper inner, lower inner, upper outer and lower outer lip vertices, paired column by column across
    the mouth (sorted by x, corners left out)."""
    can = load_canonical()
    v = np.asarray(can.vertices)
    groups = ("lips_upper_inner", "lips_lower_inner", "lips_upper_outer", "lips_lower_outer")
    columns = []
    for name in groups:
        idx = np.asarray(can.groups[name])
        columns.append(idx[np.argsort(v[idx, 0])][1:-1])
    return tuple(columns)


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


SKULL_VERTICES = (6, 168, 197, 195, 5, 4, 10, 151, 9, 8, 127, 356, 234, 454)
"""FaceMesh vertices that move with the skull (nose bridge, forehead, temples): they carry the upper teeth."""
LIP_SLACK = 0.004
"""Lips this close (mouth widths) to where skull and jaw carry them count as unmoved (a photo with teeth)."""


JAW_FRONT = (175, 199, 200, 18, 83, 313, 201, 421)
"""With the ``chin`` group and the lower lip's outer contour, the FaceMesh vertices that move with the front
of the mandible: they carry the lower teeth (the lower lip too, so the teeth stay behind it as the rig drops
it further than the chin)."""


def _lsq_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Closed-form least-squares 2D similarity (2, 3) mapping src (N, 2) onto dst (N, 2)."""
    ms, md = src.mean(axis=0), dst.mean(axis=0)
    a, b = src - ms, dst - md
    norm = max(float((a * a).sum()), 1e-9)
    c = float((a * b).sum()) / norm
    s = float((a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]).sum()) / norm
    m = np.array([[c, -s], [s, c]])
    return np.hstack([m, (md - m @ ms)[:, None]])


def _invert(m: np.ndarray) -> np.ndarray:
    return np.linalg.inv(np.vstack([m, [0.0, 0.0, 1.0]]))[:2]


def _sample(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(N, C) float32 samples of ``image`` (H, W, C) at positions (N,), bicubic, edges replicated."""
    n = len(x)
    cols = 256
    rows = max(-(-n // cols), 1)
    mx = np.zeros(rows * cols, np.float32)
    my = np.zeros(rows * cols, np.float32)
    mx[:n], my[:n] = x, y
    out = cv2.remap(image, mx.reshape(rows, cols), my.reshape(rows, cols), cv2.INTER_CUBIC,
                    borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(rows * cols, -1)[:n].astype(np.float32)


def _lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.asarray(lab, np.float32).reshape(1, 1, 3), cv2.COLOR_LAB2RGB).reshape(3) * 255.0


def _smooth(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


@dataclass(frozen=True)
class _MouthModel:
    """The inside of the mouth, built once from the source crop: colours measured on the photo (the skin
    around the mouth gives the light and the white point, the lips the gums, cavity and tongue; a photo that
    shows its teeth gives their own colour), the upper incisal edge in the source (where the photo's teeth
    end, or the lip line of closed lips), and, when the photo shows teeth, its own mouth interior as a texture
    carried with the skull (above that edge) and with the jaw (below it)."""

    source: np.ndarray  # (H, W, 3) uint8 crop
    source_mesh: np.ndarray  # (468, 2)
    left_x: float  # the source's inner mouth corners and width (crop pixels)
    width: float
    incisal: np.ndarray  # polynomial (np.polyval) of the upper incisal edge's y over u in [0, 1] across the mouth
    photo_teeth: bool
    photo_lower: bool  # the photo shows lower teeth too (below its upper incisal edge)
    inside: np.ndarray | None  # (H, W, 1) float32 soft mask of the source's mouth opening (photo_teeth only)
    teeth_rgb: np.ndarray
    gum_rgb: np.ndarray
    cavity_rgb: np.ndarray
    tongue_rgb: np.ndarray
    line_rgb: np.ndarray  # the shade where closed lips meet
    light: tuple[float, float]  # the light on the mouth's left and right ends, relative to its mean
    config: MeshWarpConfig
    jaw_vertices: np.ndarray

    @classmethod
    def build(cls, source: np.ndarray, mesh2d: np.ndarray, upper: np.ndarray, lower: np.ndarray,
              config: MeshWarpConfig) -> _MouthModel:
        can = load_canonical()
        h, w = source.shape[:2]
        up, lo = mesh2d[upper], mesh2d[lower]
        left_x, right_x = min(up[0, 0], lo[0, 0]), max(up[-1, 0], lo[-1, 0])
        width = max(right_x - left_x, 1.0)
        lab = cv2.cvtColor(source.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)

        def mask(poly: np.ndarray) -> np.ndarray:
            out = np.zeros((h, w), np.uint8)
            cv2.fillPoly(out, [np.round(poly * SUBPIXEL).astype(np.int32)], 1, lineType=cv2.LINE_8,
                         shift=SUBPIXEL_BITS)
            return out

        outer = np.vstack([mesh2d[can.groups["lips_upper_outer"]], mesh2d[can.groups["lips_lower_outer"]][::-1]])
        lips_mask = mask(outer)
        inner_mask = mask(np.vstack([up, lo[::-1]]))
        ring = max(round(0.18 * width), 2)
        skin_mask = cv2.dilate(lips_mask, np.ones((2 * ring + 1, 2 * ring + 1), np.uint8)) & ~cv2.dilate(
            lips_mask, np.ones((5, 5), np.uint8)) & 1
        skin_px = lab[skin_mask > 0]
        if len(skin_px) < 8:  # a degenerate crop: the whole crop
            skin_px = lab.reshape(-1, 3)
        lum = skin_px[:, 0]
        lit = (lum >= np.quantile(lum, 0.5)) & (lum <= np.quantile(lum, 0.95))
        skin = np.median(skin_px[lit], axis=0)
        ys, xs = np.nonzero(skin_mask)
        centre = (left_x + right_x) / 2
        sides = [lab[ys[side], xs[side], 0] for side in (xs < centre, xs >= centre)]
        side_l = np.array([np.median(v) if len(v) > 4 else skin[0] for v in sides])
        light = tuple(float(v) for v in np.clip(side_l / max(side_l.mean(), 1.0), 0.8, 1.2))
        lip_only = (lips_mask > 0) & (cv2.dilate(inner_mask, np.ones((3, 3), np.uint8)) == 0)
        lip = np.median(lab[lip_only], axis=0) if lip_only.sum() > 8 else np.array([skin[0] * 0.8, 30.0, 12.0])

        # The photo's own teeth: bright, less red than the lips, inside the opening (shrunk by a pixel).
        opening = cv2.erode(inner_mask, np.ones((3, 3), np.uint8))
        inside_px = lab[opening > 0]
        teeth_px = np.zeros(0, bool)
        photo_teeth = False
        if len(inside_px) >= 30:
            light8 = np.clip(inside_px[:, 0] * 2.55, 0, 255).astype(np.uint8)
            thresh, _ = cv2.threshold(light8[:, None], 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
            teeth_px = ((light8 > thresh) & (inside_px[:, 0] > 0.8 * skin[0])
                        & (inside_px[:, 1] < 0.5 * (lip[1] + skin[1])))
            photo_teeth = bool(teeth_px.sum() >= max(25, 0.15 * len(inside_px)))
        u_of = lambda x: (x - left_x) / width  # noqa: E731
        incisal = None
        inside = None
        photo_lower = False
        cavity = np.array([0.2 * lip[0], 0.7 * lip[1], 0.5 * lip[2]])
        if photo_teeth:
            tmask = np.zeros((h, w), bool)
            oy, ox = np.nonzero(opening)
            tmask[oy[teeth_px], ox[teeth_px]] = True
            cols, edges = [], []
            for x in range(int(ox.min()), int(ox.max()) + 1):
                column = np.flatnonzero(tmask[:, x])
                if len(column) < 2:
                    continue
                run = np.split(column, np.flatnonzero(np.diff(column) > 2) + 1)[0]  # the top run: upper teeth
                if len(run) >= 2:
                    cols.append(u_of(x + 0.5))
                    edges.append(run[-1] + 1.0)
            if len(cols) >= 5:
                incisal = np.polyfit(cols, edges, 2 if len(cols) >= 8 else 1)
                lower_teeth = oy[teeth_px] > np.polyval(incisal, u_of(ox[teeth_px] + 0.5)) + 1.0
                photo_lower = bool(lower_teeth.sum() >= 25)
            teeth = np.median(inside_px[teeth_px], axis=0)
            # The texture: the opening where the photo shows teeth, and down to their incisal edge (the
            # shade between teeth included), not the dark or grey below it.
            yy, xx = np.mgrid[0:h, 0:w]
            upper_part = yy <= np.polyval(incisal, u_of(xx + 0.5)) + 0.5 if incisal is not None else tmask
            keep = (opening > 0) & (upper_part | tmask)
            inside = cv2.GaussianBlur(keep.astype(np.float32), (0, 0), 0.6)[..., None]
        if incisal is None:
            photo_teeth = photo_lower = False
            inside = None
            uu = np.linspace(0.0, 1.0, 17)
            x = left_x + uu * width
            line = (np.interp(x, up[:, 0], up[:, 1]) + np.interp(x, lo[:, 0], lo[:, 1])) / 2
            incisal = np.polyfit(uu, line + config.rest_show * width, 2)
            teeth = np.array([min(96.0, 1.15 * skin[0] + 2.0), 0.3 * skin[1], 0.55 * skin[2]])
        else:
            teeth = teeth.copy()
            teeth[0] = min(97.0, teeth[0] * 1.05)
        gum = np.array([min(lip[0] + 4.0, 90.0), lip[1] * 1.15, lip[2]])
        tongue = np.array([0.6 * lip[0], lip[1] * 1.05, lip[2] * 0.8])
        jaw = np.r_[can.groups["chin"], JAW_FRONT, can.groups["lips_lower_outer"][1:-1]]
        return cls(source=source, source_mesh=mesh2d, left_x=float(left_x), width=float(width), incisal=incisal,
                   photo_teeth=photo_teeth, photo_lower=photo_lower, inside=inside, teeth_rgb=_lab_to_rgb(teeth),
                   gum_rgb=_lab_to_rgb(gum),
                   cavity_rgb=_lab_to_rgb(cavity), tongue_rgb=_lab_to_rgb(tongue),
                   line_rgb=_lab_to_rgb(np.array([0.5 * lip[0], 0.9 * lip[1], 0.8 * lip[2]])), light=light,
                   config=config,
                   jaw_vertices=np.unique(jaw))

    def carriers(self, tgt2d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(2, 3) similarities source → target of the skull (upper teeth) and of the jaw (lower teeth)."""
        skull = list(SKULL_VERTICES)
        return (_lsq_similarity(self.source_mesh[skull], tgt2d[skull]),
                _lsq_similarity(self.source_mesh[self.jaw_vertices], tgt2d[self.jaw_vertices]))

    def colour(self, tgt2d: np.ndarray, up: np.ndarray, lo: np.ndarray, xf: np.ndarray, yf: np.ndarray
               ) -> np.ndarray:
        """(N, 3) float32 colour at frame positions (N,) inside the target's inner lips ``up`` / ``lo``."""
        c = self.config
        wd = self.width
        skull, jaw = self.carriers(tgt2d)
        sx, sy = (_affine(np.stack([xf, yf], axis=1).astype(np.float64), _invert(skull))).T  # skull frame
        jx, jy = (_affine(np.stack([xf, yf], axis=1).astype(np.float64), _invert(jaw))).T  # jaw frame
        us = np.clip((sx - self.left_x) / wd, 0.0, 1.0)
        uj = np.clip((jx - self.left_x) / wd, 0.0, 1.0)
        edge = 0.5  # soft edges, source pixels
        # Upper teeth: from the incisal edge up to the gum line, then gum.
        crown = c.upper_crown * wd * (1.0 - 0.35 * (2.0 * np.abs(us - 0.5)) ** 2)
        above = np.polyval(self.incisal, us) - sy  # > 0 above the upper incisal edge
        v = above / crown
        upper_a = _smooth(above / edge + 0.5)
        gum_a = _smooth((v - 1.0) * crown / (2 * edge) + 0.5)
        # Lower teeth: from their incisal edge (behind the upper one when closed) down, behind the lower lip,
        # which covers all but their top ``lower_show`` (a lower lip the rig drops further than the chin).
        lcrown = c.lower_crown * wd * (1.0 - 0.35 * (2.0 * np.abs(uj - 0.5)) ** 2)
        below = jy - (np.polyval(self.incisal, uj) - c.overbite * wd)  # > 0 below the lower incisal edge
        twidth = max(max(up[-1, 0], lo[-1, 0]) - min(up[0, 0], lo[0, 0]), 1.0)
        y_lo = np.interp(xf, lo[:, 0], lo[:, 1])
        scale = twidth / wd  # target pixels per source pixel, about
        below = np.maximum(below, (yf - (y_lo - c.lower_show * twidth)) / scale)
        vl = below / lcrown
        lower_a = _smooth(below / edge + 0.5)

        # Target lip curves: the upper lip's shadow and the corners' darkness.
        u = np.clip((xf - min(up[0, 0], lo[0, 0])) / twidth, 0.0, 1.0)
        y_up = np.interp(xf, up[:, 0], up[:, 1])
        gap = np.maximum(y_lo - y_up, c.min_gap_px) / twidth
        lip_shadow = 1.0 - 0.2 * np.exp(-np.maximum(yf - y_up, 0.0) / (0.03 * twidth))
        corner = 1.0 - c.corner_shade * np.clip(2.0 * np.abs(u - 0.5), 0.0, 1.0) ** 2.5
        light = self.light[0] + (self.light[1] - self.light[0]) * u

        # Back to front: cavity, tongue (on open vowels, just above the lower incisal edge), lower teeth, upper.
        col = np.tile(self.cavity_rgb.astype(np.float32), (len(xf), 1))
        tongue = _smooth((below + 0.05 * wd) / (0.04 * wd)) * _smooth((gap - 0.15) / 0.1)
        col += (self.tongue_rgb * 0.85 - col) * tongue[:, None]
        col *= (0.75 + 0.25 * corner)[:, None]
        lower = self._teeth(uj, vl, lcrown, gaps=0.5) * 0.92
        lower_a = lower_a * _smooth((c.lower_span - np.abs(u - 0.5)) / 0.08)  # the front teeth's arch only
        if self.photo_lower:  # the photo's own lower teeth, carried with the jaw
            pa = (_sample(self.inside, jx, jy)[:, 0] * _smooth(below / edge + 0.5 + c.overbite * wd / edge))
            lower_a = np.maximum(lower_a, pa)
            lower = lower + (_sample(self.source, jx, jy) - lower) * pa[:, None]
        col += (lower - col) * lower_a[:, None]
        upper = self._teeth(us, v, crown)
        upper = upper + (self.gum_rgb - upper) * gum_a[:, None]
        upper *= lip_shadow[:, None]
        if self.photo_teeth:  # the photo's own upper teeth, carried with the skull
            pa = _sample(self.inside, sx, sy)[:, 0] * upper_a
            upper = upper + (_sample(self.source, sx, sy) - upper) * pa[:, None]
        col += (upper - col) * upper_a[:, None]
        return col * (light * (0.55 + 0.45 * corner))[:, None]

    def _teeth(self, u: np.ndarray, v: np.ndarray, crown: np.ndarray, gaps: float = 1.0) -> np.ndarray:
        """(N, 3) shaded teeth at positions u across the mouth and v up the crown (0 at the incisal edge);
        ``gaps`` scales how much the separations show."""
        c = self.config
        bounds = np.r_[0.0, np.cumsum(c.tooth_widths)]
        s = np.abs(u - 0.5)
        dist = np.abs(s[:, None] - bounds[None]).min(axis=1)
        k = np.clip(np.searchsorted(bounds, s) - 1, 0, len(bounds) - 2)
        frac = (s - bounds[k]) / (bounds[k + 1] - bounds[k])
        vv = np.clip(v, 0.0, 1.0)
        separation = 1.0 - (gaps * c.tooth_gap_shade * (1.0 + 0.5 * np.exp(-vv / 0.15))
                            * np.exp(-(dist / c.tooth_gap) ** 2))
        rounded = 0.92 + 0.08 * np.sin(np.pi * np.clip(frac, 0.0, 1.0))
        vertical = (1.0 - 0.12 * vv**2) * (1.0 - 0.08 * np.exp(-vv * crown / (0.02 * self.width)))
        return self.teeth_rgb[None].astype(np.float32) * (separation * rounded * vertical)[:, None]


class MeshWarpRenderer:
    """Warp one source crop to many target meshes.

    source_rgb: (H, W, 3) uint8 aligned crop; source_mesh: (468, 3) crop pixels (x, y, z).
    """

    def __init__(self, source_rgb: np.ndarray, source_mesh: np.ndarray, config: MeshWarpConfig | None = None,
                 iris: np.ndarray | None = None):
        """``iris``: FaceMesh's iris landmarks (10, 2) (its points 468-477) in crop pixels, when known: the
        eyeballs' iris discs; else each is estimated from the eye's darkest pixels."""
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
        self.mouth = _MouthModel.build(self.source, self.source_mesh[:, :2], self.upper_lip, self.lower_lip,
                                       self.config)
        self.eyes = _eyes()
        self.eye_gap = [self._eye_gap(self.source_mesh[:, :2], eye) for eye in self.eyes]
        self.lash_rgb = [self._lash_colour(eye) for eye in self.eyes]
        self.lid_room = [self._lid_room(eye) for eye in self.eyes]
        self.eyeballs = [self._eyeball(eye, iris) for eye in self.eyes]
        self.eye_open = [gap / max(float(np.hypot(*(self.source_mesh[eye.upper[-1], :2]
                                                   - self.source_mesh[eye.upper[0], :2]))), 1e-6)
                         for eye, gap in zip(self.eyes, self.eye_gap, strict=True)]  # opening / width

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
        src = np.vstack([self.outer_src[self.outer_tris], self._texture_source(tgt2d)[self.face_tris]])
        n_outer = len(self.outer_tris)
        depth = np.asarray(target_mesh[self.face_tris, 2]).mean(axis=1)  # z: negative = nearer the camera
        face = dst[n_outer:]
        area = 0.5 * np.abs((face[:, 1, 0] - face[:, 0, 0]) * (face[:, 2, 1] - face[:, 0, 1])
                            - (face[:, 2, 0] - face[:, 0, 0]) * (face[:, 1, 1] - face[:, 0, 1]))
        near = np.argsort(-depth)
        near = near[area[near] >= MIN_TRIANGLE_AREA]  # collapsed ones would draw a line of their unstable map
        order = np.r_[np.arange(n_outer), n_outer + near]  # background, then far → near
        ids = self._triangle_ids(dst, order)
        aff = _affines(dst, src).astype(np.float32)  # (N, 2, 3)
        ys, xs = np.mgrid[0:s, 0:s].astype(np.float32)
        a = aff[np.maximum(ids, 0)]  # (H, W, 2, 3)
        flow = a[..., 0] * xs[..., None] + a[..., 1] * ys[..., None] + a[..., 2]  # (H, W, 2)
        self._eyeball_flow(flow, tgt2d)
        frame = cv2.remap(self.source, flow[..., 0], flow[..., 1], INTERPOLATIONS[self.config.interpolation],
                          borderMode=cv2.BORDER_REPLICATE)
        seam = flow_jumps(flow - np.stack([xs, ys], axis=-1)) > FLOW_JUMP  # closed lips' meeting line
        if seam.any():  # drawn as WarpPaste draws it
            frame = soften_seams(frame, seam, SEAM_BLUR)
        alpha = self._mouth_alpha(tgt2d)  # (H, W) float32 in [0, 1]
        mouth = alpha > MOUTH_MASK_ALPHA
        paint = alpha.copy()
        if (alpha > 0).any():
            ys, xs = np.nonzero(alpha > 0)
            frame = self._blend_mouth(frame, tgt2d, ys, xs, xs, ys, alpha[ys, xs])
        frame = self.paint_lip_line(frame, tgt2d, paint)
        frame = self.paint_eyes(frame, tgt2d, paint)
        frame = self.paint_lids(frame, tgt2d, paint)
        return RenderedFrame(frame, flow, mouth, paint, alpha)

    def _texture_source(self, tgt2d: np.ndarray) -> np.ndarray:
        """(468, 2) where each vertex samples the photo. The source mesh itself, except where the target's lips
        close over an opening the photo shows: there the inner lip vertices sample up to ``lip_inset`` of the
        lip's thickness away from the opening, so that closed lips are drawn from lip, not from the teeth and
        shadow that the photo's inner lip contour borders (which would stay as a seam between them)."""
        src = self.source_mesh[:, :2]
        up_in, lo_in, up_out, lo_out = _lip_columns()

        def gaps(mesh2d: np.ndarray) -> np.ndarray:
            width = max(float(np.linalg.norm(mesh2d[self.upper_lip[-1]] - mesh2d[self.upper_lip[0]])), 1.0)
            return np.linalg.norm(mesh2d[lo_in] - mesh2d[up_in], axis=1) / width

        src_gap, tgt_gap = gaps(src), gaps(tgt2d)
        closing = np.clip(1.0 - tgt_gap / np.maximum(src_gap, 1e-6), 0.0, 1.0) * (src_gap > MIN_OPEN_GAP)
        if not closing.any():
            return src
        inset = self.config.lip_inset * closing[:, None]
        out = src.copy()
        out[up_in] += inset * (src[up_out] - src[up_in])
        out[lo_in] += inset * (src[lo_out] - src[lo_in])
        return out

    def paint_lids(self, image: np.ndarray, tgt2d: np.ndarray, paint: np.ndarray | None = None,
                   to_image: np.ndarray | None = None, source: np.ndarray | None = None) -> np.ndarray:
        """``image`` (H, W, 3) uint8 with the closing lids of target points ``tgt2d`` (468, 2) (frame pixels)
        drawn in, each from the photo's own skin above its crease (:meth:`_draw_lid`); each lid's opacity
        max-ed into ``paint`` (H, W) when given. ``to_image``: (2, 3) similarity frame → image pixels (default:
        the frame itself), so the lids can be drawn at another resolution (``face.paste.WarpPaste``: the
        photo's); soft edges and lines scale with it. ``source``: the unwarped photo in those image pixels
        (``to_image`` maps the source crop onto it), to take the skin from at that resolution; default: the
        renderer's source crop."""
        src_pts = self.source_mesh[:, :2]
        if source is None:
            source = self.source
        elif to_image is not None:
            src_pts = _affine(src_pts, np.asarray(to_image, np.float64))
        for eye, gap, lash, room in zip(self.eyes, self.eye_gap, self.lash_rgb, self.lid_room, strict=True):
            closure = 1.0 - self._eye_gap(tgt2d, eye) / gap if gap > 0 else 0.0
            if closure > self.config.lid_from:
                image = self._draw_lid(image, tgt2d, eye, closure, source, src_pts, lash, room, paint, to_image)
        return image

    def render(self, target_meshes: np.ndarray) -> WarpResult:
        """Batch of target meshes (B, 468, 3) → :class:`WarpResult` with B frames."""
        outs = [self.render_one(m) for m in np.asarray(target_meshes)]
        return WarpResult(*(np.stack(field) for field in zip(*outs, strict=True)))

    # -- the eyeballs ---------------------------------------------------------------------------
    @staticmethod
    def _opening(pts: np.ndarray, eye: _Eye) -> np.ndarray:
        """(N, 2) the eye's opening as a polygon: the upper lid contour, then the lower one back."""
        return np.vstack([pts[eye.upper], pts[eye.lower][::-1]])

    def _eyeball(self, eye: _Eye, iris: np.ndarray | None) -> _Eyeball:
        """The source's eyeball for ``eye``: its corners, the photo's opening, iris disc and colours."""
        c, s = self.config, self.config.size
        src = self.source_mesh[:, :2]
        poly = self._opening(src, eye)
        inside = np.zeros((s, s), np.uint8)
        xs, ys = _polygon_pixels(poly, s, s).astype(np.intp).T
        inside[ys, xs] = 1
        shown = cv2.distanceTransform(inside, cv2.DIST_L2, 3) > c.eye_inset  # the opening less its lash line
        if not shown.any():
            shown = inside > 0
        _, labels = cv2.distanceTransformWithLabels((~shown).astype(np.uint8), cv2.DIST_L2, 3,
                                                    labelType=cv2.DIST_LABEL_PIXEL)
        outside = cv2.distanceTransform((~shown).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        nearest = np.zeros(int(labels.max()) + 1, np.int64)  # label -> flat index of that opening pixel
        nearest[labels[shown]] = np.flatnonzero(shown.ravel())
        padded = self.source.reshape(-1, 3)[nearest[labels]].reshape(self.source.shape)
        width = float(np.hypot(*(src[eye.upper[-1]] - src[eye.upper[0]])))
        ys, xs = np.nonzero(shown)
        pixels = self.source[ys, xs].astype(np.float32)
        luma = pixels @ LUMA if len(pixels) else np.zeros(0, np.float32)
        centre = poly.mean(axis=0)
        if iris is not None:
            rings = np.asarray(iris, np.float64).reshape(2, 5, 2)
            ring = rings[int(np.argmin(np.linalg.norm(rings[:, 0] - centre, axis=1)))]
            centre, radius = ring[0], float(np.linalg.norm(ring[1:] - ring[0], axis=1).mean())
        else:
            if len(pixels) >= 4:  # the iris: the darkest quarter of the opening
                dark = luma <= np.quantile(luma, 0.25)
                centre = np.array([xs[dark].mean(), ys[dark].mean()], np.float64)
            radius = c.iris_radius * width
        radius = float(np.clip(radius, 0.1 * width, 0.3 * width)) if width > 0 else max(radius, 1.0)
        dist = np.hypot(xs - centre[0], ys - centre[1]) / max(radius, 1e-6)
        # the sclera: the lightest quarter of the opening beside the iris (the rest is lashes, lid shadow, corners)
        white = ((dist > 1.15) & (luma >= np.quantile(luma[dist > 1.15], 0.75))
                 if (dist > 1.15).sum() >= 4 else None)
        sclera = np.median(pixels[white], axis=0) if white is not None and white.sum() >= 2 else None
        ring = (dist > 0.45) & (dist < 0.85)
        iris_rgb = np.median(pixels[ring], axis=0) if ring.sum() >= 2 else None
        if sclera is None:  # no white shows in the photo: about as light as the surrounding skin, cooler
            skin = np.median(self.source[int(centre[1]) : int(centre[1]) + 2, int(centre[0]) : int(centre[0]) + 2]
                             .reshape(-1, 3), axis=0).astype(np.float32)
            sclera = np.clip(skin * np.array([0.95, 0.95, 1.0], np.float32) + 25.0, 0.0, 255.0)
        if iris_rgb is None:
            iris_rgb = np.array([70.0, 50.0, 40.0], np.float32)
        return _Eyeball(corners=src[[eye.upper[0], eye.upper[-1]]].copy(), outside=outside.astype(np.float32),
                        padded=np.ascontiguousarray(padded),
                        iris=np.asarray(centre, np.float64), radius=radius,
                        sclera_rgb=np.asarray(sclera, np.float32), iris_rgb=np.asarray(iris_rgb, np.float32))

    def _widening(self, tgt2d: np.ndarray) -> list[float]:
        """Per eye, how far (0 to 1) the eyeball is carried rigidly rather than warped with the lids: 1 once the
        target's lids are ``eye_widen`` further apart than the photo's (relative to its width), 0 where they are
        no further apart: lids that close squeeze the eye as before (and are drawn over it). A photo whose eye is
        shut (its lids under a pixel apart) shows no eyeball to carry: that eye is warped as before."""
        out = []
        for eye, gap, src_open in zip(self.eyes, self.eye_gap, self.eye_open, strict=True):
            if gap < 1.0:
                out.append(0.0)
                continue
            width = max(float(np.hypot(*(tgt2d[eye.upper[-1]] - tgt2d[eye.upper[0]]))), 1e-6)
            ratio = (self._eye_gap(tgt2d, eye) / width) / max(src_open, 1e-6)
            out.append(float(np.clip((ratio - 1.0) / self.config.eye_widen, 0.0, 1.0)))
        return out

    def _eyeball_flow(self, flow: np.ndarray, tgt2d: np.ndarray) -> None:
        """Inside each eye's target opening, ``flow`` (H, W, 2) becomes the eye's rigid motion (in place), as far
        as the lids open wider than the photo's (:meth:`_widening`)."""
        s = self.config.size
        for eye, ball, rigid in zip(self.eyes, self.eyeballs, self._widening(tgt2d), strict=True):
            if rigid <= 0.0:
                continue
            poly = self._opening(tgt2d, eye)
            pts = _polygon_pixels(poly, s, s)
            if len(pts) == 0:
                continue
            m = _lsq_similarity(tgt2d[[eye.upper[0], eye.upper[-1]]], ball.corners)  # target → source
            xs, ys = pts.astype(np.intp).T
            warped = flow[ys, xs]
            # faded in over the opening's outermost pixel (its outline's distance, not the rasterised
            # staircase), so the lash line does not alternate with eyeball along a sloping lid
            weight = (rigid * np.clip(_edge_distance(pts, poly) - 0.5, 0.0, 1.0))[:, None].astype(np.float32)
            flow[ys, xs] = warped + weight * (_affine(pts, m).astype(np.float32) - warped)

    def paint_eyes(self, image: np.ndarray, tgt2d: np.ndarray, paint: np.ndarray | None = None,
                   to_image: np.ndarray | None = None) -> np.ndarray:
        """``image`` (H, W, 3) uint8 with the eyeballs drawn where the target's lids (``tgt2d`` (468, 2), frame
        pixels) open past what the photo's opening shows: the iris disc continued, darker at its rim, and the
        sclera, in the photo's colours; each eye's opacity max-ed into ``paint`` (H, W) when given.
        ``to_image``: (2, 3) similarity frame → image pixels (``face.paste.WarpPaste``: the photo's)."""
        c = self.config
        to_image = np.asarray(to_image, np.float64) if to_image is not None else None
        scale = float(np.hypot(*to_image[:, 0])) if to_image is not None else 1.0  # image pixels per frame pixel
        h, w = image.shape[:2]
        out = None
        for eye, ball, rigid in zip(self.eyes, self.eyeballs, self._widening(tgt2d), strict=True):
            if rigid <= 0.0:
                continue
            poly = self._opening(tgt2d, eye)
            if to_image is not None:
                poly = _affine(poly, to_image)
            pts = _polygon_pixels(poly, w, h)
            if len(pts) == 0:
                continue
            xs, ys = pts.astype(np.intp).T
            frame_pts = _affine(pts, _invert(to_image)) if to_image is not None else pts
            src = _affine(frame_pts, _lsq_similarity(tgt2d[[eye.upper[0], eye.upper[-1]]], ball.corners))
            beyond = _sample(ball.outside[..., None], src[:, 0], src[:, 1])[:, 0]
            # from just past what the photo's opening shows (its lash line too: carried rigidly into the wider
            # opening, it would show as a dark streak across the eyeball)
            alpha = rigid * np.clip((beyond - 0.25) / c.eye_feather, 0.0, 1.0)
            # and faded out over the target opening's outermost crop pixel: the warped lash line shows through
            alpha = alpha * np.clip(_edge_distance(pts, poly) / scale - 0.5, 0.0, 1.0)
            keep = alpha > 0
            if not keep.any():
                continue
            ys, xs, src, alpha, beyond = ys[keep], xs[keep], src[keep], alpha[keep], beyond[keep]
            # The photo's opening continued: each pixel takes the nearest pixel it shows, but the iris is a disc:
            # within it the iris (darker at its rim), outside it what is darker than the sclera (lashes, the
            # lid's shadow, iris) becomes sclera.
            near = _sample(ball.padded, src[:, 0], src[:, 1])
            dist = np.hypot(*(src - ball.iris).T)  # crop pixels from the iris centre
            in_iris = np.clip((ball.radius - dist) / c.iris_edge + 0.5, 0.0, 1.0)[:, None]
            rim = np.clip((dist / ball.radius - 0.75) / 0.25, 0.0, 1.0)[:, None]
            light = (near @ LUMA)[:, None]
            sclera_light = float(ball.sclera_rgb @ LUMA)
            iris_light = float(ball.iris_rgb @ LUMA)
            # the photo's iris where the nearest pixel is iris-like; lashes (darker) and white give the iris colour
            like = (light > 0.6 * iris_light) & (light < sclera_light)
            iris = np.where(like, near, ball.iris_rgb[None]) * (1.0 - c.limbus_shade * rim)
            sclera = np.where(light < sclera_light, ball.sclera_rgb[None], near)
            # the sclera darker towards the lid that uncovered it (its shadow): the farther past the photo's opening
            shade = 1.0 - (1.0 - c.sclera_shade) * np.clip((beyond - c.eye_feather) / 3.0, 0.0, 1.0)[:, None]
            colour = in_iris * iris + (1.0 - in_iris) * shade * sclera
            if out is None:
                out = image.copy()
            under = out[ys, xs].astype(np.float32)
            out[ys, xs] = np.clip(alpha[:, None] * colour + (1.0 - alpha[:, None]) * under + 0.5, 0, 255
                                  ).astype(np.uint8)
            if paint is not None:
                paint[ys, xs] = np.maximum(paint[ys, xs], alpha.astype(np.float32))
        return image if out is None else out

    # -- closed eyelids -------------------------------------------------------------------------
    @staticmethod
    def _eye_gap(mesh2d: np.ndarray, eye: _Eye) -> float:
        """Mean lid opening (pixels) over the eye's width: lower contour minus upper, column by column."""
        up, lo = mesh2d[eye.upper], mesh2d[eye.lower]
        x = np.linspace(up[0, 0], up[-1, 0], 9)[1:-1]
        return float(np.mean(np.interp(x, lo[:, 0], lo[:, 1]) - np.interp(x, up[:, 0], up[:, 1])))

    def _lash_colour(self, eye: _Eye) -> np.ndarray:
        """(3,) float32 RGB of the photo's upper lashes: the darker pixels along the source's upper lid contour."""
        band = np.zeros(self.source.shape[:2], np.uint8)
        line = np.round(self.source_mesh[eye.upper, :2] * SUBPIXEL).astype(np.int32)
        cv2.polylines(band, [line], isClosed=False, color=1, thickness=3, lineType=cv2.LINE_8, shift=SUBPIXEL_BITS)
        pixels = self.source[band > 0].astype(np.float32)
        if len(pixels) < 4:
            return np.array([40.0, 30.0, 25.0], np.float32)
        luma = pixels @ LUMA
        return np.median(pixels[luma <= np.quantile(luma, 0.1)], axis=0).astype(np.float32)

    def _lid_room(self, eye: _Eye) -> float:
        """How far (a share of the way from the crease to the brow) the photo's skin above the crease reaches
        before it darkens into the brow, a glasses rim or its shadow: the closing lid takes its skin from below
        that (at most ``lid_reach``). Measured on the light profile across the eye's middle."""
        c = self.config
        src = self.source_mesh[:, :2]
        origin, along, across, width = self._eye_frame(src, eye)
        frame = (origin, along, across)
        u = np.linspace(0.2, 0.8, 7) * width
        s_fold = np.interp(u, *self._profile(src[eye.fold], *frame))
        s_brow = np.interp(u, *self._profile(src[eye.brow], *frame))
        f = np.linspace(0.0, 1.0, 21)
        sv = s_fold[None] - f[:, None] * (s_fold - s_brow)[None]  # (21, 7)
        x = origin[0] + u[None] * along[0] + sv * across[0]
        y = origin[1] + u[None] * along[1] + sv * across[1]
        luma = _sample(self.source, x.ravel(), y.ravel()) @ LUMA
        light = luma.reshape(len(f), len(u)).mean(axis=1)
        peak = np.maximum.accumulate(light)
        dark = np.flatnonzero((f > 0.1) & (light < c.lid_dark * peak))
        reach = f[dark[0]] - 0.1 if len(dark) else 1.0
        return float(np.clip(reach, 0.2, c.lid_reach))

    @staticmethod
    def _eye_frame(pts: np.ndarray, eye: _Eye) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """The eye's frame in points ``pts`` (468, 2): origin (its first corner), unit vectors along the line
        between the corners and across it (down the face), and the corners' distance."""
        corner0, corner1 = pts[eye.upper[0]], pts[eye.upper[-1]]
        width = float(np.hypot(*(corner1 - corner0)))
        along = (corner1 - corner0) / max(width, 1e-9)
        across = np.array([-along[1], along[0]]) * (1.0 if along[0] >= 0 else -1.0)
        return corner0, along, across, width

    @staticmethod
    def _profile(p: np.ndarray, origin: np.ndarray, along: np.ndarray, across: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
        """A contour (N, 2) in an eye's frame: its (u, s), sorted by u, for ``np.interp``."""
        d = p - origin
        u, s = d @ along, d @ across
        order = np.argsort(u)
        return u[order], s[order]

    def _draw_lid(self, image: np.ndarray, tgt2d: np.ndarray, eye: _Eye, closure: float, source: np.ndarray,
                  src_pts: np.ndarray, lash_rgb: np.ndarray, reach: float, paint: np.ndarray | None = None,
                  to_image: np.ndarray | None = None) -> np.ndarray:
        """The closing upper lid of ``eye`` drawn into ``image``: the photo's own lid skin, carried down.

        In the eye's frame (u along the line between its corners, s across it, down the face), the lid
        spans from the crease (the fold ring above the eye) to the lash line (the lower of the two lid
        contours: the rig may cross them). A pixel at depth t below the crease shows the photo ``source``
        (its points ``src_pts``) at depth t *above* the photo's own crease, at the same share of the eye's
        width: the skin between crease and brow, mirrored across the crease, so the lid has the photo's
        texture, shading and colour and meets the warped skin above the crease without a seam. The skin is
        taken 1:1 within ``reach`` of the way to the brow (:meth:`_lid_room`), stretched up to ``lid_stretch``
        where that is too little, and folded back past it (a brow or a glasses rim is never reached). The lid
        matches its mean colour (per channel, within ``lid_gain``) to the warped skin just above the crease
        and just below the lash line, and fades out over ``lid_corner`` of the eye's width towards each corner.
        It runs ``lid_margin`` past the lash line, over the eye's last squeezed row; a soft lash line in the
        photo's lash colour ``lash_rgb`` and a faint crease are drawn along its edges, and it darkens a little
        towards the lash line, where it turns under. All of it fades in with the closure between ``lid_from`` and
        ``lid_full``; its opacity is max-ed into ``paint`` (H, W) when given. ``to_image``: as
        :meth:`paint_lids`."""
        c = self.config
        pts, scale = tgt2d, 1.0
        if to_image is not None:  # frame → image pixels; edges and lines scale too
            to_image = np.asarray(to_image, np.float64)
            pts = _affine(tgt2d, to_image)
            scale = float(np.sqrt(abs(np.linalg.det(to_image[:, :2]))))
        strength = float(_smooth(np.float64((closure - c.lid_from) / (c.lid_full - c.lid_from))))
        origin, along, across, width = self._eye_frame(pts, eye)
        s_origin, s_along, s_across, s_width = self._eye_frame(src_pts, eye)
        if strength <= 0.0 or width < 2.0 or s_width < 2.0:
            return image
        crease = np.vstack([pts[eye.upper[0]], pts[eye.fold], pts[eye.upper[-1]]])
        edge, margin = c.lid_edge * scale, c.lid_margin * scale
        lash_w, crease_w = c.lash_width * scale, c.crease_width * scale
        pad = 3.0 * max(lash_w, crease_w, edge)
        box = np.vstack([crease, pts[eye.lower], pts[eye.upper]])
        h, w = image.shape[:2]
        x0, y0 = np.clip(np.floor(box.min(axis=0) - pad).astype(int), 0, [w, h])
        x1, y1 = np.clip(np.ceil(box.max(axis=0) + pad).astype(int) + 1, 0, [w, h])
        if x1 <= x0 or y1 <= y0:
            return image
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float64)
        dx, dy = xs - origin[0], ys - origin[1]
        u = dx * along[0] + dy * along[1]
        s = dx * across[0] + dy * across[1]
        frame = (origin, along, across)
        s_crease = np.interp(u, *self._profile(crease, *frame))
        s_lash = np.maximum(np.interp(u, *self._profile(pts[eye.upper], *frame)),
                            np.interp(u, *self._profile(pts[eye.lower], *frame)))
        depth = np.maximum(s_lash - s_crease, 0.0)  # the lid's height below the crease, column by column
        t = s - s_crease
        # The same place in the photo: u at the same share of its eye's width, the skin above its crease.
        ratio = s_width / width  # photo pixels per image pixel
        src_frame = (s_origin, s_along, s_across)
        us = np.clip(u, 0.0, width) * ratio
        s_src_crease = np.interp(us, *self._profile(
            np.vstack([src_pts[eye.upper[0]], src_pts[eye.fold], src_pts[eye.upper[-1]]]), *src_frame))
        room = np.maximum(reach * (s_src_crease - np.interp(us, *self._profile(src_pts[eye.brow], *src_frame))),
                          ratio * scale)  # skin above the photo's crease to take
        q = np.maximum(t, -edge) * ratio / np.clip(depth * ratio / room, 1.0, c.lid_stretch)
        q = np.abs(q)  # (above the crease: the same skin, so the soft edge there shows no seam)
        q = np.mod(q, 2.0 * room)
        q = np.where(q > room, 2.0 * room - q, q)  # folded back past the room
        sv = s_src_crease - q
        map_x = (s_origin[0] + us * s_along[0] + sv * s_across[0]).astype(np.float32)
        map_y = (s_origin[1] + us * s_along[1] + sv * s_across[1]).astype(np.float32)
        lid = cv2.remap(source, map_x, map_y, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
        fade = c.lid_corner * width  # into the corners, where the photo's own lashes and shadow stay
        ends = _smooth(u / fade) * _smooth((width - u) / fade)
        alpha = strength * ends * _smooth(t / edge + 0.5) * _smooth((s_lash + margin - s) / edge + 0.5)
        alpha *= _smooth(depth / edge)  # (crease and lash line meet at the corners)
        rel = np.clip(t / np.maximum(depth, 1e-6), 0.0, 1.0)
        lid *= (1.0 - c.lid_shade * rel**2)[..., None]
        # In the light of its surroundings: the lid's mean lightness that of the warped skin just above the
        # crease and just below the lash line (the photo's brow-bone skin is often lighter than the lid).
        middle = (u > 0.2 * width) & (u < 0.8 * width)
        below = s - (s_lash + 2.0 * lash_w + edge)
        around = middle & (((t < -edge) & (t > -edge - 3.0 * scale)) | ((below > 0.0) & (below < 3.0 * scale)))
        inside = middle & (alpha > 0.5 * strength)
        if around.sum() >= 4 and inside.sum() >= 4:
            patch = image[y0:y1, x0:x1].astype(np.float32)
            gain = patch[around].mean(axis=0) / np.maximum(lid[inside].mean(axis=0), 1.0)
            lid *= np.clip(gain, c.lid_gain[0], c.lid_gain[1]).astype(np.float32)

        def line(at: np.ndarray, sigma: float) -> np.ndarray:
            g = np.exp(-0.5 * ((s - at) / sigma) ** 2)
            return np.where(np.abs(s - at) < 3.0 * sigma, g, 0.0)

        past = c.lash_past * width  # the lash line runs a little past the corners, into the photo's own
        lash_taper = (0.5 + 0.5 * np.sqrt(np.sin(np.pi * np.clip((u + past) / (width + 2 * past), 0.0, 1.0))))
        lash_taper *= _smooth((u + past) / edge) * _smooth((width + past - u) / edge)
        lash = strength * c.lash_opacity * lash_taper * line(s_lash, lash_w)
        crease_taper = np.sin(np.pi * np.clip(u / width, 0.0, 1.0))  # a fold in the middle, gone at the corners
        crease_line = strength * c.crease_shade * crease_taper * line(s_crease, crease_w) * _smooth(depth / edge)
        patch = image[y0:y1, x0:x1].astype(np.float32)
        out_patch = patch + (lid - patch) * alpha[..., None]
        out_patch *= (1.0 - crease_line)[..., None]
        out_patch += (lash_rgb - out_patch) * lash[..., None]
        out = image.copy()
        out[y0:y1, x0:x1] = np.clip(out_patch + 0.5, 0, 255).astype(np.uint8)
        if paint is not None:
            opacity = np.maximum(alpha, np.maximum(lash, crease_line)).astype(np.float32)
            np.maximum(paint[y0:y1, x0:x1], opacity, out=paint[y0:y1, x0:x1])
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
        """(N,) float32 opacity at x positions (N,) inside the inner-lip polygon. A photo with closed lips: by
        how much the target opening exceeds the source's at the same place across the mouth. A photo that shows
        its teeth: by how far either lip moved from where the skull carries it (off the upper teeth, which the
        warp would stretch), since the interior is then redrawn from the photo's own teeth carried with skull
        and jaw; the photo's own mouth (or the head merely moving) paints nothing."""
        up, lo = tgt2d[self.upper_lip], tgt2d[self.lower_lip]
        left_x, right_x = min(up[0, 0], lo[0, 0]), max(up[-1, 0], lo[-1, 0])
        u = np.clip((xs - left_x) / max(right_x - left_x, 1.0), 0.0, 1.0)
        # where the lips meet (closer than min_gap_px) nothing shows between them: a rasterised polygon of no
        # area would otherwise still draw a line of teeth along the closed lips
        gap_px = self._gap_profile(tgt2d, u) * max(right_x - left_x, 1.0)
        shut = np.clip(gap_px / self.config.min_gap_px - 1.0, 0.0, 1.0)
        return (shut * self._opening_opacity(tgt2d, u, left_x, right_x)).astype(np.float32)

    def _opening_opacity(self, tgt2d: np.ndarray, u: np.ndarray, left_x: float, right_x: float) -> np.ndarray:
        """:meth:`_interior_opacity` before the closed-lips cut, at relative positions ``u`` across the mouth."""
        if self.mouth.photo_teeth:
            m = self.mouth
            skull, _ = m.carriers(tgt2d)
            width = max(right_x - left_x, 1.0)
            moved = []
            for lip in (self.upper_lip, self.lower_lip):
                carried = _affine(m.source_mesh[lip], skull)
                x = left_x + u * width
                moved.append(np.abs(np.interp(x, tgt2d[lip, 0], tgt2d[lip, 1])
                                    - np.interp(x, carried[:, 0], carried[:, 1])) / width)
            return np.clip((np.maximum(*moved) - LIP_SLACK) / self.config.fade_gap, 0.0, 1.0).astype(np.float32)
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

    def paint_lip_line(self, image: np.ndarray, tgt2d: np.ndarray, paint: np.ndarray | None = None,
                       to_image: np.ndarray | None = None) -> np.ndarray:
        """``image`` (H, W, 3) uint8 with the shaded line where the target's lips close over an opening the
        photo shows (closed lips show one, their own shadow; warped from a photo of parted lips they have none
        and read as a pink opening), fading out as the lips part and toward the corners; a photo of closed
        lips keeps its own. Its opacity is max-ed into ``paint`` when given.
        ``to_image``: as :meth:`paint_lids`."""
        c = self.config
        up, lo = tgt2d[self.upper_lip], tgt2d[self.lower_lip]
        left_x, right_x = min(up[0, 0], lo[0, 0]), max(up[-1, 0], lo[-1, 0])
        width = right_x - left_x
        if width < 2.0:
            return image
        u = np.linspace(0.0, 1.0, 33)
        x = left_x + u * width
        y_up, y_lo = np.interp(x, up[:, 0], up[:, 1]), np.interp(x, lo[:, 0], lo[:, 1])
        src_gap = self._gap_profile(self.source_mesh[:, :2], u)
        closing = np.clip(1.0 - (y_lo - y_up) / width / np.maximum(src_gap, 1e-6), 0.0, 1.0) * (src_gap > MIN_OPEN_GAP)
        strength = c.lip_line * closing * np.clip(1.0 - (y_lo - y_up) / (c.lip_line_open * width), 0.0, 1.0)
        strength *= 0.4 + 0.6 * np.sin(np.pi * u) ** 0.5  # lighter toward the corners
        if strength.max() <= 0.01:
            return image
        pts = np.stack([x, (y_up + y_lo) / 2], axis=1)
        scale = 1.0
        if to_image is not None:
            to_image = np.asarray(to_image, np.float64)
            pts = _affine(pts, to_image)
            scale = float(np.hypot(*to_image[:, 0]))
        thick = max(c.lip_line_width * width * scale, 1.0)
        h, w = image.shape[:2]
        pad = int(np.ceil(2 * thick)) + 2
        x0, y0 = np.clip(np.floor(pts.min(axis=0)).astype(int) - pad, 0, [w, h])
        x1, y1 = np.clip(np.ceil(pts.max(axis=0)).astype(int) + pad, 0, [w, h])
        if x1 <= x0 or y1 <= y0:
            return image
        mask = np.zeros((y1 - y0, x1 - x0), np.float32)
        fixed = np.round((pts - [x0, y0]) * SUBPIXEL).astype(np.int32)
        for k in range(len(pts) - 1):  # each segment at its own strength
            seg = np.zeros_like(mask)
            cv2.line(seg, tuple(fixed[k]), tuple(fixed[k + 1]), float((strength[k] + strength[k + 1]) / 2),
                     max(round(thick), 1), cv2.LINE_AA, SUBPIXEL_BITS)
            np.maximum(mask, seg, out=mask)
        mask = cv2.GaussianBlur(mask, (0, 0), 0.35 * thick)
        sub = image[y0:y1, x0:x1].astype(np.float32)
        out = image.copy()
        out[y0:y1, x0:x1] = np.clip(sub + (self.mouth.line_rgb - sub) * mask[..., None] + 0.5, 0, 255).astype(np.uint8)
        if paint is not None:
            np.maximum(paint[y0:y1, x0:x1], mask, out=paint[y0:y1, x0:x1])
        return out

    def _mouth_colour(self, tgt2d: np.ndarray, xf: np.ndarray, yf: np.ndarray) -> np.ndarray:
        """(N, 3) float32 colour of teeth, gums, cavity and tongue at frame positions (N,) between the lips."""
        up, lo = tgt2d[self.upper_lip], tgt2d[self.lower_lip]
        return self.mouth.colour(tgt2d, up, lo, xf, yf)

    def _blend_mouth(self, image: np.ndarray, tgt2d: np.ndarray, ys: np.ndarray, xs: np.ndarray, fx: np.ndarray,
                     fy: np.ndarray, opacity: np.ndarray) -> np.ndarray:
        """Blend cavity, teeth and tongue into ``image`` at pixels (ys, xs) (frame positions fx, fy) with
        ``opacity`` (N,), column by column between the lip contours."""
        colour = self._mouth_colour(tgt2d, fx.astype(np.float32), fy.astype(np.float32))
        a = opacity[:, None]
        out = image.copy()
        out[ys, xs] = np.clip(a * colour + (1 - a) * out[ys, xs], 0, 255).astype(np.uint8)
        return out
