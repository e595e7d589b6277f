"""Metric results, summaries (mean ± std) and their table / JSON forms.

Every metric that reaches a report is a :class:`MetricResult`. A metric that cannot be computed
(no weights, no edges, a constant track) is ``available=False`` with a ``reason`` saying what to
do — never a made-up number. :func:`summary_rows` gives plain string rows the CLI can put in a rich
table; :func:`results_to_json` / :func:`results_from_json` round-trip a list of results.

JSON note: non-finite values (PSNR of identical frames is ``inf``) are written as the strings
``"inf"``, ``"-inf"``, ``"nan"`` so the file stays valid JSON, and read back as floats.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from flowvq_cli.errors import InputError

SUMMARY_COLUMNS = ("metric", "value", "unit", "n", "note")
"""Column names of :func:`summary_rows`."""
VALUE_DIGITS = 4
"""Significant digits shown in the table."""
JSON_FORMAT_VERSION = 1


@dataclass(frozen=True)
class MetricResult:
    """One metric's value, summarised over frames or clips.

    Attributes:
        name: display name (``"SSIM"``, ``"M-LMD"``).
        value: the mean, or None when not available.
        std: standard deviation over the frames/clips averaged (population), None if not applicable.
        available: False when the metric could not be computed; then ``reason`` says why.
        reason: what is missing and how to provide it (None when available).
        unit: unit for display (``"dB"``, ``"px"``, ``""``).
        count: number of frames/clips the mean is over (None if not applicable).
        higher_is_better: direction for display (None when neither, e.g. an offset).
    """

    name: str
    value: float | None
    std: float | None = None
    available: bool = True
    reason: str | None = None
    unit: str = ""
    count: int | None = None
    higher_is_better: bool | None = None


def unavailable(name: str, reason: str, unit: str = "", higher_is_better: bool | None = None) -> MetricResult:
    """A result that could not be computed, with the reason shown to the user."""
    return MetricResult(name=name, value=None, std=None, available=False, reason=reason, unit=unit,
                        higher_is_better=higher_is_better)


def summarize(name: str, values: np.ndarray | list[float], unit: str = "",
              higher_is_better: bool | None = None) -> MetricResult:
    """Mean ± std of per-frame (or per-clip) values.

    NaN entries (frames where the metric is undefined, e.g. CPBD of a flat frame) are skipped and
    not counted; infinities are kept (the mean is then infinite and the std None).

    Args:
        name: metric name.
        values: ``(N,)`` values.
        unit: display unit.
        higher_is_better: display direction.

    Returns:
        The summary; unavailable when no value is defined.
    """
    arr = np.asarray(values, dtype=np.float64).ravel()
    defined = arr[~np.isnan(arr)]
    if defined.size == 0:
        why = "no values to average" if arr.size == 0 else "undefined on every frame (e.g. no edges)"
        return unavailable(name, why, unit, higher_is_better)
    mean = float(defined.mean())
    std = float(defined.std()) if np.all(np.isfinite(defined)) else None
    return MetricResult(name=name, value=mean, std=std, unit=unit, count=int(defined.size),
                        higher_is_better=higher_is_better)


def format_value(result: MetricResult) -> str:
    """``"0.8123 ± 0.0131"``, ``"0.8123"`` or ``"n/a"``."""
    if not result.available or result.value is None:
        return "n/a"
    text = f"{result.value:.{VALUE_DIGITS}g}"
    if result.std is not None and (result.count or 0) > 1:
        text += f" ± {result.std:.{VALUE_DIGITS}g}"
    return text


def _arrow(result: MetricResult) -> str:
    return {True: " ↑", False: " ↓", None: ""}[result.higher_is_better]


def summary_rows(results: list[MetricResult]) -> list[tuple[str, str, str, str, str]]:
    """Rows for a summary table, one per result, columns :data:`SUMMARY_COLUMNS`.

    Returns:
        ``[(metric, value, unit, n, note), ...]`` as strings; ``note`` is the reason when unavailable.
    """
    rows = []
    for r in results:
        n = "" if r.count is None else str(r.count)
        note = "" if r.available else (r.reason or "not available")
        rows.append((r.name + _arrow(r), format_value(r), r.unit, n, note))
    return rows


def _encode_float(x: float | None) -> float | str | None:
    if x is None or math.isfinite(x):
        return x
    return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")


def _decode_float(x: float | str | None) -> float | None:
    return None if x is None else float(x)


def results_to_json(results: list[MetricResult], indent: int | None = 2) -> str:
    """Serialise results as ``{"format": 1, "metrics": [{...}, ...]}`` (valid JSON, see module doc)."""
    items = []
    for r in results:
        d: dict[str, Any] = asdict(r)
        d["value"] = _encode_float(r.value)
        d["std"] = _encode_float(r.std)
        items.append(d)
    return json.dumps({"format": JSON_FORMAT_VERSION, "metrics": items}, indent=indent,
                      ensure_ascii=False, allow_nan=False)


def results_from_json(text: str) -> list[MetricResult]:
    """Inverse of :func:`results_to_json`."""
    data = json.loads(text)
    if data.get("format") != JSON_FORMAT_VERSION:
        raise InputError(f"metrics JSON has format {data.get('format')!r}, this version reads "
                         f"format {JSON_FORMAT_VERSION}; re-run `flowvq evaluate` to regenerate it")
    out = []
    for d in data["metrics"]:
        d = dict(d, value=_decode_float(d["value"]), std=_decode_float(d["std"]))
        out.append(MetricResult(**d))
    return out
