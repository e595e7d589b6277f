"""The whole path as a user runs it: synth a corpus → train tiny flows, codebook and VQIG → bundle →
generate an MP4 with the learned renderer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from flowvq_cli.api import FlowVQ
from flowvq_cli.errors import WeightsError
from flowvq_cli.flow import ExpFlow
from flowvq_cli.hub import verify
from flowvq_cli.video import probe_video

pytestmark = pytest.mark.slow  # synthesises a corpus, trains four models


def flowvq(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "flowvq_cli", *args], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return proc


def test_synth_train_bundle_generate(tmp_path: Path, face_png: Path, speech_wav: Path) -> None:
    data = tmp_path / "data"
    flowvq("synth", str(data), "--clips", "6", "--seed", "2", "-q")
    for component in ("expflow", "poseflow"):
        out = flowvq("train", component, str(data), "--config", "tiny", "--out", str(tmp_path / component),
                     "--steps", "6", "--batch-size", "4", "--warmup", "2", "--eval-every", "3", "--save-every", "3",
                     "--window-frames", "16", "--no-augment", "--set", "audio_layers=2", "--set", "audio_context=3",
                     "-q")
        assert Path(out.stdout.strip()) == tmp_path / component / "export" / component
    config = ExpFlow.from_pretrained(tmp_path / "expflow" / "export" / "expflow").config
    assert (config.audio_layers, config.audio_context) == (2, 3)
    bad = subprocess.run([sys.executable, "-m", "flowvq_cli", "train", "expflow", str(data), "--out",
                          str(tmp_path / "bad"), "--set", "audio_contxt=3"], capture_output=True, text=True)
    assert bad.returncode != 0 and "unknown ExpFlowConfig field" in bad.stderr and "Traceback" not in bad.stderr
    image_args = ("--config", "tiny", "--steps", "4", "--batch-size", "2", "--warmup", "1", "--eval-every", "2",
                  "--save-every", "2", "-q")
    codebook = flowvq("train", "codebook", str(data), "--out", str(tmp_path / "codebook"), "--size", "32",
                      "--crop", "16", "--adversarial-warmup", "2", *image_args)
    assert Path(codebook.stdout.strip()) == tmp_path / "codebook" / "export" / "codebook"
    assert list((tmp_path / "codebook" / "samples").glob("step-*.png"))
    run = json.loads((tmp_path / "codebook" / "run.json").read_text())
    assert run["crop"] == 16 and run["loss"]["adversarial_warmup_steps"] == 2 and run["augment"] is not None
    flowvq("train", "vqig", str(data), "--out", str(tmp_path / "vqig"), "--codebook", codebook.stdout.strip(),
           "--warm-start-steps", "1", "--no-augment", *image_args)
    assert json.loads((tmp_path / "vqig" / "run.json").read_text())["augment"] is None
    first_stage = tmp_path / "first-stage"  # a codebook without VQIG: renders with the mesh warp
    flowvq("train", "bundle", str(first_stage), "--expflow", str(tmp_path / "expflow"),
           "--poseflow", str(tmp_path / "poseflow"), "--codebook", str(tmp_path / "codebook"))
    assert verify(first_stage).ok and (first_stage / "codebook").is_dir()
    assert FlowVQ.from_pretrained(first_stage, device="cpu").renderer == "warp"
    with pytest.raises(WeightsError, match="no VQIG renderer"):
        FlowVQ.from_pretrained(first_stage, device="cpu", renderer="vqig")
    bundle = tmp_path / "bundle"
    flowvq("train", "bundle", str(bundle), "--expflow", str(tmp_path / "expflow"),
           "--poseflow", str(tmp_path / "poseflow"), "--codebook", str(tmp_path / "codebook"),
           "--vqig", str(tmp_path / "vqig"), "--name", "e2e")
    assert verify(bundle).ok
    video = tmp_path / "out.mp4"
    summary = json.loads(flowvq("generate", str(face_png), str(speech_wav), "--emotion", "sad", "--seed", "1",
                                "--weights", str(bundle), "--out", str(video), "--json").stdout)
    assert summary["renderer"] == "vqig"
    info = probe_video(video)
    assert info.has_audio and info.fps == 25 and info.n_frames == summary["frames"]
    assert abs(info.duration - summary["duration"]) < 0.1
