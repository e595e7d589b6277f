"""The face rig: layout, anatomy of the procedural blendshapes, symmetry and pose conventions."""

from __future__ import annotations

import numpy as np
import pytest

from flowvq_cli.face import canonical, rig
from flowvq_cli.face.rig import ARKIT_NAMES, CROP_SIZE, N_COEFFS, default_rig

MIN_FIELD_MOTION_CM = 0.15  # every blendshape moves some vertex at least this far at weight 1
MAX_FIELD_COSINE = 0.95  # no two fields (nearly) parallel
STILL_PX = 1e-3


def _coeffs(**named: float) -> np.ndarray:
    """(1, 58) frontal, centred, reference-scale coefficients with the named blendshapes set."""
    c = np.zeros((1, N_COEFFS), np.float32)
    for name, value in named.items():
        c[0, ARKIT_NAMES.index(name)] = value
    return c


def _render(**named: float) -> tuple[np.ndarray, np.ndarray]:
    """Neutral and expressive canonical face in crop pixels, each (468, 3)."""
    r = default_rig()
    neutral = r.synthesize(r.neutral, _coeffs())[0]
    return neutral, r.synthesize(r.neutral, _coeffs(**named))[0]


def test_layout_follows_live_link_face() -> None:
    assert len(ARKIT_NAMES) == rig.N_EXP == 52 and rig.N_COEFFS == 58 and rig.N_POSE == 6
    expected = {"eyeBlinkLeft": 0, "eyeBlinkRight": 7, "jawForward": 14, "jawLeft": 15, "jawRight": 16,
                "jawOpen": 17, "mouthClose": 18, "mouthLeft": 21, "mouthRight": 22, "mouthSmileLeft": 23,
                "browDownLeft": 41, "cheekPuff": 46, "noseSneerRight": 50, "tongueOut": 51}  # fmt: skip
    assert {n: ARKIT_NAMES.index(n) for n in expected} == expected
    assert rig.POSE_NAMES == ("pitch", "yaw", "roll", "tx", "ty", "log_scale")
    assert rig.COEFF_LAYOUT_VERSION == 1 and CROP_SIZE == 256


def test_every_blendshape_is_a_distinct_real_deformation() -> None:
    basis = rig.expression_basis()
    assert basis.shape == (52, 468, 3) and basis.dtype == np.float32
    assert (np.linalg.norm(basis, axis=2).max(axis=1) > MIN_FIELD_MOTION_CM).all()
    flat = basis.reshape(52, -1).astype(np.float64)
    unit = flat / np.linalg.norm(flat, axis=1, keepdims=True)
    cos = unit @ unit.T - np.eye(52)
    assert np.abs(cos).max() < MAX_FIELD_COSINE
    assert np.linalg.matrix_rank(flat) == 52


def test_jaw_open_drops_the_chin_only() -> None:
    neutral, open_ = _render(jawOpen=1.0)
    chin = canonical.group("chin")
    assert (open_[chin, 1] - neutral[chin, 1]).min() > 10.0  # image y points down
    assert np.abs(open_[canonical.group("forehead")] - neutral[canonical.group("forehead")]).max() < STILL_PX
    upper_lip = canonical.group("lips_upper_outer")[1:-1]  # calibrated: it may follow by a hair (0.02 px)
    assert np.abs(open_[upper_lip] - neutral[upper_lip]).max() < 0.1


def test_smile_left_lifts_the_subjects_left_corner_outwards() -> None:
    neutral, smile = _render(mouthSmileLeft=1.0)
    left, right = canonical.group("mouth_corner_left")[0], canonical.group("mouth_corner_right")[0]
    assert neutral[left, 0] > neutral[right, 0]  # subject's left is the image right in a frontal view
    assert smile[left, 0] - neutral[left, 0] > 2.0  # outwards
    assert neutral[left, 1] - smile[left, 1] > 3.0  # up
    assert np.abs(smile[right] - neutral[right]).max() < STILL_PX


def test_blink_left_closes_the_left_eye_only() -> None:
    neutral, blink = _render(eyeBlinkLeft=1.0)
    up, low = canonical.group("lid_upper_left"), canonical.group("lid_lower_left")
    gap_before = np.linalg.norm(neutral[up] - neutral[low], axis=1)
    gap_after = np.linalg.norm(blink[up] - blink[low], axis=1)
    assert gap_before.max() > 5.0
    assert gap_after.max() < 0.05 * gap_before.max()
    right_eye = np.concatenate([canonical.group(f"eye_{k}_right") for k in ("upper", "lower")])
    assert np.abs(blink[right_eye] - neutral[right_eye]).max() < STILL_PX


def test_brow_inner_up_raises_both_inner_brows() -> None:
    neutral, raised = _render(browInnerUp=1.0)
    for side in ("left", "right"):
        inner = canonical.group(f"brow_inner_{side}")
        assert (neutral[inner, 1] - raised[inner, 1]).min() > 2.0


def test_mirror_index_is_an_involution_onto_the_mirror_image() -> None:
    m = canonical.mirror_index()
    v = canonical.load_canonical().vertices
    assert (m[m] == np.arange(468)).all()
    np.testing.assert_allclose(v[m] * [-1, 1, 1], v, atol=1e-5)


def test_left_fields_mirror_onto_right_fields() -> None:
    basis = rig.expression_basis()
    for i, name in enumerate(ARKIT_NAMES):
        j = int(rig.MIRROR_PERMUTATION[i])
        np.testing.assert_allclose(canonical.mirror_field(basis[i]), basis[j], atol=1e-6, err_msg=name)


def test_mirror_coeffs_matches_a_mirrored_image() -> None:
    rng = np.random.default_rng(0)
    r = default_rig()
    c = np.concatenate([rng.uniform(0, 1, (4, 52)), rng.uniform(-0.3, 0.3, (4, 6))], axis=1)
    c = c.astype(np.float32)
    pts = r.synthesize(r.neutral, c)
    mirrored_image = pts[:, canonical.mirror_index()] * [-1, 1, 1] + [CROP_SIZE, 0, 0]
    np.testing.assert_allclose(r.synthesize(r.neutral, rig.mirror_coeffs(c)), mirrored_image, atol=1e-3)
    np.testing.assert_array_equal(rig.mirror_coeffs(rig.mirror_coeffs(c)), c)


@pytest.mark.parametrize(("index", "axis", "sign"), [(53, 0, 1.0), (52, 1, 1.0)])
def test_pose_signs(index: int, axis: int, sign: float) -> None:
    """yaw > 0 moves the nose tip to the image right; pitch > 0 moves it down."""
    r = default_rig()
    c = np.zeros((2, N_COEFFS), np.float32)
    c[:, index] = [0.3, -0.3]
    nose = r.synthesize(r.neutral, c)[:, 1, axis] - CROP_SIZE / 2
    assert sign * nose[0] > 10.0 and sign * nose[1] < -10.0


def test_roll_lifts_the_subjects_left_side() -> None:
    r = default_rig()
    c = np.zeros((1, N_COEFFS), np.float32)
    c[0, 54] = 0.2
    pts = r.synthesize(r.neutral, c)[0]
    assert pts[263, 1] < pts[33, 1]  # left eye outer corner higher in the image than the right one


def test_euler_round_trip() -> None:
    rng = np.random.default_rng(1)
    angles = rng.uniform([-1.2, -1.4, -3.0], [1.2, 1.4, 3.0], (100, 3))
    rot = rig.rotation_matrix(*angles.T)
    np.testing.assert_allclose(rot @ rot.transpose(0, 2, 1), np.broadcast_to(np.eye(3), rot.shape), atol=1e-9)
    np.testing.assert_allclose(rig.euler_from_rotation(rot), angles, atol=1e-9)


def test_reference_scale_sets_the_eye_distance() -> None:
    neutral, _ = _render()
    eyes = [np.concatenate([canonical.group(f"eye_{k}_{side}") for k in ("upper", "lower")])
            for side in ("left", "right")]  # fmt: skip
    distance = np.linalg.norm(neutral[eyes[0], :2].mean(0) - neutral[eyes[1], :2].mean(0))
    assert distance == pytest.approx(rig.REFERENCE_EYE_DISTANCE * CROP_SIZE, rel=1e-4)
    assert np.abs(neutral[:, :2] - CROP_SIZE / 2).max() < CROP_SIZE / 2  # the face fits in the crop


def test_synthesize_is_batched_and_3d_is_pose_free() -> None:
    r = default_rig()
    c = np.zeros((3, N_COEFFS), np.float32)
    c[:, 17] = [0.0, 0.5, 1.0]
    c[:, 53] = [0.0, 0.2, -0.2]
    assert r.synthesize(r.neutral, c).shape == (3, 468, 3)
    shapes = r.synthesize_3d(r.neutral, c)
    np.testing.assert_allclose(shapes[0], r.neutral, atol=1e-6)
    np.testing.assert_allclose(shapes[2] - shapes[0], rig.expression_basis()[17], atol=1e-5)


def test_blink_closes_the_eyes_of_any_identity() -> None:
    """eyeBlink is rebuilt per identity: a person with wider-open eyes than the canonical face still
    closes them fully at eyeBlink = 1 (a fixed displacement would leave them half open)."""
    identity = canonical.load_canonical().vertices.astype(np.float64).copy()
    for side in ("left", "right"):
        identity[canonical.group(f"lid_upper_{side}"), 1] += 0.25  # cm: upper lids higher = eyes wider
    pose = np.zeros(rig.N_POSE)
    neutral = rig.synthesize(identity, np.r_[np.zeros(rig.N_EXP), pose][None])[0]
    exp = np.zeros(rig.N_EXP)
    exp[[ARKIT_NAMES.index("eyeBlinkLeft"), ARKIT_NAMES.index("eyeBlinkRight")]] = 1.0
    blink = rig.synthesize(identity, np.r_[exp, pose][None])[0]
    for side in ("left", "right"):
        up, low = canonical.group(f"lid_upper_{side}"), canonical.group(f"lid_lower_{side}")
        gap0 = np.abs(neutral[low, 1] - neutral[up, 1]).max()
        gap1 = np.abs(blink[low, 1] - blink[up, 1]).max()
        assert gap1 < 0.08 * gap0, (side, gap0, gap1)


def _similarity(angle_deg: float, scale: float, shift: tuple[float, float]) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    return np.array([[scale * np.cos(a), -scale * np.sin(a), shift[0]],
                     [scale * np.sin(a), scale * np.cos(a), shift[1]]])


def test_rebase_pose_moves_the_mesh_like_the_change_of_crop() -> None:
    rng = np.random.default_rng(3)
    identity = canonical.load_canonical().vertices
    coeffs = np.zeros((5, N_COEFFS))
    coeffs[:, 52:55] = np.deg2rad(rng.uniform(-15, 15, (5, 3)))
    coeffs[:, 55:57] = rng.uniform(-0.1, 0.1, (5, 2))
    coeffs[:, 57] = rng.uniform(-0.2, 0.2, 5)
    per_frame = np.stack([_similarity(rng.uniform(-20, 20), rng.uniform(0.5, 2), rng.uniform(-80, 80, 2))
                          for _ in range(5)])  # image -> crop_t
    common = _similarity(7.0, 1.3, (-20.0, 15.0))  # image -> the common crop
    rebased = coeffs.copy()
    rebased[:, 52:] = rig.rebase_pose(coeffs[:, 52:], per_frame, common)
    in_frame = rig.synthesize(identity, coeffs).astype(np.float64)  # crop_t pixels
    expected = np.empty_like(in_frame)
    for t in range(5):
        to_image = np.linalg.inv(np.vstack([per_frame[t], [0, 0, 1]]))
        change = (np.vstack([common, [0, 0, 1]]) @ to_image)[:2]
        expected[t, :, :2] = in_frame[t, :, :2] @ change[:, :2].T + change[:, 2]
        expected[t, :, 2] = in_frame[t, :, 2] * np.sqrt(np.linalg.det(change[:, :2]))
    got = rig.synthesize(identity, rebased)
    np.testing.assert_allclose(got[..., :2], expected[..., :2], atol=1e-3)
    # z differs only by the dropped z offset: compare its shape, not its level
    np.testing.assert_allclose(got[..., 2] - got[..., 2].mean(1, keepdims=True),
                               expected[..., 2] - expected[..., 2].mean(1, keepdims=True), atol=1e-3)
    back = rig.rebase_pose(rebased[:, 52:], common, per_frame)
    np.testing.assert_allclose(back, coeffs[:, 52:], atol=1e-9)
