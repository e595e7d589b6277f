"""Coefficient files: poses in the image's frame and back to the crop's (``export.image_pose`` / ``crop_pose``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from flowvq_cli.errors import InputError
from flowvq_cli.face import align, canonical, export, rig

IMAGE_SIZE = (640, 480)


def a_crop() -> align.Alignment:
    """A crop turned 30°, scaled 1.7× and shifted, as one of a tilted face in a 640×480 picture."""
    return align.Alignment.from_params(np.array([np.log(1.7), np.radians(30.0), 300.0, 210.0]))


def test_image_frame_is_the_picture_unturned() -> None:
    frame = align.image_frame(*IMAGE_SIZE)
    centre, corner = align.transform_landmarks(np.array([[[320.0, 240.0, 0.0], [0.0, 0.0, 0.0]]]), frame)[0]
    np.testing.assert_allclose(centre[:2], [128.0, 128.0])  # the image's centre on the crop's centre
    np.testing.assert_allclose(corner[:2], [0.0, 128.0 - 240.0 * 256 / 640])  # its width across the crop
    assert frame.params[1] == 0.0
    with pytest.raises(ValueError, match="positive"):
        align.image_frame(0, 480)


def test_image_pose_composes_the_crop_with_the_pose() -> None:
    """With pitch and yaw non-zero, the pose in the image puts the model where the crop's pose does."""
    identity = canonical.load_canonical().vertices.astype(np.float32)
    coeffs = np.zeros((3, rig.N_COEFFS), np.float32)
    coeffs[:, rig.N_EXP :] = [[0.3, -0.4, 0.1, 0.05, -0.1, 0.2], [-0.2, 0.5, -0.3, 0.0, 0.0, 0.0],
                              [0.0, 0.0, 0.0, 0.1, 0.1, -0.1]]
    crop = a_crop()
    pose = export.image_pose(coeffs[:, rig.N_EXP :], crop.matrix, IMAGE_SIZE)
    in_image = coeffs.copy()
    in_image[:, rig.N_EXP :] = pose
    via_crop = align.uncrop_points(rig.synthesize(identity, coeffs), crop)
    via_image = align.uncrop_points(rig.synthesize(identity, in_image), align.image_frame(*IMAGE_SIZE))
    np.testing.assert_allclose(via_image[..., :2], via_crop[..., :2], atol=1e-3)
    # the crop turns the picture 30° clockwise on screen (angle > 0 with y down), so a head is turned 30° more
    # counter-clockwise (roll > 0) in the image than in the crop; with R = Rz(roll) Ry(yaw) Rx(pitch) the
    # in-plane turn lands on roll alone
    np.testing.assert_allclose(pose[:, :2], coeffs[:, rig.N_EXP : rig.N_EXP + 2], atol=1e-6)
    np.testing.assert_allclose(pose[:, 2], coeffs[:, rig.N_EXP + 2] + np.radians(30.0), atol=1e-6)
    np.testing.assert_allclose(export.crop_pose(pose, crop.matrix, IMAGE_SIZE), coeffs[:, rig.N_EXP :], atol=1e-6)


def test_npz_in_the_image_reads_back_in_the_crop(tmp_path: Path) -> None:
    coeffs = np.zeros((2, rig.N_COEFFS), np.float32)
    coeffs[:, rig.N_EXP :] = [[0.1, 0.2, 0.3, 0.0, 0.1, 0.0], [0.0, -0.1, -0.2, 0.2, 0.0, 0.3]]
    crops = np.repeat(a_crop().matrix[None], 2, axis=0)
    in_image = coeffs.copy()
    in_image[:, rig.N_EXP :] = export.image_pose(coeffs[:, rig.N_EXP :], crops, IMAGE_SIZE)
    path = export.write_coeffs_npz(tmp_path / "a.npz", in_image, fps=25.0, pose_frame="image", crop_matrix=crops,
                                   image_size=np.asarray(IMAGE_SIZE, np.int32))
    back, fps = export.read_coeffs(path)
    np.testing.assert_allclose(back, coeffs, atol=1e-5)
    assert fps == 25.0
    crop_file = export.write_coeffs_npz(tmp_path / "b.npz", coeffs, fps=25.0)  # generate --coeffs: the crop
    np.testing.assert_array_equal(export.read_coeffs(crop_file)[0], coeffs)


def test_npz_in_the_image_without_its_crop_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="crop_matrix and image_size"):
        export.write_coeffs_npz(tmp_path / "a.npz", np.zeros((1, rig.N_COEFFS)), fps=25.0, pose_frame="image")
    with pytest.raises(ValueError, match="pose_frame"):
        export.write_coeffs_npz(tmp_path / "a.npz", np.zeros((1, rig.N_COEFFS)), fps=25.0, pose_frame="world")
    bad = tmp_path / "bad.npz"
    np.savez(bad, coeffs=np.zeros((1, rig.N_COEFFS), np.float32), fps=np.float32(25),
             coeff_layout_version=np.int32(rig.COEFF_LAYOUT_VERSION), pose_frame=np.asarray("image"))
    with pytest.raises(InputError, match=r"bad\.npz: poses in the image without crop_matrix") as err:
        export.read_coeffs(bad)
    assert "\n" not in str(err.value)
    np.savez(bad, coeffs=np.zeros((1, rig.N_COEFFS), np.float32), fps=np.float32(25),
             coeff_layout_version=np.int32(rig.COEFF_LAYOUT_VERSION), pose_frame=np.asarray("image"),
             crop_matrix=np.zeros((3, 2, 3)), image_size=np.asarray([640, 480]))
    with pytest.raises(InputError, match="do not fit 1 frames"):
        export.read_coeffs(bad)
