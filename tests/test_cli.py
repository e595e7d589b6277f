"""The ``flowvq`` command as a user runs it: a real subprocess, real files, real MediaPipe."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flowvq_cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def assert_clean_failure(proc: subprocess.CompletedProcess, code: int, *needles: str) -> None:
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error:"), lines[0]
    for n in needles:
        assert n in lines[0], lines[0]
    assert proc.stdout == ""


def test_version_is_instant_and_light() -> None:
    code = ("import sys; from flowvq_cli.cli import main\n"
            "try:\n    main(['--version'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
            "heavy = [m for m in ('torch', 'mediapipe', 'cv2', 'numpy') if m in sys.modules]\n"
            "print('HEAVY', heavy)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "flowvq 0.1.0" in proc.stdout
    assert "HEAVY []" in proc.stdout


def test_help_ends_with_examples() -> None:
    proc = run_cli("analyze", "--help")
    assert proc.returncode == 0
    assert "Examples:" in proc.stdout
    assert "flowvq analyze examples/face.png" in proc.stdout


@pytest.mark.slow
def test_analyze_photo_json(face_png: Path) -> None:
    proc = run_cli("analyze", str(face_png), "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["kind"] == "image" and summary["frames"] == 1
    assert set(summary["pose_degrees"]) == {"pitch", "yaw", "roll"}
    assert len(summary["top_blendshapes"]) == 5
    assert "warning" not in proc.stderr  # exactly one face


@pytest.mark.slow
def test_analyze_writes_outputs_and_refuses_overwrite(face_png: Path, tmp_path: Path) -> None:
    npz, csv_path, png = tmp_path / "sub" / "a.npz", tmp_path / "a.csv", tmp_path / "a_mesh.png"
    proc = run_cli("analyze", str(face_png), "--out", str(npz), "--csv", str(csv_path), "--overlay", str(png))
    assert proc.returncode == 0, proc.stderr
    data = np.load(npz)
    assert data["coeffs"].shape == (1, 58) and data["identity"].shape == (468, 3)
    assert int(data["coeff_layout_version"]) == 1
    header = csv_path.read_text().splitlines()[0].split(",")
    assert header[:3] == ["Timecode", "BlendShapeCount", "EyeBlinkLeft"]
    assert header[2 + 17] == "JawOpen" and header[2 + 51] == "TongueOut" and header[2 + 52] == "HeadYaw"
    overlay = np.asarray(Image.open(png))
    assert overlay.shape == np.asarray(Image.open(face_png)).shape
    assert not np.array_equal(overlay, np.asarray(Image.open(face_png).convert("RGB")))
    again = run_cli("analyze", str(face_png), "--out", str(npz))
    assert_clean_failure(again, 1, "already exists", "--force")
    forced = run_cli("analyze", str(face_png), "--out", str(npz), "--force")
    assert forced.returncode == 0, forced.stderr


def test_no_face(tmp_path: Path) -> None:
    from skimage import data

    cat = tmp_path / "chelsea.png"
    Image.fromarray(data.chelsea()).save(cat)
    assert_clean_failure(run_cli("analyze", str(cat)), 1, "no face", "chelsea.png")


@pytest.mark.parametrize("kind", ["garbage", "empty", "folder", "missing"])
def test_bad_files(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "input.png"
    if kind == "garbage":
        path.write_bytes(b"this is not an image at all" * 10)
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "folder":
        path.mkdir()
    assert_clean_failure(run_cli("analyze", str(path)), 1, "input.png")


def test_unknown_option_is_usage_error(face_png: Path) -> None:
    proc = run_cli("analyze", str(face_png), "--no-such-flag")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
