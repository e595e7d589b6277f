"""Bundles (write, verify, refuse damage and pickles) and resumable training checkpoints."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from flowvq_cli import checkpoint as ckpt
from flowvq_cli.checkpoint import (
    COEFF_LAYOUT_VERSION,
    FACE_MODEL_VERSION,
    MANIFEST_NAME,
    load_safetensors,
    load_training_state,
    read_bundle,
    save_training_state,
    write_bundle,
)
from flowvq_cli.errors import OutputError, WeightsError


def make_component(folder: Path, seed: int, dim: int = 5) -> nn.Module:
    """A tiny real model saved the PyTorchModelHubMixin way: config.json + model.safetensors."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(dim, 4), nn.Tanh(), nn.Linear(4, dim))
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"dim": dim, "hidden": 4, "seed": seed}))
    return model


@pytest.fixture()
def sources(tmp_path: Path) -> dict[str, Path]:
    out = {}
    for i, name in enumerate(("expflow", "poseflow", "codebook", "vqig")):
        make_component(tmp_path / "src" / name, seed=i)
        out[name] = tmp_path / "src" / name
    return out


@pytest.fixture()
def bundle_dir(tmp_path: Path, sources: dict[str, Path]) -> Path:
    write_bundle(tmp_path / "weights" / "flowvq-tiny", sources, name="flowvq-tiny")
    return tmp_path / "weights" / "flowvq-tiny"


def edit_manifest(bundle_dir: Path, **changes: object) -> None:
    manifest = json.loads((bundle_dir / MANIFEST_NAME).read_text())
    manifest.update(changes)
    (bundle_dir / MANIFEST_NAME).write_text(json.dumps(manifest))


def make_marker_pickle(path: Path, marker: Path) -> None:
    """A pickle whose unpickling would create ``marker``: proof that it was never unpickled."""

    class Trap:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path.write_bytes(pickle.dumps({"weight": Trap()}))


# ---------------------------------------------------------------------------------------------- bundles


def test_write_then_read_round_trip(bundle_dir: Path, sources: dict[str, Path]) -> None:
    bundle = read_bundle(bundle_dir)
    assert bundle.component_names == ("expflow", "poseflow", "codebook", "vqig")
    assert bundle.coeff_layout_version == COEFF_LAYOUT_VERSION and bundle.name == "flowvq-tiny"
    assert bundle.component("vqig") == bundle_dir / "vqig"
    assert bundle.config("poseflow") == {"dim": 5, "hidden": 4, "seed": 1}
    assert set(bundle.files()) == {f"{c}/{f}" for c in sources for f in ("config.json", "model.safetensors")}
    expected = load_safetensors(sources["codebook"] / "model.safetensors")
    loaded = bundle.load_state("codebook")
    assert expected.keys() == loaded.keys()
    assert all(torch.equal(expected[k], loaded[k]) for k in expected)
    manifest = json.loads((bundle_dir / MANIFEST_NAME).read_text())
    assert manifest["bundle_format_version"] == 1 and manifest["components"]["expflow"]["config"]["seed"] == 0
    assert [p.name for p in bundle_dir.parent.iterdir()] == ["flowvq-tiny"]  # no temp folder left behind


def test_component_lookup_names_what_is_held(tmp_path: Path, sources: dict[str, Path]) -> None:
    bundle = write_bundle(tmp_path / "b", {"expflow": sources["expflow"]}, name="partial")
    with pytest.raises(WeightsError, match=r"no 'vqig' component \(it holds: expflow\)"):
        bundle.component("vqig")


def test_default_renderer_is_recorded_and_checked(bundle_dir: Path, tmp_path: Path, sources: dict[str, Path]) -> None:
    assert read_bundle(bundle_dir).renderer == "vqig" and read_bundle(bundle_dir).default_renderer is None
    flows = {"expflow": sources["expflow"], "poseflow": sources["poseflow"]}
    assert write_bundle(tmp_path / "flows", flows, name="flows").renderer == "warp"
    shipped = write_bundle(tmp_path / "shipped", sources, name="shipped", default_renderer="warp")
    assert shipped.renderer == "warp"  # holds a VQIG, renders with the mesh warp unless asked
    assert json.loads((tmp_path / "shipped" / MANIFEST_NAME).read_text())["default_renderer"] == "warp"
    with pytest.raises(WeightsError, match="needs the codebook and vqig"):
        write_bundle(tmp_path / "bad", flows, name="bad", default_renderer="vqig")
    with pytest.raises(WeightsError, match="not one of vqig, warp"):
        write_bundle(tmp_path / "bad", sources, name="bad", default_renderer="gan")
    assert not (tmp_path / "bad").exists()
    edit_manifest(bundle_dir, default_renderer="pixels")
    with pytest.raises(WeightsError, match="default renderer 'pixels'"):
        read_bundle(bundle_dir)


def test_existing_bundle_needs_force_and_is_replaced_whole(bundle_dir: Path, sources: dict[str, Path]) -> None:
    with pytest.raises(OutputError, match="already exists; pass --force"):
        write_bundle(bundle_dir, sources, name="again")
    (bundle_dir / "vqig" / "stale.safetensors").write_bytes(b"x")
    bundle = write_bundle(bundle_dir, {"expflow": sources["expflow"]}, name="again", force=True)
    assert bundle.name == "again" and bundle.component_names == ("expflow",)
    assert not (bundle_dir / "vqig").exists()
    assert sorted(p.name for p in bundle_dir.parent.iterdir()) == ["flowvq-tiny"]


def test_failed_write_leaves_previous_bundle_intact(
    bundle_dir: Path, sources: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    before = (bundle_dir / MANIFEST_NAME).read_bytes()
    calls = []

    def failing_copy(comp, srcs, root):
        calls.append(comp)
        if len(calls) == 2:
            raise OSError("disk full")
        return real_copy(comp, srcs, root)

    real_copy = ckpt._copy_component
    monkeypatch.setattr(ckpt, "_copy_component", failing_copy)
    with pytest.raises(OSError, match="disk full"):
        write_bundle(bundle_dir, sources, name="broken", force=True)
    assert (bundle_dir / MANIFEST_NAME).read_bytes() == before
    read_bundle(bundle_dir)
    assert sorted(p.name for p in bundle_dir.parent.iterdir()) == ["flowvq-tiny"]


def test_truncated_file_is_named_with_sizes(bundle_dir: Path) -> None:
    target = bundle_dir / "vqig" / "model.safetensors"
    size = target.stat().st_size
    target.write_bytes(target.read_bytes()[:12])
    with pytest.raises(WeightsError) as info:
        read_bundle(bundle_dir)
    message = str(info.value)
    assert f"{target} is truncated (12 of {size} bytes)" in message
    assert "flowvq weights download" in message and "\n" not in message


def test_tampered_byte_of_same_size_fails_sha256(bundle_dir: Path) -> None:
    target = bundle_dir / "expflow" / "model.safetensors"
    data = bytearray(target.read_bytes())
    data[-1] ^= 0x01
    target.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match=r"expflow/model\.safetensors is corrupted or was modified \(sha256"):
        read_bundle(bundle_dir)
    read_bundle(bundle_dir, verify_hashes=False)  # sizes alone still match


def test_grown_file_is_reported(bundle_dir: Path) -> None:
    target = bundle_dir / "poseflow" / "config.json"
    target.write_text(target.read_text() + " ")
    with pytest.raises(WeightsError, match=r"poseflow/config\.json has \d+ bytes, the manifest says"):
        read_bundle(bundle_dir)


def test_missing_component_file(bundle_dir: Path) -> None:
    (bundle_dir / "codebook" / "model.safetensors").unlink()
    with pytest.raises(WeightsError, match=r"codebook/model\.safetensors is missing; re-download"):
        read_bundle(bundle_dir)


def test_missing_or_unparseable_manifest(bundle_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match=r"not a FlowVQ weights bundle: flowvq\.json is missing"):
        read_bundle(tmp_path / "src")
    with pytest.raises(WeightsError, match="is not a folder"):
        read_bundle(tmp_path / "nowhere")
    (bundle_dir / MANIFEST_NAME).write_text('{"bundle_format_version": 1,')
    with pytest.raises(WeightsError, match=r"flowvq\.json is not valid JSON"):
        read_bundle(bundle_dir)


def test_unknown_format_version(bundle_dir: Path) -> None:
    edit_manifest(bundle_dir, bundle_format_version=7)
    with pytest.raises(WeightsError, match="bundle format version 7 is not supported"):
        read_bundle(bundle_dir)


def test_mismatched_coeff_layout_is_refused(bundle_dir: Path) -> None:
    edit_manifest(bundle_dir, coeff_layout_version=COEFF_LAYOUT_VERSION + 1)
    with pytest.raises(WeightsError, match=f"was made for coefficient layout {COEFF_LAYOUT_VERSION + 1}, but"):
        read_bundle(bundle_dir)


def test_flows_of_another_face_model_are_refused(bundle_dir: Path) -> None:
    """A bundle from before the face model was calibrated (no face_model_version: 1) is refused in one line."""
    assert json.loads((bundle_dir / MANIFEST_NAME).read_text())["face_model_version"] == FACE_MODEL_VERSION
    manifest = json.loads((bundle_dir / MANIFEST_NAME).read_text())
    del manifest["face_model_version"]
    (bundle_dir / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(WeightsError, match="learned the expressions of face model 1") as error:
        read_bundle(bundle_dir)
    assert "\n" not in str(error.value) and "train_mini.sh flows" in str(error.value)


def test_manifest_cannot_point_outside_its_component(bundle_dir: Path) -> None:
    manifest = json.loads((bundle_dir / MANIFEST_NAME).read_text())
    files = manifest["components"]["expflow"]["files"]
    files["expflow/../../secret.safetensors"] = files["expflow/model.safetensors"]
    (bundle_dir / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(WeightsError, match="points outside its component folder"):
        read_bundle(bundle_dir)


def test_manifest_listing_a_pickle_is_refused(bundle_dir: Path) -> None:
    manifest = json.loads((bundle_dir / MANIFEST_NAME).read_text())
    manifest["components"]["vqig"]["files"]["vqig/model.pt"] = {"sha256": "0" * 64, "bytes": 1}
    (bundle_dir / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(WeightsError, match="only safetensors weights are accepted"):
        read_bundle(bundle_dir)


@pytest.mark.parametrize("name", ["model.pt", "model.bin", "model.ckpt", "model.safetensors"])
def test_pickle_is_refused_without_being_unpickled(tmp_path: Path, name: str) -> None:
    marker = tmp_path / "UNPICKLED"
    weights = tmp_path / name
    make_marker_pickle(weights, marker)
    with pytest.raises(WeightsError, match="safetensors") as info:
        load_safetensors(weights)
    assert not marker.exists()
    if name.endswith(".safetensors"):
        assert "Python pickle" in str(info.value)
    else:
        assert "only safetensors weights are accepted" in str(info.value)


def test_torch_save_zip_disguised_as_safetensors_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"PK\x03\x04" + b"\0" * 64)
    with pytest.raises(WeightsError, match=r"zip archive, as written by torch\.save"):
        load_safetensors(path)


def test_write_bundle_refuses_pickles_and_incomplete_components(tmp_path: Path, sources: dict[str, Path]) -> None:
    marker = tmp_path / "UNPICKLED"
    make_marker_pickle(sources["vqig"] / "model.pt", marker)
    with pytest.raises(WeightsError, match="pickled checkpoint; bundles hold safetensors only"):
        write_bundle(tmp_path / "out", sources, name="x")
    assert not marker.exists() and not (tmp_path / "out").exists()
    (sources["expflow"] / "config.json").unlink()
    with pytest.raises(WeightsError, match=r"expflow/config\.json is missing"):
        write_bundle(tmp_path / "out", {"expflow": sources["expflow"]}, name="x")
    with pytest.raises(WeightsError, match="unknown component 'vgg'"):
        write_bundle(tmp_path / "out", {"vgg": sources["poseflow"]}, name="x")


def test_load_safetensors_to_device(tmp_path: Path) -> None:
    save_file({"w": torch.arange(6.0).reshape(2, 3)}, str(tmp_path / "w.safetensors"))
    state = load_safetensors(tmp_path / "w.safetensors", torch.device("cpu"))
    assert torch.equal(state["w"], torch.arange(6.0).reshape(2, 3))
    (tmp_path / "short.safetensors").write_bytes(b"\x10\0\0\0\0\0\0\0{")
    with pytest.raises(WeightsError, match="truncated"):
        load_safetensors(tmp_path / "short.safetensors")


# ---------------------------------------------------------------------------------------------- training


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

    monkeypatch.setattr(ckpt, "save_file", half_written_tensors)
    with pytest.raises(KeyboardInterrupt):
        save_training_state(tmp_path, model.state_dict(), opt.state_dict(), step=2)
    monkeypatch.undo()

    def half_written_sidecar(path, payload, sort_keys=True):
        Path(path).write_text('{"step": ')
        raise OSError("power cut")

    monkeypatch.setattr(ckpt, "_write_json", half_written_sidecar)
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
    assert [p.name for p in ckpt.list_training_states(tmp_path)] == ["step-00000004.json", "step-00000005.json"]
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
