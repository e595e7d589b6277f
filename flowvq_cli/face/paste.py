"""Rendered faces back into the full photo, without seams and without losing its detail.

The crop came from the photo by a similarity transform (``align``). Two ways back:

- :class:`WarpPaste`, for the mesh-warp renderer (and a ``prior_frame`` VQIG, whose frame is the warp's
  but for the mouth interior): the renderer's flow, mapped into photo pixels, samples the *photo* once, so
  the face keeps the photo's resolution; the renderer draws the mouth interior and closing lids again per
  photo pixel (a VQIG's painted mouth comes from its 256² frame).
  ``flowvq evaluate``'s sharpness ratio of a generated video, ``examples/face.png`` / ``face2.png``:
  0.88 / 0.94, against 0.65 / 0.45 with :class:`PasteBack` (face2's crop shrinks the photo 1.8 times);
  ``benchmarks/bench_paste.py`` measures the mouth.
- :class:`PasteBack`, for any rendered crop: each crop goes back by the inverse transform into the crop's
  footprint only (a bounding box of the photo), resampled bicubically (bilinear sampling would soften it:
  0.52 against 0.65 above on ``examples/face.png``).

Both blend with a mask that is 1 inside the crop and falls smoothly to 0 over :data:`FEATHER_FRACTION` of
the crop towards its border. Renderers keep the crop border equal to the source photo (the mesh-warp
renderer pins it; VQIG is trained on whole crops), so the blend region carries no edge.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

FEATHER_FRACTION = 0.1  # width of the blend ramp, as a fraction of the crop side
BOX_MARGIN_PX = 2  # extra pixels around the footprint (interpolation support)
INTERPOLATIONS = {"cubic": cv2.INTER_CUBIC, "linear": cv2.INTER_LINEAR}  # render.meshwarp's sampling, by name


@dataclass(frozen=True)
class PasteBack:
    """Precomputed geometry for pasting many frames of one photo.

    image: (H, W, 3) uint8 photo; to_box: (2, 3) crop → box-local pixels; box: (x0, y0, x1, y1) in the photo;
    alpha: (y1 - y0, x1 - x0) float32 blend weights of the crop in the box; rest: 1 − alpha (the photo's).
    """

    image: np.ndarray
    to_box: np.ndarray
    box: tuple[int, int, int, int]
    alpha: np.ndarray
    rest: np.ndarray
    crop_size: int

    @classmethod
    def build(cls, image: np.ndarray, crop_matrix: np.ndarray, crop_size: int = 256) -> PasteBack:
        """``crop_matrix``: (2, 3) similarity photo → crop (as ``align.Alignment.matrix``)."""
        m = np.vstack([np.asarray(crop_matrix, np.float64), [0.0, 0.0, 1.0]])
        inv = np.linalg.inv(m)[:2]  # crop → photo
        corners = np.array([[0, 0], [crop_size, 0], [crop_size, crop_size], [0, crop_size]], np.float64)
        pts = corners @ inv[:, :2].T + inv[:, 2]
        h, w = image.shape[:2]
        x0, y0 = np.maximum(np.floor(pts.min(0)).astype(int) - BOX_MARGIN_PX, 0)
        x1, y1 = np.minimum(np.ceil(pts.max(0)).astype(int) + BOX_MARGIN_PX, [w, h])
        to_box = inv.copy()
        to_box[:, 2] -= (x0, y0)
        ramp = max(1.0, FEATHER_FRACTION * crop_size)
        ys, xs = np.mgrid[0:crop_size, 0:crop_size].astype(np.float32) + 0.5
        edge = np.minimum.reduce([xs, ys, crop_size - xs, crop_size - ys])  # distance to the crop border
        t = np.clip(edge / ramp, 0.0, 1.0)
        crop_alpha = t * t * (3.0 - 2.0 * t)  # smoothstep
        alpha = cv2.warpAffine(crop_alpha, to_box, (int(x1 - x0), int(y1 - y0)), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
        return cls(image=np.ascontiguousarray(image), to_box=to_box, box=(int(x0), int(y0), int(x1), int(y1)),
                   alpha=alpha, rest=1.0 - alpha, crop_size=crop_size)

    def __call__(self, crop: np.ndarray) -> np.ndarray:
        """One rendered crop (S, S, 3) uint8 → the full photo with it pasted in (H, W, 3) uint8."""
        x0, y0, x1, y1 = self.box
        warped = cv2.warpAffine(crop, self.to_box, (x1 - x0, y1 - y0), flags=cv2.INTER_CUBIC,
                                borderMode=cv2.BORDER_REPLICATE)
        return self.blend(warped)

    def blend(self, face: np.ndarray) -> np.ndarray:
        """The photo with ``face`` (the box's size, (h, w, 3) uint8) blended into the box by the feather
        weights (H, W, 3) uint8."""
        x0, y0, x1, y1 = self.box
        out = self.image.copy()
        out[y0:y1, x0:x1] = cv2.blendLinear(face, np.ascontiguousarray(out[y0:y1, x0:x1]), self.alpha, self.rest)
        return out


class Painter(Protocol):
    """What draws the painted parts (mouth interior, closing lids) at any resolution: the mesh-warp renderer
    (:class:`~flowvq_cli.render.meshwarp.MeshWarpRenderer`)."""

    def paint_mouth(self, image: np.ndarray, tgt2d: np.ndarray, to_image: np.ndarray | None = None
                    ) -> np.ndarray: ...

    def paint_lids(self, image: np.ndarray, tgt2d: np.ndarray, paint: np.ndarray | None = None,
                   to_image: np.ndarray | None = None, source: np.ndarray | None = None) -> np.ndarray: ...

    def paint_lip_line(self, image: np.ndarray, tgt2d: np.ndarray, paint: np.ndarray | None = None,
                       to_image: np.ndarray | None = None) -> np.ndarray: ...


FLOW_JUMP = 4.0  # crop pixels: a displacement differing by more from a neighbour's is a seam, not a slope
SEAM_BLUR = 0.5  # crop pixels: the blur that draws such a seam as a line instead of a staircase


def flow_jumps(shift: np.ndarray) -> np.ndarray:
    """(S, S) the largest difference (crop pixels) between each pixel's displacement (S, S, 2) and its
    four neighbours'."""
    out = np.zeros(shift.shape[:2], np.float32)
    dy = np.abs(np.diff(shift, axis=0)).max(axis=-1)
    dx = np.abs(np.diff(shift, axis=1)).max(axis=-1)
    out[1:] = np.maximum(out[1:], dy)
    out[:-1] = np.maximum(out[:-1], dy)
    out[:, 1:] = np.maximum(out[:, 1:], dx)
    out[:, :-1] = np.maximum(out[:, :-1], dx)
    return out


def soften_seams(image: np.ndarray, seam: np.ndarray, sigma: float) -> np.ndarray:
    """``image`` (h, w, 3) uint8 with the pixels of ``seam`` (h, w) bool blurred by ``sigma`` pixels, in
    place: a seam follows the crop's pixels, a staircase that the blur draws as a line."""
    ys, xs = np.nonzero(seam)
    if len(ys) == 0:
        return image
    pad = int(np.ceil(3 * sigma)) + 1
    y0, x0 = max(int(ys.min()) - pad, 0), max(int(xs.min()) - pad, 0)
    y1, x1 = int(ys.max()) + pad + 1, int(xs.max()) + pad + 1
    sub = image[y0:y1, x0:x1]
    blurred = cv2.GaussianBlur(sub, (0, 0), sigma)
    mask = seam[y0:y1, x0:x1]
    sub[mask] = blurred[mask]
    return image


@dataclass(frozen=True)
class WarpPaste:
    """Mesh-warp frames composed at the photo's own resolution instead of pasted from the 256² crop.

    The mesh-warp renderer's flow says, for each crop pixel, which crop position it shows. Mapped through
    the crop's similarity transform, that is a position in the photo, so each photo pixel of the crop's
    footprint samples the *photo* once, bicubically, where :class:`PasteBack` would resample the photo
    into the crop, warp it there and resample it back: a still face keeps the photo's own pixels, a moving
    one the photo's own detail even where the crop shrank it (a face larger than the crop). What the
    renderer paints (mouth interior, closing lids) has no detail in the photo; it comes from the crop,
    composed as a premultiplied layer (the rendered frame minus the warped crop under it) with the paint
    opacity, both resampled bicubically into the photo. With a ``painter`` (the renderer) the mouth interior
    and the lids are drawn again at the photo's resolution instead, from the frame's target mesh: drawn
    teeth and lash lines stay sharp on a face larger than the crop, and a closed lid takes the photo's own
    lid skin at the photo's resolution (the renderer mirrors the skin above the crease down over the eye).
    The border blend is :class:`PasteBack`'s.

    paste: the geometry (box, feather); source_crop: (S, S, 3) uint8 crop the renderer warps;
    crop_xy, photo_xy: (h, w, 2) float32 crop and photo position of each box pixel; crop_grid: (S, S, 2)
    float32 each crop pixel's own position; interpolation: cv2 flag
    the renderer samples the crop with (its pre-paint frame is recomputed); painter: draws the mouth
    interior and the lids at the photo's resolution when given.
    """

    paste: PasteBack
    source_crop: np.ndarray
    crop_xy: np.ndarray
    photo_xy: np.ndarray
    crop_grid: np.ndarray
    interpolation: int
    painter: Painter | None = None

    @classmethod
    def build(cls, image: np.ndarray, crop_matrix: np.ndarray, source_crop: np.ndarray,
              interpolation: int = cv2.INTER_CUBIC, painter: Painter | None = None) -> WarpPaste:
        """``crop_matrix``: (2, 3) similarity photo → crop; ``source_crop``: the crop the renderer warps (its
        side is the renderer's frame size); ``painter``: the renderer, to draw the mouth interior and the lids
        at the photo's resolution (frames then come with their target mesh)."""
        size = source_crop.shape[0]
        paste = PasteBack.build(image, crop_matrix, size)
        m = np.asarray(crop_matrix, np.float64)
        x0, y0, x1, y1 = paste.box
        photo_xy = np.stack(np.meshgrid(np.arange(x0, x1), np.arange(y0, y1)), axis=-1).astype(np.float32)
        crop_xy = cv2.transform(photo_xy, m.astype(np.float32))  # (h, w, 2)
        crop_grid = np.stack(np.meshgrid(np.arange(size), np.arange(size)), axis=-1).astype(np.float32)
        return cls(paste=paste, source_crop=np.ascontiguousarray(source_crop), crop_xy=crop_xy, photo_xy=photo_xy,
                   crop_grid=crop_grid, interpolation=interpolation, painter=painter)

    @classmethod
    def from_renderer(cls, image: np.ndarray, crop_matrix: np.ndarray, renderer, *, draw: bool = False) -> WarpPaste:
        """:meth:`build` for the frames of ``renderer`` (the mesh-warp renderer of the photo's crop): its source
        crop and sampling; with ``draw`` it is also the painter, drawing the mouth interior and the lids at the
        photo's resolution."""
        return cls.build(image, crop_matrix, renderer.source, INTERPOLATIONS[renderer.config.interpolation],
                         painter=renderer if draw else None)

    def __call__(self, frame: np.ndarray, flow: np.ndarray, paint: np.ndarray, mouth_paint: np.ndarray | None = None,
                 target_mesh: np.ndarray | None = None, under: np.ndarray | None = None) -> np.ndarray:
        """One rendered frame (S, S, 3) uint8, its flow (S, S, 2) (crop position each pixel shows) and paint
        opacity (S, S) → the full photo with the face composed in (H, W, 3) uint8. With a ``painter``, also
        the frame's mouth-interior opacity (S, S) and target mesh (468, 2+) (frame pixels): the mouth interior,
        the lip line and the lids are drawn at the photo's resolution, and nothing comes from the frame's
        pixels; but with ``under`` (S, S, 3), the painter's own frame that ``frame`` was composed on (a
        ``prior_frame`` VQIG's), the mouth interior is ``frame``'s, composed over the photo with its opacity
        ``mouth_paint``."""
        p = self.paste
        draw = self.painter is not None and target_mesh is not None
        if draw and mouth_paint is None:
            raise ValueError("drawing the mouth at the photo's resolution needs the frame's mouth_paint")
        # The crop displacement is interpolated (extended past the crop's edge, where the renderer pins it to
        # 0), so a box pixel outside the crop, or between its pixels, keeps its own position; in the photo
        # it is the displacement through the similarity's linear part.
        shift = np.ascontiguousarray(flow, np.float32) - self.crop_grid
        moved = cv2.remap(shift, self.crop_xy, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)  # (h, w, 2)
        # Where the displacement jumps (lips that meet: above the line they show upper lip, below it lower
        # lip) interpolating it would show what lies between in the photo (its teeth): take the nearest
        # crop pixel's there.
        jump = flow_jumps(shift) > FLOW_JUMP
        if jump.any():
            near = cv2.remap(jump.astype(np.uint8), self.crop_xy, None, cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REPLICATE) > 0
            if near.any():
                nearest = cv2.remap(shift, self.crop_xy, None, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)
                moved[near] = nearest[near]
            else:
                near = None
        else:
            near = None
        linear = np.hstack([p.to_box[:, :2], np.zeros((2, 1))]).astype(np.float32)
        shown = self.photo_xy + cv2.transform(moved, linear)  # (h, w, 2) photo position each box pixel shows
        face = cv2.remap(p.image, shown, None, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)  # (h, w, 3)
        if near is not None:
            face = soften_seams(face, near, SEAM_BLUR * float(np.hypot(*p.to_box[:, 0])))  # box px per crop px
        if draw:  # in box pixels: p.to_box maps the crop there
            tgt2d = np.asarray(target_mesh, np.float64)[:, :2]
            if np.any(mouth_paint > 0) and under is not None:
                self._compose_paint(face, frame, flow, np.ascontiguousarray(mouth_paint, np.float32), under)
            elif np.any(mouth_paint > 0):
                face = self.painter.paint_mouth(face, tgt2d, to_image=p.to_box)
            face = self.painter.paint_lip_line(face, tgt2d, to_image=p.to_box)
            face = self.painter.paint_eyes(face, tgt2d, to_image=p.to_box)
            x0, y0, x1, y1 = p.box  # the lids' skin from the photo itself, at its resolution
            face = self.painter.paint_lids(face, tgt2d, to_image=p.to_box, source=p.image[y0:y1, x0:x1])
        elif np.any(paint > 0):
            self._compose_paint(face, frame, flow, np.ascontiguousarray(paint, np.float32))
        return p.blend(face)

    def _compose_paint(self, face: np.ndarray, frame: np.ndarray, flow: np.ndarray, paint: np.ndarray,
                       under: np.ndarray | None = None) -> None:
        """Compose the painted layer into ``face`` (h, w, 3) uint8, in place, within the painted part's box
        only: the layer (frame − (1 − paint) · the frame it was painted over: ``under``, else the warped crop)
        and the paint opacity (S, S), both resampled bicubically."""
        ys, xs = np.nonzero(paint > 0)
        pad = 3  # the bicubic kernel's reach, plus a pixel
        cx0, cy0 = max(int(xs.min()) - pad, 0), max(int(ys.min()) - pad, 0)
        cx1, cy1 = int(xs.max()) + pad + 1, int(ys.max()) + pad + 1
        crop_box = (slice(cy0, cy1), slice(cx0, cx1))
        if under is None:
            under = cv2.remap(self.source_crop, np.ascontiguousarray(flow[crop_box]), None, self.interpolation,
                              borderMode=cv2.BORDER_REPLICATE)  # the renderer's frame there before painting
        else:
            under = under[crop_box].astype(np.float32)
        layer = np.zeros(frame.shape, np.float32)  # (S, S, 3), 0 where nothing is painted
        layer[crop_box] = frame[crop_box].astype(np.float32) - (1.0 - paint[crop_box][..., None]) * under
        corners = np.array([[cx0, cy0], [cx1, cy0], [cx1, cy1], [cx0, cy1]], np.float64)
        photo = corners @ self.paste.to_box[:, :2].T + self.paste.to_box[:, 2]  # box pixels
        h, w = face.shape[:2]
        bx0, by0 = np.clip(np.floor(photo.min(axis=0)).astype(int) - 1, 0, [w, h])
        bx1, by1 = np.clip(np.ceil(photo.max(axis=0)).astype(int) + 2, 0, [w, h])
        if bx1 <= bx0 or by1 <= by0:
            return
        at = np.ascontiguousarray(self.crop_xy[by0:by1, bx0:bx1])
        o = cv2.remap(paint, at, None, cv2.INTER_CUBIC, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
        lay = cv2.remap(layer, at, None, cv2.INTER_CUBIC, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
        sub = face[by0:by1, bx0:bx1].astype(np.float32)
        sub = sub * (1.0 - np.clip(o, 0.0, 1.0)[..., None]) + lay
        face[by0:by1, bx0:bx1] = np.clip(sub + 0.5, 0, 255).astype(np.uint8)
