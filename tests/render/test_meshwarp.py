"""Mesh-warp renderer on the real example photo: identity warp, translation, jaw opening, head turn."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from flowvq_cli.eval import sharpness_ratio
from flowvq_cli.face import align, rig
from flowvq_cli.face.analyze import analyze_image
from flowvq_cli.image import load_image
from flowvq_cli.render.meshwarp import MeshWarpConfig, MeshWarpRenderer

JAW_OPEN = rig.ARKIT_NAMES.index("jawOpen")


@pytest.fixture(scope="module")
def source(face_png: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(crop (256, 256, 3), identity (468, 3), source coeffs (58,))."""
    a = analyze_image(face_png)
    crop = align.crop(load_image(face_png), align.Alignment.from_matrix(a.crop_matrix[0]))
    return crop, a.identity, a.coeffs[0]


@pytest.fixture(scope="module")
def renderer(source) -> MeshWarpRenderer:
    crop, identity, coeffs = source
    return MeshWarpRenderer(crop, rig.synthesize(identity, coeffs[None])[0])


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-12)))


def test_identity_warp_reproduces_the_source(renderer: MeshWarpRenderer, source) -> None:
    crop = source[0]
    frame, flow, mouth, *_ = renderer.render_one(renderer.source_mesh)
    grid = np.stack(np.meshgrid(np.arange(256), np.arange(256)), axis=-1)
    assert np.abs(flow - grid)[~mouth].max() < 0.5
    assert psnr(frame, crop) > 40


def test_bicubic_sampling_keeps_the_photo_sharper_than_bilinear(source) -> None:
    """A half-pixel shift, the worst case of bilinear sampling (each output pixel the mean of two): the
    default bicubic sampling keeps most of the face's Laplacian variance, bilinear loses about half of it."""
    crop, identity, coeffs = source
    mesh = rig.synthesize(identity, coeffs[None])[0]
    shifted = mesh.copy()
    shifted[:, :2] += 0.5
    x0, y0 = mesh[:, :2].min(axis=0).astype(int) + 4
    x1, y1 = mesh[:, :2].max(axis=0).astype(int) - 4
    box = (int(x0), int(y0), int(x1), int(y1))
    kept = {}
    for interpolation in ("linear", "cubic"):
        config = MeshWarpConfig(interpolation=interpolation)
        frame = MeshWarpRenderer(crop, mesh, config).render_one(shifted).frame
        kept[interpolation] = float(sharpness_ratio(frame[None], crop, box, box)[0])
    assert MeshWarpConfig().interpolation == "cubic"
    assert kept["linear"] < 0.6 and kept["cubic"] > 0.75, kept
    with pytest.raises(ValueError, match="interpolation must be one of cubic, linear"):
        MeshWarpConfig(interpolation="nearest")


def test_translation_moves_the_face(renderer: MeshWarpRenderer) -> None:
    target = renderer.source_mesh.copy()
    target[:, 0] += 6.0
    _, flow, mouth, *_ = renderer.render_one(target)
    nose = target[1, :2].round().astype(int)
    # a pixel on the moved face samples the source 6 px to its left
    np.testing.assert_allclose(flow[nose[1], nose[0]], [nose[0] - 6.0, nose[1]], atol=0.05)
    # the crop border stays put (background does not slide)
    assert np.abs(flow[0, :, 0] - np.arange(256)).max() < 0.05
    assert not mouth.any()


def test_jaw_open_paints_a_mouth_interior(renderer: MeshWarpRenderer, source) -> None:
    _, identity, coeffs = source
    target = coeffs.copy()
    target[JAW_OPEN] = 1.0
    mesh = rig.synthesize(identity, target[None])[0]
    frame, flow, mouth, *_ = renderer.render_one(mesh)
    assert mouth.sum() > 150  # the lips part
    inside = frame[mouth].astype(float)
    assert (inside.mean(axis=1) > 170).sum() > 20  # teeth
    assert (inside.mean(axis=1) < 90).sum() > 20  # dark cavity / tongue shade
    chin = 152  # the chin moves down, so output pixels there sample from higher up in the source
    chin_xy = mesh[chin, :2].round().astype(int)
    assert flow[chin_xy[1], chin_xy[0], 1] < chin_xy[1] - 3
    closed = rig.synthesize(identity, coeffs[None])[0]
    assert not renderer.render_one(closed)[2].any()


def test_head_turn_leaves_no_holes_and_batches(renderer: MeshWarpRenderer, source) -> None:
    _, identity, coeffs = source
    poses = np.repeat(coeffs[None], 3, axis=0)
    poses[:, rig.N_EXP + 1] += np.radians([-20.0, 0.0, 20.0])  # yaw
    meshes = rig.synthesize(identity, poses)
    result = renderer.render(meshes)
    assert result.frames.shape == (3, 256, 256, 3) and result.flow.shape == (3, 256, 256, 2)
    for i in range(3):
        frame = renderer.render_one(meshes[i]).frame
        np.testing.assert_array_equal(result.frames[i], frame)
    assert np.isfinite(result.flow).all()
    assert (result.flow >= -1).all() and (result.flow <= 257).all()
    left, right = result.frames[0].astype(float), result.frames[2].astype(float)
    assert np.abs(left - right).mean() > 3  # turning left and right give different pictures


@pytest.fixture(scope="module")
def face2_blink(face_png: Path):
    """face2 (thick glasses, wrinkled lids): crop, source mesh, and target meshes with both eyes open and
    shut."""
    photo = face_png.parent / "face2.png"
    a = analyze_image(photo)
    crop = align.crop(load_image(photo), align.Alignment.from_matrix(a.crop_matrix[0]))
    mesh = rig.synthesize(a.identity, a.coeffs[0][None])[0]
    coeffs = np.repeat(a.coeffs[0][None], 2, axis=0)
    blink = [rig.ARKIT_NAMES.index("eyeBlinkLeft"), rig.ARKIT_NAMES.index("eyeBlinkRight")]
    coeffs[:, blink] = np.array([[0.0], [1.0]])
    return crop, mesh, rig.synthesize(a.identity, coeffs)


def _between(mesh: np.ndarray, top: np.ndarray, bottom: np.ndarray, eye: np.ndarray, lo: float, hi: float
             ) -> np.ndarray:
    """(256, 256) bool: the middle half of the eye ``eye`` (contour vertices) across, and from ``lo`` to ``hi``
    of the way from contour ``top`` down to contour ``bottom`` (vertex indices) of ``mesh``."""
    ys, xs = np.mgrid[0:256, 0:256]
    x0, x1 = mesh[eye, 0].min(), mesh[eye, 0].max()
    curve = [np.interp(xs, *mesh[idx, :2][np.argsort(mesh[idx, 0])].T) for idx in (top, bottom)]
    return ((xs > x0 + 0.25 * (x1 - x0)) & (xs < x0 + 0.75 * (x1 - x0))
            & (ys > curve[0] + lo * (curve[1] - curve[0])) & (ys < curve[0] + hi * (curve[1] - curve[0])))


def test_a_closing_eye_gets_a_lid_and_an_open_one_is_untouched(face2_blink) -> None:
    """Behind thick glasses the warp alone drags the dark lid margin, lashes and rim down over a closing eye;
    the lid drawn from the skin above the crease makes it lighter than that by far more than 5 in luma.
    Eyes that stay open are rendered exactly as without the lids."""
    from dataclasses import replace

    from flowvq_cli.face.canonical import load_canonical

    crop, mesh, targets = face2_blink
    drawn = MeshWarpRenderer(crop, mesh).render(targets).frames
    plain = MeshWarpRenderer(crop, mesh, replace(MeshWarpConfig(), lid_from=1.0)).render(targets).frames
    np.testing.assert_array_equal(drawn[0], plain[0])
    luma = np.array([0.299, 0.587, 0.114])
    groups = load_canonical().groups
    for eye in ("left", "right"):
        idx = np.concatenate([groups[f"eye_upper_{eye}"], groups[f"eye_lower_{eye}"]])
        x0, y0 = np.floor(mesh[idx, :2].min(axis=0)).astype(int)
        x1, y1 = np.ceil(mesh[idx, :2].max(axis=0)).astype(int)
        region = (slice(y0, y1 + 1), slice(x0, x1 + 1))  # where the open eye was
        assert (drawn[1][region] @ luma).mean() > (plain[1][region] @ luma).mean() + 5


def test_a_closed_lid_is_the_photos_lid_skin_not_a_smear_or_a_flat_fill(face2_blink) -> None:
    """The shut lid, between crease and lash line, is as light as the photo's skin between brow and crease
    (measured 1.24 / 1.10 of it; the lid painted in before 2026-12-03 over the warp's smear of lid margin and
    lashes: 0.54 / 0.50) and keeps its texture: the luma's high-pass (minus a 1.5-pixel blur) varies 0.47 /
    0.72 as much as there (a flat fill: 0)."""
    import cv2

    from flowvq_cli.render.meshwarp import _eyes

    crop, mesh, targets = face2_blink
    frame = MeshWarpRenderer(crop, mesh).render(targets).frames[1]
    closed = targets[1]

    def light_and_texture(img: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
        luma = img.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
        high = luma - cv2.GaussianBlur(luma, (0, 0), 1.5)
        return float(luma[mask].mean()), float(high[mask].std())

    for eye in _eyes():
        lid = _between(closed, eye.fold, eye.upper, eye.upper, 0.15, 0.75)  # clear of crease and lash line
        skin = _between(mesh, eye.brow, eye.fold, eye.upper, 0.3, 0.85)
        assert lid.sum() > 20 and skin.sum() > 10
        (lid_light, lid_texture), (skin_light, skin_texture) = light_and_texture(frame, lid), \
            light_and_texture(crop, skin)
        assert lid_light > 0.85 * skin_light, (lid_light, skin_light)
        assert lid_texture > 0.35 * skin_texture, (lid_texture, skin_texture)


def test_paint_opacity_covers_the_mouth_interior_and_the_closing_lids(renderer: MeshWarpRenderer, source) -> None:
    """``paint`` is where the renderer paints over the warped photo: zero for the photo's own expression, the
    mouth interior when the jaw opens, the lids when the eyes close, nothing else."""
    _, identity, coeffs = source
    coeffs = np.repeat(coeffs[None], 3, axis=0)
    coeffs[1, JAW_OPEN] = 1.0
    coeffs[2, [rig.ARKIT_NAMES.index("eyeBlinkLeft"), rig.ARKIT_NAMES.index("eyeBlinkRight")]] = 1.0
    result = renderer.render(rig.synthesize(identity, coeffs))
    assert result.paint.shape == (3, 256, 256) and result.paint.dtype == np.float32
    assert result.paint[0].max() < 1e-4  # nothing that shows (4e-6 at the lips' seam)
    np.testing.assert_array_equal(result.paint[1] > 0.5, result.mouth_mask[1])
    assert result.paint[2].sum() > 50 and not result.mouth_mask[2].any()
    assert result.paint.max() <= 1.0
    # the mouth's part: all of the jaw frame's paint, none of the blink's
    np.testing.assert_array_equal(result.mouth_paint[1], result.paint[1])
    assert result.mouth_paint.dtype == np.float32 and result.mouth_paint[[0, 2]].max() < 1e-4
    from dataclasses import replace

    unpainted = MeshWarpRenderer(renderer.source, renderer.source_mesh, replace(renderer.config, lid_from=1.0))
    plain = unpainted.render(rig.synthesize(identity, coeffs[2:])).frames[0]
    outside = result.paint[2] == 0  # the photo, warped, and nothing painted over it
    np.testing.assert_array_equal(result.frames[2][outside], plain[outside])
    assert result.paint[2].max() == pytest.approx(1.0, abs=1e-3)  # fully closed: the lid is fully drawn


def test_closed_lips_over_parted_ones_meet_in_a_line_that_facemesh_reads_closed(
        renderer: MeshWarpRenderer, source, monkeypatch: pytest.MonkeyPatch) -> None:
    """face.png smiles with parted lips; its neutral face closes them. Where they meet, the triangles
    between the lips have collapsed: drawn, each would paint a line of its unstable map (the photo's teeth)
    there; skipped, the lips meet as lip (redder along the line). And the shaded line where they meet makes
    MediaPipe read them closed: without it the warped lips read as a pink opening 0.12 mouth widths tall."""
    import cv2

    from flowvq_cli.face.analyze import analyze_rgb
    from flowvq_cli.face.canonical import lip_gap
    from flowvq_cli.render import meshwarp

    _, identity, coeffs = source
    neutral = coeffs[None].copy()
    neutral[:, : rig.N_EXP] = 0.0
    mesh = rig.synthesize(identity, neutral)[0]
    up_in, lo_in, _, _ = meshwarp._lip_columns()
    line = np.round((mesh[up_in, :2] + mesh[lo_in, :2]) / 2).astype(int)

    def redness(frame: np.ndarray) -> float:  # LAB a* along the line, the least red of 3 pixels per column
        a = cv2.cvtColor(frame, cv2.COLOR_RGB2LAB)[..., 1].astype(float)
        return float(np.median([a[y - 1 : y + 2, x].min() for x, y in line]))

    plain = MeshWarpRenderer(renderer.source, renderer.source_mesh, MeshWarpConfig(lip_line=0.0))
    unlined = plain.render_one(mesh).frame
    with monkeypatch.context() as m:
        m.setattr(meshwarp, "MIN_TRIANGLE_AREA", 0.0)
        assert redness(unlined) >= redness(plain.render_one(mesh).frame) + 4.0
    assert lip_gap(analyze_rgb(renderer.render_one(mesh).frame).landmarks)[0] < 0.06
    assert lip_gap(analyze_rgb(unlined).landmarks)[0] > 0.1


def test_lids_that_open_wider_slide_over_a_round_iris(face_png: Path) -> None:
    """eyeWide at 1.0 opens the lids about 1.6 times as far: the iris keeps its size and shape (the eyeball is
    carried rigidly by the eye's corners, its iris a disc from FaceMesh's iris landmarks: the lids may uncover
    its top, no more) and what they uncover is lighter than the iris, where stretching the eye with the lids
    drew the iris 12-13 px tall for a disc 9 px across (measured on face.png before the change)."""
    import cv2

    from flowvq_cli.face.source import prepare_face
    from flowvq_cli.frames import mesh_renderer
    from flowvq_cli.render.meshwarp import _eyes

    src = prepare_face(face_png)
    renderer, _ = mesh_renderer(src)
    coeffs = np.repeat(src.coeffs[None], 2, axis=0)
    coeffs[:, : rig.N_EXP] = 0.0
    coeffs[1, [rig.ARKIT_NAMES.index("eyeWideLeft"), rig.ARKIT_NAMES.index("eyeWideRight")]] = 1.0
    meshes = rig.synthesize(src.identity, coeffs)
    frames = renderer.render(meshes).frames
    for eye, ball in zip(_eyes(), renderer.eyeballs, strict=True):
        runs, openings = [], []
        for frame, mesh in zip(frames, meshes, strict=True):
            poly = np.vstack([mesh[eye.upper, :2], mesh[eye.lower, :2][::-1]])
            inside = np.zeros(frame.shape[:2], np.uint8)
            cv2.fillPoly(inside, [np.round(poly).astype(np.int32)], 1)
            inside = cv2.erode(inside, np.ones((3, 3), np.uint8)) > 0
            luma = frame.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
            cut = 0.5 * (np.percentile(luma[inside], 10) + np.percentile(luma[inside], 90))
            dark = (luma < cut) & inside
            runs.append(int(dark.sum(0).max()))
            openings.append(int(inside.sum(0).max()))
            if len(runs) == 2:
                assert luma[inside & ~dark].mean() > luma[dark].mean() + 30  # uncovered white, not more iris
        assert openings[1] >= 1.4 * openings[0]
        assert runs[1] <= 2 * ball.radius + 1.0, (runs, openings, ball.radius)  # at most the whole disc shows


def test_a_photo_with_shut_eyes_has_no_eyeball_to_carry(source) -> None:
    """The photo's mesh with both eyes shut (eyeBlink 1): opening them is warped as before, nothing drawn."""
    crop, identity, coeffs = source
    blink = [rig.ARKIT_NAMES.index("eyeBlinkLeft"), rig.ARKIT_NAMES.index("eyeBlinkRight")]
    shut = coeffs.copy()
    shut[blink] = 1.0
    renderer = MeshWarpRenderer(crop, rig.synthesize(identity, shut[None])[0])
    assert max(renderer.eye_gap) < 1.0
    opened = coeffs.copy()
    opened[blink] = 0.0
    target = rig.synthesize(identity, opened[None])[0]
    assert renderer._widening(target[:, :2]) == [0.0, 0.0]
    frame, *_ = renderer.render_one(target)
    assert frame.shape == crop.shape
