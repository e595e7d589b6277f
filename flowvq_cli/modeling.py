"""One way to save and load a model: ``ConfigMixin`` for configs, ``ModelMixin`` for models.

In the manner of diffusers' ``ConfigMixin``/``ModelMixin``, written for FlowVQ's frozen dataclass configs. A
saved model is a folder (huggingface_hub's ``PyTorchModelHubMixin`` layout, one per bundle component)::

    expflow/
      model.safetensors   the model's own tensors (``ModelMixin.weights_module``)
      config.json         {"model_type", "format_version", ["coeff_layout_version"], ..., "config": {...}}

:meth:`ModelMixin.save_pretrained` writes the weights first and ``config.json`` last, each through a temporary
file renamed into place (:func:`flowvq_cli.fsutil.atomic_write`), so a folder whose ``config.json`` is complete
has complete weights. :meth:`ModelMixin.from_pretrained` checks ``config.json`` (model type, format version,
coefficient layout, the model's own checks), builds the model from its config, then loads the weights with
names and shapes checked. Every failure is one :class:`~flowvq_cli.errors.WeightsError`, one line saying what
to do (the CLI prints it as is).

Format version 1 is the only one. ``config.json`` files without ``format_version`` (flows saved before it was
recorded, as in ``weights/flowvq-mini``) are read as version 1.

:func:`load_safetensors` is the one reader of weights files in FlowVQ (bundles, models, training states, VGG19):
it never unpickles, and refuses a pickle by its name or its first bytes before any deserialiser sees it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import struct
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from flowvq_cli.errors import UsageError, WeightsError
from flowvq_cli.fsutil import atomic_write

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
SAFETENSORS_SUFFIX = ".safetensors"
#: Suffixes of pickle-based checkpoints, which are refused everywhere.
PICKLE_SUFFIXES = frozenset({".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".th", ".tar"})
#: Version of the ``config.json`` written by :meth:`ModelMixin.save_pretrained`.
FORMAT_VERSION = 1
#: What a ``config.json`` without ``format_version`` is read as (flows saved before the field existed).
LEGACY_FORMAT_VERSION = 1

C = TypeVar("C")
M = TypeVar("M", bound="ModelMixin")


# ---------------------------------------------------------------------------------------------- devices

_DEVICE_RE = re.compile(r"cpu|cuda(:\d+)?")


def check_device_name(device: str) -> None:
    """A one-line :class:`~flowvq_cli.errors.UsageError` unless ``device`` is auto, cpu, cuda or cuda:N (the
    names :func:`resolve_device` takes; whether a GPU is there is its business)."""
    if device != "auto" and not _DEVICE_RE.fullmatch(device):
        raise UsageError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N")


def resolve_device(device: str = "auto", local_rank: int | None = None) -> torch.device:
    """The torch device ``--device`` names: ``auto`` → CUDA when usable, else CPU; ``cpu``; ``cuda[:N]``.

    ``local_rank`` (torchrun's ``LOCAL_RANK``, for training) makes a bare ``cuda`` ``cuda:LOCAL_RANK``. An
    unknown name, or CUDA without a usable GPU, is a one-line :class:`~flowvq_cli.errors.UsageError`.
    """
    check_device_name(device)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {device} asked for, but torch sees no usable CUDA GPU; pass --device cpu")
    if device == "cuda" and local_rank is not None:
        device = f"cuda:{local_rank}"
    return torch.device(device)


# ---------------------------------------------------------------------------------------------- safetensors


def safetensors_problem(path: Path) -> str | None:
    """What is wrong with the first bytes of a would-be safetensors file (8-byte header length, JSON
    header start), or None; reads 9 bytes, never deserialises. A valid header is accepted whatever its first
    byte (a header length of 0x..80 starts with a pickle's first byte); anything else is named: a zip, a
    pickle, a truncated file."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(9)
    header_len = struct.unpack("<Q", head[:8])[0] if len(head) == 9 else 0
    if len(head) == 9 and head[8:9] == b"{" and header_len + 8 <= size:
        return None
    if head[:2] == b"PK":
        return "it is a zip archive, as written by torch.save; pickled checkpoints are never loaded"
    if head[:1] == b"\x80" and head[8:9] != b"{":
        return "it is a Python pickle; pickled checkpoints are never loaded"
    if len(head) < 9:
        return f"only {size} bytes"
    if head[8:9] != b"{":
        return "no JSON header"
    return f"header of {header_len} bytes does not fit in {size} bytes: truncated"


def load_safetensors(path: str | os.PathLike[str], device: str | torch.device = "cpu",
                     what: str = "") -> dict[str, torch.Tensor]:
    """Read a safetensors file into tensors on ``device``; refuse anything else without deserialising it.

    Args:
        path: the file; a pickle-based checkpoint (``.pt``, ``.pth``, ``.bin``, ``.ckpt``, ...) is refused by
            its name, a file of any name whose first bytes are not a safetensors header by those bytes.
        device: where the tensors go.
        what: a few words naming the weights for the message ("VGG19 weights"); the path alone by default.

    Raises:
        WeightsError: the file is missing, is not safetensors, or is damaged.
    """
    path = Path(path)
    where = f"{what}: {path}" if what else str(path)
    if not path.is_file():
        raise WeightsError(f"{where} does not exist or is not a file; pass the path of a {SAFETENSORS_SUFFIX} file")
    if path.suffix.lower() != SAFETENSORS_SUFFIX:
        raise WeightsError(f"{where} is not a {SAFETENSORS_SUFFIX} file: only safetensors weights are accepted "
                           "(pickled checkpoints can run code when loaded); convert it once, where you trust it, "
                           f"with safetensors.torch.save_file(state_dict, '{path.stem}{SAFETENSORS_SUFFIX}')")
    problem = safetensors_problem(path)
    if problem is not None:
        raise WeightsError(f"{where} is not a readable safetensors file ({problem}); re-download or re-convert it")
    try:
        return load_file(str(path), device=str(device))
    except (SafetensorError, OSError) as exc:
        raise WeightsError(f"{where} is not a readable safetensors file ({exc}); re-download or re-convert "
                           "it") from exc


def save_safetensors(path: str | os.PathLike[str], tensors: Mapping[str, torch.Tensor],
                     metadata: Mapping[str, str] | None = None) -> Path:
    """Write contiguous CPU copies of ``tensors`` to ``path`` atomically (fsynced); its folder must exist."""
    cpu = {name: t.detach().to("cpu", copy=True).contiguous() for name, t in tensors.items()}
    return atomic_write(path, lambda tmp: save_file(cpu, str(tmp), metadata=dict(metadata or {})))


def write_json(path: str | os.PathLike[str], payload: Mapping[str, Any], sort_keys: bool = True) -> Path:
    """Indented JSON, written atomically (fsynced); ``sort_keys=False`` where the order of keys is data."""
    text = json.dumps(payload, indent=2, sort_keys=sort_keys) + "\n"
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def load_state_checked(module: nn.Module, state: Mapping[str, torch.Tensor], where: str) -> None:
    """Load ``state`` into ``module`` after checking names and shapes; a mismatch is a WeightsError naming
    ``where`` (the file, or what the weights are). Tensors are cast to the dtype of what they replace."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise WeightsError(f"{where}: the weights do not match this architecture (missing {len(missing)} "
                           f"tensors, e.g. {missing[:3]}; unexpected {len(unexpected)}, e.g. {unexpected[:3]}); "
                           "use weights saved for the same configuration")
    for name, tensor in expected.items():
        if tuple(state[name].shape) != tuple(tensor.shape):
            raise WeightsError(f"{where}: tensor '{name}' has shape {tuple(state[name].shape)}, the model "
                               f"expects {tuple(tensor.shape)}; use weights saved for the same configuration")
    module.load_state_dict({name: state[name].to(expected[name].dtype) for name in expected}, strict=True)


# ---------------------------------------------------------------------------------------------- configs


def config_to_dict(config: Any) -> Any:
    """A dataclass config as plain JSON values: nested configs become dicts, tuples lists."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return {f.name: config_to_dict(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, (tuple, list)):
        return [config_to_dict(v) for v in config]
    return config


def config_from_dict(kind: type[C], data: Any) -> C:
    """Build the dataclass ``kind`` from :func:`config_to_dict` output. Missing fields take their defaults
    (configs saved before a field existed); nested configs and tuples are rebuilt.

    Raises:
        WeightsError: not an object, an unknown field (written by another FlowVQ), or a value the config refuses.
    """
    name = kind.__name__
    if not isinstance(data, Mapping):
        raise WeightsError(f"{name} must be a JSON object, got {type(data).__name__}; re-export the model")
    unknown = sorted(set(data) - {f.name for f in dataclasses.fields(kind) if f.init})
    if unknown:
        raise WeightsError(f"{name} has unknown fields {unknown}; it was written by another FlowVQ version, "
                           "use a matching one")
    hints = typing.get_type_hints(kind)
    values = {}
    for key, value in data.items():
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            value = config_from_dict(hint, value)
        elif typing.get_origin(hint) is tuple and isinstance(value, list):
            value = tuple(value)
        values[key] = value
    try:
        return kind(**values)
    except (TypeError, ValueError) as exc:
        raise WeightsError(f"{name} is invalid ({exc}); fix the config or re-export the model") from exc


class ConfigMixin:
    """For frozen dataclass configs: ``to_dict`` (JSON-able) and ``from_dict`` (its inverse, one error type)."""

    def to_dict(self) -> dict[str, Any]:
        """This config as plain JSON values (nested configs as dicts, tuples as lists)."""
        return config_to_dict(self)

    @classmethod
    def from_dict(cls: type[C], data: Mapping[str, Any]) -> C:
        """Build from :meth:`to_dict` output; see :func:`config_from_dict` (raises :class:`WeightsError`)."""
        return config_from_dict(cls, data)


# ---------------------------------------------------------------------------------------------- models


class ModelMixin:
    """``save_pretrained`` / ``from_pretrained`` for an ``nn.Module`` built as ``Model(config)``.

    A subclass sets :attr:`model_type` (recorded in ``config.json`` and checked on load), :attr:`config_class`
    and :attr:`component` (its bundle folder, named in messages); it records and checks the coefficient
    layout when :attr:`coeff_layout_version` is set. Hooks, for what one model adds: :meth:`config_metadata`
    (more fields for ``config.json``), :meth:`check_metadata` (refuse them on load), :meth:`build` (construct
    from the config, e.g. onto a codebook) and :meth:`weights_module` (the part whose tensors are saved).
    """

    model_type: ClassVar[str]
    config_class: ClassVar[type[ConfigMixin]]
    component: ClassVar[str]
    #: what messages call the model ("codebook model", "ExpFlow", ...): their first words
    display_name: ClassVar[str] = "model"
    coeff_layout_version: ClassVar[int | None] = None
    #: buffers whose size varies with the data (a latent bank): resized to the file's before loading
    resizable_buffers: ClassVar[tuple[str, ...]] = ()
    config: Any

    # ---- hooks
    def config_metadata(self) -> dict[str, Any]:
        """Fields ``config.json`` records beside the config (none by default)."""
        return {}

    @classmethod
    def check_metadata(cls, meta: Mapping[str, Any], folder: Path) -> None:
        """Refuse a ``config.json`` this model cannot use (raise :class:`WeightsError`); nothing by default."""

    @classmethod
    def build(cls: type[M], config: Any, meta: Mapping[str, Any], folder: Path, **kwargs: Any) -> M:
        """The untrained model for ``config`` (``kwargs``: what :meth:`from_pretrained` was given beyond it)."""
        return cls(config, **kwargs)  # type: ignore[call-arg]

    def weights_module(self) -> nn.Module:
        """The module whose ``state_dict`` is saved and loaded (the whole model by default)."""
        return self  # type: ignore[return-value]

    # ---- save
    def save_pretrained(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``model.safetensors`` then ``config.json`` into ``directory`` (created), each atomically."""
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        meta: dict[str, Any] = {"model_type": self.model_type, "format_version": FORMAT_VERSION}
        if self.coeff_layout_version is not None:
            meta["coeff_layout_version"] = self.coeff_layout_version
        meta.update(self.config_metadata())
        meta["config"] = self.config.to_dict()
        save_safetensors(folder / WEIGHTS_NAME, self.weights_module().state_dict(), {"format": "pt"})
        write_json(folder / CONFIG_NAME, meta)
        return folder

    # ---- load
    @classmethod
    def load_config(cls, directory: str | os.PathLike[str]) -> dict[str, Any]:
        """``config.json`` of a saved model, after checking its format, layout and model type."""
        folder = Path(directory)
        path = folder / CONFIG_NAME
        what = f"{cls.display_name}: {path}"
        if not path.is_file():
            raise WeightsError(f"{what} is missing; pass a folder written by {cls.__name__}.save_pretrained "
                               f"({CONFIG_NAME} + {WEIGHTS_NAME}), such as the {cls.component}/ folder of a bundle")
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise WeightsError(f"{what} is not valid JSON ({exc}); re-export the model") from exc
        if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict):
            raise WeightsError(f"{what} has no 'config' object; re-export the model")
        version = meta.get("format_version", LEGACY_FORMAT_VERSION)
        if version != FORMAT_VERSION:
            raise WeightsError(f"{what} has format version {version!r}, this FlowVQ reads version "
                               f"{FORMAT_VERSION}; use a matching FlowVQ release")
        layout = meta.get("coeff_layout_version")
        if cls.coeff_layout_version is not None and layout != cls.coeff_layout_version:
            raise WeightsError(f"{what} was trained on coefficient layout version {layout}, this FlowVQ uses "
                               f"version {cls.coeff_layout_version}; use weights made for this layout")
        cls.check_metadata(meta, folder)
        if meta.get("model_type") != cls.model_type:
            raise WeightsError(f"{what} holds a {meta.get('model_type')!r} model, not {cls.model_type!r}; pass "
                               f"the {cls.component}/ folder of a FlowVQ bundle")
        return meta

    @classmethod
    def from_pretrained(cls: type[M], directory: str | os.PathLike[str], device: str | torch.device = "cpu",
                        **kwargs: Any) -> M:
        """Load a folder written by :meth:`save_pretrained`; the model comes back in eval mode on ``device``.

        Raises:
            WeightsError: a missing or damaged file, another model, format or layout, a config this FlowVQ
                cannot build, or weights of another architecture.
        """
        folder = Path(directory)
        meta = cls.load_config(folder)
        try:
            config = cls.config_class.from_dict(meta["config"])
        except WeightsError as exc:
            raise WeightsError(f"{cls.display_name}: {folder / CONFIG_NAME}: {exc}") from exc
        model = cls.build(config, meta, folder, **kwargs)
        model.load_weights(folder / WEIGHTS_NAME)
        return model.to(device).eval()  # type: ignore[attr-defined]

    def load_weights(self, path: str | os.PathLike[str]) -> None:
        """Load a ``model.safetensors`` into :meth:`weights_module`, names and shapes checked."""
        state = load_safetensors(path)
        module = self.weights_module()
        for name in self.resizable_buffers:  # take the file's size before the shapes are compared
            if name in state:
                module.register_buffer(name, torch.empty_like(state[name]))
        load_state_checked(module, state, str(path))
