"""MetricResult summaries, table rows and JSON round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from flowvq_cli.errors import InputError
from flowvq_cli.eval.report import (
    SUMMARY_COLUMNS,
    MetricResult,
    results_from_json,
    results_to_json,
    summarize,
    summary_rows,
    unavailable,
)


def test_summarize_mean_std_skips_nan() -> None:
    r = summarize("CPBD", [0.2, np.nan, 0.4], higher_is_better=True)
    assert r.value == pytest.approx(0.3) and r.std == pytest.approx(0.1) and r.count == 2
    empty = summarize("CPBD", [np.nan])
    assert not empty.available and empty.value is None and empty.reason


def test_summarize_keeps_infinity() -> None:
    r = summarize("PSNR", [np.inf, 30.0], unit="dB")
    assert r.value == np.inf and r.std is None


def test_rows_and_json_round_trip() -> None:
    results = [
        summarize("SSIM", [0.8, 0.9], higher_is_better=True),
        summarize("PSNR", [np.inf], unit="dB", higher_is_better=True),
        unavailable("FID", "no Inception weights: pass --fid-weights FILE", higher_is_better=False),
        MetricResult("A/V offset", 2.0, unit="frames"),
    ]
    rows = summary_rows(results)
    assert len(rows) == 4 and all(len(row) == len(SUMMARY_COLUMNS) for row in rows)
    assert rows[0][:2] == ("SSIM ↑", "0.85 ± 0.05")
    assert rows[2][1] == "n/a" and "--fid-weights" in rows[2][4]
    text = results_to_json(results)
    json.loads(text)  # strictly valid JSON (no bare Infinity)
    assert "Infinity" not in text
    assert results_from_json(text) == results


def test_unknown_json_format() -> None:
    with pytest.raises(InputError, match="format"):
        results_from_json('{"format": 99, "metrics": []}')
