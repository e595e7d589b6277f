"""Paste-back: a rendered crop goes back into the photo without seams and without losing its detail."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from flowvq_cli.face import align
from flowvq_cli.face.paste import PasteBack, WarpPaste


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-12)))


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A 480² photo with detail at every scale: smooth shading plus blurred noise (seeded)."""
    rng = np.random.default_rng(0)
    ys, xs = np.mgrid[0:480, 0:480].astype(np.float32)
    shade = 120 + 60 * np.sin(xs / 70.0)[..., None] * np.cos(ys / 90.0)[..., None]
    texture = cv2.GaussianBlur(rng.normal(0, 40, (480, 480, 3)).astype(np.float32), (0, 0), 1.2)
    return np.clip(shade + texture, 0, 255).astype(np.uint8)


def test_pasting_the_photos_own_crop_gives_the_photo_back(photo: np.ndarray) -> None:
    """The crop (a rotated, 1.4× larger face region brought to 256²) pasted back: the photo outside the
    crop's box is untouched, and inside it is the photo again up to the two resamplings; bicubic paste-back
    keeps more of the detail than bilinear would."""
    alignment = align.Alignment.from_params(np.array([np.log(256 / 360), np.radians(8.0), 240.3, 250.7]))
    crop = align.crop(photo, alignment)
    paster = PasteBack.build(photo, alignment.matrix)
    out = paster(crop)
    x0, y0, x1, y1 = paster.box
    outside = np.ones(photo.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    assert np.array_equal(out[outside], photo[outside])
    inner = (slice(y0 + 40, y1 - 40), slice(x0 + 40, x1 - 40))  # where the blend weight is 1
    assert psnr(out[inner], photo[inner]) > 30
    bilinear = cv2.warpAffine(crop, paster.to_box, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
    local = (slice(40, y1 - y0 - 40), slice(40, x1 - x0 - 40))
    assert psnr(out[inner], photo[inner]) > psnr(bilinear[local], photo[inner]) + 0.3
    laplacian = [cv2.Laplacian(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var()
                 for img in (out[inner], bilinear[local])]
    assert laplacian[0] > 1.2 * laplacian[1]


@pytest.fixture(scope="module")
def fine_photo() -> np.ndarray:
    """The photo with pixel-scale detail (noise blurred by 0.6 px only): more than a 256² crop of a
    360-pixel region can hold."""
    rng = np.random.default_rng(1)
    ys, xs = np.mgrid[0:480, 0:480].astype(np.float32)
    shade = 120 + 60 * np.sin(xs / 70.0)[..., None] * np.cos(ys / 90.0)[..., None]
    texture = cv2.GaussianBlur(rng.normal(0, 40, (480, 480, 3)).astype(np.float32), (0, 0), 0.6)
    return np.clip(shade + texture, 0, 255).astype(np.uint8)


def _identity_flow(size: int) -> np.ndarray:
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    return np.stack([xs, ys], axis=-1)  # (S, S, 2): every crop pixel shows itself


@pytest.fixture(scope="module")
def alignment() -> align.Alignment:
    """A rotated face region 1.4× larger than the crop: the crop shrinks the photo."""
    return align.Alignment.from_params(np.array([np.log(256 / 360), np.radians(8.0), 240.3, 250.7]))


def test_warp_paste_of_a_still_frame_is_the_photo_itself(fine_photo: np.ndarray, alignment: align.Alignment) -> None:
    """Where the renderer moves nothing, the photo is sampled at its own pixels: it comes back exactly,
    detail the 256² crop could not hold included (pasting the crop back loses it: < 35 dB)."""
    crop = align.crop(fine_photo, alignment)
    paster = WarpPaste.build(fine_photo, alignment.matrix, crop)
    out = paster(crop, _identity_flow(256), np.zeros((256, 256), np.float32))
    assert np.abs(out.astype(int) - fine_photo).max() <= 1
    x0, y0, x1, y1 = paster.paste.box
    inner = (slice(y0 + 40, y1 - 40), slice(x0 + 40, x1 - 40))
    assert psnr(PasteBack.build(fine_photo, alignment.matrix)(crop)[inner], fine_photo[inner]) < 35


def test_warp_paste_follows_the_flow_in_photo_pixels(fine_photo: np.ndarray, alignment: align.Alignment) -> None:
    """A crop flow that shows every pixel from 3 crop pixels to its right moves the photo by 3 crop pixels
    along the crop's x axis: 3 / scale photo pixels, rotated with the crop."""
    crop = align.crop(fine_photo, alignment)
    flow = _identity_flow(256)
    flow[..., 0] += 3.0
    out = WarpPaste.build(fine_photo, alignment.matrix, crop)(crop, flow, np.zeros((256, 256), np.float32))
    m = np.asarray(alignment.matrix, np.float64)
    to_photo = np.linalg.inv(np.vstack([m, [0, 0, 1]]))[:2]
    shift = to_photo[:, :2] @ np.array([3.0, 0.0])  # photo displacement of 3 crop pixels along x
    expected = cv2.warpAffine(fine_photo, np.array([[1, 0, shift[0]], [0, 1, shift[1]]]), fine_photo.shape[1::-1],
                              flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
    assert np.linalg.norm(shift) > 3.0 / 0.75  # the crop shrank the photo: more than 3 photo pixels
    centre = (slice(180, 320), slice(170, 310))
    assert psnr(out[centre], expected[centre]) > 40
    assert psnr(out[centre], fine_photo[centre]) < 25  # it did move


def test_warp_paste_composes_the_painted_layer(fine_photo: np.ndarray, alignment: align.Alignment) -> None:
    """What the renderer paints comes from its frame with the paint's opacity: an opaque painted disc is its
    colour in the photo, a half-opaque one half its colour over the photo; the rest is the photo."""
    crop = align.crop(fine_photo, alignment)
    paint = np.zeros((256, 256), np.float32)
    cv2.circle(paint, (90, 128), 30, 1.0, -1)
    cv2.circle(paint, (180, 128), 30, 0.5, -1)
    colour = np.array([20.0, 200.0, 40.0], np.float32)
    frame = np.clip(paint[..., None] * colour + (1 - paint[..., None]) * crop, 0, 255).round().astype(np.uint8)
    paster = WarpPaste.build(fine_photo, alignment.matrix, crop)
    out = paster(frame, _identity_flow(256), paint).astype(np.float32)
    m = np.asarray(alignment.matrix, np.float64)
    to_photo = np.linalg.inv(np.vstack([m, [0, 0, 1]]))[:2]
    (ax, ay), (bx, by) = (np.round(to_photo @ np.array([x, 128.0, 1.0])).astype(int) for x in (90, 180))
    r = 15  # photo pixels well inside each disc (its radius is 30 / 0.71 ≈ 42)
    opaque = out[ay - r : ay + r, ax - r : ax + r]
    assert np.abs(opaque - colour).max() <= 2
    half = out[by - r : by + r, bx - r : bx + r]
    expected = 0.5 * colour + 0.5 * fine_photo[by - r : by + r, bx - r : bx + r].astype(np.float32)
    assert np.abs(half - expected).max() <= 2
    far = (slice(40, 100), slice(40, 100))
    assert np.array_equal(out[far].astype(np.uint8), fine_photo[far])


@pytest.mark.parametrize("name", ["face.png", "face2.png"])  # face2: a face larger than the crop
def test_generated_frames_keep_the_photos_own_detail(name: str) -> None:
    """Into the photo: the photo's own face shape gives the photo back, and a talking frame (``warp_frames``,
    jaw open, smiling) keeps the detail of the photo's face (measured 1.11 / 1.01 of its Laplacian variance,
    the drawn teeth included), where rendering the 256² crop and pasting it back kept 0.81 / 0.70."""
    from flowvq_cli.api import mesh_renderer, warp_frames
    from flowvq_cli.eval import sharpness_ratio
    from flowvq_cli.face import rig
    from flowvq_cli.face.source import prepare_face

    src = prepare_face(Path(__file__).resolve().parents[2] / "examples" / name)
    coeffs = np.repeat(src.coeffs[None].astype(np.float32), 2, axis=0)
    coeffs[1, rig.ARKIT_NAMES.index("jawOpen")] = 0.4
    coeffs[1, [rig.ARKIT_NAMES.index("mouthSmileLeft"), rig.ARKIT_NAMES.index("mouthSmileRight")]] = 0.5
    _, talking = warp_frames(src, coeffs)
    renderer, _ = mesh_renderer(src)
    own = renderer.render(src.mesh[None])
    paster = WarpPaste.from_renderer(src.image, src.crop_matrix, renderer, draw=True)
    still = paster(own.frames[0], own.flow[0], own.paint[0], own.mouth_paint[0], src.mesh)
    assert np.abs(still.astype(int) - src.image).max() <= 1
    alignment = align.Alignment.from_matrix(src.crop_matrix)
    crop_frame = renderer.render(rig.synthesize(src.identity, coeffs[1:])).frames[0]
    pasted = PasteBack.build(src.image, src.crop_matrix)(crop_frame)
    kept = [float(sharpness_ratio(align.crop(frame, alignment)[None], src.crop)[0]) for frame in (talking, pasted)]
    assert kept[0] > 0.95 and kept[0] > kept[1] + 0.2, kept


@pytest.fixture(scope="module")
def face2_talking():
    """face2 (larger than the crop), its mesh-warp renderer and a talking frame with a closing left lid."""
    from flowvq_cli.api import mesh_renderer
    from flowvq_cli.face import rig
    from flowvq_cli.face.source import prepare_face

    src = prepare_face(Path(__file__).resolve().parents[2] / "examples" / "face2.png")
    renderer, _ = mesh_renderer(src)
    coeffs = src.coeffs[None].astype(np.float32).copy()
    coeffs[0, rig.ARKIT_NAMES.index("jawOpen")] = 0.35
    coeffs[0, rig.ARKIT_NAMES.index("eyeBlinkLeft")] = 0.9
    mesh = rig.synthesize(src.identity, coeffs)
    return src, renderer, mesh[0], renderer.render(mesh)


def test_warp_paste_at_the_crops_own_resolution_is_the_renderers_frame(face2_talking) -> None:
    """Composed into the crop itself (an identity alignment), the warp with mouth and lids drawn again
    gives the renderer's own frame back, up to rounding: the three parts are put together right."""
    src, renderer, mesh, result = face2_talking
    assert result.mouth_paint[0].any() and (result.paint[0] > result.mouth_paint[0]).any()  # mouth and a lid
    identity = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    paster = WarpPaste.build(src.crop, identity, renderer.source, painter=renderer)
    out = paster(result.frames[0], result.flow[0], result.paint[0], result.mouth_paint[0], mesh)
    inner = (slice(8, -8), slice(8, -8))  # at the crop's edge the two sample past it differently (the chin
    # moves there when the jaw opens from closed lips: 3 pixels at row 242 differ by up to 10)
    assert np.abs(out[inner].astype(int) - result.frames[0][inner]).max() <= 3


def test_warp_paste_draws_mouth_and_lids_at_the_photos_resolution(face2_talking) -> None:
    """On a face larger than the crop, the mouth drawn again per photo pixel has far more detail than the
    one resampled from the 256² frame (variance of the Laplacian, measured 2.2×), the lid a little more
    (1.14×: most of it is the photo under it); nothing else in the photo differs."""
    src, renderer, mesh, result = face2_talking
    paster = WarpPaste.build(src.image, src.crop_matrix, renderer.source, painter=renderer)
    drawn = paster(result.frames[0], result.flow[0], result.paint[0], result.mouth_paint[0], mesh)
    resampled = paster(result.frames[0], result.flow[0], result.paint[0])  # no mesh: the frame's paint
    to_photo = np.linalg.inv(np.vstack([src.crop_matrix, [0, 0, 1]]))[:2]

    def photo_box(painted: np.ndarray, margin: int = 0) -> tuple[slice, slice]:
        ys, xs = np.nonzero(painted)
        corners = np.stack([xs, ys], axis=1) @ to_photo[:, :2].T + to_photo[:, 2]
        (x0, y0), (x1, y1) = np.floor(corners.min(axis=0)).astype(int), np.ceil(corners.max(axis=0)).astype(int)
        return slice(y0 - margin, y1 + 1 + margin), slice(x0 - margin, x1 + 1 + margin)

    mouth, lid = result.mouth_paint[0] > 0, (result.paint[0] > 0) & (result.mouth_paint[0] == 0)
    elsewhere = np.abs(drawn.astype(int) - resampled).max(axis=-1) > 0
    for painted in (mouth, lid):
        elsewhere[photo_box(painted, margin=5)] = False
    assert not elsewhere.any()
    detail = {name: [cv2.Laplacian(cv2.cvtColor(np.ascontiguousarray(img[photo_box(painted)]), cv2.COLOR_RGB2GRAY),
                                   cv2.CV_64F).var() for img in (drawn, resampled)]
              for name, painted in (("mouth", mouth), ("lid", lid))}
    assert detail["mouth"][0] > 1.8 * detail["mouth"][1] and detail["lid"][0] > detail["lid"][1], detail


def test_warp_paste_does_not_show_what_lies_between_the_two_sides_of_a_seam(alignment: align.Alignment) -> None:
    """Closed lips warped from parted ones: above their meeting line the crop shows the upper lip (from
    higher up), below it the lower lip (from lower down). Interpolating that jump in the displacement would
    show, at photo pixels between two crop pixels, what the photo has between the lips (its teeth): the
    nearest crop pixel's displacement is taken there instead."""
    photo = np.zeros((480, 480, 3), np.uint8)
    photo[:] = (200, 60, 60)  # upper lip
    photo[250:, :] = (60, 60, 200)  # lower lip
    photo[235:265, :] = (255, 255, 255)  # the teeth between them
    crop = align.crop(photo, alignment)
    to_crop = np.asarray(alignment.matrix, np.float64)
    centre = to_crop @ np.array([240.0, 250.0, 1.0])  # the teeth's middle, in the crop
    normal = to_crop[:, :2] @ np.array([0.0, 1.0])
    normal /= np.linalg.norm(normal)  # the photo's "down" in the crop
    flow = _identity_flow(256)
    side = ((flow - centre) @ normal) > 0  # below the line through the teeth's middle
    flow[~side] -= 12.0 * normal  # above it: shows from 12 crop pixels higher up (upper lip)
    flow[side] += 12.0 * normal  # below it: from 12 lower (lower lip)
    out = WarpPaste.build(photo, alignment.matrix, crop)(crop, flow, np.zeros((256, 256), np.float32))
    region = out[180:320, 170:310].astype(int)
    assert (region.min(axis=-1) > 150).sum() == 0  # no teeth-white pixel along the seam
    assert (region[..., 0] > 150).any() and (region[..., 2] > 150).any()  # both lips meet there
