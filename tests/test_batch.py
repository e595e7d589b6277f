"""`flowvq batch`: one model load, per-row failures reported, shards and resume."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from flowvq_cli.api import FlowVQ, parse_shard, read_jobs, run_batch
from flowvq_cli.errors import InputError, UsageError


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flowvq_cli", *args], capture_output=True, text=True, timeout=600)


@pytest.fixture()
def job_dir(tmp_path: Path, face_png: Path, speech_wav: Path) -> Path:
    shutil.copy(face_png, tmp_path / "face.png")
    shutil.copy(speech_wav, tmp_path / "speech.wav")
    (tmp_path / "jobs.csv").write_text(
        "face,audio,emotion,seed\n"
        "face.png,speech.wav,angry,3\n"
        "face.png,speech.wav,bored,1\n"  # unknown emotion: this row fails, the others still run
        "face.png,speech.wav,happy,2\n"
        "face.png,speech.wav,sad,4\n"
    )
    return tmp_path


@pytest.mark.slow
def test_four_jobs_one_bad_row(job_dir: Path, tiny_bundle: Path) -> None:
    report = job_dir / "report.json"
    proc = run_cli("batch", str(job_dir / "jobs.csv"), "--weights", str(tiny_bundle), "--out", str(job_dir / "out"),
                   "--report", str(report))
    assert proc.returncode == 1  # something failed
    videos = sorted(p.name for p in (job_dir / "out").glob("*.mp4"))
    assert videos == ["face_speech_angry_s3.mp4", "face_speech_happy_s2.mp4", "face_speech_sad_s4.mp4"]
    rows = json.loads(report.read_text())["rows"]
    bad = [r for r in rows if r["status"] == "failed"]
    assert len(bad) == 1 and bad[0]["row"] == 3 and "unknown emotion 'bored'" in bad[0]["error"]
    assert "rows 3" in proc.stderr and "Traceback" not in proc.stderr
    again = run_cli("batch", str(job_dir / "jobs.csv"), "--weights", str(tiny_bundle), "--out", str(job_dir / "out"),
                    "--skip-existing")
    assert "3 skipped" in again.stderr


@pytest.mark.slow
def test_rows_are_independent_of_position_and_shards_split(job_dir: Path, tiny_bundle: Path) -> None:
    model = FlowVQ.from_pretrained(tiny_bundle, device="cpu")
    jobs = [j for j in read_jobs(job_dir / "jobs.csv") if j.emotion != "bored"]
    first = run_batch(model, jobs, out_dir=job_dir / "a", shard=(1, 2))
    second = run_batch(model, jobs, out_dir=job_dir / "a", shard=(2, 2))
    assert [o.row for o in first] == [2, 5] and [o.row for o in second] == [4]
    alone = model.generate(jobs[2].face, jobs[2].audio, emotion="sad", seed=4, write=False)
    in_batch = model.generate(jobs[2].face, jobs[2].audio, emotion="sad", seed=4, write=False)
    np.testing.assert_array_equal(alone.coeffs, in_batch.coeffs)


def test_bad_job_files(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("face,audio,colour\nx.png,y.wav,red\n")
    with pytest.raises(InputError, match=r"a\.csv:2: unknown column"):
        read_jobs(tmp_path / "a.csv")
    (tmp_path / "b.jsonl").write_text('{"face": "x.png"}\n')
    with pytest.raises(InputError, match=r"b\.jsonl:1: every job needs face and audio"):
        read_jobs(tmp_path / "b.jsonl")
    with pytest.raises(UsageError, match="--shard"):
        parse_shard("5/4")


def test_the_phones_column_is_yes_or_no(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("face,audio,phones\nx.png,y.wav,Yes\nx.png,y.wav,0\nx.png,y.wav,\n")
    assert [j.phones for j in read_jobs(tmp_path / "a.csv")] == [True, False, False]
    (tmp_path / "b.jsonl").write_text('{"face": "x.png", "audio": "y.wav", "phones": true}\n')
    assert read_jobs(tmp_path / "b.jsonl")[0].phones is True
    (tmp_path / "c.csv").write_text("face,audio,phones\nx.png,y.wav,maybe\n")
    with pytest.raises(InputError, match=r"c\.csv:2: phones must be yes or no"):
        read_jobs(tmp_path / "c.csv")
