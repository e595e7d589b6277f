"""``flowvq merge``: one dataset from several (``flowvq_cli.data.merge``)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from dataset_testutils import make_dataset

from flowvq_cli.data.datasets import CoeffSequenceDataset
from flowvq_cli.data.manifest import read_manifest, write_manifest
from flowvq_cli.data.merge import merge_datasets
from flowvq_cli.errors import InputError


def _renamed(root: Path, out: Path, prefix: str) -> Path:
    """A copy of dataset ``root`` whose clip ids and speakers carry ``prefix``."""
    shutil.copytree(root, out)
    clips = read_manifest(out)
    for c in clips:
        (out / "clips" / c.id).rename(out / "clips" / f"{prefix}{c.id}")
    write_manifest(out, [c.__class__(id=f"{prefix}{c.id}", speaker=f"{prefix}{c.speaker}", emotion=c.emotion,
                                     intensity=c.intensity, split=c.split, fps=c.fps, frames=c.frames,
                                     paths={k: v.replace(c.id, f"{prefix}{c.id}") for k, v in c.paths.items()})
                         for c in clips])
    return out


def test_the_merged_manifest_lists_every_clip_and_the_dataset_reads_them(tmp_path: Path) -> None:
    a = make_dataset(tmp_path / "a")
    b = _renamed(a, tmp_path / "b", "b_")
    clips = merge_datasets(tmp_path / "all", [a, b])
    merged = read_manifest(tmp_path / "all")
    assert len(merged) == len(clips) == 2 * len(read_manifest(a))
    assert {c.split for c in merged} == {c.split for c in read_manifest(a)}
    data = CoeffSequenceDataset(tmp_path / "all", "train", 20, audio_context=1, n_history=2)
    one = CoeffSequenceDataset(a, "train", 20, audio_context=1, n_history=2)
    assert len(data) == 2 * len(one)
    assert data[0].audio.shape == one[0].audio.shape
    assert not list((tmp_path / "all").glob("clips"))  # nothing copied


def test_shared_clips_or_speakers_and_a_second_run_are_refused(tmp_path: Path) -> None:
    a = make_dataset(tmp_path / "a")
    with pytest.raises(InputError, match="in both"):
        merge_datasets(tmp_path / "all", [a, _renamed(a, tmp_path / "copy", "")])
    with pytest.raises(InputError, match="at least two"):
        merge_datasets(tmp_path / "all", [a])
    merge_datasets(tmp_path / "all", [a, _renamed(a, tmp_path / "b", "b_")])
    with pytest.raises(InputError, match="--force"):
        merge_datasets(tmp_path / "all", [a, tmp_path / "b"])
    merge_datasets(tmp_path / "all", [a, tmp_path / "b"], force=True)


def test_the_command_says_what_is_wrong_in_one_line(tmp_path: Path) -> None:
    a = make_dataset(tmp_path / "a")
    run = subprocess.run([sys.executable, "-m", "flowvq_cli", "merge", str(tmp_path / "all"), str(a),
                          str(tmp_path / "missing")], capture_output=True, text=True)
    assert run.returncode != 0 and "Traceback" not in run.stderr
    assert "not a FlowVQ dataset" in run.stderr and len(run.stderr.strip().splitlines()) == 1
