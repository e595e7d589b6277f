"""Numeric regression on the shipped bundle (``weights/flowvq-mini``): the README's example job, pinned.

``FlowVQ.from_pretrained(device="cpu").generate(examples/face.png, examples/speech.wav, emotion="angry",
seed=3)`` (the README's ``flowvq generate`` command, without writing the video) must keep giving the same
coefficients and the same pixels: a slice of the coefficients (three frames' first six blendshapes and head
pose, and a few named blendshapes) to ``atol=1e-4``, and frame 40 as the default renderer (the mesh warp, pasted
into the photo) draws it to ±1 per uint8 pixel (±0.5 on means). The structure-only checks elsewhere
(``tests/test_generate.py``) would let a changed model or renderer through; these numbers do not.

When a deliberate change to the models, the face analysis or the renderer moves these numbers, update them in
the same commit and say why in its message (which change, and that the new outputs were looked at). A change
meant to keep the outputs (a refactor) must leave them as they are.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from flowvq_cli.api import FlowVQ, GenerationResult, SourceFace
from flowvq_cli.face import rig

FRAMES = [0, 40, 80]
COEFF_ATOL = 1e-4

# coeffs[FRAMES, :6]: eyeBlinkLeft, eyeLookDownLeft, eyeLookInLeft, eyeLookOutLeft, eyeLookUpLeft, eyeSquintLeft
FIRST_SIX = [[0.001648, 0.0, 0.10373, 0.0, 0.1682, 0.193597],
             [0.0, 0.01445, 0.0, 0.309659, 0.0, 0.46652],
             [0.0, 0.0, 0.046567, 0.0, 0.017048, 0.431553]]
# coeffs[FRAMES, 52:58]: the head pose
POSE = [[0.116877, 0.132209, 0.029062, 0.006525, 0.028928, -0.387563],
        [0.141723, 0.008565, 0.003382, 0.008306, -0.003987, -0.411179],
        [0.146239, -0.040515, -0.003227, -0.005924, -0.025397, -0.427471]]
NAMED = {"jawOpen": [0.15257, 0.245059, 0.200024],
         "browDownLeft": [0.259234, 0.32933, 0.176293],
         "browDownRight": [0.400443, 0.339873, 0.410446],
         "mouthFunnel": [0.0, 0.370868, 0.013716],
         "noseSneerLeft": [0.195335, 0.302489, 0.256353]}

RENDERED = 40
MOUTH_BOX = (slice(140, 158), slice(166, 198))  # rows, columns of the 360² photo around the lips
MOUTH_MEAN_RGB = [185.915, 149.318, 134.865]
FRAME_MEAN_RGB = [166.097, 130.139, 116.993]
PIXELS = {(146, 182): [251, 239, 229],  # (row, column): RGB
          (149, 182): [230, 196, 182],
          (149, 170): [149, 96, 76],
          (130, 160): [202, 152, 128],
          (101, 151): [103, 70, 35],
          (250, 180): [15, 12, 6]}


@pytest.fixture(scope="module")
def example_job(face_png: Path, speech_wav: Path) -> tuple[FlowVQ, SourceFace, GenerationResult]:
    model = FlowVQ.from_pretrained(device="cpu")
    result = model.generate(face_png, speech_wav, emotion="angry", seed=3, write=False)
    return model, model.prepare_face(face_png), result


def test_shipped_bundle_coefficients_are_pinned(example_job: tuple[FlowVQ, SourceFace, GenerationResult]) -> None:
    _, _, result = example_job
    coeffs = result.coeffs
    assert coeffs.shape == (123, rig.N_COEFFS) and result.renderer == "warp"
    np.testing.assert_allclose(coeffs[FRAMES, :6], FIRST_SIX, rtol=0, atol=COEFF_ATOL)
    np.testing.assert_allclose(coeffs[FRAMES, rig.N_EXP :], POSE, rtol=0, atol=COEFF_ATOL)
    for name, values in NAMED.items():
        np.testing.assert_allclose(coeffs[FRAMES, rig.ARKIT_NAMES.index(name)], values, rtol=0, atol=COEFF_ATOL,
                                   err_msg=name)


def test_shipped_bundle_frame_is_pinned(example_job: tuple[FlowVQ, SourceFace, GenerationResult]) -> None:
    model, source, result = example_job
    frame = next(iter(model.render(source, result.coeffs[RENDERED : RENDERED + 1])))
    assert frame.shape == (360, 360, 3) and frame.dtype == np.uint8
    frame = frame.astype(np.float64)
    np.testing.assert_allclose(frame[MOUTH_BOX].reshape(-1, 3).mean(0), MOUTH_MEAN_RGB, rtol=0, atol=0.5)
    np.testing.assert_allclose(frame.reshape(-1, 3).mean(0), FRAME_MEAN_RGB, rtol=0, atol=0.5)
    for (row, col), rgb in PIXELS.items():
        np.testing.assert_allclose(frame[row, col], rgb, rtol=0, atol=1, err_msg=f"pixel {(row, col)}")
