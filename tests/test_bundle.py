"""Bundles: write, verify, refuse damage and pickles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn
from weights_testutils import make_marker_pickle

from flowvq_cli import bundle as bundle_module
from flowvq_cli.bundle import COEFF_LAYOUT_VERSION, FACE_MODEL_VERSION, MANIFEST_NAME, read_bundle, write_bundle
from flowvq_cli.errors import OutputError, WeightsError
from flowvq_cli.modeling import load_safetensors


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

    real_copy = bundle_module._copy_component
    monkeypatch.setattr(bundle_module, "_copy_component", failing_copy)
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
