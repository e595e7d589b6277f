"""Benchmark scripts run as a user runs them and print their figure (smoke tests at tiny sizes)."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # runs the benchmark scripts

REPO = Path(__file__).resolve().parents[1]


def run_script(*args: str) -> str:
    proc = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_bench_vqig_prints_frames_per_second() -> None:
    out = run_script("benchmarks/bench_vqig.py", "--config", "tiny", "--frames", "4", "--batch", "2", "--compose",
                     "--device", "cpu", "--fp32")
    assert re.search(r"compose True, mesh prior False, prior frame False\) at 32², batch 2, cpu, float32: [\d.]+ "
                     r"frames/s \(4 frames in [\d.]+ s, threads \d+; 4 of them through the networks\)", out), out
    assert out.splitlines()[-1].startswith("machine: ")
    out = run_script("benchmarks/bench_vqig.py", "--config", "tiny", "--frames", "4", "--batch", "2", "--mesh-prior",
                     "--device", "cpu")  # on the example photo, the mesh-warp motion timed with it
    assert re.search(r"mesh prior True, prior frame False\) at 32², batch 2, cpu, (bfloat16|float32): [\d.]+ frames/s",
                     out), out
    out = run_script("benchmarks/bench_vqig.py", "--config", "tiny", "--frames", "4", "--batch", "2", "--prior-frame",
                     "--device", "cpu")  # frames with a closed mouth are the mesh warp's, without the networks
    assert re.search(r"prior frame True\) at 32², batch 2, cpu, (bfloat16|float32): [\d.]+ frames/s .*; [0-4] of "
                     r"them through the networks\)", out), out


def test_a_missing_weights_folder_ends_a_script_with_its_message(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "benchmarks/eval_renderers.py", str(tmp_path), "--weights-codebook",
                           str(tmp_path / "missing")], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: codebook model: ") and "Traceback" not in proc.stderr, proc.stderr


def test_eye_motion_compares_the_modes() -> None:
    out = run_script("benchmarks/eye_motion.py", "--seeds", "1", "--pair", "examples/face.png", "examples/speech.wav")
    for mode in ("auto", "model"):
        assert re.search(rf"face.png \+ speech.wav --eyes {mode} *: [\d.]+ blinks/min", out), out
    gaze = [ln for ln in out.splitlines() if "gaze up/down" in ln]
    assert len(gaze) == 2 and all("happy" in ln and "sad" in ln for ln in gaze)


def test_bench_paste_times_both_ways_back_into_the_photo() -> None:
    out = run_script("benchmarks/bench_paste.py", "--frames", "3", "--photo", "examples/face2.png")
    figures = dict(re.findall(r"  (WarpPaste|PasteBack): [\d.]+ ms per frame, sharpness ([\d.]+) of the photo's", out))
    assert set(figures) == {"WarpPaste", "PasteBack"}, out
    assert float(figures["WarpPaste"]) > float(figures["PasteBack"])  # face2's face is larger than the crop


def test_reader_reach_free_moves_read_a_frown_smooth_fields_do_not() -> None:
    out = run_script("benchmarks/reader_reach.py", "--names", "mouthFrownLeft", "cheekPuff", "--steps", "150")
    rows = {m[0]: [float(x) for x in m[1:]] for m in re.findall(
        r"^(\w+) +([\d.]+) \| ([\d.]+), .*\| ([\d.]+), ", out, flags=re.MULTILINE)}
    assert set(rows) == {"mouthFrownLeft", "cheekPuff"}, out
    field, free, smooth = rows["mouthFrownLeft"]
    assert free > 0.5 > smooth and field < 0.5  # the reader can read a frown, the rig's smooth field barely
    assert max(rows["cheekPuff"]) < 0.1  # no landmark move reads as a puffed cheek
    assert re.search(r"read >= 0.5: free moves 1 of 2, smooth fields 0 of 2", out), out


def test_emotion_stages_follows_the_key_blendshapes(tmp_path: Path) -> None:
    out = run_script("benchmarks/emotion_stages.py", "--face", "examples/face2.png", "--speech", "examples/speech.wav",
                     "--out", str(tmp_path))
    assert len(re.findall(r"^face2.png s0 \w+ +\S+ +coefficients [-+][\d.]+  rig [-+][\d.]+  video [-+][\d.]+$", out,
                          flags=re.MULTILINE)) == 7, out
    shares = re.findall(r"share of the (?:coefficients' rise the rig reads|rig's rise the video keeps): ([\d.]+)", out)
    assert len(shares) == 2 and all(0.0 < float(s) < 2.0 for s in shares), out


@pytest.mark.skipif(importlib.util.find_spec("pocketsphinx") is None,
                    reason="the phones come from pocketsphinx: pip install '.[phones]'")
def test_phone_recognition_compares_the_recognisers_on_speech_with_its_text() -> None:
    out = run_script("benchmarks/phone_recognition.py", "--speech", "examples/speech3.wav",
                     "Bob put the maps by my bike, but Pam bought plum jam.", "--lw", "1")
    assert "1 recordings, 15 p/b/m" in out, out
    line = r"^(.+): p/b/m found [\d.]+ \(\d+ of 15\), extra \d+, vowel openness ρ -?[\d.]+, CPU [\d.]+ s per s$"
    names = re.findall(line, out, flags=re.MULTILINE)
    assert names == ["word recogniser, narrow search", "phone recogniser, lw 1", "phone recogniser, lw 2 (shipped)"]
    assert re.fullmatch(r"p/b/m found by the phone recogniser: [\d.]+", out.splitlines()[-1]), out
