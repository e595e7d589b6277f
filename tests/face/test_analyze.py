"""``flowvq analyze`` as a library: real MediaPipe on the example photo, a mirrored copy and a video."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from flowvq_cli.errors import OutputError
from flowvq_cli.face import align, export, rig
from flowvq_cli.face import analyze as an
from flowvq_cli.video import VideoWriter, probe_video

MIRROR_ANGLE_TOL_DEG = 2.0
MIRROR_EXP_TOL = 0.2
"""A photo's expression is the reader's; MediaPipe's own Face Landmarker reads face.png and its mirror image
up to 0.12 apart (mouthUpperUp 0.57 / 0.69, tests/face/data/blendshape_v2_parity.npz), and on legacy
FaceMesh's landmarks they differ by up to 0.17."""


@pytest.fixture(scope="module")
def photo(face_png: Path) -> an.Analysis:
    return an.analyze(face_png)


def test_photo_has_one_face_and_a_plausible_fit(photo: an.Analysis) -> None:
    assert photo.kind == "image" and photo.coeffs.shape == (1, rig.N_COEFFS)
    assert photo.identity.shape == (468, 3) and photo.valid.all()
    pitch, yaw, roll = np.degrees(photo.coeffs[0, rig.N_EXP : rig.N_EXP + 3])
    assert abs(yaw) < 15 and abs(roll) < 10 and abs(pitch) < 20  # the astronaut faces the camera
    exp = photo.coeffs[0, : rig.N_EXP]
    assert exp.min() >= 0 and exp.max() <= 1
    smile = [rig.ARKIT_NAMES.index("mouthSmileLeft"), rig.ARKIT_NAMES.index("mouthSmileRight")]
    assert exp[smile].min() > 0.8  # she smiles broadly, as MediaPipe's own Face Landmarker reads her (0.90)
    others = np.delete(exp, smile)
    assert others.max() < 0.8  # the face's own shape is not read as saturated expression


def test_mirrored_photo_flips_yaw_roll_and_sides(photo: an.Analysis, face_png: Path, tmp_path: Path) -> None:
    mirrored_path = tmp_path / "mirrored.png"
    ImageOps.mirror(Image.open(face_png)).save(mirrored_path)
    mirrored = an.analyze(mirrored_path)
    a, b = photo.coeffs[0], mirrored.coeffs[0]
    yaw, roll = rig.N_EXP + 1, rig.N_EXP + 2
    assert abs(np.degrees(a[yaw] + b[yaw])) <= MIRROR_ANGLE_TOL_DEG
    assert abs(np.degrees(a[roll] + b[roll])) <= MIRROR_ANGLE_TOL_DEG
    assert abs(np.degrees(a[rig.N_EXP] - b[rig.N_EXP])) <= MIRROR_ANGLE_TOL_DEG  # pitch unchanged
    swapped = rig.mirror_coeffs(a[None])[0]
    gaze = [i for i, n in enumerate(rig.ARKIT_NAMES) if n.startswith("eyeLook")]  # the irises: least stable
    np.testing.assert_allclose(np.delete(b[: rig.N_EXP], gaze), np.delete(swapped[: rig.N_EXP], gaze),
                               atol=MIRROR_EXP_TOL)
    left, right = rig.ARKIT_NAMES.index("mouthSmileLeft"), rig.ARKIT_NAMES.index("mouthSmileRight")
    assert abs(a[left] - b[right]) <= MIRROR_EXP_TOL and abs(a[right] - b[left]) <= MIRROR_EXP_TOL


TILT_TOL_DEG = 2.0
"""How close the roll an in-plane turn of the picture adds must come to the turn: measured 0.4–0.5° off at ±20° on
the photo, at most 1.0° over the tilting clip (MediaPipe's landmarks of a turned face are not exactly turned)."""
GRAY = (128, 128, 128)


def image_roll_deg(a: an.Analysis) -> np.ndarray:
    return np.degrees(a.image_pose[:, 2])


@pytest.mark.parametrize("angle", [20.0, -20.0])
def test_tilted_photo_reads_its_tilt_as_roll_in_the_image(photo: an.Analysis, face_png: Path, tmp_path: Path,
                                                          angle: float) -> None:
    """PIL turns the picture counter-clockwise for angle > 0; the head's roll in the image follows it."""
    tilted_path = tmp_path / "tilted.png"
    Image.open(face_png).convert("RGB").rotate(angle, resample=Image.BICUBIC, expand=True,
                                               fillcolor=GRAY).save(tilted_path)
    tilted = an.analyze(tilted_path)
    assert abs(image_roll_deg(tilted)[0] - image_roll_deg(photo)[0] - angle) <= TILT_TOL_DEG
    # the pipeline's own pose stays in the crop, which turns with the head: there the tilt is not seen
    assert abs(np.degrees(tilted.coeffs[0, rig.N_EXP + 2] - photo.coeffs[0, rig.N_EXP + 2])) <= TILT_TOL_DEG
    # an in-plane turn of the frame leaves pitch and yaw as they are (roll is the outermost rotation)
    np.testing.assert_allclose(tilted.image_pose[:, :2], tilted.coeffs[:, rig.N_EXP : rig.N_EXP + 2], atol=1e-6)
    # the image pose is a whole pose: posed in the image's frame, the model mesh lands where the crop's
    # pose puts it in the image (translation and scale included)
    frame = align.image_frame(*tilted.image_size)
    in_image = align.uncrop_points(rig.synthesize(tilted.identity, tilted.image_coeffs), frame)[0, :, :2]
    np.testing.assert_allclose(in_image, an.fitted_mesh_image(tilted, 0), atol=0.05)
    np.testing.assert_allclose(export.crop_pose(tilted.image_pose, tilted.crop_matrix, tilted.image_size),
                               tilted.coeffs[:, rig.N_EXP :], atol=1e-4)


def test_video_whose_head_tilts_reads_the_tilt_as_roll(photo: an.Analysis, face_rgb: np.ndarray,
                                                       tmp_path: Path) -> None:
    """The photo turned progressively 0° → 20° over 13 frames (gray padding keeps the whole face in frame)."""
    angles = np.linspace(0.0, 20.0, 13)
    canvas = ImageOps.expand(Image.fromarray(face_rgb), border=52, fill=GRAY)
    video = tmp_path / "tilt.mp4"
    with VideoWriter(video, fps=25, size=canvas.size) as writer:
        for a in angles:
            writer.write(np.asarray(canvas.rotate(float(a), resample=Image.BICUBIC, fillcolor=GRAY)))
    result = an.analyze(video)
    assert result.valid.all() and len(result.coeffs) == len(angles)
    roll = image_roll_deg(result)
    assert np.abs(roll - image_roll_deg(photo)[0] - angles).max() <= TILT_TOL_DEG, roll
    # the clip's crop sits at the median tilt: in it the roll runs about -10° → +10°, not 0° → 20°; the two
    # frames differ by that crop's constant in-plane turn
    crop_roll = np.degrees(result.coeffs[:, rig.N_EXP + 2])
    assert abs(crop_roll[0] + 10.0) <= TILT_TOL_DEG and abs(crop_roll[-1] - 10.0) <= TILT_TOL_DEG, crop_roll
    assert np.ptp(roll - crop_roll) < 1e-3
    # every output reports the image's pose; reading the .npz back gives the pipeline's crop frame again
    an.save_npz(result, tmp_path / "tilt.npz")
    an.save_csv(result, tmp_path / "tilt.csv")
    with np.load(tmp_path / "tilt.npz") as data:
        assert str(data["pose_frame"]) == "image"
        np.testing.assert_allclose(data["coeffs"], result.image_coeffs)
    header, *rows = [r.split(",") for r in (tmp_path / "tilt.csv").read_text().splitlines()]
    csv_roll = np.degrees([float(r[header.index("HeadRoll")]) for r in rows])
    np.testing.assert_allclose(csv_roll, roll, atol=1e-3)
    summary = an.summarize(result)
    assert summary["pose_frame"] == "image"
    assert summary["pose_degrees"]["roll"]["max"] == pytest.approx(roll.max(), abs=0.01)
    back, _ = export.read_coeffs(tmp_path / "tilt.npz")
    np.testing.assert_allclose(back[:, rig.N_EXP :], result.coeffs[:, rig.N_EXP :], atol=1e-4)


def make_talking_video(face_rgb: np.ndarray, path: Path, frames: int = 30, fps: int = 25) -> None:
    """The photo under a slow head turn (a rotation and a shift per frame)."""
    h, w = face_rgb.shape[:2]
    with VideoWriter(path, fps=fps, size=(w, h)) as writer:
        for t in range(frames):
            m = cv2.getRotationMatrix2D((w / 2, h / 2), 8.0 * np.sin(2 * np.pi * t / frames), 1.0)
            m[0, 2] += 6.0 * np.sin(2 * np.pi * t / frames)
            writer.write(cv2.warpAffine(face_rgb, m, (w, h), borderMode=cv2.BORDER_REFLECT))


def test_video_is_tracked_and_roll_follows_the_rotation(face_rgb: np.ndarray, tmp_path: Path) -> None:
    video = tmp_path / "clip.mp4"
    make_talking_video(face_rgb, video)
    result = an.analyze(video)
    assert result.kind == "video" and result.coeffs.shape == (30, rig.N_COEFFS) and result.fps == 25
    assert result.valid.all() and result.crop_matrix.shape == (30, 2, 3)
    # every frame's pose is in one crop for the clip, so the head's motion is in the pose track
    assert np.ptp(result.crop_matrix, axis=0).max() == 0.0
    roll = np.degrees(result.coeffs[:, rig.N_EXP + 2])
    applied = 8.0 * np.sin(2 * np.pi * np.arange(30) / 30)  # cv2 angle > 0 = counter-clockwise on screen
    assert np.corrcoef(roll, applied)[0, 1] > 0.95
    assert np.abs((roll - roll.mean()) - (applied - applied.mean())).mean() < 1.0
    # the face centre moves as the frame's rotation about the image centre plus the shift carry it
    h, w = face_rgb.shape[:2]
    centre = np.nanmean(result.landmarks[0, :468, :2], axis=0)
    moved_x = [(cv2.getRotationMatrix2D((w / 2, h / 2), a, 1.0) @ np.r_[centre, 1.0])[0]
               + 6.0 * np.sin(2 * np.pi * t / 30) for t, a in enumerate(applied)]
    shift_x = result.coeffs[:, rig.N_EXP + 3] * rig.CROP_SIZE / 2  # crop pixels
    assert np.corrcoef(shift_x, moved_x)[0, 1] > 0.95
    # identity comes from all frames; the expression is the same photo throughout. MediaPipe's lid and
    # lip landmarks shift a little with in-plane rotation, and the weak blendshapes (eyeLook*, brows)
    # follow: measured ≤ 0.18 std on this clip, mean 0.06. Gross instability would be far above.
    std = result.coeffs[:, : rig.N_EXP].std(axis=0)
    assert std.max() < 0.25 and std.mean() < 0.1
    assert std[rig.ARKIT_NAMES.index("jawOpen")] < 0.05


def test_outputs_npz_csv_overlay_for_video(face_rgb: np.ndarray, tmp_path: Path) -> None:
    video = tmp_path / "clip.mp4"
    make_talking_video(face_rgb, video, frames=12)
    result = an.analyze(video)
    an.save_npz(result, tmp_path / "out" / "clip.npz")
    an.save_csv(result, tmp_path / "clip.csv")
    an.save_overlay(result, tmp_path / "clip_mesh.mp4")
    data = np.load(tmp_path / "out" / "clip.npz")
    assert data["coeffs"].shape == (12, 58) and float(data["fps"]) == 25.0
    rows = (tmp_path / "clip.csv").read_text().splitlines()
    assert len(rows) == 13 and rows[1].startswith("00:00:00:00.000,61,")
    info = probe_video(tmp_path / "clip_mesh.mp4")
    assert info.n_frames == 12 and info.width == face_rgb.shape[1]
    with pytest.raises(OutputError, match="already exists"):
        an.save_csv(result, tmp_path / "clip.csv")


def test_overlay_photo_draws_on_the_face(photo: an.Analysis, face_rgb: np.ndarray, tmp_path: Path) -> None:
    out = tmp_path / "mesh.png"
    an.save_overlay(photo, out)
    drawn = np.asarray(Image.open(out).convert("RGB")).astype(int)
    changed = np.abs(drawn - face_rgb).sum(axis=2) > 30
    ys, xs = np.nonzero(changed)
    lm = photo.landmarks[0]
    # the drawing lies on the face: inside the landmarks' bounding box (plus a margin)
    assert changed.sum() > 2000
    assert xs.min() >= lm[:, 0].min() - 5 and xs.max() <= lm[:, 0].max() + 5
    assert ys.min() >= lm[:, 1].min() - 5 and ys.max() <= lm[:, 1].max() + 5


@pytest.mark.parametrize("photo", ["face.png", "face2.png"])  # face2: behind glasses
def test_closed_eyes_read_as_closed_after_the_lid_calibration(photo: str) -> None:
    """MediaPipe's lid points stop short on a closed eye; the calibrated fit reads the blink whole."""
    from flowvq_cli.api import warp_frames
    from flowvq_cli.face.source import prepare_face

    src = prepare_face(Path(__file__).resolve().parents[2] / "examples" / photo)
    blink = list(an.BLINK_INDICES)
    coeffs = np.repeat(src.coeffs[None], 2, axis=0)
    coeffs[:, blink] = np.array([[0.0], [1.0]])  # open, closed (the mesh warp closes the lids completely)
    open_frame, closed_frame = warp_frames(src, coeffs, paste_back=True)
    raw = an.analyze_rgb(closed_frame, identity=src.identity, calibrate=False).coeffs[0, blink]
    closed = an.analyze_rgb(closed_frame, identity=src.identity).coeffs[0, blink]
    opened = an.analyze_rgb(open_frame, identity=src.identity).coeffs[0, blink]
    # open: the smiling photo's own eyes read 0.04 at most; re-rendered from its coefficients (the reader's
    # smile and squint on its neutral face) and read back, the left one 0.21
    assert raw.mean() < 0.75 and closed.mean() > 0.8 and opened.max() < 0.25, (raw, closed, opened)
    np.testing.assert_allclose(closed, np.clip(raw / an.LID_GAIN, 0, 1), atol=1e-6)
