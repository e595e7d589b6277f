"""RunSpec.resumed: a run folder resumes only with the command that started it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from flowvq_cli.errors import UsageError
from flowvq_cli.train.loop import RunSpec


@dataclass(frozen=True)
class _Spec(RunSpec):
    component: str
    preset: str
    steps: int = 1


def test_a_run_resumes_only_as_the_same_component_and_preset(tmp_path: Path) -> None:
    assert _Spec.resumed(tmp_path, "expflow", "mini") is None  # nothing started yet
    _Spec("expflow", "mini").save(tmp_path)
    assert _Spec.resumed(tmp_path, "expflow", "mini") == _Spec("expflow", "mini")
    with pytest.raises(UsageError, match="is a expflow run with config 'mini', not poseflow 'mini'"):
        _Spec.resumed(tmp_path, "poseflow", "mini")
    with pytest.raises(UsageError, match="not expflow 'custom'; resume with the same command"):
        _Spec.resumed(tmp_path, "expflow", object())  # a config object is a custom preset
