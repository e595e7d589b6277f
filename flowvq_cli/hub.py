"""Where weights come from: the shipped bundle, a local folder, or a Hugging Face Hub repository.

One resolver, :func:`resolve_weights`, turns what the user typed after ``--weights`` into a verified
bundle folder:

* nothing          -> the bundle shipped in the repository (``weights/flowvq-mini``): works offline;
* a local folder   -> that folder;
* ``ORG/NAME[@REV]`` -> a snapshot in huggingface_hub's cache (``HF_HOME``, ``--cache-dir``), downloaded
  if needed; ``HF_HUB_OFFLINE=1`` uses the cache only and fails fast when the bundle is not there.

Every path ends with :func:`flowvq_cli.bundle.read_bundle`, which checks each file's size and
sha256 against the manifest. ``huggingface_hub`` is imported only when the Hub is actually used.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from flowvq_cli.bundle import MANIFEST_NAME, Bundle, read_bundle
from flowvq_cli.errors import WeightsError
from flowvq_cli.modeling import CONFIG_NAME, PICKLE_SUFFIXES, SAFETENSORS_SUFFIX

if TYPE_CHECKING:
    from huggingface_hub import CommitInfo

DEFAULT_BUNDLE_NAME = "flowvq-mini"
#: Files of a Hub repository that make up a bundle (``fnmatch`` patterns; ``*`` also matches ``/``).
BUNDLE_PATTERNS = (MANIFEST_NAME, "README.md", f"*/{CONFIG_NAME}", f"*/*{SAFETENSORS_SUFFIX}")
CARD_NAME = "README.md"
#: A Markdown image ``![alt](path "title")`` or an HTML ``<img src="path">`` in a model card.
_CARD_IMAGE_RE = re.compile(r"!\[[^\]]*\]\(\s*<?([^)\s>]+)>?[^)]*\)|<img\s[^>]*?src=[\"']([^\"']+)[\"']", re.I)
_OFFLINE_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
_TRUE = {"1", "ON", "YES", "TRUE"}
# A Hub model id as huggingface_hub validates it (ORG/NAME), then an optional @revision.
_REPO_RE = re.compile(r"^(?P<repo>[\w.-]{1,96}/[\w.-]{1,96})(?:@(?P<rev>[^\s@]+))?$", re.ASCII)


@dataclass(frozen=True)
class RepoSpec:
    """A parsed ``ORG/NAME[@REVISION]``."""

    repo_id: str
    revision: str | None = None

    def __str__(self) -> str:
        return self.repo_id if self.revision is None else f"{self.repo_id}@{self.revision}"


@dataclass(frozen=True)
class CachedBundle:
    """A FlowVQ bundle found in huggingface_hub's cache by :func:`list_cached`."""

    repo_id: str
    commit: str
    refs: tuple[str, ...]
    path: Path
    size_on_disk: int


@dataclass(frozen=True)
class VerifyReport:
    """What :func:`verify` found: ``ok`` with the bundle's facts, or the one-line ``problem``."""

    path: Path
    ok: bool
    problem: str | None = None
    name: str | None = None
    coeff_layout_version: int | None = None
    components: tuple[str, ...] = ()
    files: int = 0
    bytes: int = 0

    def to_dict(self) -> dict[str, object]:
        """JSON-able form (for ``--json`` output)."""
        return {"path": str(self.path), "ok": self.ok, "problem": self.problem, "name": self.name,
                "coeff_layout_version": self.coeff_layout_version, "components": list(self.components),
                "files": self.files, "bytes": self.bytes}


@dataclass(frozen=True)
class PushResult:
    """Where :func:`push` put a bundle."""

    repo_id: str
    commit_oid: str
    commit_url: str
    files: tuple[str, ...]


# ---------------------------------------------------------------------------------------------- resolving


def parse_repo_spec(spec: str) -> RepoSpec | None:
    """``"org/name@rev"`` -> ``RepoSpec("org/name", "rev")``; None if ``spec`` is not of that form."""
    match = _REPO_RE.match(spec.strip())
    if match is None:
        return None
    repo_id = match.group("repo")
    if ".." in repo_id or "--" in repo_id or any(part.startswith((".", "-")) for part in repo_id.split("/")):
        return None
    return RepoSpec(repo_id, match.group("rev"))


def default_bundle_dirs() -> tuple[Path, ...]:
    """Where the shipped bundle may be: beside the package data (installed), then the source checkout."""
    package = Path(__file__).resolve().parent
    return (package / "weights" / DEFAULT_BUNDLE_NAME, package.parent / "weights" / DEFAULT_BUNDLE_NAME)


def default_bundle_dir() -> Path:
    """The first of :func:`default_bundle_dirs` that holds a manifest.

    Raises:
        WeightsError: none does (e.g. a wheel installed without the weights).
    """
    candidates = default_bundle_dirs()
    for folder in candidates:
        if (folder / MANIFEST_NAME).is_file():
            return folder
    looked = " and ".join(str(c) for c in candidates)
    raise WeightsError(f"no default weights found (looked in {looked}); pass --weights ORG/NAME or a folder, "
                       f"or install from a source checkout that has weights/{DEFAULT_BUNDLE_NAME}")


def resolve_weights(
    spec: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    offline: bool | None = None,
    *,
    endpoint: str | None = None,
    token: str | bool | None = None,
) -> Path:
    """Turn a ``--weights`` value into the folder of a verified bundle.

    Args:
        spec: None (the shipped bundle), a local bundle folder (or its ``flowvq.json``), or a Hub repo id
            ``ORG/NAME`` with an optional ``@REVISION`` (branch, tag or commit).
        cache_dir: huggingface_hub cache folder (default: its own, under ``HF_HOME``).
        offline: use the cache only; None follows ``HF_HUB_OFFLINE``.
        endpoint: Hub URL (default: ``HF_ENDPOINT`` or huggingface.co).
        token: Hub token for private repositories (default: huggingface_hub's login).

    Raises:
        WeightsError: one line saying what is wrong and what to do.
    """
    if spec is None:
        folder = default_bundle_dir()
        read_bundle(folder, fix_hint=f"the shipped bundle is damaged: restore {folder} from the repository "
                                     "(`git checkout -- weights/`, `git lfs pull` if it uses LFS)")
        return folder
    text = os.fspath(spec).strip()
    if not text:
        raise WeightsError("--weights is empty; pass a bundle folder or ORG/NAME, or leave it out for the "
                           "shipped weights")
    local = Path(text).expanduser()
    if local.is_file() and local.name == MANIFEST_NAME:
        local = local.parent
    if local.is_dir():
        read_bundle(local, fix_hint="rebuild or re-download the bundle")
        return local
    if local.is_file():
        kind = "a pickled checkpoint (only safetensors are accepted)" if local.suffix.lower() in \
            PICKLE_SUFFIXES else "a file"
        raise WeightsError(f"{text} is {kind}; --weights takes a bundle folder (holding {MANIFEST_NAME}) or a "
                           "Hub repo id ORG/NAME")
    repo = None if isinstance(spec, os.PathLike) or _looks_like_path(text) else parse_repo_spec(text)
    if repo is None:
        raise WeightsError(f"{text} is neither an existing folder nor a Hub repo id (ORG/NAME[@REVISION]); "
                           "pass a bundle folder or ORG/NAME")
    return download(repo.repo_id, repo.revision, cache_dir, offline=offline, endpoint=endpoint, token=token)


def _looks_like_path(text: str) -> bool:
    """Whether ``text`` is written as a path (absolute, ./, ~, backslashes, nested) rather than ORG/NAME."""
    head = text.split("@", 1)[0]
    return (head.startswith(("/", "./", "../", "~", ".\\")) or head.endswith(("/", "\\")) or "\\" in head
            or head.count("/") != 1)


def is_offline(offline: bool | None = None) -> bool:
    """``offline`` if given, else whether ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) is set."""
    if offline is not None:
        return offline
    return any(os.environ.get(name, "").upper() in _TRUE for name in _OFFLINE_ENV)


def hub_cache_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The huggingface_hub cache folder in use: ``cache_dir`` or the library's default."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


# ---------------------------------------------------------------------------------------------- Hub calls


def download(
    repo_id: str,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    offline: bool | None = None,
    force: bool = False,
    endpoint: str | None = None,
    token: str | bool | None = None,
) -> Path:
    """Fetch the bundle files of Hub repository ``repo_id`` into the cache and return the verified snapshot.

    Only the files a bundle is made of (:data:`BUNDLE_PATTERNS`) are downloaded. Files already in the
    cache are not fetched again unless ``force``.

    Raises:
        WeightsError: offline without a cached copy, repository or revision not found, network or disk
            failure, or a downloaded file that does not match the manifest.
    """
    from huggingface_hub import snapshot_download

    spec = RepoSpec(repo_id, revision)
    offline_now = is_offline(offline)
    try:
        folder = snapshot_download(
            repo_id, repo_type="model", revision=revision, cache_dir=cache_dir, local_files_only=offline_now,
            allow_patterns=list(BUNDLE_PATTERNS), force_download=force, endpoint=endpoint, token=token,
        )
    except Exception as exc:  # huggingface_hub raises many types; each known one becomes a WeightsError
        mapped = _hub_error(exc, spec, cache_dir, offline_now, offline is None, endpoint)
        if mapped is None:
            raise
        raise mapped from exc
    path = Path(folder)
    if not (path / MANIFEST_NAME).is_file():
        raise WeightsError(f"Hub repository {spec} holds no {MANIFEST_NAME}: it is not a FlowVQ weights bundle; "
                           "check the repo id")
    read_bundle(path, fix_hint=f"re-download it with `flowvq weights download {spec} --force`")
    return path


def _hub_error(
    exc: Exception, spec: RepoSpec, cache_dir: str | os.PathLike[str] | None, offline: bool, from_env: bool,
    endpoint: str | None,
) -> WeightsError | None:
    """Map what huggingface_hub / httpx raised to a one-line :class:`WeightsError`; None if unknown."""
    import httpx2
    from huggingface_hub import errors

    cache = hub_cache_dir(cache_dir)
    where = endpoint or _default_endpoint()
    if isinstance(exc, errors.GatedRepoError):
        return WeightsError(f"{spec.repo_id} is gated on the Hub: accept its terms on the model page, then log in "
                            "(`hf auth login`) or set HF_TOKEN")
    if isinstance(exc, errors.RepositoryNotFoundError):
        return WeightsError(f"no Hub repository {spec.repo_id} at {where} (and no local folder of that name); "
                            "check the name, or log in (`hf auth login`) if it is private")
    if isinstance(exc, errors.RevisionNotFoundError):
        return WeightsError(f"{spec.repo_id} has no revision '{spec.revision}' on the Hub; pass an existing "
                            "branch, tag or commit")
    cause = exc.__cause__
    if isinstance(exc, errors.LocalEntryNotFoundError) and (
            offline or isinstance(cause, errors.OfflineModeIsEnabled)):
        env = from_env or isinstance(cause, errors.OfflineModeIsEnabled)
        what = (f"the cached copy of {spec} in {cache} is incomplete"
                if isinstance(exc, errors.IncompleteSnapshotError) else f"{spec} is not in the cache at {cache}")
        if env:
            return WeightsError(f"HF_HUB_OFFLINE=1 and {what}; unset it or pass a local folder")
        return WeightsError(f"offline mode is on and {what}; download it online (`flowvq weights download "
                            f"{spec}`) or pass a local folder")
    if isinstance(exc, errors.LocalEntryNotFoundError | httpx2.TransportError):
        reason = _first_line(cause if isinstance(cause, httpx2.TransportError) else exc)
        return WeightsError(f"could not reach the Hub at {where} to get {spec} ({reason}) and it is not fully in "
                            f"the cache at {cache}; check the connection or pass a local folder")
    if isinstance(exc, errors.HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else "?"
        return WeightsError(f"the Hub answered HTTP {status} for {spec} ({_first_line(exc)}); try again later "
                            "or pass a local folder")
    if isinstance(exc, errors.HFValidationError):
        return WeightsError(f"{spec} is not a valid Hub repo id or revision ({_first_line(exc)}); pass ORG/NAME")
    if isinstance(exc, OSError):
        return WeightsError(f"could not write {spec} into the cache at {cache} ({_first_line(exc)}); free disk "
                            "space or pass --cache-dir")
    return None


def _default_endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{exc.__class__.__name__}: {text[0]}" if text else exc.__class__.__name__


def list_cached(cache_dir: str | os.PathLike[str] | None = None) -> list[CachedBundle]:
    """FlowVQ bundles (snapshots holding a ``flowvq.json``) in huggingface_hub's cache, by repo and commit."""
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        info = scan_cache_dir(hub_cache_dir(cache_dir))
    except CacheNotFound:
        return []
    found = [
        CachedBundle(repo_id=repo.repo_id, commit=rev.commit_hash, refs=tuple(sorted(rev.refs)),
                     path=Path(rev.snapshot_path), size_on_disk=rev.size_on_disk)
        for repo in info.repos if repo.repo_type == "model"
        for rev in repo.revisions if (Path(rev.snapshot_path) / MANIFEST_NAME).is_file()
    ]
    return sorted(found, key=lambda b: (b.repo_id, b.refs == (), b.commit))


def verify(path: str | os.PathLike[str]) -> VerifyReport:
    """Check the bundle at ``path`` completely (manifest, versions, sizes, sha256) and report; never raises
    for a bad bundle."""
    root = Path(path)
    try:
        bundle = read_bundle(root, fix_hint="re-download or rebuild the bundle")
    except WeightsError as exc:
        return VerifyReport(path=root, ok=False, problem=str(exc))
    files = bundle.files()
    return VerifyReport(path=root, ok=True, name=bundle.name, coeff_layout_version=bundle.coeff_layout_version,
                        components=bundle.component_names, files=len(files) + 1,
                        bytes=sum(e.bytes for e in files.values()) + (root / MANIFEST_NAME).stat().st_size)


def push(
    bundle_dir: str | os.PathLike[str],
    repo_id: str,
    token: str | bool | None = None,
    private: bool = False,
    *,
    revision: str | None = None,
    commit_message: str | None = None,
    endpoint: str | None = None,
) -> PushResult:
    """Upload a verified bundle to Hub repository ``repo_id`` (created if needed) in one commit.

    Only the manifest, the files it lists and the model card (:func:`card_files`: ``README.md`` as it is,
    its Hub metadata block included, and the local images it shows) are uploaded.

    Raises:
        WeightsError: the bundle does not verify, its card's metadata is not YAML, or the Hub refused or
            could not be reached.
    """
    from huggingface_hub import HfApi

    bundle: Bundle = read_bundle(bundle_dir, fix_hint="rebuild the bundle before pushing it")
    spec = parse_repo_spec(repo_id)
    if spec is None:
        raise WeightsError(f"{repo_id} is not a Hub repo id; pass ORG/NAME")
    files = [MANIFEST_NAME, *bundle.files(), *card_files(bundle.root)]
    api = HfApi(endpoint=endpoint, token=token)
    try:
        api.create_repo(spec.repo_id, repo_type="model", private=private, exist_ok=True)
        info: CommitInfo = api.upload_folder(
            repo_id=spec.repo_id, folder_path=bundle.root, repo_type="model",
            revision=revision or spec.revision, allow_patterns=files,
            commit_message=commit_message or f"Upload FlowVQ bundle {bundle.name}",
        )
    except Exception as exc:  # huggingface_hub raises many types; each known one becomes a WeightsError
        mapped = _push_error(exc, spec, endpoint)
        if mapped is None:
            raise
        raise mapped from exc
    return PushResult(repo_id=spec.repo_id, commit_oid=info.oid, commit_url=str(info.commit_url),
                      files=tuple(files))


def card_metadata(bundle_dir: str | os.PathLike[str]) -> dict[str, object]:
    """The Hub metadata of a bundle's model card: its YAML front matter (``---`` ... ``---``); {} if none.

    Raises:
        WeightsError: the front matter is not a YAML mapping (the Hub would refuse the card).
    """
    import yaml

    card = Path(bundle_dir) / CARD_NAME
    text = card.read_text(encoding="utf-8") if card.is_file() else ""
    match = re.match(r"\A---\s*\n(.*?)\n---\s*(\n|\Z)", text, re.S)
    if match is None:
        return {}
    try:
        meta = yaml.safe_load(match.group(1))
    except yaml.YAMLError as exc:
        raise WeightsError(f"{card}: its metadata block is not valid YAML ({_first_line(exc)}); fix it") from exc
    if not isinstance(meta, dict):
        raise WeightsError(f"{card}: its metadata block must be a YAML mapping (key: value lines); fix it")
    return meta


def card_files(bundle_dir: str | os.PathLike[str]) -> list[str]:
    """The model card and the files in the bundle folder its images point to (relative POSIX paths).

    [] without a card. Links to the web, absolute paths, paths leaving the folder and missing files are
    left out. The card's metadata block is checked (:func:`card_metadata`).
    """
    root = Path(bundle_dir).resolve()
    card = root / CARD_NAME
    if not card.is_file():
        return []
    card_metadata(root)
    files = [CARD_NAME]
    for match in _CARD_IMAGE_RE.finditer(card.read_text(encoding="utf-8")):
        link = (match.group(1) or match.group(2)).split("#", 1)[0].split("?", 1)[0]
        if not link or "://" in link or link.startswith(("/", "data:")):
            continue
        path = (root / link).resolve()
        if path.is_file() and path.is_relative_to(root):
            relative = path.relative_to(root).as_posix()
            if relative not in files:
                files.append(relative)
    return files


def _push_error(exc: Exception, spec: RepoSpec, endpoint: str | None) -> WeightsError | None:
    """Map a failed push to a one-line :class:`WeightsError`; None if unknown."""
    import httpx2
    from huggingface_hub import errors

    where = endpoint or _default_endpoint()
    if isinstance(exc, errors.HfHubHTTPError) and exc.response is not None and \
            exc.response.status_code in (401, 403):
        return WeightsError(f"the Hub at {where} refused to write {spec.repo_id} (HTTP "
                            f"{exc.response.status_code}); log in with a write token (`hf auth login`) or pass "
                            "token=...")
    if isinstance(exc, errors.HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else "?"
        return WeightsError(f"the Hub answered HTTP {status} while pushing {spec.repo_id} ({_first_line(exc)})")
    if isinstance(exc, httpx2.TransportError | errors.OfflineModeIsEnabled):
        return WeightsError(f"could not reach the Hub at {where} to push {spec.repo_id} ({_first_line(exc)}); "
                            "check the connection and unset HF_HUB_OFFLINE")
    return None
