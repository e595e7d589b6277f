"""Weights resolution: shipped default, local folders, and the Hub — against a loopback fake Hub only.

The fake Hub is an ``http.server`` on 127.0.0.1 speaking the endpoints huggingface_hub's
``snapshot_download``, ``create_repo`` and ``upload_folder`` call. huggingface_hub's default endpoint
is pointed at a closed loopback port for the whole module, so nothing here can reach the network.
"""

from __future__ import annotations

import base64
import hashlib
import json
import pickle
import re
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import torch
from safetensors.torch import save_file

from flowvq_cli import hub
from flowvq_cli.bundle import MANIFEST_NAME, read_bundle, write_bundle
from flowvq_cli.errors import WeightsError
from flowvq_cli.fsutil import sha256_file

hf_constants = pytest.importorskip("huggingface_hub.constants")

MAX_REQUESTS = 300  # the server refuses (HTTP 400, never retried) and stops after this many
SERVER_LIFETIME_S = 120.0  # and stops itself after this long, whatever the test does


# ---------------------------------------------------------------------------------------------- fake Hub


def git_blob_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class FakeHub:
    """In-memory model repositories: ``repo_id -> {"refs": {name: commit}, "commits": {commit: files}}``."""

    def __init__(self) -> None:
        self.repos: dict[str, dict[str, dict]] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.created: list[dict] = []
        self.write_token: str | None = None  # when set, a POST without this bearer token gets 401
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._watchdog = threading.Timer(SERVER_LIFETIME_S, self.stop)
        self._watchdog.daemon = True
        self._stopped = threading.Event()

    def start(self) -> FakeHub:
        self._thread.start()
        self._watchdog.start()
        return self

    def stop(self) -> None:
        if not self._stopped.is_set():
            self._stopped.set()
            self._watchdog.cancel()
            self.server.shutdown()
            self.server.server_close()

    def commit(self, repo_id: str, files: dict[str, bytes], ref: str = "main") -> str:
        """Store a snapshot as a new commit on ``ref``; return its 40-hex commit id."""
        repo = self.repos.setdefault(repo_id, {"refs": {}, "commits": {}})
        digest = hashlib.sha1(repo_id.encode() + ref.encode())
        for path in sorted(files):
            digest.update(path.encode() + b"\0" + files[path])
        sha = digest.hexdigest()
        repo["commits"][sha] = dict(files)
        repo["refs"][ref] = sha
        return sha

    def paths(self) -> list[str]:
        return [path for _, path, _ in self.requests]

    def _resolve(self, repo_id: str, rev: str) -> tuple[str, dict[str, bytes]] | None:
        repo = self.repos[repo_id]
        sha = repo["refs"].get(rev, rev)
        return (sha, repo["commits"][sha]) if sha in repo["commits"] else None

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        hub_ = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep pytest output clean
                pass

            def do_HEAD(self) -> None:
                self._dispatch(body=False)

            def do_GET(self) -> None:
                self._dispatch(body=True)

            def do_POST(self) -> None:
                self._dispatch(body=True)

            def _dispatch(self, body: bool) -> None:
                with hub_.lock:
                    hub_.requests.append((self.command, self.path, dict(self.headers)))
                    count = len(hub_.requests)
                if count > MAX_REQUESTS:
                    self._send(400, {"error": "fake hub request budget exhausted"}, body)
                    threading.Thread(target=hub_.stop, daemon=True).start()
                    return
                length = int(self.headers.get("Content-Length") or 0)
                payload = self.rfile.read(length) if length else b""
                path = urlsplit(self.path).path
                if self.command == "POST" and hub_.write_token is not None and \
                        self.headers.get("Authorization") != f"Bearer {hub_.write_token}":
                    return self._error(401, None, "Invalid credentials in Authorization header", body)
                with hub_.lock:
                    self._route(path, payload, body)

            def _route(self, path: str, payload: bytes, body: bool) -> None:
                if self.command == "POST" and path == "/api/repos/create":
                    return self._create(json.loads(payload))
                if self.command == "POST" and path == "/api/validate-yaml":  # model card metadata check
                    return self._send(200, {"errors": [], "warnings": []})
                match = re.fullmatch(r"/api/models/([^/]+/[^/]+)/(revision|tree|preupload|commit)/([^/]+)(/.*)?",
                                     path)
                if match:
                    repo_id, action, rev = match.group(1), match.group(2), unquote(match.group(3))
                    if repo_id not in hub_.repos:
                        return self._error(404, "RepoNotFound", f"Repository {repo_id} not found", body)
                    if action == "revision":
                        return self._revision(repo_id, rev)
                    if action == "tree":
                        return self._tree(repo_id, rev)
                    if action == "preupload":
                        return self._preupload(json.loads(payload))
                    return self._commit(repo_id, rev, payload)
                match = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
                if match and self.command in ("GET", "HEAD"):
                    return self._file(match.group(1), unquote(match.group(2)), unquote(match.group(3)), body)
                return self._error(404, None, f"no route for {self.command} {path}", body)

            def _revision(self, repo_id: str, rev: str) -> None:
                found = hub_._resolve(repo_id, rev)
                if found is None:
                    return self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}", True)
                sha, files = found
                self._send(200, {"id": repo_id, "modelId": repo_id, "sha": sha, "private": False,
                                 "siblings": [{"rfilename": name} for name in sorted(files)]})

            def _tree(self, repo_id: str, rev: str) -> None:
                found = hub_._resolve(repo_id, rev)
                if found is None:
                    return self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}", True)
                _, files = found
                folders = sorted({name.rsplit("/", 1)[0] for name in files if "/" in name})
                entries = [{"type": "directory", "path": d, "oid": "0" * 40, "size": 0} for d in folders]
                entries += [{"type": "file", "path": name, "oid": git_blob_oid(data), "size": len(data)}
                            for name, data in sorted(files.items())]
                self._send(200, entries)

            def _file(self, repo_id: str, rev: str, name: str, body: bool) -> None:
                if repo_id not in hub_.repos:
                    return self._error(404, "RepoNotFound", f"Repository {repo_id} not found", body)
                found = hub_._resolve(repo_id, rev)
                if found is None:
                    return self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}", body)
                sha, files = found
                if name not in files:
                    return self._error(404, "EntryNotFound", f"{name} does not exist", body, {"X-Repo-Commit": sha})
                data = files[name]
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("ETag", f'"{git_blob_oid(data)}"')
                self.send_header("X-Repo-Commit", sha)
                self.end_headers()
                if body:
                    self.wfile.write(data)

            def _create(self, request: dict) -> None:
                repo_id = f"{request['organization']}/{request['name']}"
                hub_.created.append(request)
                if repo_id in hub_.repos:  # the real Hub's 409 also carries the url
                    return self._send(409, {"error": "You already created this model repo",
                                            "url": f"{hub_.url}/{repo_id}"})
                hub_.repos[repo_id] = {"refs": {}, "commits": {}}
                hub_.commit(repo_id, {".gitattributes": b"*.safetensors filter=lfs\n"})
                self._send(200, {"url": f"{hub_.url}/{repo_id}", "name": repo_id})

            def _preupload(self, request: dict) -> None:
                self._send(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                                            "oid": None} for f in request["files"]]})

            def _commit(self, repo_id: str, rev: str, payload: bytes) -> None:
                found = hub_._resolve(repo_id, rev)
                if found is None:
                    return self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}", True)
                files = dict(found[1])
                for line in payload.decode().splitlines():
                    item = json.loads(line)
                    if item["key"] == "file":
                        files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                    elif item["key"] == "deletedFile":
                        files.pop(item["value"]["path"], None)
                    elif item["key"] != "header":
                        return self._error(400, None, f"fake hub does not take {item['key']}", True)
                sha = hub_.commit(repo_id, files, ref=rev)
                self._send(200, {"commitUrl": f"{hub_.url}/{repo_id}/commit/{sha}", "commitOid": sha,
                                 "pullRequestUrl": None})

            def _error(self, status: int, code: str | None, message: str, body: bool,
                       headers: dict[str, str] | None = None) -> None:
                extra = dict(headers or {})
                if code:
                    extra["X-Error-Code"] = code
                extra["X-Error-Message"] = message
                self._send(status, {"error": message}, body, extra)

            def _send(self, status: int, obj: object, body: bool = True,
                      headers: dict[str, str] | None = None) -> None:
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                if body:
                    self.wfile.write(data)

        return Handler


# ---------------------------------------------------------------------------------------------- fixtures


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(autouse=True)
def no_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No token, no offline flag from the environment, and a default endpoint that goes nowhere."""
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    constants = hf_constants
    dead = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setattr(constants, "ENDPOINT", dead)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", dead + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "no-stored-tokens"))


@pytest.fixture()
def fake_hub() -> Iterator[FakeHub]:
    server = FakeHub().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture()
def bundle_dir(tmp_path: Path) -> Path:
    """A tiny real bundle with two components."""
    sources = {}
    for i, name in enumerate(("expflow", "vqig")):
        folder = tmp_path / "src" / name
        folder.mkdir(parents=True)
        torch.manual_seed(i)
        layer = torch.nn.Linear(5, 3)
        save_file({k: v.contiguous() for k, v in layer.state_dict().items()}, str(folder / "model.safetensors"))
        (folder / "config.json").write_text(json.dumps({"dim": 5, "out": 3}))
        sources[name] = folder
    out = tmp_path / "bundle"
    write_bundle(out, sources, name="flowvq-tiny")
    (out / "README.md").write_text("# flowvq-tiny\n")
    return out


def bundle_files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture()
def published(fake_hub: FakeHub, bundle_dir: Path, tmp_path: Path) -> str:
    """``flowvq/tiny`` on the fake Hub: the bundle plus a pickle trap that must never be fetched."""
    files = bundle_files(bundle_dir)
    files["pytorch_model.bin"] = pickle.dumps({"trap": (open, (str(tmp_path / "UNPICKLED"), "w"))})
    return fake_hub.commit("flowvq/tiny", files)


# ---------------------------------------------------------------------------------------------- Hub


def test_download_verifies_and_fetches_only_bundle_files(
    fake_hub: FakeHub, published: str, bundle_dir: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    path = hub.resolve_weights("flowvq/tiny", cache_dir=cache, endpoint=fake_hub.url)
    assert path.name == published and path.parent.name == "snapshots"
    bundle = read_bundle(path)
    assert bundle.component_names == ("expflow", "vqig")
    assert sha256_file(path / "vqig" / "model.safetensors") == sha256_file(bundle_dir / "vqig" / "model.safetensors")
    assert (path / "README.md").is_file() and not (path / "pytorch_model.bin").exists()
    assert not (tmp_path / "UNPICKLED").exists()
    paths = fake_hub.paths()
    assert "/api/models/flowvq/tiny/revision/main" in paths
    assert any(p.startswith("/api/models/flowvq/tiny/tree/") for p in paths)
    assert not any("pytorch_model.bin" in p for p in paths)
    # A second resolve is served from the cache's files (only metadata calls reach the server).
    before = len(paths)
    assert hub.resolve_weights("flowvq/tiny", cache_dir=cache, endpoint=fake_hub.url) == path
    assert not any(m == "GET" and "/resolve/" in p for m, p, _ in fake_hub.requests[before:])


def test_revision_pins_a_commit(fake_hub: FakeHub, published: str, bundle_dir: Path, tmp_path: Path) -> None:
    files = bundle_files(bundle_dir)
    files["expflow/config.json"] = b'{"dim": 50, "out": 3}'  # differs from the manifest: a broken v2
    fake_hub.commit("flowvq/tiny", files, ref="v2")
    path = hub.resolve_weights(f"flowvq/tiny@{published}", cache_dir=tmp_path / "c", endpoint=fake_hub.url)
    assert path.name == published
    assert not any("/revision/" in p for p in fake_hub.paths())  # a commit id needs no lookup
    with pytest.raises(WeightsError, match=r"expflow/config\.json has \d+ bytes.*flowvq/tiny@v2 --force"):
        hub.resolve_weights("flowvq/tiny@v2", cache_dir=tmp_path / "c", endpoint=fake_hub.url)


def test_remote_file_not_matching_manifest_is_refused(fake_hub: FakeHub, bundle_dir: Path, tmp_path: Path) -> None:
    files = bundle_files(bundle_dir)
    files["vqig/model.safetensors"] = files["vqig/model.safetensors"][:12]
    fake_hub.commit("flowvq/bad", files)
    with pytest.raises(WeightsError) as info:
        hub.resolve_weights("flowvq/bad", cache_dir=tmp_path / "c", endpoint=fake_hub.url)
    message = str(info.value)
    assert re.search(r"vqig/model\.safetensors is truncated \(12 of \d+ bytes\)", message)
    assert "`flowvq weights download flowvq/bad --force`" in message and "\n" not in message


def test_offline_with_empty_cache_fails_fast(
    fake_hub: FakeHub, published: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(WeightsError) as info:
        hub.resolve_weights("flowvq/tiny", cache_dir=tmp_path / "empty", endpoint=fake_hub.url)
    assert time.monotonic() - start < 2.0
    assert str(info.value) == (f"HF_HUB_OFFLINE=1 and flowvq/tiny is not in the cache at {tmp_path / 'empty'}; "
                               "unset it or pass a local folder")
    assert fake_hub.requests == []
    with pytest.raises(WeightsError, match="offline mode is on and flowvq/tiny@v1 is not in the cache"):
        hub.download("flowvq/tiny", "v1", tmp_path / "empty", offline=True, endpoint=fake_hub.url)


def test_offline_with_warm_cache_works(
    fake_hub: FakeHub, published: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    online = hub.download("flowvq/tiny", cache_dir=cache, endpoint=fake_hub.url)
    fake_hub.stop()  # the Hub is gone too
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    count = len(fake_hub.requests)
    assert hub.resolve_weights("flowvq/tiny", cache_dir=cache, endpoint=fake_hub.url) == online
    assert hub.resolve_weights(f"flowvq/tiny@{published}", cache_dir=cache) == online
    assert len(fake_hub.requests) == count
    target = online / "vqig" / "model.safetensors"
    data = bytearray(target.read_bytes())
    data[-1] ^= 0x01
    target.resolve().write_bytes(bytes(data))  # a cached blob damaged on disk is caught offline too
    with pytest.raises(WeightsError, match=r"vqig/model\.safetensors is corrupted .*flowvq/tiny --force`$"):
        hub.resolve_weights("flowvq/tiny", cache_dir=cache)
    (online / "expflow" / "config.json").unlink()
    with pytest.raises(WeightsError, match=r"HF_HUB_OFFLINE=1 and the cached copy of flowvq/tiny in .* is incomplete"):
        hub.resolve_weights("flowvq/tiny", cache_dir=cache)


def test_unknown_repo_and_revision(fake_hub: FakeHub, published: str, tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match=r"no Hub repository flowvq/nope at http://127\.0\.0\.1"):
        hub.resolve_weights("flowvq/nope", cache_dir=tmp_path / "c", endpoint=fake_hub.url)
    with pytest.raises(WeightsError, match="flowvq/tiny has no revision 'v9' on the Hub"):
        hub.resolve_weights("flowvq/tiny@v9", cache_dir=tmp_path / "c", endpoint=fake_hub.url)
    fake_hub.commit("flowvq/empty", {"README.md": b"hi"})
    with pytest.raises(WeightsError, match=r"holds no flowvq\.json: it is not a FlowVQ weights bundle"):
        hub.resolve_weights("flowvq/empty", cache_dir=tmp_path / "c", endpoint=fake_hub.url)


def test_unreachable_hub_is_one_line(tmp_path: Path) -> None:
    start = time.monotonic()
    with pytest.raises(WeightsError) as info:
        hub.resolve_weights("flowvq/tiny", cache_dir=tmp_path / "c", endpoint=f"http://127.0.0.1:{closed_port()}")
    assert time.monotonic() - start < 5.0
    message = str(info.value)
    assert message.startswith("could not reach the Hub at http://127.0.0.1:") and "\n" not in message
    assert "check the connection or pass a local folder" in message


def test_push_then_download_round_trip(fake_hub: FakeHub, bundle_dir: Path, tmp_path: Path) -> None:
    (bundle_dir / "notes.txt").write_text("not part of the bundle")
    result = hub.push(bundle_dir, "me/pushed", token="hf_test_token", private=True, endpoint=fake_hub.url)
    assert result.repo_id == "me/pushed" and result.commit_url.endswith(result.commit_oid)
    stored = fake_hub.repos["me/pushed"]["commits"][result.commit_oid]
    assert set(stored) == {".gitattributes", MANIFEST_NAME, "README.md", "expflow/config.json",
                           "expflow/model.safetensors", "vqig/config.json", "vqig/model.safetensors"}
    assert fake_hub.created[0]["visibility"] == "private"
    posts = [h for m, _, h in fake_hub.requests if m == "POST"]
    assert posts and all(h.get("authorization", h.get("Authorization")) == "Bearer hf_test_token" for h in posts)
    again = hub.push(bundle_dir, "me/pushed", token="hf_test_token", endpoint=fake_hub.url)  # repo exists: 409 ok
    assert again.repo_id == "me/pushed"
    path = hub.download("me/pushed", cache_dir=tmp_path / "c", endpoint=fake_hub.url)
    assert bundle_files(path) | {"notes.txt": b"not part of the bundle"} == bundle_files(bundle_dir)


def test_push_without_write_access_is_one_line(fake_hub: FakeHub, bundle_dir: Path) -> None:
    fake_hub.write_token = "hf_right"
    with pytest.raises(WeightsError, match=r"refused to write me/pushed \(HTTP 401\); log in with a write token"):
        hub.push(bundle_dir, "me/pushed", token="hf_wrong", endpoint=fake_hub.url)
    assert "me/pushed" not in fake_hub.repos


def test_push_refuses_a_broken_bundle(fake_hub: FakeHub, bundle_dir: Path) -> None:
    (bundle_dir / "vqig" / "model.safetensors").write_bytes(b"\0" * 8)
    with pytest.raises(WeightsError, match=r"vqig/model\.safetensors is truncated.*rebuild the bundle"):
        hub.push(bundle_dir, "me/broken", endpoint=fake_hub.url)
    assert fake_hub.requests == []


CARD = """---
license: apache-2.0
library_name: flowvq
pipeline_tag: image-to-video
tags:
- talking-face
---

# flowvq-tiny

![what it looks like](sheet.png) ![remote](https://example.com/x.png) ![outside](../secret.png)
<img src="./plots/blinks.png" width="200"> ![missing](gone.png)
"""


def test_push_keeps_the_model_card_with_its_metadata_and_images(
    fake_hub: FakeHub, bundle_dir: Path, tmp_path: Path
) -> None:
    (bundle_dir / "README.md").write_text(CARD, encoding="utf-8")
    (bundle_dir / "sheet.png").write_bytes(b"\x89PNG sheet")
    (bundle_dir / "plots").mkdir()
    (bundle_dir / "plots" / "blinks.png").write_bytes(b"\x89PNG blinks")
    (tmp_path / "secret.png").write_bytes(b"not the bundle's")
    assert hub.card_files(bundle_dir) == ["README.md", "sheet.png", "plots/blinks.png"]
    result = hub.push(bundle_dir, "me/carded", token="hf_test_token", endpoint=fake_hub.url)
    stored = fake_hub.repos["me/carded"]["commits"][result.commit_oid]
    assert stored["README.md"] == CARD.encode()  # byte for byte: the Hub reads its metadata from it
    assert stored["sheet.png"] == b"\x89PNG sheet" and stored["plots/blinks.png"] == b"\x89PNG blinks"
    assert not any("secret" in name or "gone" in name for name in stored)
    # Downloading fetches the bundle and its card (not the images), metadata intact.
    path = hub.download("me/carded", cache_dir=tmp_path / "c", endpoint=fake_hub.url)
    assert hub.card_metadata(path)["library_name"] == "flowvq"


def test_push_refuses_a_card_whose_metadata_is_not_yaml(fake_hub: FakeHub, bundle_dir: Path) -> None:
    (bundle_dir / "README.md").write_text("---\nlicense: [apache-2.0\n---\n# card\n", encoding="utf-8")
    with pytest.raises(WeightsError, match=r"README\.md: its metadata block is not valid YAML"):
        hub.push(bundle_dir, "me/badcard", endpoint=fake_hub.url)
    assert fake_hub.requests == []


def test_the_shipped_model_card_carries_hub_metadata() -> None:
    root = hub.default_bundle_dir()
    meta = hub.card_metadata(root)
    assert meta["license"] == "apache-2.0"  # the repository's LICENSE
    assert meta["library_name"] == "flowvq" and meta["pipeline_tag"] == "image-to-video"
    assert {"talking-face", "emotion"} <= set(meta["tags"])
    assert hub.card_files(root) == ["README.md", "contact_sheet.png"]


def test_list_cached(fake_hub: FakeHub, published: str, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert hub.list_cached(cache) == []
    path = hub.download("flowvq/tiny", cache_dir=cache, endpoint=fake_hub.url)
    (cached,) = hub.list_cached(cache)
    assert (cached.repo_id, cached.commit, cached.refs, cached.path) == ("flowvq/tiny", published, ("main",), path)
    assert cached.size_on_disk > 0


# ---------------------------------------------------------------------------------------------- local


def test_local_folder_and_manifest_path(bundle_dir: Path) -> None:
    assert hub.resolve_weights(bundle_dir) == bundle_dir
    assert hub.resolve_weights(str(bundle_dir / MANIFEST_NAME)) == bundle_dir


def test_neither_folder_nor_repo_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for spec in ("./missing", "a/b/c", "just-a-name", "/abs/path", "org/na me"):
        with pytest.raises(WeightsError, match="neither an existing folder nor a Hub repo id"):
            hub.resolve_weights(spec)
    with pytest.raises(WeightsError, match="neither an existing folder"):
        hub.resolve_weights(Path("org/name"))  # a Path is always local
    (tmp_path / "model.pt").write_bytes(b"\x80\x04")
    with pytest.raises(WeightsError, match=r"is a pickled checkpoint \(only safetensors are accepted\)"):
        hub.resolve_weights("model.pt")
    with pytest.raises(WeightsError, match="--weights is empty"):
        hub.resolve_weights("  ")


def test_local_folder_shadows_a_repo_id(tmp_path: Path, bundle_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "weights").mkdir()
    bundle_dir.rename(tmp_path / "weights" / "mini")
    monkeypatch.chdir(tmp_path)
    assert hub.resolve_weights("weights/mini") == Path("weights/mini")


def test_default_bundle(tmp_path: Path, bundle_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = (tmp_path / "pkg" / "weights" / "flowvq-mini", tmp_path / "repo" / "weights" / "flowvq-mini")
    monkeypatch.setattr(hub, "default_bundle_dirs", lambda: missing)
    with pytest.raises(WeightsError, match=r"no default weights found .*pass --weights ORG/NAME or a folder"):
        hub.resolve_weights(None)
    monkeypatch.setattr(hub, "default_bundle_dirs", lambda: (missing[0], bundle_dir))
    assert hub.resolve_weights(None) == bundle_dir
    (bundle_dir / "expflow" / "model.safetensors").write_bytes(b"")
    with pytest.raises(WeightsError, match="shipped bundle is damaged"):
        hub.resolve_weights()


def test_default_bundle_dirs_are_beside_the_package() -> None:
    package = Path(hub.__file__).resolve().parent
    assert hub.default_bundle_dirs() == (package / "weights" / "flowvq-mini",
                                         package.parent / "weights" / "flowvq-mini")


def test_verify_report(bundle_dir: Path) -> None:
    report = hub.verify(bundle_dir)
    assert report.ok and report.problem is None and report.components == ("expflow", "vqig")
    assert report.files == 5 and report.to_dict()["name"] == "flowvq-tiny"
    (bundle_dir / "vqig" / "config.json").write_text("{}")
    bad = hub.verify(bundle_dir)
    assert not bad.ok and "vqig/config.json" in (bad.problem or "")


@pytest.mark.parametrize(("spec", "expected"), [
    ("org/name", hub.RepoSpec("org/name")),
    ("org/name@v1.0", hub.RepoSpec("org/name", "v1.0")),
    ("org/name@refs/pr/3", hub.RepoSpec("org/name", "refs/pr/3")),
    ("org/../x", None), ("org/name@", None), ("org", None), ("a/b/c", None), ("org/na--me", None),
])
def test_parse_repo_spec(spec: str, expected: hub.RepoSpec | None) -> None:
    assert hub.parse_repo_spec(spec) == expected
