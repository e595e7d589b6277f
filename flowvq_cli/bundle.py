"""Weights bundles: what inference loads, on disk, in safetensors only.

A **bundle** is a folder with a manifest ``flowvq.json`` and one sub-folder per component (``expflow/``,
``poseflow/``, ``codebook/``, ``vqig/``), each holding ``config.json`` and ``model.safetensors`` as
:meth:`flowvq_cli.modeling.ModelMixin.save_pretrained` writes them (the layout of huggingface_hub's
``PyTorchModelHubMixin``)::

    flowvq-mini/
      flowvq.json         {bundle_format_version, coeff_layout_version, face_model_version, name, created,
                           flowvq_version,
                           components: {name: {files: {relpath: {sha256, bytes}}, config: {...}}}}
      expflow/config.json
      expflow/model.safetensors
      ...

:func:`write_bundle` builds one atomically; :func:`read_bundle` refuses anything that is incomplete, tampered
with, of an unknown format or made for another coefficient layout. Resumable training checkpoints are
:mod:`flowvq_cli.training_state`'s.

Nothing here ever unpickles: files that are not safetensors are refused before any byte of them is
deserialised (:func:`flowvq_cli.modeling.load_safetensors`).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Any

import torch

from flowvq_cli import __version__
from flowvq_cli.errors import OutputError, WeightsError

# The per-frame coefficient layout (52 ARKit weights + 6 pose values) this FlowVQ reads and writes; the
# face rig owns it. A bundle records the layout it was trained on and is refused under any other.
from flowvq_cli.face.rig import COEFF_LAYOUT_VERSION, FACE_MODEL_VERSION, face_model_mismatch
from flowvq_cli.fsutil import fsync_dir, fsync_file, sha256_file
from flowvq_cli.modeling import (
    CONFIG_NAME,
    PICKLE_SUFFIXES,
    SAFETENSORS_SUFFIX,
    WEIGHTS_NAME,
    load_safetensors,
    safetensors_problem,
    write_json,
)

#: Version of the bundle folder format described in this module's docstring.
BUNDLE_FORMAT_VERSION = 1
MANIFEST_NAME = "flowvq.json"
#: Components a bundle may hold, in pipeline order.
KNOWN_COMPONENTS = ("expflow", "poseflow", "codebook", "vqig")
RENDERERS = ("vqig", "warp")  # a bundle's default renderer: the learned one (needs codebook + vqig) or the mesh warp

DEFAULT_FIX_HINT = "re-download the bundle (`flowvq weights download ORG/NAME --force`) or rebuild it"


def utc_now() -> str:
    """Now, in UTC, to the second: ``2025-01-31T12:00:00Z``."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class FileEntry:
    """One file of a bundle as the manifest records it."""

    sha256: str
    bytes: int


@dataclass(frozen=True)
class ComponentInfo:
    """One component of a bundle: its files (relative to the bundle root) and its model config."""

    name: str
    files: Mapping[str, FileEntry]
    config: Mapping[str, Any]


@dataclass(frozen=True)
class Bundle:
    """A verified weights bundle on disk. Build it with :func:`read_bundle`."""

    root: Path
    name: str
    created: str
    flowvq_version: str
    format_version: int
    coeff_layout_version: int
    components: Mapping[str, ComponentInfo] = field(default_factory=dict)
    default_renderer: str | None = None

    @property
    def renderer(self) -> str:
        """The renderer ``--renderer auto`` picks: the manifest's ``default_renderer``, else ``vqig`` when the
        bundle holds codebook + vqig, else ``warp``."""
        if self.default_renderer is not None:
            return self.default_renderer
        return "vqig" if self.has("codebook") and self.has("vqig") else "warp"

    @property
    def component_names(self) -> tuple[str, ...]:
        """Names of the components present, in pipeline order."""
        return tuple(name for name in KNOWN_COMPONENTS if name in self.components)

    def has(self, name: str) -> bool:
        """Whether the bundle holds component ``name``."""
        return name in self.components

    def component(self, name: str) -> Path:
        """Folder of component ``name`` (holding ``config.json`` and ``model.safetensors``)."""
        if name not in self.components:
            held = ", ".join(self.component_names) or "none"
            raise WeightsError(f"{self.root} has no '{name}' component (it holds: {held}); "
                               f"use a bundle that includes {name}")
        return self.root / name

    def config(self, name: str) -> dict[str, Any]:
        """The model config of component ``name`` (a copy of its ``config.json``)."""
        self.component(name)
        return json.loads(json.dumps(dict(self.components[name].config)))

    def weights_path(self, name: str) -> Path:
        """Path of component ``name``'s ``model.safetensors``."""
        return self.component(name) / WEIGHTS_NAME

    def files(self) -> dict[str, FileEntry]:
        """Every file the manifest lists (paths relative to :attr:`root`), in pipeline order."""
        return {rel: entry for name in self.component_names for rel, entry in self.components[name].files.items()}

    def load_state(self, name: str, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
        """Tensors of component ``name``'s ``model.safetensors`` on ``device``."""
        return load_safetensors(self.weights_path(name), device)


def write_bundle(
    out_dir: str | os.PathLike[str],
    components: Mapping[str, str | os.PathLike[str]],
    name: str,
    force: bool = False,
    default_renderer: str | None = None,
) -> Bundle:
    """Assemble component folders into a bundle at ``out_dir``, atomically, and return it verified.

    Each component folder must hold ``config.json`` (a JSON object) and ``model.safetensors``; its other
    ``*.safetensors`` files are copied too, other files are not part of a bundle and are left out, and a
    pickled checkpoint in it is refused. The bundle is built in a temporary folder beside ``out_dir``,
    its manifest written last, and the folder renamed into place, so ``out_dir`` is never half-written.

    Args:
        out_dir: the bundle folder to create.
        components: component name (one of :data:`KNOWN_COMPONENTS`) -> folder to copy.
        name: the bundle's name, e.g. ``"flowvq-mini"``.
        force: replace an existing ``out_dir``.
        default_renderer: what ``--renderer auto`` renders with (``vqig`` or ``warp``; recorded in the manifest),
            e.g. ``warp`` for a bundle whose VQIG is shipped to try but measured below the mesh warp. None =
            ``vqig`` when the bundle holds it, else ``warp``.

    Raises:
        OutputError: ``out_dir`` exists and ``force`` is false.
        WeightsError: a component is unknown, missing a file, or holds a non-safetensors model file; or the
            default renderer is unknown or ``vqig`` without codebook + vqig.
    """
    out_dir = Path(out_dir)
    if not components:
        raise WeightsError(f"no components given for bundle '{name}'; pass at least one of "
                           f"{', '.join(KNOWN_COMPONENTS)}")
    if out_dir.exists() and not force:
        raise OutputError(f"{out_dir} already exists; pass --force to replace it")
    sources = {comp: _component_sources(comp, Path(folder)) for comp, folder in components.items()}
    if default_renderer is not None:
        _check_renderer(default_renderer, set(sources), name)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; a bundle is meant to be shared
        manifest_components: dict[str, Any] = {}
        for comp in (c for c in KNOWN_COMPONENTS if c in sources):
            manifest_components[comp] = _copy_component(comp, sources[comp], tmp)
        manifest = {
            "bundle_format_version": BUNDLE_FORMAT_VERSION,
            "coeff_layout_version": COEFF_LAYOUT_VERSION,
            "face_model_version": FACE_MODEL_VERSION,
            "name": name,
            "created": utc_now(),
            "flowvq_version": __version__,
            "components": manifest_components,
        }
        if default_renderer is not None:
            manifest["default_renderer"] = default_renderer
        write_json(tmp / MANIFEST_NAME, manifest)
        _swap_into_place(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return read_bundle(out_dir)


def _component_sources(comp: str, folder: Path) -> list[Path]:
    """Files of a component folder that go into a bundle (config first), after checking them."""
    if comp not in KNOWN_COMPONENTS:
        raise WeightsError(f"unknown component '{comp}'; a bundle holds {', '.join(KNOWN_COMPONENTS)}")
    if not folder.is_dir():
        raise WeightsError(f"component '{comp}': {folder} is not a folder; pass the folder holding "
                           f"{CONFIG_NAME} and {WEIGHTS_NAME}")
    for required in (CONFIG_NAME, WEIGHTS_NAME):
        if not (folder / required).is_file():
            raise WeightsError(f"component '{comp}': {folder / required} is missing; save the model with its "
                               f"config as {CONFIG_NAME} + {WEIGHTS_NAME}")
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
    if pickles:
        raise WeightsError(f"component '{comp}': {folder / pickles[0]} is a pickled checkpoint; bundles hold "
                           "safetensors only: convert it with safetensors.torch.save_file and remove it")
    weights = sorted(p for p in folder.iterdir()  # hidden files are unfinished atomic writes, never weights
                     if p.is_file() and p.suffix == SAFETENSORS_SUFFIX and not p.name.startswith("."))
    for path in weights:
        problem = safetensors_problem(path)
        if problem is not None:
            raise WeightsError(f"component '{comp}': {path} is not a valid safetensors file ({problem})")
    return [folder / CONFIG_NAME, *weights]


def _copy_component(comp: str, sources: list[Path], root: Path) -> dict[str, Any]:
    """Copy a component's files under ``root/comp`` and return its manifest entry (hashes of the copies)."""
    dest = root / comp
    dest.mkdir()
    files: dict[str, Any] = {}
    for src in sources:
        target = dest / src.name
        shutil.copyfile(src, target)
        fsync_file(target)
        files[f"{comp}/{src.name}"] = {"sha256": sha256_file(target), "bytes": target.stat().st_size}
    try:
        config = json.loads((dest / CONFIG_NAME).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WeightsError(f"component '{comp}': {sources[0]} is not valid JSON ({exc}); re-save the "
                           "model config") from exc
    if not isinstance(config, dict):
        raise WeightsError(f"component '{comp}': {sources[0]} must hold a JSON object; re-save the model config")
    fsync_dir(dest)
    return {"files": files, "config": config}


def _swap_into_place(tmp: Path, out_dir: Path) -> None:
    """Rename the finished ``tmp`` folder to ``out_dir``, replacing an existing one with a rollback."""
    if not out_dir.exists():
        os.replace(tmp, out_dir)
        fsync_dir(out_dir.parent)
        return
    old = out_dir.with_name(f".{out_dir.name}.old-{uuid.uuid4().hex[:8]}")
    os.replace(out_dir, old)
    try:
        os.replace(tmp, out_dir)
    except OSError:
        os.replace(old, out_dir)
        raise
    fsync_dir(out_dir.parent)
    shutil.rmtree(old, ignore_errors=True)


def read_bundle(
    bundle_dir: str | os.PathLike[str], *, verify_hashes: bool = True, fix_hint: str = DEFAULT_FIX_HINT
) -> Bundle:
    """Open the bundle at ``bundle_dir`` after checking it completely.

    Checks: the manifest is present and parseable, its format version is known, its coefficient layout
    is this FlowVQ's, and every listed file is present, a safetensors file or ``config.json``, of the
    recorded size and (unless ``verify_hashes`` is false) of the recorded sha256.

    Args:
        bundle_dir: the bundle folder.
        verify_hashes: hash every file (the default); false checks presence and sizes only.
        fix_hint: what the user should do about a damaged file, appended to the error message.

    Raises:
        WeightsError: one line naming the first problem found and what to do about it.
    """
    root = Path(bundle_dir)
    manifest = _read_manifest(root)
    components = _parse_components(root, manifest)
    default_renderer = manifest.get("default_renderer")
    if default_renderer is not None:
        _check_renderer(default_renderer, set(components), str(root / MANIFEST_NAME))
    for info in components.values():
        for rel, entry in info.files.items():
            check_file(root, rel, entry, verify_hashes, fix_hint)
    return Bundle(
        root=root,
        name=str(manifest.get("name", root.name)),
        created=str(manifest.get("created", "")),
        flowvq_version=str(manifest.get("flowvq_version", "")),
        format_version=manifest["bundle_format_version"],
        coeff_layout_version=manifest["coeff_layout_version"],
        components=MappingProxyType(components),
        default_renderer=default_renderer,
    )


def _check_renderer(renderer: Any, components: set[str], where: str) -> None:
    """A bundle's ``default_renderer`` must be a known renderer, and ``vqig`` needs codebook + vqig."""
    if renderer not in RENDERERS:
        raise WeightsError(f"{where}: default renderer {renderer!r} is not one of {', '.join(RENDERERS)}; "
                           "rebuild the bundle with one of them")
    if renderer == "vqig" and not {"codebook", "vqig"} <= components:
        raise WeightsError(f"{where}: default renderer 'vqig' needs the codebook and vqig components; add them "
                           "or make 'warp' the default")


def _read_manifest(root: Path) -> dict[str, Any]:
    """Load ``flowvq.json`` and check its versions."""
    path = root / MANIFEST_NAME
    if not root.is_dir():
        raise WeightsError(f"{root} is not a folder; pass a weights bundle folder (holding {MANIFEST_NAME}) "
                           "or a Hub repo id ORG/NAME")
    if not path.is_file():
        raise WeightsError(f"{root} is not a FlowVQ weights bundle: {MANIFEST_NAME} is missing; pass the "
                           "bundle folder itself, or rebuild it with write_bundle")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WeightsError(f"{path} is not valid JSON ({exc.__class__.__name__}: {exc}); re-download or "
                           "rebuild the bundle") from exc
    if not isinstance(manifest, dict):
        raise WeightsError(f"{path} must hold a JSON object; re-download or rebuild the bundle")
    version = manifest.get("bundle_format_version")
    if version != BUNDLE_FORMAT_VERSION:
        raise WeightsError(f"{path}: bundle format version {version!r} is not supported by FlowVQ "
                           f"{__version__} (it reads version {BUNDLE_FORMAT_VERSION}); upgrade flowvq or use a "
                           "bundle made for this version")
    layout = manifest.get("coeff_layout_version")
    if layout != COEFF_LAYOUT_VERSION:
        raise WeightsError(f"{root} was made for coefficient layout {layout!r}, but FlowVQ {__version__} uses "
                           f"layout {COEFF_LAYOUT_VERSION}; use weights made for layout {COEFF_LAYOUT_VERSION} "
                           "(or the FlowVQ version that made them)")
    mismatch = face_model_mismatch(manifest.get("face_model_version", 1))
    if mismatch and {"expflow", "poseflow"} & set(manifest.get("components") or {}):
        raise WeightsError(f"{root}: its flows {mismatch}")
    return manifest


def _parse_components(root: Path, manifest: Mapping[str, Any]) -> dict[str, ComponentInfo]:
    """Turn the manifest's ``components`` into :class:`ComponentInfo`, checking names and paths."""
    raw = manifest.get("components")
    where = root / MANIFEST_NAME
    if not isinstance(raw, dict) or not raw:
        raise WeightsError(f"{where} lists no components; re-download or rebuild the bundle")
    components: dict[str, ComponentInfo] = {}
    for comp, body in raw.items():
        if comp not in KNOWN_COMPONENTS:
            raise WeightsError(f"{where}: unknown component '{comp}' (known: {', '.join(KNOWN_COMPONENTS)}); "
                               "upgrade flowvq or use a bundle made for this version")
        files = body.get("files") if isinstance(body, dict) else None
        if not isinstance(files, dict) or f"{comp}/{WEIGHTS_NAME}" not in files:
            raise WeightsError(f"{where}: component '{comp}' does not list {comp}/{WEIGHTS_NAME}; "
                               "re-download or rebuild the bundle")
        entries = {rel: _file_entry(where, comp, rel, value) for rel, value in files.items()}
        config = body.get("config", {})
        if not isinstance(config, dict):
            raise WeightsError(f"{where}: component '{comp}' has a config that is not an object; "
                               "re-download or rebuild the bundle")
        components[comp] = ComponentInfo(comp, MappingProxyType(entries), MappingProxyType(config))
    return components


def _file_entry(where: Path, comp: str, rel: str, value: Any) -> FileEntry:
    """Validate one ``files`` entry: a safe relative path inside the component, with sha256 and size."""
    parts = PurePosixPath(rel).parts
    if (not isinstance(rel, str) or "\\" in rel or len(parts) != 2 or parts[0] != comp
            or parts[1] in (".", "..")):
        raise WeightsError(f"{where}: file '{rel}' is not a plain file of component '{comp}'; "
                           "refusing a manifest that points outside its component folder")
    if parts[1] != CONFIG_NAME and not parts[1].endswith(SAFETENSORS_SUFFIX):
        raise WeightsError(f"{where}: file '{rel}' is neither {CONFIG_NAME} nor safetensors; only safetensors "
                           "weights are accepted: use a bundle without pickled files")
    ok = (isinstance(value, dict) and isinstance(value.get("sha256"), str)
          and re.fullmatch(r"[0-9a-f]{64}", value["sha256"]) is not None
          and isinstance(value.get("bytes"), int) and value["bytes"] >= 0)
    if not ok:
        raise WeightsError(f"{where}: entry for '{rel}' needs a hex sha256 and a byte count; "
                           "re-download or rebuild the bundle")
    return FileEntry(sha256=value["sha256"], bytes=value["bytes"])


def check_file(root: Path, rel: str, entry: FileEntry, verify_hashes: bool, fix_hint: str) -> None:
    """Presence, size and sha256 of one file of a bundle (or of a training state); a one-line WeightsError
    naming it and ending with ``fix_hint`` otherwise."""
    path = root / rel
    if not path.is_file():
        raise WeightsError(f"{path} is missing; {fix_hint}")
    size = path.stat().st_size
    if size < entry.bytes:
        raise WeightsError(f"{path} is truncated ({size} of {entry.bytes} bytes); {fix_hint}")
    if size > entry.bytes:
        raise WeightsError(f"{path} has {size} bytes, the manifest says {entry.bytes}; {fix_hint}")
    if verify_hashes:
        actual = sha256_file(path)
        if actual != entry.sha256:
            raise WeightsError(f"{path} is corrupted or was modified (sha256 {actual[:12]}…, expected "
                               f"{entry.sha256[:12]}…); {fix_hint}")
