"""`flowvq generate` end to end with a real (tiny, untrained) bundle: real MediaPipe, ffmpeg, audio."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from flowvq_cli.api import FlowVQ
from flowvq_cli.video import ffmpeg_exe, probe_video


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flowvq_cli", *args], capture_output=True, text=True, timeout=300)


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 1, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    assert "Traceback" not in proc.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def write_wav(path: Path, samples: np.ndarray, sr: int = 16000) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return path


@pytest.fixture(scope="module")
def model(tiny_bundle: Path) -> FlowVQ:
    return FlowVQ.from_pretrained(tiny_bundle, device="cpu")


def test_seeds_are_reproducible_and_distinct(model: FlowVQ, face_png: Path, speech_wav: Path) -> None:
    a = model.generate(face_png, speech_wav, emotion="angry", seed=3, write=False)
    b = model.generate(face_png, speech_wav, emotion="angry", seed=3, write=False)
    c = model.generate(face_png, speech_wav, emotion="angry", seed=4, write=False)
    np.testing.assert_array_equal(a.coeffs, b.coeffs)
    assert not np.array_equal(a.coeffs, c.coeffs)
    assert a.coeffs.shape == (round(a.duration * 25 + 1e-9), 58)
    still = model.generate(face_png, speech_wav, emotion="angry", seed=3, pose="still", write=False)
    assert np.ptp(still.coeffs[:, 52:], axis=0).max() == 0.0


@pytest.mark.slow
def test_eyes_auto_changes_only_the_eyes(model: FlowVQ, face_png: Path, speech_wav: Path, tmp_path: Path) -> None:
    from flowvq_cli.flow.eyes import EYE_INDICES, GAZE_INDICES

    auto = model.generate(face_png, speech_wav, emotion="sad", seed=5, write=False)
    flow_only = model.generate(face_png, speech_wav, emotion="sad", seed=5, eyes="model", write=False)
    eyes = [*EYE_INDICES, *GAZE_INDICES]
    others = [i for i in range(58) if i not in eyes]
    np.testing.assert_array_equal(auto.coeffs[:, others], flow_only.coeffs[:, others])
    assert np.all(auto.coeffs[:, list(EYE_INDICES)] >= flow_only.coeffs[:, list(EYE_INDICES)])
    proc = run_cli("generate", str(face_png), str(speech_wav), "--eyes", "off", "--out", str(tmp_path / "x.mp4"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr  # a usage error, like an unknown emotion
    assert "unknown --eyes 'off'" in proc.stderr and "model" in proc.stderr
    assert not (tmp_path / "x.mp4").exists()


@pytest.mark.slow
def test_cli_writes_a_playable_mp4(tiny_bundle: Path, face_png: Path, speech_wav: Path, tmp_path: Path) -> None:
    proc = run_cli("generate", str(face_png), str(speech_wav), "--emotion", "angry", "--seed", "3",
                   "--weights", str(tiny_bundle), "--out", str(tmp_path) + "/", "--json",
                   "--coeffs", str(tmp_path / "c.csv"))
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    out = Path(summary["output"])
    assert out == tmp_path / "face_speech_angry_s3.mp4" and out.is_file()
    info = probe_video(out)
    banner = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(out)], capture_output=True, text=True).stderr
    assert re.search(r"Video: h264.*yuv420p", banner) and "Audio: aac" in banner
    assert info.fps == 25 and info.has_audio
    assert info.n_frames == summary["frames"] == round(4.92 * 25)
    assert abs(info.n_frames / 25 - summary["duration"]) <= 1 / 25
    assert (info.width, info.height) == Image.open(face_png).size
    assert '"seed": 3' in banner or "seed" in banner  # metadata travels in the MP4
    rows = (tmp_path / "c.csv").read_text().splitlines()
    assert len(rows) == summary["frames"] + 1 and rows[0].startswith("Timecode,BlendShapeCount,EyeBlinkLeft")
    again = run_cli("generate", str(face_png), str(speech_wav), "--emotion", "angry", "--seed", "3",
                    "--weights", str(tiny_bundle), "--out", str(out))
    assert_one_line_error(again, "already exists", "--force")


@pytest.mark.slow
def test_crop_only_and_num_samples(tiny_bundle: Path, face_png: Path, speech_wav: Path, tmp_path: Path) -> None:
    proc = run_cli("generate", str(face_png), str(speech_wav), "-e", "happy", "-n", "2", "--crop-only",
                   "--pose", "still", "--weights", str(tiny_bundle), "--out", str(tmp_path / "many"), "-q")
    assert proc.returncode == 0, proc.stderr
    outs = proc.stdout.split()
    assert [Path(o).name for o in outs] == ["face_speech_happy_s0.mp4", "face_speech_happy_s1.mp4"]
    assert probe_video(outs[0]).width == 256


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory: pytest.TempPathFactory, tiny_bundle: Path) -> dict[str, Path]:
    from skimage import data

    d = tmp_path_factory.mktemp("bad")
    Image.fromarray(data.chelsea()).save(d / "cat.png")
    (d / "empty.png").write_bytes(b"")
    (d / "garbage.png").write_bytes(b"\x89PNG but not really an image" * 10)
    face = Image.open(Path(__file__).parent.parent / "examples" / "face.png").convert("RGB")
    face.resize((40, 40)).save(d / "tiny.png")  # a face far below the minimum size
    (d / "notes.txt").write_text("not audio at all\n")
    (d / "garbage.wav").write_bytes(b"RIFF not really a wave file" * 20)
    (d / "empty.wav").write_bytes(b"")
    t = np.arange(int(0.2 * 16000)) / 16000
    write_wav(d / "short.wav", 0.3 * np.sin(2 * np.pi * 220 * t))
    write_wav(d / "silent.wav", np.zeros(16000 * 2))
    tampered = shutil.copytree(tiny_bundle, d / "tampered")
    weights = tampered / "expflow" / "model.safetensors"
    blob = bytearray(weights.read_bytes())
    blob[-1] ^= 0xFF
    weights.write_bytes(bytes(blob))
    truncated = shutil.copytree(tiny_bundle, d / "truncated")
    part = truncated / "poseflow" / "model.safetensors"
    part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])
    layout = shutil.copytree(tiny_bundle, d / "layout2")
    manifest = json.loads((layout / "flowvq.json").read_text())
    manifest["coeff_layout_version"] = 2
    (layout / "flowvq.json").write_text(json.dumps(manifest))
    return {"dir": d, "tampered": tampered, "truncated": truncated, "layout2": layout}


@pytest.mark.parametrize(
    ("case", "needles"),
    [
        ("no_face", ("no face",)),
        ("empty_image", ("empty",)),
        ("garbage_image", ("garbage.png",)),
        ("tiny_face", ("px wide", "at least 64 px")),
        ("unsupported_audio", ("notes.txt",)),
        ("truncated_weights", ("truncated",)),
        ("garbage_audio", ("garbage.wav",)),
        ("empty_audio", ("empty.wav",)),
        ("short_audio", ("short",)),
        ("silent_audio", ("silent",)),
        ("missing_weights", ("nowhere",)),
        ("tampered_weights", ("sha256",)),
        ("layout_mismatch", ("layout",)),
        ("missing_out_folder", ("does not exist",)),
    ],
)
@pytest.mark.slow
def test_bad_input_is_one_clear_line(case: str, needles: tuple[str, ...], bad_inputs: dict[str, Path],
                                     tiny_bundle: Path, face_png: Path, speech_wav: Path) -> None:
    d = bad_inputs["dir"]
    face, audio, weights, out = face_png, speech_wav, tiny_bundle, d / f"{case}.mp4"
    if case == "no_face":
        face = d / "cat.png"
    elif case == "empty_image":
        face = d / "empty.png"
    elif case == "garbage_image":
        face = d / "garbage.png"
    elif case == "tiny_face":
        face = d / "tiny.png"
    elif case == "unsupported_audio":
        audio = d / "notes.txt"
    elif case == "truncated_weights":
        weights = bad_inputs["truncated"]
    elif case.endswith("_audio"):
        audio = d / {"garbage_audio": "garbage.wav", "empty_audio": "empty.wav", "short_audio": "short.wav",
                     "silent_audio": "silent.wav"}[case]
    elif case == "missing_weights":
        weights = d / "nowhere"
    elif case == "tampered_weights":
        weights = bad_inputs["tampered"]
    elif case == "layout_mismatch":
        weights = bad_inputs["layout2"]
    elif case == "missing_out_folder":
        out = d / "no" / "such" / "folder" / "x.mp4"
    proc = run_cli("generate", str(face), str(audio), "--weights", str(weights), "--out", str(out))
    assert_one_line_error(proc, *needles)
    assert not out.exists()
    assert not list(out.parent.glob(".*partial*")) if out.parent.exists() else True


@pytest.mark.slow
def test_transfer_from_a_reference_clip(model: FlowVQ, face_png: Path, speech_wav: Path, face_rgb: np.ndarray,
                                        tmp_path: Path) -> None:
    """A reference video with speech: its coefficients → latents (forward pass) → reused for new audio."""
    import cv2

    from flowvq_cli.video import VideoWriter

    ref = tmp_path / "ref.mp4"
    h, w = face_rgb.shape[:2]
    with VideoWriter(ref, fps=25, size=(w, h), audio_path=speech_wav) as writer:
        for t in range(60):
            m = cv2.getRotationMatrix2D((w / 2, h / 2), 4.0 * np.sin(t / 6), 1.0)
            writer.write(cv2.warpAffine(face_rgb, m, (w, h), borderMode=cv2.BORDER_REFLECT))
    out = tmp_path / "transfer.mp4"
    result = model.transfer(face_png, speech_wav, ref, ref_emotion="happy", pose="reference", out=out)
    info = probe_video(out)
    assert info.n_frames == result.n_frames == round(4.92 * 25) and info.has_audio
    assert result.emotion == "happy"
    again = model.transfer(face_png, speech_wav, ref, ref_emotion="happy", pose="reference", write=False)
    np.testing.assert_array_equal(result.coeffs, again.coeffs)  # latents come from the clip, not the seed


@pytest.mark.slow
def test_vqig_renderer_path(tiny_renderer_bundle: Path, tiny_bundle: Path, face_png: Path, speech_wav: Path,
                            tmp_path: Path) -> None:
    """The learned renderer end to end (tiny, untrained codebook + VQIG: the plumbing, not the quality)."""
    model = FlowVQ.from_pretrained(tiny_renderer_bundle, device="cpu")
    assert model.renderer == "vqig"  # auto picks it when the bundle has one
    out = tmp_path / "vqig.mp4"
    result = model.generate(face_png, speech_wav, emotion="fear", seed=2, out=out, paste_back=False)
    info = probe_video(out)
    assert (info.width, info.height) == (256, 256) and info.n_frames == result.n_frames
    assert result.summary()["precision"] == model.vqig.render_precision
    proc = run_cli("generate", str(face_png), str(speech_wav), "--weights", str(tiny_renderer_bundle), "--fp32",
                   "--crop-only", "--json", "--out", str(tmp_path / "fp32.mp4"))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["precision"] == "float32"  # even where bf16 would be used
    assert FlowVQ.from_pretrained(tiny_renderer_bundle, device="cpu", fp32=True).vqig.render_dtype == torch.float32
    proc = run_cli("generate", str(face_png), str(speech_wav), "--weights", str(tiny_bundle), "--renderer", "vqig",
                   "--out", str(tmp_path / "x.mp4"))
    assert_one_line_error(proc, "no VQIG renderer", "--renderer warp")
    proc = run_cli("transfer", str(face_png), str(speech_wav), "--ref", str(face_png), "--weights", str(tiny_bundle),
                   "--renderer", "vqig", "--out", str(tmp_path / "y.mp4"))  # transfer takes the renderer too
    assert_one_line_error(proc, "no VQIG renderer", "--renderer warp")


def test_vqig_on_the_mesh_prior_renders_close_to_the_mesh_warp(tiny_prior_bundle: Path, face_png: Path) -> None:
    """A ``mesh_prior`` VQIG gets each frame's mesh-warp motion from the pipeline: its frames are the mesh
    warp's at its resolution wherever that renderer paints no mouth (its closing lids included:
    ``prior_frame``). The bundle names the warp its default
    renderer, so the VQIG it holds renders only when asked for."""
    import cv2

    from flowvq_cli.face import rig
    from flowvq_cli.render.meshwarp import MeshWarpConfig, MeshWarpRenderer

    assert FlowVQ.from_pretrained(tiny_prior_bundle, device="cpu").renderer == "warp"
    model = FlowVQ.from_pretrained(tiny_prior_bundle, device="cpu", renderer="vqig")
    assert model.vqig.config.mesh_prior and model.vqig.config.prior_frame
    source = model.prepare_face(face_png)
    coeffs = np.repeat(source.coeffs[None], 4, axis=0)
    coeffs[:, rig.N_EXP + 1] += np.radians([-12.0, -4.0, 4.0, 12.0])  # the head turns
    coeffs[:, rig.ARKIT_NAMES.index("jawOpen")] = 0.6
    coeffs[[0, 3], rig.ARKIT_NAMES.index("eyeBlinkLeft")] = 1.0  # closing lids: the renderer's own paint
    frames = np.stack(list(model.render(source, coeffs, paste_back=False)))  # (4, 256, 256, 3)
    small = np.stack([cv2.resize(f, (32, 32), interpolation=cv2.INTER_AREA) for f in frames]).astype(float)
    scale = 32 / rig.CROP_SIZE
    crop = cv2.resize(source.crop, (32, 32), interpolation=cv2.INTER_AREA)
    mesh = MeshWarpRenderer(crop, source.mesh * scale, MeshWarpConfig(size=32))
    warp = mesh.render(rig.synthesize(source.identity, coeffs) * scale)
    photo = warp.mouth_paint == 0  # (4, 32, 32)
    assert (warp.paint[photo] > 0).sum() > 2  # lids painted, and kept
    close = np.abs(small - warp.frames).mean(axis=-1)[photo].mean()
    swapped = np.abs(small - warp.frames[::-1]).mean(axis=-1)[photo].mean()  # each frame vs the other turn
    assert close < 4.0 and close < 0.3 * swapped


@pytest.mark.slow
def test_evaluate_command_on_a_generated_video(model: FlowVQ, face_png: Path, speech_wav: Path,
                                               tmp_path: Path) -> None:
    video = tmp_path / "face_speech_happy_s1.mp4"
    # the head still: the untrained tiny PoseFlow's poses can turn it out of the picture, and FaceMesh with it
    model.generate(face_png, speech_wav, emotion="happy", seed=1, pose="still", out=video)
    report = tmp_path / "metrics.json"
    proc = subprocess.run([sys.executable, "-m", "flowvq_cli", "evaluate", "--pred", str(video), "--source",
                           str(face_png), "--json", str(report), "-q"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "sync correlation" in proc.stdout and "FID" in proc.stdout
    metrics = {m["name"]: m for m in json.loads(report.read_text())["metrics"]}
    assert metrics["A/V offset"]["available"] and metrics["blink rate"]["available"], (
        metrics["A/V offset"], metrics["blink rate"])
    assert not metrics["FID"]["available"] and metrics["FID"]["reason"]  # no GT here: says what it needs


@pytest.mark.slow
def test_several_faces_warn_and_face_index_picks(tiny_bundle: Path, face_rgb: np.ndarray, speech_wav: Path,
                                                tmp_path: Path) -> None:
    big = Image.fromarray(face_rgb)
    small = big.resize((big.width * 2 // 3, big.height * 2 // 3))
    canvas = Image.new("RGB", (big.width + small.width, big.height), (200, 200, 200))
    canvas.paste(big, (0, 0))
    canvas.paste(small, (big.width, (big.height - small.height) // 2))
    group = tmp_path / "two.png"
    canvas.save(group)
    proc = run_cli("generate", str(group), str(speech_wav), "--weights", str(tiny_bundle), "--crop-only",
                   "--out", str(tmp_path / "a.mp4"))
    assert proc.returncode == 0, proc.stderr
    assert "2 faces" in proc.stderr and "--face-index" in proc.stderr
    other = run_cli("generate", str(group), str(speech_wav), "--weights", str(tiny_bundle), "--crop-only",
                    "--face-index", "1", "--out", str(tmp_path / "b.mp4"))
    assert other.returncode == 0 and "faces" not in other.stderr
    too_far = run_cli("generate", str(group), str(speech_wav), "--weights", str(tiny_bundle), "--face-index", "5",
                      "--out", str(tmp_path / "c.mp4"))
    assert_one_line_error(too_far, "face index 5")


def test_shipped_bundle_renders_with_the_warp_and_holds_a_working_vqig(face_png: Path) -> None:
    """The bundle in weights/ names the mesh warp its default renderer (the model card measures why) and its
    codebook + VQIG load onto each other and render frames that keep the photo outside the painted mouth, in
    the crop and pasted into the photo."""
    from flowvq_cli.bundle import read_bundle
    from flowvq_cli.face import rig
    from flowvq_cli.hub import resolve_weights

    bundle = read_bundle(resolve_weights(None))
    assert bundle.default_renderer == "warp" and bundle.has("codebook") and bundle.has("vqig")
    assert FlowVQ.from_pretrained(device="cpu").renderer == "warp"
    model = FlowVQ.from_pretrained(device="cpu", renderer="vqig")
    assert model.vqig.config.prior_frame
    source = model.prepare_face(face_png)
    coeffs = np.repeat(source.coeffs[None], 2, axis=0)
    coeffs[:, : rig.N_EXP] = 0.0  # the neutral face: lips closed, eyes open, nothing to paint
    coeffs[1, rig.ARKIT_NAMES.index("jawOpen")] = 0.5
    warp_model = FlowVQ.from_pretrained(device="cpu")
    for paste_back in (False, True):  # the crop, and the photo (both composed at the photo's resolution)
        frames = list(model.render(source, coeffs, paste_back=paste_back))
        warp = list(warp_model.render(source, coeffs, paste_back=paste_back))
        assert np.array_equal(frames[0], warp[0])  # nothing painted: the warp's frame, the networks not run
        changed = np.abs(frames[1].astype(int) - warp[1].astype(int)).max(axis=-1) > 2
        assert 20 < changed.sum() < 0.05 * changed.size  # the codebook paints the opened mouth, nothing else
