"""Training ExpFlow / PoseFlow end to end on a tiny dataset: learning, checkpoints, exact resume, export, DDP."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from dataset_testutils import make_dataset

from flowvq_cli.audio.features import AudioFeatureConfig
from flowvq_cli.errors import OutputError
from flowvq_cli.flow import ExpFlow, PoseFlow
from flowvq_cli.train import TrainConfig, Trainer, evaluate_nll, train_expflow, train_poseflow
from flowvq_cli.train.flows import load_run_model
from flowvq_cli.training_state import list_training_states, load_training_state

AUDIO = AudioFeatureConfig.tiny()
WINDOW = 12
TINY = TrainConfig(steps=30, batch_size=4, lr=5e-3, warmup=3, eval_every=10, save_every=10, keep_last=2,
                   log_every=5, device="cpu", eval_batches=4)
REPO = Path(__file__).resolve().parents[2]


pytestmark = [pytest.mark.usefixtures("single_thread"), pytest.mark.slow]  # trains flows, DDP subprocesses


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data"))


def log_events(run: Path, event: str) -> list[dict]:
    lines = (run / "train_log.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["event"] == event]


def train(kind: str, data: Path, run: Path, config: TrainConfig = TINY, resume: bool = False, **kw):
    fn = train_expflow if kind == "expflow" else train_poseflow
    return fn(data, run, "tiny", config, resume, window_frames=WINDOW, audio_config=AUDIO, quiet=True, **kw)


@pytest.mark.parametrize("kind", ["expflow", "poseflow"])
def test_training_learns_checkpoints_and_exports(kind: str, data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = train(kind, data, run)
    losses = [r["loss"] for r in log_events(run, "train")]
    assert len(losses) == 6 and losses[-1] < losses[0] - 0.5, losses
    vals = log_events(run, "val")
    assert [v["step"] for v in vals] == [10, 20, 30]
    if kind == "expflow":  # held-out speakers' expression NLL improves (their head motion is random phase)
        assert vals[-1]["nll"] < vals[0]["nll"]
    assert log_events(run, "start")[0]["meta"]["validation"] == "14 windows of held-out speakers"
    states = list_training_states(run / "checkpoints")
    assert [p.name for p in states] == ["step-00000020.json", "step-00000030.json"]  # keep_last=2
    assert not list((run / "checkpoints").glob(".*.partial*"))  # written atomically, nothing left behind
    assert result.training.step == 30 and result.export_dir == run / "export" / kind

    cls = ExpFlow if kind == "expflow" else PoseFlow
    model = cls.from_pretrained(result.export_dir)
    F = AUDIO.video_feature_dim
    generator = torch.Generator().manual_seed(0)
    if kind == "expflow":
        assert model.latent_bank.shape[0] > 0  # manifold projection is ready
        out = model.sample(torch.randn(2, 20, F), torch.rand(2, 52), "happy", generator=generator)
        assert out.shape == (2, 20, 52) and 0 <= out.min() and out.max() <= 1
    else:
        out = model.sample(torch.randn(2, 20, F), generator=generator)
        assert out.shape == (2, 20, 6) and torch.isfinite(out).all()
    val_set = replace_val_dataset(data, model)
    assert evaluate_nll(model, val_set) == pytest.approx(vals[-1]["nll"], rel=1e-4)


def replace_val_dataset(data: Path, model: ExpFlow | PoseFlow):
    from flowvq_cli.data.datasets import CoeffSequenceDataset

    c = model.config
    return CoeffSequenceDataset(data, "val", WINDOW, AUDIO, audio_context=c.audio_context, n_history=c.n_history,
                                source="first")


def test_resume_repeats_the_uninterrupted_run_bit_for_bit(data: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    config = replace(TINY, steps=6, save_every=3, eval_every=0, log_every=1)
    whole = train("expflow", data, tmp_path / "whole", config, export=False)

    original = Trainer._train_step

    def crash_at_step_4(self, model, batch, optimizer, scheduler, step, info, device):
        if step == 3:  # 0-based: the 4th step, after the checkpoint of step 3
            raise KeyboardInterrupt
        return original(self, model, batch, optimizer, scheduler, step, info, device)

    monkeypatch.setattr(Trainer, "_train_step", crash_at_step_4)
    with pytest.raises(KeyboardInterrupt):
        train("expflow", data, tmp_path / "crashed", config, export=False)
    monkeypatch.setattr(Trainer, "_train_step", original)
    with pytest.raises(OutputError, match="--resume"):
        train("expflow", data, tmp_path / "crashed", config, export=False)
    resumed = train("expflow", data, tmp_path / "crashed", config, resume=True, export=False)

    assert log_events(tmp_path / "crashed", "resume")[0]["step"] == 3
    losses = {r["step"]: r["loss"] for r in log_events(tmp_path / "whole", "train")}
    resumed_losses = {r["step"]: r["loss"] for r in log_events(tmp_path / "crashed", "train")}
    assert resumed_losses == losses  # steps 1-3 before the crash, 4-6 after it: identical floats
    for (name, a), b in zip(whole.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    state = load_training_state(tmp_path / "crashed" / "checkpoints")
    assert state.step == 6 and "scheduler" in state.extra and "rng" in state.extra
    assert torch.equal(load_run_model(tmp_path / "crashed").flow.steps[0].actnorm.log_scale,
                       resumed.model.flow.steps[0].actnorm.log_scale)


def _free_port() -> int | None:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]
    except OSError:
        return None


DDP_SCRIPT = """
import sys, torch
torch.set_num_threads(1)
from flowvq_cli.audio.features import AudioFeatureConfig
from flowvq_cli.train import TrainConfig, train_poseflow
data, run = sys.argv[1], sys.argv[2]
config = TrainConfig(steps=3, batch_size=2, lr=5e-3, warmup=1, eval_every=0, save_every=3, log_every=1,
                     device="cpu")
result = train_poseflow(data, run, "tiny", config, window_frames=12, audio_config=AudioFeatureConfig.tiny(),
                        quiet=True, export=False)
state = [t.double() for t in result.model.state_dict().values() if t.is_floating_point()]
total, size = sum(t.sum().item() for t in state), sum(t.abs().sum().item() for t in state)
with open(f"{run}/rank{result.training.rank}.txt", "w") as fh:
    fh.write(f"{result.training.world_size} {total!r} {size!r}")
"""


def test_ddp_two_cpu_processes_stay_in_sync(data: Path, tmp_path: Path) -> None:
    port = _free_port()
    if port is None:
        pytest.skip("cannot bind a TCP socket on 127.0.0.1, which gloo needs for its rendezvous")
    script, run = tmp_path / "ddp_train.py", tmp_path / "run"
    script.write_text(textwrap.dedent(DDP_SCRIPT))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--nnodes=1",
               "--master_addr=127.0.0.1", f"--master_port={port}", str(script), str(data), str(run)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [(run / f"rank{r}.txt").read_text().split() for r in (0, 1)]
    assert ranks[0] == ranks[1] and ranks[0][0] == "2"  # same weights after 3 steps, world size 2
    assert [p.name for p in list_training_states(run / "checkpoints")] == ["step-00000003.json"]
    starts = log_events(run, "start")
    assert len(starts) == 1 and starts[0]["world_size"] == 2  # only rank 0 logs
    assert len(log_events(run, "train")) == 3
    saved = load_training_state(run / "checkpoints").model_state
    total = sum(t.double().sum().item() for t in saved.values() if t.is_floating_point())
    assert total == pytest.approx(float(ranks[0][1]), rel=1e-9)
