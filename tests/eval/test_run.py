"""``flowvq evaluate`` as a library: real MP4s made from the example photo and speech."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from flowvq_cli.eval import run
from flowvq_cli.eval.plots import ClipTracks, write_plots

FPS = 25
FRAMES = 30
SIZE = 256


def _write_clip(path: Path, face_rgb: np.ndarray, audio: Path, amplitude_deg: float) -> Path:
    """A clip of the example face turning slightly (rotation only, the jaw stays still), audio muxed."""
    from flowvq_cli.video import VideoWriter

    face = cv2.resize(face_rgb, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    with VideoWriter(path, fps=FPS, size=(SIZE, SIZE), audio_path=audio) as writer:
        for t in range(FRAMES):
            matrix = cv2.getRotationMatrix2D((SIZE / 2, SIZE / 2), amplitude_deg * math.sin(t / 5), 1.0)
            writer.write(cv2.warpAffine(face, matrix, (SIZE, SIZE), borderMode=cv2.BORDER_REPLICATE))
    return path


@pytest.fixture(scope="module")
def same_clip_report(tmp_path_factory: pytest.TempPathFactory, face_png: Path, face_rgb: np.ndarray,
                     speech_wav: Path) -> run.EvalReport:
    """Prediction = ground truth = one clip; source photo given; plots written."""
    folder = tmp_path_factory.mktemp("eval_same")
    clip = _write_clip(folder / "face_speech_happy_s0.mp4", face_rgb, speech_wav, 3.0)
    return run.evaluate(clip, gt=clip, source=face_png, plots=folder / "plots")


def test_identical_clips_are_perfect(same_clip_report: run.EvalReport) -> None:
    report = same_clip_report
    assert report.metric("SSIM").value == pytest.approx(1.0)
    assert report.metric("PSNR").value == math.inf
    assert report.metric("CPBD").available
    for name in ("M-LMD", "F-LMD"):
        result = report.metric(name)
        if result.available:
            assert result.value == pytest.approx(0.0)
        else:
            assert "pip install '.[eval]'" in (result.reason or "")


def test_unavailable_metrics_carry_reasons(same_clip_report: run.EvalReport) -> None:
    report = same_clip_report
    fid = report.metric("FID")
    assert not fid.available and "--fid-weights" in (fid.reason or "")
    for name in ("pose diversity", "expression diversity"):
        assert not report.metric(name).available and "seeds" in (report.metric(name).reason or "")
    for result in report.summary:
        assert result.available == (result.value is not None)
        assert result.available or result.reason
    assert len(report.rows()) == len(report.summary) == len(run.METRIC_ORDER) + 2


def test_identity_and_emotion_when_extras_installed(same_clip_report: run.EvalReport) -> None:
    """Same face as the source photo; the clip's name says happy and the face smiles."""
    clip = same_clip_report.clips[0]
    assert clip.emotion == "happy"
    identity, accuracy = same_clip_report.metric("identity distance"), same_clip_report.metric("emotion accuracy")
    if identity.available:
        assert identity.value < 0.6 and same_clip_report.metric("identity match").value == 1.0
    else:
        assert "pip install" in (identity.reason or "")
    if accuracy.available:
        assert accuracy.value > 0.9
    else:
        assert "pip install" in (accuracy.reason or "")


def test_json_and_plots(same_clip_report: run.EvalReport) -> None:
    data = json.loads(same_clip_report.to_json())
    psnr = next(m for m in data["metrics"] if m["name"] == "PSNR")
    assert psnr["value"] == "inf"
    assert data["clips"][0]["name"] == "face_speech_happy_s0"
    assert len(data["clips"][0]["metrics"]) == len(run.METRIC_ORDER)
    assert len(same_clip_report.plots) == 3
    for path in same_clip_report.plots:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_offset_of_a_mouth_five_frames_late(speech_wav: Path) -> None:
    """The mouth track follows the real speech envelope 5 frames late: offset +5, high correlation there."""
    from flowvq_cli.audio.energy import energy_envelope
    from flowvq_cli.audio.load import load_audio

    wave = load_audio(speech_wav)
    energy = energy_envelope(wave.samples, wave.sr, fps=FPS).astype(np.float64)  # (T,) dB
    opening = np.clip((energy - energy.min()) / np.ptp(energy), 0.0, 1.0)
    mouth = np.concatenate([np.full(5, opening[0]), opening[:-5]])  # mouth[t] = opening[t - 5]
    sync, best, offset = run.sync_results(mouth, energy)
    assert offset.value == 5
    assert best.value > 0.99 and sync.value < best.value
    assert all(not r.available and "audio" in (r.reason or "") for r in run.sync_results(mouth, None))


@pytest.mark.slow
def test_seed_folder_gives_diversity_and_plots(tmp_path: Path, face_rgb: np.ndarray, speech_wav: Path) -> None:
    """Two seeds of one job in a folder (different head motion) → diversity > 0, trace map written."""
    for seed, amplitude in ((0, 2.0), (1, 6.0)):
        _write_clip(tmp_path / f"face_speech_contempt_s{seed}.mp4", face_rgb, speech_wav, amplitude)
    report = run.evaluate(tmp_path, use_dlib=False, use_fer=False, use_phones=False, plots=tmp_path / "plots")
    assert [c.name for c in report.clips] == ["face_speech_contempt_s0", "face_speech_contempt_s1"]
    assert report.metric("pose diversity").value > 0
    assert report.metric("expression diversity").available
    assert not report.metric("SSIM").available and "ground-truth" in (report.metric("SSIM").reason or "")
    assert "no 'contempt' class" in (report.metric("emotion accuracy").reason or "")
    assert "source photo" in (report.metric("identity distance").reason or "")
    assert (tmp_path / "plots" / "face_speech_contempt_diversity.png").is_file()
    assert report.metric("sync correlation").available  # the MP4's own audio track was used


def test_inputs_pairing_and_names(tmp_path: Path) -> None:
    (tmp_path / "gt").mkdir()
    clip = tmp_path / "a_b_sad_s3.mp4"
    gt, reason = run.pair_ground_truth(clip, tmp_path / "gt")
    assert gt is None and "a_b_sad_s3.mp4" in reason
    assert run.expected_emotion(clip, None) == "sad"
    assert run.expected_emotion(tmp_path / "clip.mp4", None) is None
    assert run.expected_emotion(clip, "talk") == "talk"
    assert run.seed_groups(["j_s0", "j_s1", "k_s0", "other"]) == {"j": [0, 1]}
    with pytest.raises(run.InputError, match=r"no \.mp4"):
        run.list_clips(tmp_path / "gt")


def test_write_plots_from_tracks(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    tracks = [ClipTracks("x", 25.0, rng.random(20), rng.random(20), rng.random(20), rng.normal(size=(20, 6)))]
    paths = write_plots(tracks, tmp_path / "p", diversity={"job": rng.normal(size=(3, 20, 6))})
    assert [p.name for p in paths] == ["x_sync.png", "x_blinks.png", "x_pose.png", "job_diversity.png"]


def test_missing_extras_become_reasons(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without dlib's models and fer, load_extras keeps going and says how to install them."""
    import importlib.util

    real = importlib.util.find_spec
    hidden = {"fer", "face_recognition_models"}
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in hidden else real(name, *a))
    extras = run.load_extras()
    assert extras.dlib is None and "pip install '.[eval]'" in extras.dlib_reason
    assert extras.fer is None and "pip install '.[eval]'" in extras.fer_reason
    assert extras.fid is None and "--fid-weights" in extras.fid_reason
