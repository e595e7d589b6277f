"""Safetensors I/O shared by the codebook model and the VGG19 loader: checked reads, atomic writes.

Only safetensors are ever read: a pickle (``.pt``, ``.pth``, ``.bin``, ``.ckpt``) is refused before a
single byte of it is deserialised.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from flowvq_cli.errors import WeightsError
from flowvq_cli.fsutil import atomic_write

SAFETENSORS_SUFFIX = ".safetensors"


def read_safetensors(path: str | os.PathLike[str], what: str) -> dict[str, torch.Tensor]:
    """Read a safetensors file into CPU tensors, or raise :class:`WeightsError` saying what to do.

    Args:
        path: the file.
        what: a few words naming the weights, for the error message ("VGG19 weights").
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{what}: {path} does not exist or is not a file; pass the path of a "
                           f"{SAFETENSORS_SUFFIX} file")
    if path.suffix != SAFETENSORS_SUFFIX:
        raise WeightsError(f"{what}: {path} is not a {SAFETENSORS_SUFFIX} file; pickled checkpoints are "
                           "never loaded. Convert it once with safetensors.torch.save_file(state_dict, "
                           f"'{path.stem}{SAFETENSORS_SUFFIX}')")
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as exc:
        raise WeightsError(f"{what}: {path} is not a readable safetensors file ({exc}); "
                           "re-download or re-convert it") from exc


def load_state_checked(module: nn.Module, state: Mapping[str, torch.Tensor], what: str) -> None:
    """Load ``state`` into ``module`` after checking names and shapes; a mismatch is a WeightsError.

    Tensors are cast to the dtype of the parameter or buffer they replace.
    """
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise WeightsError(f"{what}: the weights do not match this architecture (missing {len(missing)} "
                           f"tensors, e.g. {missing[:3]}; unexpected {len(unexpected)}, e.g. {unexpected[:3]}); "
                           "use weights saved for the same configuration")
    for name, tensor in expected.items():
        if tuple(state[name].shape) != tuple(tensor.shape):
            raise WeightsError(f"{what}: tensor '{name}' has shape {tuple(state[name].shape)}, the model "
                               f"expects {tuple(tensor.shape)}; use weights saved for the same configuration")
    module.load_state_dict({name: state[name].to(expected[name].dtype) for name in expected}, strict=True)


def atomic_write_json(path: Path, payload: Mapping[str, Any]) -> None:
    """Write ``payload`` as indented JSON to ``path`` via a temporary file and rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n"), fsync=False)


def atomic_save_safetensors(path: Path, state: Mapping[str, torch.Tensor]) -> None:
    """Save ``state`` (contiguous CPU copies) to ``path`` via a temporary file and rename."""
    tensors = {name: t.detach().to("cpu").contiguous() for name, t in state.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp)), fsync=False)
