"""The one way to save and load a model (``flowvq_cli.modeling``), tested on every model FlowVQ has.

One tester, four cases (ExpFlow, PoseFlow, the codebook VQGAN, VQIG; tiny configs, seeded, weights moved off
their initial values): save → load gives the same tensors and the same outputs; eval mode is deterministic;
the weights are written before ``config.json``; every damaged or mismatched file is one
:class:`WeightsError` of one line. Then the configs' ``to_dict``/``from_dict`` and the safetensors reader.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn
from weights_testutils import make_marker_pickle

from flowvq_cli import modeling
from flowvq_cli.errors import UsageError, WeightsError
from flowvq_cli.flow import ExpBatch, ExpFlow, ExpFlowConfig, PoseBatch, PoseFlow, PoseFlowConfig
from flowvq_cli.modeling import CONFIG_NAME, FORMAT_VERSION, WEIGHTS_NAME, ModelMixin, load_safetensors
from flowvq_cli.vq.losses import VQGANLossConfig
from flowvq_cli.vq.vqgan import VQGAN, VQGANConfig
from flowvq_cli.vqig import VQIG, VQIGConfig, VQIGLossConfig


@pytest.fixture(autouse=True)
def _tiny_models(single_thread: None) -> None:
    """Tiny models: one intra-op thread (the shared ``single_thread`` fixture)."""


def perturb(module: nn.Module, seed: int) -> None:
    """Move every parameter off its initial value (zero-initialised layers would hide unloaded weights)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))


# ---------------------------------------------------------------------------------------------- the cases


def exp_batch() -> ExpBatch:
    g = torch.Generator().manual_seed(1)
    B, T, F = 2, 5, ExpFlowConfig.tiny().audio_dim
    exp = 0.2 + 0.6 * torch.rand(B, T, 52, generator=g)
    return ExpBatch(exp=exp, audio=torch.randn(B, T, F, generator=g), source=0.1 + 0.8 * torch.rand(B, 52, generator=g),
                    emotion=torch.tensor([0, 4]), intensity=torch.tensor([1, 3]))


def build_expflow() -> ExpFlow:
    torch.manual_seed(0)
    model, batch = ExpFlow(ExpFlowConfig.tiny()).train(), exp_batch()
    model.nll(batch)  # data-initialises the multi-actnorms
    perturb(model, 1)
    model.eval()
    model.set_latent_bank(model.encode(batch.exp, batch.audio, batch.source, batch.emotion), batch.emotion)
    return model


def run_expflow(model: ExpFlow) -> Tensor:
    batch = exp_batch()
    sample = model.sample(batch.audio, batch.source, batch.emotion, batch.intensity,
                          generator=torch.Generator().manual_seed(5), project=True)
    return torch.cat([model.log_prob(batch).flatten(), sample.flatten()])


def pose_batch() -> PoseBatch:
    g = torch.Generator().manual_seed(2)
    return PoseBatch(pose=0.2 * torch.randn(2, 5, 6, generator=g),
                     audio=torch.randn(2, 5, PoseFlowConfig.tiny().audio_dim, generator=g))


def build_poseflow() -> PoseFlow:
    torch.manual_seed(0)
    model = PoseFlow(PoseFlowConfig.tiny()).train()
    model.nll(pose_batch())
    perturb(model, 2)
    return model.eval()


def run_poseflow(model: PoseFlow) -> Tensor:
    batch = pose_batch()
    sample = model.sample(batch.audio, generator=torch.Generator().manual_seed(5))
    return torch.cat([model.log_prob(batch).flatten(), sample.flatten()])


def images() -> Tensor:
    return torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3)) * 2 - 1


def build_codebook(seed: int = 0) -> VQGAN:
    torch.manual_seed(seed)
    model = VQGAN(VQGANConfig.tiny())
    perturb(model, seed + 3)
    return model.eval()


def run_codebook(model: VQGAN) -> Tensor:
    out = model(images())
    return torch.cat([out.recon.flatten(), out.indices.flatten().float()])


def build_vqig() -> VQIG:
    codebook = build_codebook()
    torch.manual_seed(4)
    model = VQIG(VQIGConfig.tiny(), codebook)
    perturb(model.weights_module(), 4)
    return model.eval()


def run_vqig(model: VQIG) -> Tensor:
    config = model.config
    g = torch.Generator().manual_seed(6)
    coeffs = 0.5 * torch.rand(1, config.coeff_dim, generator=g)
    windows = coeffs[:, None] + 0.1 * torch.randn(3, config.window_frames, config.coeff_dim, generator=g)
    return model.render(images()[:1], coeffs, windows).float()


@dataclass(frozen=True)
class ModelCase:
    """One model for the shared tester: how to build it (tiny, seeded, trained-like), load it, run it, and a
    config change that gives other tensor shapes."""

    name: str
    cls: type[ModelMixin]
    build: Callable[[], nn.Module]
    run: Callable[[nn.Module], Tensor]
    other_shapes: dict[str, object]
    load_kwargs: Callable[[nn.Module], dict[str, object]] = lambda model: {}

    def load(self, folder: Path, original: nn.Module) -> nn.Module:
        return self.cls.from_pretrained(folder, **self.load_kwargs(original))


CASES = [
    ModelCase("expflow", ExpFlow, build_expflow, run_expflow, {"n_steps": 3}),
    ModelCase("poseflow", PoseFlow, build_poseflow, run_poseflow, {"n_steps": 3}),
    ModelCase("codebook", VQGAN, build_codebook, run_codebook, {"num_codes": 64}),
    ModelCase("vqig", VQIG, build_vqig, run_vqig, {"transformer_layers": 1},
              lambda model: {"codebook": model.codebook}),
]


@pytest.fixture(params=CASES, ids=[case.name for case in CASES])
def case(request: pytest.FixtureRequest) -> ModelCase:
    return request.param


@pytest.fixture()
def saved(case: ModelCase, tmp_path: Path) -> tuple[nn.Module, Path]:
    model = case.build()
    return model, model.save_pretrained(tmp_path / case.name)


def edit_config(folder: Path, **changes: object) -> dict:
    meta = json.loads((folder / CONFIG_NAME).read_text()) | changes
    (folder / CONFIG_NAME).write_text(json.dumps(meta))
    return meta


def refused(case: ModelCase, folder: Path, original: nn.Module, match: str) -> str:
    """Loading ``folder`` raises one WeightsError of one line matching ``match``; returns its message."""
    with pytest.raises(WeightsError, match=match) as info:
        case.load(folder, original)
    assert "\n" not in str(info.value)
    return str(info.value)


# ---------------------------------------------------------------------------------------------- the tester


@torch.no_grad()
def test_save_load_gives_identical_outputs(case: ModelCase, saved: tuple[nn.Module, Path]) -> None:
    model, folder = saved
    assert sorted(p.name for p in folder.iterdir()) == [CONFIG_NAME, WEIGHTS_NAME]
    meta = json.loads((folder / CONFIG_NAME).read_text())
    assert meta["model_type"] == case.cls.model_type and meta["format_version"] == FORMAT_VERSION
    torch.manual_seed(99)  # the loaded model is built from another random initialisation
    loaded = case.load(folder, model)
    assert type(loaded) is case.cls and not loaded.training and loaded.config == model.config
    expected = model.weights_module().state_dict()
    got = loaded.weights_module().state_dict()
    assert list(got) == list(expected)
    for name, tensor in expected.items():
        assert torch.equal(got[name], tensor), name
    assert torch.equal(case.run(loaded), case.run(model))
    torch.manual_seed(99)
    fresh = case.cls.build(model.config, meta, folder, **case.load_kwargs(model)).weights_module().state_dict()
    assert any(not torch.equal(fresh[name], tensor) for name, tensor in expected.items())  # loading mattered


@torch.no_grad()
def test_eval_mode_is_deterministic(case: ModelCase) -> None:
    model = case.build()
    assert not model.training
    first = case.run(model)
    torch.manual_seed(123)  # the global RNG must not matter in eval mode
    assert torch.equal(case.run(model), first)


def test_weights_are_written_before_the_config(case: ModelCase, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    model = case.build()
    written = []
    real = modeling.atomic_write

    def recording(path, write, **kwargs):
        written.append(Path(path).name)
        return real(path, write, **kwargs)

    monkeypatch.setattr(modeling, "atomic_write", recording)
    model.save_pretrained(tmp_path / "m")
    assert written == [WEIGHTS_NAME, CONFIG_NAME]
    monkeypatch.undo()

    def no_room(path, payload, sort_keys=True):
        raise OSError("disk full")

    monkeypatch.setattr(modeling, "write_json", no_room)  # a crash after the weights, before the config
    with pytest.raises(OSError):
        model.save_pretrained(tmp_path / "crashed")
    assert sorted(p.name for p in (tmp_path / "crashed").iterdir()) == [WEIGHTS_NAME]
    monkeypatch.undo()
    refused(case, tmp_path / "crashed", model, r"config\.json is missing")


def test_config_without_format_version_loads_as_version_1(case: ModelCase, saved: tuple[nn.Module, Path]) -> None:
    model, folder = saved  # as flows saved before the field existed (weights/flowvq-mini)
    meta = json.loads((folder / CONFIG_NAME).read_text())
    del meta["format_version"]
    (folder / CONFIG_NAME).write_text(json.dumps(meta))
    assert case.load(folder, model).config == model.config


def test_damaged_weights_are_one_error(case: ModelCase, saved: tuple[nn.Module, Path]) -> None:
    model, folder = saved
    weights = folder / WEIGHTS_NAME
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    refused(case, folder, model, re.escape(str(weights)) + " is not a readable safetensors file")
    marker = folder / "UNPICKLED"
    make_marker_pickle(weights, marker)
    refused(case, folder, model, "Python pickle")
    assert not marker.exists()
    weights.unlink()
    refused(case, folder, model, "does not exist")


def test_mismatched_config_is_one_error(case: ModelCase, saved: tuple[nn.Module, Path]) -> None:
    model, folder = saved
    meta = json.loads((folder / CONFIG_NAME).read_text())
    edit_config(folder, config={**meta["config"], **case.other_shapes})
    refused(case, folder, model, "the weights do not match this architecture|has shape|codebook with config")
    edit_config(folder, config={**meta["config"], "colour": "blue"})
    refused(case, folder, model, r"config\.json: .*unknown fields \['colour'\]")
    edit_config(folder, config={**meta["config"], next(iter(case.other_shapes)): -1})
    refused(case, folder, model, r"config\.json: \w+Config is invalid")
    edit_config(folder, config=meta["config"], model_type="something-else")
    refused(case, folder, model, "'something-else' model, not")
    edit_config(folder, model_type=meta["model_type"], format_version=FORMAT_VERSION + 1)
    refused(case, folder, model, f"format version {FORMAT_VERSION + 1}")
    (folder / CONFIG_NAME).write_text("{not json")
    refused(case, folder, model, "not valid JSON")
    refused(case, folder.parent / "nowhere", model, r"config\.json is missing")


def test_other_models_are_refused_by_type(tmp_path: Path) -> None:
    PoseFlow(PoseFlowConfig.tiny()).save_pretrained(tmp_path / "poseflow")
    with pytest.raises(WeightsError, match="holds a 'poseflow' model, not 'expflow'; pass the expflow/ folder"):
        ExpFlow.from_pretrained(tmp_path / "poseflow")
    with pytest.raises(WeightsError, match="not 'flowvq-vqgan'; pass the codebook/ folder"):
        VQGAN.from_pretrained(tmp_path / "poseflow")


# ---------------------------------------------------------------------------------------------- configs


CONFIGS = [ExpFlowConfig, PoseFlowConfig, VQGANConfig, VQIGConfig]


@pytest.mark.parametrize("kind", CONFIGS, ids=[c.__name__ for c in CONFIGS])
def test_config_round_trips_through_json(kind: type) -> None:
    for preset in (kind.tiny(), kind.mini(), kind.base()):
        data = json.loads(json.dumps(preset.to_dict()))
        assert kind.from_dict(data) == preset


def test_config_from_dict_has_one_error_type() -> None:
    data = VQIGConfig.tiny().to_dict()
    with pytest.raises(WeightsError, match=r"VQIGConfig has unknown fields \['bogus'\]"):
        VQIGConfig.from_dict({**data, "bogus": 1})
    with pytest.raises(WeightsError, match=r"VQGANLossConfig has unknown fields \['bogus'\]"):  # nested twice
        VQIGConfig.from_dict({**data, "loss": {**data["loss"], "image": {**data["loss"]["image"], "bogus": 1}}})
    with pytest.raises(WeightsError, match=r"ExpFlowConfig is invalid .*history_dropout"):
        ExpFlowConfig.from_dict({"history_dropout": 2.0})
    with pytest.raises(WeightsError, match="VQGANConfig must be a JSON object"):
        VQIGConfig.from_dict({**data, "codebook": [1, 2]})
    loss = VQIGConfig.from_dict(data).loss
    assert isinstance(loss, VQIGLossConfig) and isinstance(loss.image, VQGANLossConfig)
    assert ExpFlowConfig.from_dict({}) == ExpFlowConfig()  # missing fields take their defaults


# ---------------------------------------------------------------------------------------------- safetensors


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


def test_header_length_ending_in_0x80_is_not_taken_for_a_pickle(tmp_path: Path) -> None:
    """A safetensors header length whose low byte is 0x80 starts the file with a pickle's first byte; such a
    file (a tiny ExpFlow's export was one) loads."""
    from safetensors.torch import save_file

    path = tmp_path / "w.safetensors"
    for pad in range(0, 512):
        save_file({"w": torch.ones(3)}, str(path), metadata={"pad": "x" * pad})
        if path.read_bytes()[0] == 0x80:
            break
    assert path.read_bytes()[0] == 0x80
    assert torch.equal(load_safetensors(path)["w"], torch.ones(3))


def test_load_safetensors_to_device(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    save_file({"w": torch.arange(6.0).reshape(2, 3)}, str(tmp_path / "w.safetensors"))
    state = load_safetensors(tmp_path / "w.safetensors", torch.device("cpu"))
    assert torch.equal(state["w"], torch.arange(6.0).reshape(2, 3))
    (tmp_path / "short.safetensors").write_bytes(b"\x10\0\0\0\0\0\0\0{")
    with pytest.raises(WeightsError, match="truncated"):
        load_safetensors(tmp_path / "short.safetensors")
    with pytest.raises(WeightsError, match=r"^VGG19 weights: .*short\.safetensors is not a readable safetensors"):
        load_safetensors(tmp_path / "short.safetensors", what="VGG19 weights")


def test_resolve_device_is_one_check_for_generate_and_train(monkeypatch: pytest.MonkeyPatch) -> None:
    """One ``resolve_device`` for the API and the trainers: unknown names are a one-line UsageError (the
    trainers used to fall back to the CPU silently); a bare ``cuda`` under torchrun is ``cuda:LOCAL_RANK``."""
    from flowvq_cli.api import resolve_device as api_resolve
    from flowvq_cli.train.loop import resolve_device as train_resolve

    assert api_resolve is train_resolve is modeling.resolve_device
    assert modeling.resolve_device("cpu") == torch.device("cpu")
    from flowvq_cli.train.loop import TrainConfig

    for bad in ("tpu", "gpu", "cudax", "cuda:", "cuda:x"):
        with pytest.raises(UsageError, match="unknown device") as info:
            modeling.resolve_device(bad)
        assert "\n" not in str(info.value)
        with pytest.raises(UsageError, match="unknown device"):  # the trainers' config: the same check, up front
            TrainConfig(device=bad)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert modeling.resolve_device("auto", local_rank=1) == torch.device("cpu")
    with pytest.raises(UsageError, match="no usable CUDA GPU"):
        modeling.resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert modeling.resolve_device("auto") == torch.device("cuda")
    assert modeling.resolve_device("cuda", local_rank=1) == torch.device("cuda:1")
    assert modeling.resolve_device("cuda:0", local_rank=1) == torch.device("cuda:0")
