"""The expression reader: Blendshape V2 in PyTorch against MediaPipe's own scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from flowvq_cli.face.reader import (
    LANDMARK_SUBSET,
    READER_NAMES,
    UNREAD_LOGIT,
    BlendshapeReader,
    ReaderConfig,
    default_reader,
    read_blendshapes,
)
from flowvq_cli.face.rig import ARKIT_NAMES

PARITY = Path(__file__).parent / "data" / "blendshape_v2_parity.npz"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_subset_and_names() -> None:
    assert len(LANDMARK_SUBSET) == 146 and len(set(LANDMARK_SUBSET)) == 146
    assert LANDMARK_SUBSET[-10:] == tuple(range(468, 478))  # the irises
    assert READER_NAMES[0] == "_neutral" and set(READER_NAMES[1:]) == set(ARKIT_NAMES) - {"tongueOut"}


def test_parity_with_mediapipe_face_landmarker() -> None:
    """MediaPipe's Face Landmarker scores (scripts/convert_blendshape_v2.py) come back from its landmarks."""
    data = np.load(PARITY)
    reader = default_reader()
    with torch.no_grad():
        scores = reader(torch.from_numpy(data["points"])[:, reader.subset, :2]).numpy()
    assert scores.shape == data["scores"].shape == (4, 52)
    np.testing.assert_allclose(scores, data["scores"], atol=1e-4)
    # the example photo smiles and MediaPipe says so; the reader agrees through read() too
    arkit = read_blendshapes(data["points"][0])[0]
    assert arkit[ARKIT_NAMES.index("mouthSmileLeft")] > 0.8
    assert arkit[ARKIT_NAMES.index("tongueOut")] == 0.0


def test_reader_ignores_translation_scale_and_depth() -> None:
    pts = np.load(PARITY)["points"][:1].astype(np.float64)
    moved = pts * 2.5 + np.array([40.0, -7.0, 3.0])
    moved[..., 2] = 0.0
    np.testing.assert_allclose(read_blendshapes(moved), read_blendshapes(pts), atol=1e-5)


def test_nan_frames_read_nan() -> None:
    pts = np.repeat(np.load(PARITY)["points"][:1], 2, axis=0)
    pts[1, 5] = np.nan
    out = read_blendshapes(pts)
    assert np.isfinite(out[0]).all() and np.isnan(out[1]).all()


def test_gradients_reach_the_landmarks() -> None:
    pts = torch.from_numpy(np.load(PARITY)["points"][:2]).requires_grad_(True)
    default_reader().read(pts)[:, ARKIT_NAMES.index("jawOpen")].sum().backward()
    grad = pts.grad[:, list(LANDMARK_SUBSET), :2]
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert pts.grad[:, 2, :].abs().sum() == 0  # landmark 2 is not read


def test_logits_are_the_scores_before_the_sigmoid() -> None:
    """read(logits=True) gives what the sigmoid squashes; a score saturated at 0 (the photo's mouthFrown, its
    logit far below 0) still passes a gradient through its logit, where the score's own has vanished."""
    pts = torch.from_numpy(np.load(PARITY)["points"][:1]).requires_grad_(True)
    reader = default_reader()
    logits = reader.read(pts, logits=True)
    scores = reader.read(pts)
    tongue = ARKIT_NAMES.index("tongueOut")
    read = [k for k in range(len(ARKIT_NAMES)) if k != tongue]
    torch.testing.assert_close(torch.sigmoid(logits[:, read]), scores[:, read])
    assert float(logits[0, tongue].detach()) == UNREAD_LOGIT and float(scores[0, tongue].detach()) == 0.0
    frown = ARKIT_NAMES.index("mouthFrownLeft")
    assert float(logits[0, frown].detach()) < -5.0  # the smiling example photo does not frown
    (grad_score,) = torch.autograd.grad(scores[0, frown], pts, retain_graph=True)
    (grad_logit,) = torch.autograd.grad(logits[0, frown], pts)
    assert grad_logit.abs().sum() > 1000 * grad_score.abs().sum() > 0


def test_tiny_config_trains() -> None:
    torch.manual_seed(0)
    reader = BlendshapeReader(ReaderConfig.tiny())
    x = torch.randn(4, reader.config.n_points, 2)
    out = reader(x)
    assert out.shape == (4, 52) and ((out > 0) & (out < 1)).all()
    out.sum().backward()
    assert all(p.grad is not None for p in reader.parameters())


@pytest.mark.parametrize("photo", ["face.png", "face2.png"])
def test_reads_the_pipelines_own_landmarks(photo: str) -> None:
    """Legacy FaceMesh landmarks (what flowvq detects with) read as the Face Landmarker's own do.

    Except the brows behind face2's glasses frame: legacy FaceMesh puts them lower, and they read
    browDown 0.37 / 0.52 where the Face Landmarker's landmarks read 0.01."""
    from flowvq_cli.face.analyze import analyze_image

    ours = read_blendshapes(analyze_image(EXAMPLES / photo).landmarks[0])[0]
    data = np.load(PARITY)
    theirs = data["scores"][list(data["labels"]).index(f"examples/{photo}")]
    theirs = np.array([theirs[READER_NAMES.index(n)] if n in READER_NAMES else 0.0 for n in ARKIT_NAMES])
    keep = [i for i, n in enumerate(ARKIT_NAMES) if photo == "face.png" or not n.startswith("brow")]
    assert np.abs(ours - theirs)[keep].max() < 0.25
    assert np.corrcoef(ours[keep], theirs[keep])[0, 1] > 0.9
