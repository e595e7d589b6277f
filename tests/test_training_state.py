"""Resumable training checkpoints: exact resumption, crash safety, rotation, damage reported."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from flowvq_cli import modeling, training_state
from flowvq_cli.errors import WeightsError
from flowvq_cli.fsutil import atomic_write
from flowvq_cli.training_state import list_training_states, load_training_state, save_training_state


def train_steps(model: nn.Module, opt: torch.optim.Optimizer, steps: int, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = torch.randn(8, 5, generator=gen)
        loss = (model(x) - x.flip(-1)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


def fresh(seed: int = 0) -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 5))
    return model, torch.optim.Adam(model.parameters(), lr=1e-2, betas=(0.8, 0.95), weight_decay=1e-4)


def assert_same_tree(a: object, b: object) -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b)
        for key in a:
            assert_same_tree(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same_tree(x, y)
    else:
        assert a == b and type(a) is type(b)


def test_training_state_round_trip_resumes_exactly(tmp_path: Path) -> None:
    model, opt = fresh()
    train_steps(model, opt, 3, seed=1)
    extra = {"rng": torch.get_rng_state(), "ema": {0: torch.ones(2, dtype=torch.float64)}, "best": 0.5,
             "stage": "code", "window": (1, 2), "none": None}
    sidecar = save_training_state(tmp_path / "run", model.state_dict(), opt.state_dict(), step=3, extra=extra)
    assert sidecar.name == "step-00000003.json"

    state = load_training_state(tmp_path / "run")
    assert state.step == 3 and state.path == sidecar
    assert_same_tree(model.state_dict(), state.model_state)
    assert_same_tree(opt.state_dict(), state.optimizer_state)  # Adam moments, step tensors, betas tuple
    assert_same_tree(extra, state.extra)

    resumed, resumed_opt = fresh(seed=123)
    resumed.load_state_dict(state.model_state)
    resumed_opt.load_state_dict(state.optimizer_state)
    train_steps(model, opt, 2, seed=2)
    train_steps(resumed, resumed_opt, 2, seed=2)
    assert_same_tree(model.state_dict(), resumed.state_dict())


def test_crash_while_writing_keeps_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model, opt = fresh()
    train_steps(model, opt, 1, seed=1)
    save_training_state(tmp_path, model.state_dict(), opt.state_dict(), step=1)
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    train_steps(model, opt, 1, seed=2)

    def half_written_tensors(tensors, path, metadata=None):
        Path(path).write_bytes(b"\x00" * 16)
        raise KeyboardInterrupt  # the process is killed mid-write

    monkeypatch.setattr(modeling, "save_file", half_written_tensors)
    with pytest.raises(KeyboardInterrupt):
        save_training_state(tmp_path, model.state_dict(), opt.state_dict(), step=2)
    monkeypatch.undo()

    def half_written_sidecar(path, payload, sort_keys=True):
        def write(tmp: Path) -> None:
            tmp.write_text('{"step": ')
            raise OSError("power cut")

        atomic_write(path, write)

    monkeypatch.setattr(training_state, "write_json", half_written_sidecar)
    with pytest.raises(OSError, match="power cut"):
        save_training_state(tmp_path, model.state_dict(), opt.state_dict(), step=2)
    monkeypatch.undo()

    state = load_training_state(tmp_path)
    assert state.step == 1
    assert_same_tree(saved, state.model_state)
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".json", ".safetensors"]  # no debris


def test_keep_last_rotation_and_resaving_a_step(tmp_path: Path) -> None:
    model, opt = fresh()
    for step in range(1, 6):
        save_training_state(tmp_path, model.state_dict(), opt.state_dict(), step=step, keep_last=2)
    assert [p.name for p in list_training_states(tmp_path)] == ["step-00000004.json", "step-00000005.json"]
    assert len(list(tmp_path.glob("*.safetensors"))) == 2
    train_steps(model, opt, 1, seed=3)
    save_training_state(tmp_path, model.state_dict(), opt.state_dict(), step=5, keep_last=2)
    assert len(list(tmp_path.glob("*.safetensors"))) == 2
    assert_same_tree(model.state_dict(), load_training_state(tmp_path / "step-00000005.json").model_state)
    assert load_training_state(tmp_path / "step-00000004.json").step == 4


def test_damaged_training_checkpoint_is_reported(tmp_path: Path) -> None:
    model, _ = fresh()
    sidecar = save_training_state(tmp_path, model.state_dict(), None, step=7)
    assert load_training_state(sidecar).optimizer_state is None
    tensors = next(tmp_path.glob("*.safetensors"))
    tensors.write_bytes(tensors.read_bytes()[:-3])
    with pytest.raises(WeightsError, match=r"is truncated .*resume from an earlier checkpoint"):
        load_training_state(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightsError, match="holds no training checkpoint"):
        load_training_state(tmp_path / "empty")
