"""One clip's metric list from partial inputs, and aggregation over clips."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from flowvq_cli.eval.report import summary_rows
from flowvq_cli.eval.suite import ClipInputs, aggregate_clips, clip_metrics

NAMES = ["SSIM", "PSNR", "FID", "CPBD", "sharpness ratio", "M-LMD", "F-LMD", "sync correlation",
         "A/V offset", "blink rate", "jitter"]


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    """6 frames of a 96x96 astronaut crop, shape (6, 96, 96, 3)."""
    return np.repeat(data.astronaut()[60:156, 180:276][None], 6, axis=0)


def _landmarks(num_frames: int) -> np.ndarray:
    """A still, plausible 68-point face: eyes open, mouth a little open, shape (T, 68, 2)."""
    rng = np.random.default_rng(9)
    lm = rng.uniform(20, 80, size=(68, 2))
    eye = np.array([[0, 0], [3, -3], [6, -3], [9, 0], [6, 3], [3, 3]], dtype=float)
    lm[36:42], lm[42:48] = eye + np.array([25.0, 40.0]), eye + np.array([55.0, 40.0])
    lm[48], lm[54] = [35, 70], [65, 70]
    return np.repeat(lm[None], num_frames, axis=0)


def test_only_frames_gives_every_metric_with_reasons(frames: np.ndarray) -> None:
    results = clip_metrics(ClipInputs(frames=frames))
    assert [r.name for r in results] == NAMES
    available = {r.name for r in results if r.available}
    assert available == {"CPBD"}
    assert all(r.reason for r in results if not r.available)


def test_full_inputs(frames: np.ndarray) -> None:
    lm = _landmarks(len(frames))
    clip = ClipInputs(frames=frames, gt_frames=frames, source=frames[0], landmarks=lm, gt_landmarks=lm,
                      audio_energy=np.linspace(0, 1, len(frames)))
    results = {r.name: r for r in clip_metrics(clip)}
    assert results["SSIM"].value == pytest.approx(1.0)
    assert results["sharpness ratio"].value == pytest.approx(1.0)
    assert results["M-LMD"].value == 0.0 and results["jitter"].value == 0.0
    assert not results["FID"].available  # no extractor
    assert not results["sync correlation"].available  # a still mouth correlates with nothing
    assert results["blink rate"].value == 0.0


def test_aggregate_over_clips(frames: np.ndarray) -> None:
    a = clip_metrics(ClipInputs(frames=frames))
    b = clip_metrics(ClipInputs(frames=frames[:, ::-1]))
    agg = aggregate_clips([a, b])
    cpbd_row = agg[NAMES.index("CPBD")]
    assert cpbd_row.count == 2
    assert cpbd_row.value == pytest.approx((a[3].value + b[3].value) / 2)
    assert len(summary_rows(agg)) == len(NAMES)
