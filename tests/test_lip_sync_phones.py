"""benchmarks/lip_sync_phones.py: its measures on real input (pocketsphinx's alignment of an example voice, the
lip gap of the example photos), and the script run as a user runs it."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pocketsphinx", reason='the phone aligner is pocketsphinx: pip install -e ".[eval]"')

REPO = Path(__file__).resolve().parents[1]
SPEECH3 = REPO / "examples" / "speech3.wav"
TEXT3 = "Bob put the maps by my bike, but Pam bought plum jam."


def load_benchmark():
    spec = importlib.util.spec_from_file_location("lip_sync_phones", REPO / "benchmarks" / "lip_sync_phones.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(REPO / "benchmarks"))  # its `from common import ...`
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    return module


def test_phones_of_an_example_voice_and_the_measures_on_them() -> None:
    from flowvq_cli.face.analyze import analyze

    bench = load_benchmark()
    phones = bench.align_phones(SPEECH3, TEXT3)
    # Bob put the maps by my bike, but Pam bought plum jam: every bilabial of the text, in order
    assert [p.label for p in phones if p.label in bench.BILABIALS] == list("BBPMPBMBBPMBPMM")
    starts = np.array([p.start for p in phones])
    ends = np.array([p.end for p in phones])
    assert np.all(ends > starts) and np.allclose(starts[1:], ends[:-1]) and starts[0] == 0.0
    assert 4.2 <= ends[-1] <= 4.4  # the file lasts 4.32 s
    vowels = [p for p in phones if p.label in bench.OPENNESS]
    assert len(vowels) == 12  # one in each word

    # A track from real landmarks: face.png's lips are parted, face2.png's meet. Closed in the middle frame
    # of each M only, so every M counts and no P or B; the gap in each vowel follows its openness.
    parted, shut = (float(bench.lip_gaps(analyze(REPO / "examples" / f).landmarks)[0])
                    for f in ("face.png", "face2.png"))
    assert shut < bench.CLOSED < parted
    fps = 25.0
    gap = np.full(int(ends[-1] * fps) + 1, parted)
    for p in phones:
        if p.label == "M":
            gap[int((p.start + p.end) / 2 * fps)] = shut
    closed = bench.closures(gap, phones, fps) < bench.CLOSED
    labels = [s.label for s in bench.bilabial_spans(phones)]
    assert closed.tolist() == [label == "M" for label in labels]
    track = gap.copy()
    for p in vowels:
        track[bench.frames_of(p, fps, track.size)] = bench.OPENNESS[p.label] * parted
    openness, opening = bench.vowel_openings(track, phones, fps)
    assert openness.size == 12 and bench.spearman(openness, opening) > 0.9

    # A phone's frames: those whose centre lies within its span ± half a frame
    assert bench.frames_of(bench.Phone(0.10, 0.15, "M"), fps, 100).tolist() == [2, 3]
    assert bench.frames_of(bench.Phone(0.0, 0.02, "M"), fps, 100).tolist() == [0]


def test_the_script_prints_a_line_per_video_and_the_closure_rate_last(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "benchmarks/lip_sync_phones.py", "--speech", str(SPEECH3), TEXT3,
                           "--out", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert re.search(r"speech3.wav: \d+ phones aligned in [\d.]+ s, 15 p/b/m, 12 vowels", out), out
    assert re.search(r"face.png \+ speech3.wav s0: p/b/m closed \d+/15 \(smallest gap per phone: median [\d.]+\), "
                     r"vowel opening vs openness ρ -?[\d.]+ \(12 vowels\), jawOpen/energy -?[\d.]+ at offset [+-]\d+",
                     out), out
    assert re.search(r"jawOpen / energy \(evaluate's sync correlation at the best offset, mean\): -?[\d.]+", out)
    assert re.match(r"p/b/m lip closure \(gap < 0.05 mouth widths\): [\d.]+ \(\d+ of 15 phones",
                    out.splitlines()[-1]), out
    assert (tmp_path / "face" / "face_speech3_neutral_s0.mp4").is_file()
