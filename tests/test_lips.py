"""Lips that close on p, b and m (``flowvq_cli.flow.lips``, ``generate --text`` / ``--phones``)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from flowvq_cli.audio.phones import Phone
from flowvq_cli.face import rig
from flowvq_cli.flow.lips import bilabial_closure, close_lips

FPS = 25.0
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
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


@pytest.mark.skipif(importlib.util.find_spec("pocketsphinx") is None,
                    reason="the phones come from pocketsphinx: pip install '.[phones]'")
def test_generate_with_text_shuts_the_lips_on_every_bilabial_and_leaves_the_rest(face_png: Path) -> None:
    """The shipped weights on a voice they never heard (15 bilabials): with ``text`` the face model's lips meet
    in the middle frame of every p, b and m; frames far from them are the flow's own, sample for sample."""
    from flowvq_cli.api import FlowVQ
    from flowvq_cli.audio.phones import BILABIALS, align_phones
    from flowvq_cli.face.canonical import lip_gap

    wav = EXAMPLES / "speech3.wav"
    model = FlowVQ.from_pretrained(device="cpu")
    plain = model.generate(face_png, wav, seed=0, write=False)
    shut = model.generate(face_png, wav, seed=0, write=False, text=SPEECH3_TEXT)
    assert shut.bilabials == 15 and shut.summary()["bilabials"] == 15 and "bilabials" not in plain.summary()
    identity = model.prepare_face(face_png).identity
    gaps = lip_gap(rig.synthesize(identity, shut.coeffs)[..., :2])
    middles = [_frame((p.start + p.end) / 2) for p in align_phones(wav, SPEECH3_TEXT) if p.label in BILABIALS]
    assert len(middles) == 15 and gaps[middles].max() < 0.05
    closure = bilabial_closure(align_phones(wav, SPEECH3_TEXT), len(shut.coeffs), FPS)
    far = closure < 1e-4
    assert far.sum() > 20  # of 108 frames: 15 bilabials in 4.3 s
    np.testing.assert_allclose(shut.coeffs[far], plain.coeffs[far], atol=1e-4)


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
