"""The face model read by the expression reader: projection, the calibrated rig, neutral identities."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from flowvq_cli.face import canonical, rig
from flowvq_cli.face.readback import load_iris_model, read_rig, rig_landmarks
from flowvq_cli.face.reader import default_reader, read_blendshapes
from flowvq_cli.face.rig import ARKIT_NAMES, N_COEFFS, N_EXP

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _basis() -> torch.Tensor:
    return torch.from_numpy(np.array(rig.expression_basis()))


def test_rig_landmarks_are_the_rigs_own_projection() -> None:
    """The 468 vertices of ``rig_landmarks`` are ``rig.synthesize``'s up to its scale and offset."""
    rng = np.random.default_rng(0)
    coeffs = np.zeros((3, N_COEFFS), np.float32)
    coeffs[:, :N_EXP] = rng.uniform(0, 0.5, (3, N_EXP))
    coeffs[:, N_EXP : N_EXP + 3] = rng.uniform(-0.3, 0.3, (3, 3))
    identity = canonical.load_canonical().vertices
    expected = rig.FaceRig().synthesize(identity, coeffs)[..., :2]
    iris, offset = load_iris_model()
    pts = rig_landmarks(torch.from_numpy(identity), _basis(), iris, torch.from_numpy(coeffs[:, :N_EXP]),
                        torch.from_numpy(coeffs[:, N_EXP : N_EXP + 3]), offset).numpy()
    assert pts.shape == (3, 478, 2)
    scale = rig.reference_scale()
    np.testing.assert_allclose(pts[:, :468] * scale + rig.CROP_SIZE / 2, expected, atol=1e-3)


SINGLES = {"mouthSmileLeft": 0.8, "browDownLeft": 0.8, "browInnerUp": 0.8, "eyeWideLeft": 0.7,
           "browOuterUpLeft": 0.8, "mouthUpperUpLeft": 0.8, "mouthPucker": 0.5, "jawOpen": 0.3}
"""Blendshape -> the least the shipped rig at weight 1 must read on face.png's neutral face (measured 0.92,
0.98, 0.89, 0.80, 0.92, 0.96, 0.56, 0.36; the procedural rig read 0.22, 0.29, 0.65, 0.79, 0.29, 0.04, 0.44,
0.49 on face2's, ``benchmarks/rig_readback.py --per-blendshape``). The reader reads an open jaw with closed
lips above it mostly as mouthUpperUp (0.74), and a pucker partly as mouthDimple (0.55)."""
CLEAN = ("mouthSmileLeft", "browDownLeft", "browInnerUp", "eyeWideLeft", "browOuterUpLeft", "mouthUpperUpLeft")


@pytest.fixture(scope="module")
def neutral_face() -> np.ndarray:
    from flowvq_cli.face.analyze import analyze_image

    return analyze_image(EXAMPLES / "face.png").identity


@pytest.mark.parametrize("name", SINGLES)
def test_calibrated_blendshapes_read_back(name: str, neutral_face: np.ndarray) -> None:
    """The shipped calibrated rig at weight 1 reads that blendshape as it means it; the clean ones move no
    other reading by more than 0.3 over the face at rest."""
    iris, offset = load_iris_model()
    w = torch.zeros(2, N_EXP)
    w[1, ARKIT_NAMES.index(name)] = 1.0
    with torch.no_grad():
        rest, read = read_rig(default_reader(), torch.from_numpy(neutral_face), _basis(), iris, w, iris_offset=offset)
    k = ARKIT_NAMES.index(name)
    assert read[k] >= SINGLES[name]
    if name in CLEAN:
        others = [i for i in range(N_EXP) if i not in (k, int(rig.MIRROR_PERMUTATION[k]))]
        assert (read - rest)[others].max() <= 0.3


def test_calibrated_fields_stay_symmetric_and_local() -> None:
    basis = rig.expression_basis()
    for i, name in enumerate(ARKIT_NAMES):
        np.testing.assert_allclose(canonical.mirror_field(basis[i]), basis[rig.MIRROR_PERMUTATION[i]], atol=1e-5,
                                   err_msg=name)
    smile = np.linalg.norm(basis[ARKIT_NAMES.index("mouthSmileLeft")], axis=1)
    assert smile[canonical.group("forehead")].max() < 1e-3 and smile[canonical.group("mouth_corner_right")].max() < 1e-3
    corner_mm = 10 * smile[canonical.group("mouth_corner_left")].max()
    assert 6.0 < corner_mm < 25.0  # a real full smile moves the corner about 10 mm


def test_close_lips_meets_and_keeps_corners() -> None:
    v = canonical.load_canonical().vertices
    closed = rig.close_lips(v)
    assert canonical.lip_gap(v) > 0.1 and canonical.lip_gap(closed) < 0.01
    corners = np.concatenate([canonical.group("mouth_corner_left"), canonical.group("mouth_corner_right")])
    np.testing.assert_allclose(closed[corners], v[corners], atol=2e-3)  # cm: Shepard weights leave 0.01 mm
    np.testing.assert_allclose(closed[canonical.group("forehead")], v[canonical.group("forehead")], atol=1e-9)


def test_a_smiling_photo_gets_a_neutral_identity() -> None:
    """face.png smiles with parted lips; its identity does not smile, its lips meet, and its own
    coefficients rebuild the photo's smile (so rendering them reproduces the photo)."""
    from flowvq_cli.face.analyze import analyze_image

    a = analyze_image(EXAMPLES / "face.png")
    smile = [ARKIT_NAMES.index("mouthSmileLeft"), ARKIT_NAMES.index("mouthSmileRight")]
    assert read_blendshapes(a.landmarks[0])[0, smile].min() > 0.8  # what the photo shows
    iris, offset = load_iris_model()
    with torch.no_grad():
        neutral_read = read_rig(default_reader(), torch.from_numpy(a.identity), _basis(), iris,
                                torch.zeros(1, N_EXP), iris_offset=offset)[0]
    assert neutral_read[smile].max() < 0.3
    # and removing it did not trade the smile for another expression (dimples, the mouth pulled aside):
    # nothing but where the eyes look reads above 0.2
    others = [k for k, n in enumerate(ARKIT_NAMES) if not n.startswith("eyeLook")]
    assert neutral_read[others].max() < 0.2, dict(zip(ARKIT_NAMES, neutral_read.numpy().round(2), strict=True))
    assert canonical.lip_gap(a.identity) < 0.05
    assert a.coeffs[0, smile].min() > 0.4  # the photo's expression is in its coefficients instead
