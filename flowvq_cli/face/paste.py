"""Paste rendered 256² face crops back into the full photo, without visible seams.

The crop came from the photo by a similarity transform (``align``); each rendered crop goes back by its
inverse into the crop's footprint only (a bounding box of the photo), blended with a mask that is 1 inside
the crop and falls smoothly to 0 over :data:`FEATHER_FRACTION` of the crop towards its border. Renderers
keep the crop border equal to the source photo (the mesh-warp renderer pins it; VQIG is trained on whole
crops), so the blend region carries no edge. The crop is resampled into the photo at sub-pixel positions
(and enlarged when the face is larger than the crop) bicubically: bilinear sampling would soften it
(``flowvq evaluate``'s sharpness ratio of a generated video: 0.52 bilinear, 0.65 bicubic on
``examples/face.png``).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

FEATHER_FRACTION = 0.1  # width of the blend ramp, as a fraction of the crop side
BOX_MARGIN_PX = 2  # extra pixels around the footprint (interpolation support)


@dataclass(frozen=True)
class PasteBack:
    """Precomputed geometry for pasting many frames of one photo.

    image: (H, W, 3) uint8 photo; to_box: (2, 3) crop → box-local pixels; box: (x0, y0, x1, y1) in the photo;
    alpha: (y1 - y0, x1 - x0, 1) float32 blend weights of the crop in the box.
    """

    image: np.ndarray
    to_box: np.ndarray
    box: tuple[int, int, int, int]
    alpha: np.ndarray
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
                   alpha=alpha[..., None], crop_size=crop_size)

    def __call__(self, crop: np.ndarray) -> np.ndarray:
        """One rendered crop (S, S, 3) uint8 → the full photo with it pasted in (H, W, 3) uint8."""
        x0, y0, x1, y1 = self.box
        warped = cv2.warpAffine(crop, self.to_box, (x1 - x0, y1 - y0), flags=cv2.INTER_CUBIC,
                                borderMode=cv2.BORDER_REPLICATE)
        out = self.image.copy()
        region = out[y0:y1, x0:x1].astype(np.float32)
        out[y0:y1, x0:x1] = np.clip(region + self.alpha * (warped.astype(np.float32) - region) + 0.5, 0, 255
                                    ).astype(np.uint8)
        return out
