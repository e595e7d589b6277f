"""Training the codebook model and VQIG end to end on a tiny synthetic corpus: learning, sample grids,
exact resume (discriminator included), frozen codebook, export."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from flowvq_cli.api import corpus_frames
from flowvq_cli.data.datasets import FrameTripletDataset
from flowvq_cli.data.manifest import read_manifest, write_manifest
from flowvq_cli.data.synth import synthesize_corpus
from flowvq_cli.errors import UsageError, WeightsError
from flowvq_cli.train import TrainConfig, Trainer
from flowvq_cli.train.images import (
    RandomCrops,
    StageSchedule,
    codebook_configs,
    train_codebook,
    train_vqig,
)
from flowvq_cli.training_state import load_training_state
from flowvq_cli.vq import VQGAN, VQGANLossConfig
from flowvq_cli.vqig import VQIG, VQIGConfig

SIZE = 32
TINY = TrainConfig(steps=8, batch_size=4, lr=2e-3, warmup=2, eval_every=4, save_every=4, keep_last=3, log_every=1,
                   device="cpu", eval_batches=2)
CODEBOOK_LOSS = dataclasses.replace(VQGANLossConfig.tiny(), adversarial_warmup_steps=4)


pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two synthetic clips (frames + identity); the second becomes a held-out speaker's val clip."""
    root = tmp_path_factory.mktemp("synth")
    synthesize_corpus(root, clips=2, seed=1, render=corpus_frames)
    first, second = read_manifest(root)
    write_manifest(root, [dataclasses.replace(first, split="train"),
                          dataclasses.replace(second, split="val", speaker="held-out")])
    return root


def train_cb(data: Path, run: Path, config: TrainConfig = TINY, resume: bool = False):
    torch.set_num_threads(1)
    return train_codebook(data, run, "tiny", config, resume, size=SIZE, loss=CODEBOOK_LOSS, quiet=True)


@pytest.fixture(scope="module")
def codebook_run(data: Path, tmp_path_factory: pytest.TempPathFactory):
    return train_cb(data, tmp_path_factory.mktemp("runs") / "codebook")


def vqig_config() -> VQIGConfig:
    """The tiny preset with the adversarial term of the image stage on from its second step."""
    base = VQIGConfig.tiny()
    image = dataclasses.replace(base.loss.image, adversarial_warmup_steps=1)
    return dataclasses.replace(base, loss=dataclasses.replace(base.loss, image=image))


VQIG_TRAIN = dataclasses.replace(TINY, steps=8, eval_every=3, save_every=3)  # warm 0-1, code 2-4, image 5-7


def train_vq(data: Path, run: Path, codebook: Path, resume: bool = False):
    torch.set_num_threads(1)
    return train_vqig(data, run, codebook, vqig_config(), VQIG_TRAIN, resume, stage="both", warm_start_steps=2,
                      code_steps=3, quiet=True)


@pytest.fixture(scope="module")
def vqig_run(data: Path, codebook_run, tmp_path_factory: pytest.TempPathFactory):
    return train_vq(data, tmp_path_factory.mktemp("runs") / "vqig", codebook_run.export_dir)


def log_events(run: Path, event: str) -> list[dict]:
    return [r for r in map(json.loads, (run / "train_log.jsonl").read_text().splitlines()) if r["event"] == event]


def crash_at(step_to_crash: int):
    original = Trainer._train_step

    def crashing(self, model, batch, optimizer, scheduler, step, info, device):
        if step == step_to_crash:
            raise KeyboardInterrupt
        return original(self, model, batch, optimizer, scheduler, step, info, device)

    return original, crashing


def assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


# ---------------------------------------------------------------------------------------------- codebook


@pytest.mark.slow  # trains
def test_codebook_learns_logs_samples_and_exports(codebook_run, data: Path) -> None:
    run = codebook_run.training.run_dir
    train = log_events(run, "train")
    assert len(train) == 8 and all(np.isfinite(r["loss"]) for r in train)
    rec = [r["rec"] for r in train]
    assert np.mean(rec[-3:]) < np.mean(rec[:3]), rec  # reconstruction improves
    assert [r["adv_weight"] > 0 for r in train] == [False] * 4 + [True] * 4  # GAN term after the warm-up
    assert all("d_loss" in r for r in train)  # the discriminator trains from step 0
    start = log_events(run, "start")[0]["meta"]
    assert start["perceptual_kind"] == "disc_feature_matching+laplacian_pyramid"  # no VGG19 weights given
    assert start["validation"].endswith("held-out speakers (1 clips)")
    vals = log_events(run, "val")
    assert [v["step"] for v in vals] == [4, 8] and all(v["psnr"] > 5 for v in vals)

    grids = sorted(p.name for p in (run / "samples").glob("*.png"))
    assert grids == ["step-000004.png", "step-000008.png"]
    assert np.asarray(Image.open(run / "samples" / grids[-1])).shape == (4 * SIZE, 2 * SIZE, 3)  # input | recon
    state = load_training_state(run / "checkpoints")
    assert state.step == 8 and state.extra["adversary"]["optimizer"]["state"]  # discriminator is resumable

    exported = VQGAN.from_pretrained(codebook_run.export_dir)
    images = torch.rand(2, 3, SIZE, SIZE) * 2 - 1
    model = codebook_run.model.eval()
    with torch.no_grad():
        assert torch.equal(exported(images).recon, model(images).recon)


@pytest.mark.slow  # trains
def test_codebook_resume_repeats_the_uninterrupted_run(codebook_run, data: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    original, crashing = crash_at(5)  # after the checkpoint of step 4, with the GAN term on
    monkeypatch.setattr(Trainer, "_train_step", crashing)
    with pytest.raises(KeyboardInterrupt):
        train_cb(data, tmp_path / "crashed")
    monkeypatch.setattr(Trainer, "_train_step", original)
    train_cb(data, tmp_path / "crashed", resume=True)
    whole = load_training_state(codebook_run.training.run_dir / "checkpoints")
    resumed = load_training_state(tmp_path / "crashed" / "checkpoints")
    assert resumed.step == whole.step == 8
    assert_same_state(resumed.model_state, whole.model_state)
    assert_same_state(resumed.extra["adversary"]["module"], whole.extra["adversary"]["module"])


@pytest.mark.slow  # trains
def test_codebook_trains_on_random_crops_and_validates_on_whole_frames(data: Path, tmp_path: Path) -> None:
    base = FrameTripletDataset(data, "train", size=SIZE)
    crops = RandomCrops(base, 16)
    item = crops[3]
    assert item.target.shape == (3, 16, 16) and torch.equal(crops[3].target, item.target)
    whole = base[3].target
    hits = [(y, x) for y in range(17) for x in range(17) if torch.equal(whole[:, y : y + 16, x : x + 16], item.target)]
    assert hits  # a window of the item's own frame
    with pytest.raises(UsageError, match="--crop"):
        RandomCrops(base, SIZE + 1)

    cfg = dataclasses.replace(TINY, steps=2, eval_every=2, save_every=2)
    torch.set_num_threads(1)
    train_codebook(data, tmp_path / "crops", "tiny", cfg, size=SIZE, loss=CODEBOOK_LOSS, crop=16, quiet=True)
    spec = json.loads((tmp_path / "crops" / "run.json").read_text())
    assert spec["crop"] == 16 and spec["augment"]["hue_degrees"] > 0  # augmentation is on by default
    assert log_events(tmp_path / "crops", "start")[0]["meta"]["crop"] == 16
    grid = np.asarray(Image.open(tmp_path / "crops" / "samples" / "step-000002.png"))
    assert grid.shape == (4 * SIZE, 2 * SIZE, 3)  # samples on whole frames


@pytest.mark.slow  # trains
def test_codebook_fine_tune_from_an_export(codebook_run, data: Path, tmp_path: Path) -> None:
    """--init-from: a fresh run starts from an exported codebook's weights and usage statistics (the
    discriminator afresh); an export of another architecture is refused."""
    torch.set_num_threads(1)
    tune = dataclasses.replace(TINY, steps=1, lr=1e-12, warmup=0, eval_every=0, save_every=1)
    result = train_codebook(data, tmp_path / "tuned", "tiny", tune, size=SIZE, loss=CODEBOOK_LOSS, quiet=True,
                            init_from=codebook_run.export_dir)
    assert log_events(tmp_path / "tuned", "start")[0]["meta"]["init_from"] == str(codebook_run.export_dir.resolve())
    start = VQGAN.from_pretrained(codebook_run.export_dir).state_dict()
    tuned = result.model.state_dict()
    assert start.keys() == tuned.keys()
    for name in start:  # one step at lr 1e-12: the export's weights (the usage statistics count on)
        if name not in ("quantizer.usage_ema", "quantizer.steps_unused", "quantizer.step"):
            torch.testing.assert_close(tuned[name], start[name], atol=1e-8, rtol=0, msg=name)
    other = tmp_path / "other"
    VQGAN(codebook_configs("tiny", 2 * SIZE)[0]).save_pretrained(other)
    with pytest.raises(UsageError, match="--init-from"):
        train_codebook(data, tmp_path / "bad", "tiny", tune, size=SIZE, loss=CODEBOOK_LOSS, quiet=True,
                       init_from=other)


def test_codebook_presets_follow_the_image_size() -> None:
    model, _, loss = codebook_configs("tiny", 64)
    assert model.image_size == 64 and loss.adversarial_warmup_steps == VQGANLossConfig.tiny().adversarial_warmup_steps
    with pytest.raises(UsageError, match="size"):
        codebook_configs("tiny", 30)


# ---------------------------------------------------------------------------------------------- VQIG


@pytest.mark.slow  # trains
def test_vqig_runs_its_stages_on_a_frozen_codebook_and_exports(vqig_run, codebook_run) -> None:
    run = vqig_run.training.run_dir
    train = log_events(run, "train")
    assert [r["stage"] for r in train] == [0, 0, 1, 1, 1, 2, 2, 2]  # warm start, code level, image level
    assert all(np.isfinite(r["loss"]) for r in train)
    assert [("d_loss" in r) for r in train] == [False] * 5 + [True] * 3  # discriminator only in the image stage
    assert train[-1]["adv_weight"] > 0
    meta = log_events(run, "start")[0]["meta"]
    assert meta["schedule"] == {"steps": 8, "warm_start_steps": 2, "code_steps": 3}
    assert meta["perceptual_kind"] == "disc_feature_matching+laplacian_pyramid"
    assert meta["val_faces"].startswith("all 1 val clips show faces seen in training")
    assert set(log_events(run, "val")[-1]) >= {"l1", "psnr", "code_accuracy", "warp_l1"}

    frozen = VQGAN.from_pretrained(codebook_run.export_dir)
    assert_same_state(vqig_run.model.codebook.state_dict(), frozen.state_dict())  # bit-identical after training
    assert not any(p.requires_grad for p in vqig_run.model.codebook.parameters())

    grid = np.asarray(Image.open(run / "samples" / "step-000008.png"))
    assert grid.shape == (4 * SIZE, 3 * SIZE, 3)  # source | target | output
    exported = VQIG.from_pretrained(vqig_run.export_dir, codebook=frozen)
    source, windows = torch.rand(1, 3, SIZE, SIZE) * 2 - 1, torch.rand(2, exported.config.window_frames, 58)
    coeffs = torch.rand(1, 58)
    assert torch.equal(exported.render(source, coeffs, windows), vqig_run.model.eval().render(source, coeffs, windows))


@pytest.mark.slow  # trains
def test_vqig_resume_repeats_the_uninterrupted_run(vqig_run, codebook_run, data: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    original, crashing = crash_at(7)  # in the image stage, after the checkpoint of step 6
    monkeypatch.setattr(Trainer, "_train_step", crashing)
    with pytest.raises(KeyboardInterrupt):
        train_vq(data, tmp_path / "crashed", codebook_run.export_dir)
    monkeypatch.setattr(Trainer, "_train_step", original)
    train_vq(data, tmp_path / "crashed", codebook_run.export_dir, resume=True)
    whole = load_training_state(vqig_run.training.run_dir / "checkpoints")
    resumed = load_training_state(tmp_path / "crashed" / "checkpoints")
    assert_same_state(resumed.model_state, whole.model_state)
    assert_same_state(resumed.extra["adversary"]["module"], whole.extra["adversary"]["module"])


@pytest.mark.slow  # trains
def test_vqig_fine_tune_from_an_export_with_compose(vqig_run, codebook_run, data: Path, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    tune = dataclasses.replace(VQIG_TRAIN, steps=1, lr=1e-12, warmup=0, eval_every=0, save_every=1)
    result = train_vqig(data, tmp_path / "tuned", codebook_run.export_dir, vqig_config(), tune, stage="image",
                        compose=True, init_from=vqig_run.export_dir, quiet=True)
    meta = log_events(tmp_path / "tuned", "start")[0]["meta"]
    assert meta["compose"] is True and meta["init_from"] == str(vqig_run.export_dir.resolve())
    start = VQIG.from_pretrained(vqig_run.export_dir, codebook=VQGAN.from_pretrained(codebook_run.export_dir))
    tuned = result.model
    assert tuned.config.compose and not start.config.compose
    for (name, a), (_, b) in zip(start._owned().state_dict().items(), tuned._owned().state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-8, rtol=0, msg=name)  # one step at lr 1e-12: the export's weights
    exported = VQIG.from_pretrained(result.export_dir, codebook=start.codebook)
    assert exported.config.compose  # the switch travels with the weights
    other = tmp_path / "one-layer"
    VQIG(dataclasses.replace(vqig_config(), transformer_layers=1), start.codebook).save_pretrained(other)
    with pytest.raises(UsageError, match="another architecture"):
        train_vqig(data, tmp_path / "bad", codebook_run.export_dir, vqig_config(), tune, stage="image",
                   init_from=other, quiet=True)


@pytest.mark.slow  # trains
def test_vqig_fine_tune_onto_a_fine_tuned_codebook(vqig_run, codebook_run, data: Path, tmp_path: Path) -> None:
    """A VQIG export starts a run on a codebook fine-tuned since (same config): its weights carry over, the
    log says the codebook changed, and the export binds to the new codebook only."""
    torch.set_num_threads(1)
    cb_tune = dataclasses.replace(TINY, steps=2, eval_every=0, save_every=2)
    tuned_cb = train_codebook(data, tmp_path / "cb", "tiny", cb_tune, size=SIZE, loss=CODEBOOK_LOSS, quiet=True,
                              init_from=codebook_run.export_dir).export_dir
    new_cb = VQGAN.from_pretrained(tuned_cb)
    with pytest.raises(WeightsError, match="SHA-256"):
        VQIG.from_pretrained(vqig_run.export_dir, codebook=new_cb)  # rendering needs the codebook it learnt
    tune = dataclasses.replace(VQIG_TRAIN, steps=1, lr=1e-12, warmup=0, eval_every=0, save_every=1)
    result = train_vqig(data, tmp_path / "vqig", tuned_cb, vqig_config(), tune, stage="image",
                        init_from=vqig_run.export_dir, quiet=True)
    assert log_events(tmp_path / "vqig", "start")[0]["meta"]["init_codebook"] == "fine-tuned since"
    start = VQIG.from_pretrained(vqig_run.export_dir, codebook=new_cb, same_codebook=False)
    for (name, a), (_, b) in zip(start._owned().state_dict().items(), result.model._owned().state_dict().items(),
                                 strict=True):
        torch.testing.assert_close(a, b, atol=1e-8, rtol=0, msg=name)
    VQIG.from_pretrained(result.export_dir, codebook=new_cb)
    with pytest.raises(WeightsError, match="SHA-256"):
        VQIG.from_pretrained(result.export_dir, codebook=VQGAN.from_pretrained(codebook_run.export_dir))


@pytest.mark.slow  # trains
def test_vqig_fine_tune_onto_the_mesh_prior(vqig_run, codebook_run, data: Path, tmp_path: Path) -> None:
    """--mesh-prior from an export without it: every weight carried over except W's flow head, which restarts
    near zero (its output is now an offset on the mesh-warp motion), and its occlusion head, which restarts at
    all visible; the switch travels with the export."""
    torch.set_num_threads(1)
    tune = dataclasses.replace(VQIG_TRAIN, steps=1, lr=1e-12, warmup=0, eval_every=1, save_every=1)
    result = train_vqig(data, tmp_path / "prior", codebook_run.export_dir, vqig_config(), tune, stage="image",
                        mesh_prior=True, init_from=vqig_run.export_dir, quiet=True)
    assert log_events(tmp_path / "prior", "start")[0]["meta"]["mesh_prior"] is True
    assert "psnr" in log_events(tmp_path / "prior", "val")[0]  # validation renders on the prior too
    start = VQIG.from_pretrained(vqig_run.export_dir, codebook=VQGAN.from_pretrained(codebook_run.export_dir))
    tuned = VQIG.from_pretrained(result.export_dir, codebook=start.codebook)
    assert tuned.config.mesh_prior and tuned.config.compose and not start.config.mesh_prior
    before, after = start._owned().state_dict(), tuned._owned().state_dict()
    for name in before:
        if not name.startswith(("warping.flow_head.", "warping.occlusion_head.")):
            torch.testing.assert_close(after[name], before[name], atol=1e-8, rtol=0, msg=name)
    head = after["warping.flow_head.weight"]
    fan_in = head[0].numel()  # a fresh conv's weights lie within ±1/√fan_in, then times init_gain
    assert not torch.equal(head, before["warping.flow_head.weight"])
    assert head.abs().max() <= tuned.config.init_gain / fan_in**0.5 + 1e-9
    assert after["warping.flow_head.bias"].abs().max() < 1e-9
    occlusion = after["warping.occlusion_head.bias"]  # restarts at "all visible": the prior marks the rest
    assert occlusion.item() == pytest.approx(tuned.config.prior_occlusion_init, abs=1e-6)
    with pytest.raises(UsageError, match="needs --compose"):
        train_vqig(data, tmp_path / "bad", codebook_run.export_dir, vqig_config(), tune, stage="image",
                   mesh_prior=True, compose=False, quiet=True)
    with pytest.raises(UsageError, match="--no-prior-residual"):
        train_vqig(data, tmp_path / "bad", codebook_run.export_dir, vqig_config(), tune, stage="image",
                   mesh_prior=True, prior_frame=True, quiet=True)
    # --prior-frame on top: trains on the renderer's frames (validation and samples too), weights carried over
    framed = train_vqig(data, tmp_path / "framed", codebook_run.export_dir, vqig_config(), tune, stage="image",
                        mesh_prior=True, prior_residual=False, prior_frame=True, init_from=result.export_dir,
                        adversarial_warmup=0, quiet=True)
    assert log_events(tmp_path / "framed", "start")[0]["meta"]["prior_frame"] is True
    assert "psnr" in log_events(tmp_path / "framed", "val")[0]
    framed_model = VQIG.from_pretrained(framed.export_dir, codebook=start.codebook)
    assert framed_model.config.prior_frame and framed_model.config.loss.image.adversarial_warmup_steps == 0
    for name, value in framed_model._owned().state_dict().items():  # W unused: its weights travel as they are
        torch.testing.assert_close(value, after[name], atol=1e-8, rtol=0, msg=name)


def test_stage_schedule() -> None:
    both = StageSchedule.build(10, "both", 2, None)
    assert [both.stage_at(s) for s in (0, 1, 2, 5, 6, 9)] == ["warm_start"] * 2 + ["code"] * 2 + ["image"] * 2
    assert StageSchedule.build(10, "code", 0, None).stage_at(9) == "code"
    assert StageSchedule.build(10, "image", 3, None).image_start == 3
    with pytest.raises(UsageError, match="stage"):
        StageSchedule.build(10, "pixels", 0, None)
    with pytest.raises(UsageError, match="code_steps"):
        StageSchedule.build(10, "both", 2, 9)


# ---------------------------------------------------------------------------------------------- DDP

DDP_SCRIPT = """
import dataclasses, sys, torch
torch.set_num_threads(1)
from flowvq_cli.training_state import load_training_state
from flowvq_cli.train import TrainConfig
from flowvq_cli.train.images import train_codebook, train_vqig
from flowvq_cli.vq import VQGANLossConfig
from flowvq_cli.vqig import VQIGConfig

component, data, runs = sys.argv[1:4]
config = TrainConfig(steps=4, batch_size=2, lr=2e-3, warmup=1, eval_every=0, save_every=4, log_every=1,
                     device="cpu")
if component == "codebook":
    loss = dataclasses.replace(VQGANLossConfig.tiny(), adversarial_warmup_steps=2)
    result = train_codebook(data, f"{runs}/codebook", "tiny", config, size=32, loss=loss, crop=16, quiet=True)
else:
    base = VQIGConfig.tiny()
    image = dataclasses.replace(base.loss.image, adversarial_warmup_steps=1)
    cfg = dataclasses.replace(base, loss=dataclasses.replace(base.loss, image=image))
    result = train_vqig(data, f"{runs}/vqig", f"{runs}/codebook/export/codebook", cfg, config, stage="both",
                        warm_start_steps=1, code_steps=1, quiet=True, export=False)
# parameters only: buffers such as the quantiser's usage statistics are broadcast from rank 0 at each forward,
# so after the last step rank 1 holds its own local update (the checkpoint has rank 0's)
total = sum(p.detach().double().sum().item() for p in result.model.parameters())
with open(f"{runs}/{component}-rank{result.training.rank}.txt", "w") as fh:
    fh.write(f"{result.training.world_size} {total!r}")
"""


@pytest.mark.slow  # trains, DDP subprocesses
def test_ddp_two_cpu_processes_train_codebook_and_vqig_in_sync(data: Path, tmp_path: Path) -> None:
    """torchrun with 2 CPU processes (gloo): both image trainers end with identical parameters on both ranks
    (codebook on random crops with augmentation and its GAN term, VQIG through its three stages)."""
    import os
    import socket
    import subprocess
    import sys
    import textwrap

    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    except OSError:
        pytest.skip("cannot bind a TCP socket on 127.0.0.1, which gloo needs for its rendezvous")
    script, runs = tmp_path / "ddp_images.py", tmp_path / "runs"
    runs.mkdir()
    script.write_text(textwrap.dedent(DDP_SCRIPT))
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(repo)}
    for component in ("codebook", "vqig"):  # two launches, as a user runs them (VQIG needs the export)
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--nnodes=1",
                   "--master_addr=127.0.0.1", f"--master_port={port}", str(script), component, str(data), str(runs)]
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, done.stderr[-3000:]
        ranks = [(runs / f"{component}-rank{r}.txt").read_text().split() for r in (0, 1)]
        assert ranks[0] == ranks[1] and ranks[0][0] == "2"  # the same weights on both ranks, world size 2
        assert len(log_events(runs / component, "train")) == 4 and len(log_events(runs / component, "start")) == 1
        saved = load_training_state(runs / component / "checkpoints")
        assert saved.step == 4 and saved.extra["adversary"]["module"]  # the discriminator is checkpointed
