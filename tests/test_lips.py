"""Lips that follow the phones: open with the vowel, shut on p, b and m (``flowvq_cli.flow.lips``, ``generate
--text`` / ``--phones``)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from flowvq_cli.audio.phones import Phone
from flowvq_cli.data.visemes import OPENING_CHANNELS
from flowvq_cli.face import rig
from flowvq_cli.flow.lips import LED, SpokenLips, bilabial_closure, close_lips, follow_phones, spoken_lips

FPS = 25.0
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SPEECH2_TEXT = "Every morning I walk to the old harbour and watch the boats come in."
SPEECH3_TEXT = "Bob put the maps by my bike, but Pam bought plum jam."


def _frame(t: float) -> int:
    return round(t * FPS - 0.5)


def test_closure_is_full_over_each_bilabial_and_zero_far_from_it() -> None:
    phones = [Phone(0.0, 0.30, "SIL"), Phone(0.30, 0.42, "M"), Phone(0.42, 0.60, "AA"), Phone(0.60, 0.70, "T"),
              Phone(0.70, 0.80, "B"), Phone(0.80, 1.20, "IY")]
    closure = bilabial_closure(phones, 30, FPS)
    assert closure.shape == (30,) and closure.dtype == np.float32
    assert closure[_frame(0.36)] == pytest.approx(1.0) and closure[_frame(0.75)] == pytest.approx(1.0)
    assert closure[_frame(0.10)] < 1e-3 and closure[_frame(0.55)] < 1e-3 and closure[_frame(1.0)] < 1e-3
    assert closure.min() >= 0.0 and closure.max() <= 1.0
    assert not bilabial_closure([Phone(0.0, 1.0, "AA")], 25, FPS).any()
    short = bilabial_closure([Phone(0.0, 0.9, "AA"), Phone(0.9, 0.94, "P"), Phone(0.94, 1.2, "AA")], 30, FPS)
    assert (short == 1.0).sum() == 2  # a 40 ms stop still shuts the lips over two frames (readable on video)
    assert bilabial_closure(phones, 0, FPS).shape == (0,)


def test_closed_lips_take_the_bilabial_shape_and_keep_the_rest_of_the_face() -> None:
    names = rig.ARKIT_NAMES
    exp = np.zeros((3, rig.N_EXP), np.float32)
    exp[:, names.index("jawOpen")] = 0.6
    exp[:, names.index("mouthSmileLeft")] = 0.5
    exp[:, names.index("browDownLeft")] = 0.4
    shut = close_lips(exp, np.array([0.0, 0.5, 1.0], np.float32))
    assert shut.dtype == np.float32 and np.array_equal(shut[0], exp[0])
    jaw = shut[:, names.index("jawOpen")]
    assert jaw[2] == pytest.approx(0.04) and jaw[1] == pytest.approx((0.6 + 0.04) / 2)
    assert shut[2, names.index("mouthPressLeft")] == pytest.approx(0.35)
    for keep in ("mouthSmileLeft", "browDownLeft"):
        assert np.array_equal(shut[:, names.index(keep)], exp[:, names.index(keep)])
    with pytest.raises(ValueError, match="frames"):
        close_lips(exp, np.zeros(2, np.float32))


def test_the_phones_lead_the_mouth_at_the_flows_level_and_leave_the_rest() -> None:
    """The led channels go LEAD of the way to the phones' mouth plus the flow's median offset from it; the
    smile and the brows stay the flow's; then the bilabials shut the lips."""
    names = rig.ARKIT_NAMES
    jaw, smile, brow = names.index("jawOpen"), names.index("mouthSmileLeft"), names.index("browDownLeft")
    t = np.arange(40)
    mouth = np.zeros((40, rig.N_EXP), np.float32)
    mouth[:, jaw] = 0.3 + 0.2 * np.sin(t / 3.0)  # the phones open and close the jaw
    exp = np.zeros((40, rig.N_EXP), np.float32)
    exp[:, jaw] = 0.45 + 0.02 * np.cos(t)  # the flow holds it open, 0.15 above the phones' mouth on average
    exp[:, smile], exp[:, brow] = 0.6, 0.3
    closure = np.zeros(40, np.float32)
    closure[20] = 1.0
    lips = SpokenLips(mouth, closure, bilabials=1)
    for lead in (1.0, 0.5):
        out = follow_phones(exp, lips, lead=lead)
        assert out.dtype == np.float32 and out.shape == exp.shape
        level = np.median(exp[:, jaw] - mouth[:, jaw])
        want = exp[:, jaw] + lead * (np.clip(mouth[:, jaw] + level, 0, 1) - exp[:, jaw])
        free = np.abs(np.arange(40) - 20) > 1  # the closure's fall-off is 30 ms: a frame away it is nil
        np.testing.assert_allclose(out[free, jaw], want[free], atol=1e-6)
        assert out[20, jaw] == pytest.approx(0.04)  # shut on the bilabial
        assert np.array_equal(out[:, smile], exp[:, smile]) and np.array_equal(out[:, brow], exp[:, brow])
    assert "jawOpen" in LED and "mouthPucker" in LED and "mouthSmileLeft" not in LED
    np.testing.assert_array_equal(follow_phones(exp, SpokenLips(mouth, np.zeros(40, np.float32), 0), lead=0.0), exp)
    with pytest.raises(ValueError, match="frames"):
        follow_phones(exp[:5], lips)


def test_the_phones_mouth_opens_with_the_vowel_and_shuts_on_bilabials() -> None:
    """The corpus's mouth for ARPAbet phones: AA opens the jaw wider than IY, UW rounds the lips, M shuts them;
    a louder vowel opens wider."""
    names = rig.ARKIT_NAMES
    phones = [Phone(0.0, 0.2, "SIL"), Phone(0.2, 0.45, "AA"), Phone(0.45, 0.55, "M"), Phone(0.55, 0.8, "IY"),
              Phone(0.8, 1.05, "UW"), Phone(1.05, 1.4, "SIL")]
    loud = np.full(35, -20.0, np.float32)
    lips = spoken_lips(phones, loud, FPS, "neutral", 2)
    assert lips.mouth.shape == (35, rig.N_EXP) and lips.closure.shape == (35,) and lips.bilabials == 1
    jaw, pucker = lips.mouth[:, names.index("jawOpen")], lips.mouth[:, names.index("mouthPucker")]
    aa, iy, uw, m = _frame(0.33), _frame(0.68), _frame(0.93), _frame(0.5)
    assert jaw[aa] > 0.5 > 0.3 > jaw[iy] > jaw[m] and jaw[0] < 0.05
    assert pucker[uw] > 0.5 > pucker[aa] and lips.closure[m] == pytest.approx(1.0)
    quiet = loud.copy()
    quiet[_frame(0.2):_frame(0.45)] = -45.0
    assert spoken_lips(phones, quiet, FPS, "neutral", 2).mouth[aa, names.index("jawOpen")] < 0.7 * jaw[aa]


@pytest.mark.skipif(importlib.util.find_spec("pocketsphinx") is None,
                    reason="the phones come from pocketsphinx: pip install '.[phones]'")
def test_generate_with_text_opens_with_each_vowel_shuts_every_bilabial_and_leaves_the_rest(face_png: Path) -> None:
    """The shipped weights on voices they never heard: with ``text`` the face model's lips meet in the middle
    frame of each of speech3's 15 p, b and m, the jaw opens more for speech2's open vowels than for its close
    ones, and every channel the phones do not lead, and the head pose, is the flow's own sample."""
    from scipy.stats import spearmanr

    from flowvq_cli.api import FlowVQ
    from flowvq_cli.audio.phones import BILABIALS, align_phones
    from flowvq_cli.eval.phone_sync import OPENNESS
    from flowvq_cli.face.canonical import lip_gap

    wav = EXAMPLES / "speech3.wav"
    model = FlowVQ.from_pretrained(device="cpu")
    plain = model.generate(face_png, wav, seed=0, write=False)
    led = model.generate(face_png, wav, seed=0, write=False, text=SPEECH3_TEXT)
    assert led.bilabials == 15 and led.summary()["bilabials"] == 15 and "bilabials" not in plain.summary()
    identity = model.prepare_face(face_png).identity
    gaps = lip_gap(rig.synthesize(identity, led.coeffs)[..., :2])
    middles = [_frame((p.start + p.end) / 2) for p in align_phones(wav, SPEECH3_TEXT) if p.label in BILABIALS]
    assert len(middles) == 15 and gaps[middles].max() < 0.05

    vowels = [p for p in align_phones(EXAMPLES / "speech2.wav", SPEECH2_TEXT) if p.label in OPENNESS]
    jaw = model.generate(face_png, EXAMPLES / "speech2.wav", seed=0, write=False,
                         text=SPEECH2_TEXT).coeffs[:, rig.ARKIT_NAMES.index("jawOpen")]
    peaks = [jaw[_frame(p.start):_frame(p.end) + 1].max() for p in vowels]
    assert len(vowels) == 17 and spearmanr([OPENNESS[p.label] for p in vowels], peaks).statistic > 0.6
    kept = np.ones(rig.N_COEFFS, bool)
    kept[[rig.ARKIT_NAMES.index(name) for name in (*LED, *OPENING_CHANNELS)]] = False  # and tongueOut: shut
    np.testing.assert_allclose(led.coeffs[:, kept], plain.coeffs[:, kept], atol=1e-6)
    assert not np.allclose(led.coeffs[:, ~kept], plain.coeffs[:, ~kept], atol=0.05)


@pytest.mark.skipif(importlib.util.find_spec("pocketsphinx") is None,
                    reason="the phones come from pocketsphinx: pip install '.[phones]'")
@pytest.mark.parametrize(("text", "code", "needle"), [("!!!", 2, "holds no words"), ("Bob xqzzyq", 1, "xqzzyq")])
@pytest.mark.slow
def test_text_that_cannot_be_aligned_is_one_clear_line(text: str, code: int, needle: str, tiny_bundle: Path,
                                                        face_png: Path, tmp_path: Path) -> None:
    """No words at all is a usage error (exit 2); a word pocketsphinx does not know is named (exit 1)."""
    out = tmp_path / "x.mp4"
    proc = subprocess.run([sys.executable, "-m", "flowvq_cli", "generate", str(face_png), str(EXAMPLES / "speech3.wav"),
                           "--weights", str(tiny_bundle), "--text", text, "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == code and len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    assert needle in lines[0]
    assert not out.exists() and not list(tmp_path.iterdir())
