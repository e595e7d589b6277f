"""benchmarks/lip_sync_phones.py run as a user runs it: it measures with ``flowvq evaluate``'s phone metrics
(``flowvq_cli.eval.phone_sync``, tested with known answers in tests/eval/test_phone_sync.py and test_phones.py)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pocketsphinx", reason='the phone aligner is pocketsphinx: pip install -e ".[eval]"')

pytestmark = pytest.mark.slow  # runs a benchmark script

REPO = Path(__file__).resolve().parents[1]
SPEECH3 = REPO / "examples" / "speech3.wav"
TEXT3 = "Bob put the maps by my bike, but Pam bought plum jam."


def test_the_script_prints_a_line_per_video_and_the_closure_rate_last(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "benchmarks/lip_sync_phones.py", "--speech", str(SPEECH3), TEXT3,
                           "--out", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert re.search(r"speech3.wav: \d+ phones aligned in [\d.]+ s, 15 p/b/m, 12 vowels, 0 uw/ow/w", out), out
    assert re.search(r"face.png \+ speech3.wav s0: p/b/m closed \d+/15 \(smallest gap per phone: median [\d.]+\), "
                     r"vowel opening vs openness ρ -?[\d.]+ \(12 vowels\), rounded 0/0, jawOpen/energy -?[\d.]+ "
                     r"at offset [+-]\d+", out), out
    assert re.search(r"jawOpen / energy \(evaluate's sync correlation at the best offset, mean\): -?[\d.]+", out)
    assert "uw/ow/w with mouthFunnel or mouthPucker raised: no such phone" in out
    assert re.match(r"p/b/m lip closure \(gap < 0.05 mouth widths\): [\d.]+ \(\d+ of 15 phones",
                    out.splitlines()[-1]), out
    assert (tmp_path / "face" / "face_speech3_neutral_flow_s0.mp4").is_file()
