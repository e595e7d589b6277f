"""Extract MediaPipe's canonical face (468 vertices) into ``flowvq_cli/assets/canonical_face.npz``.

The canonical face lives in MediaPipe's *geometry pipeline metadata* (Apache-2.0), which the npm
package ``@mediapipe/face_mesh`` ships inside an Emscripten file package. Get the package with npm
(no network access is needed afterwards)::

    mkdir -p /tmp/npm && cd /tmp/npm
    npm pack @mediapipe/face_mesh@0.4.1657299874 && tar xzf mediapipe-face_mesh-0.4.1657299874.tgz
    python scripts/extract_canonical_mesh.py /tmp/npm/package

``face_mesh_solution_packed_assets.data`` is the concatenation of the packed files;
``face_mesh_solution_packed_assets_loader.js`` lists each file's ``start``/``end`` byte offsets. The
entry ``geometry_pipeline_metadata_landmarks.binarypb`` is a ``GeometryPipelineMetadata`` protobuf,
parsed with the proto module of the installed ``mediapipe`` wheel. Its canonical mesh holds 5 floats
per vertex (x, y, z, u, v; centimetres, y up, z towards the viewer) and a triangle index buffer; its
Procrustes landmark basis gives one weight per landmark used for rigid alignment.

Named contours (lips, eyes, eyebrows, face oval, nose) are taken from the FaceMesh connection sets
of ``mediapipe.python.solutions.face_mesh_connections`` and stored as ordered index arrays, so that
the runtime never imports mediapipe for them.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np

NPM_PACKAGE = "@mediapipe/face_mesh"
NPM_VERSION = "0.4.1657299874"
DATA_FILE = "face_mesh_solution_packed_assets.data"
LOADER_FILE = "face_mesh_solution_packed_assets_loader.js"
ENTRY_NAME = "geometry_pipeline_metadata_landmarks.binarypb"
N_VERTICES = 468
N_TRIANGLES = 898
FLOATS_PER_VERTEX = 5  # x, y, z, u, v
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "flowvq_cli" / "assets"

Edges = frozenset[tuple[int, int]]


def read_entry(package_dir: Path, entry_name: str = ENTRY_NAME) -> bytes:
    """Return the bytes of one file packed in the Emscripten ``.data`` file of ``package_dir``."""
    loader = (package_dir / LOADER_FILE).read_text()
    match = re.search(r"loadPackage\((\{.*?\})\);", loader, flags=re.S)
    if match is None:
        raise SystemExit(f"no loadPackage({{...}}) metadata in {package_dir / LOADER_FILE}")
    files = json.loads(match.group(1))["files"]
    hits = [f for f in files if f["filename"].endswith("/" + entry_name)]
    if len(hits) != 1:
        raise SystemExit(f"expected one entry named {entry_name} in {LOADER_FILE}, found {len(hits)}")
    blob = (package_dir / DATA_FILE).read_bytes()
    return blob[hits[0]["start"] : hits[0]["end"]]


def parse_metadata(raw: bytes) -> dict[str, np.ndarray]:
    """Parse ``GeometryPipelineMetadata`` bytes into vertices (468, 3), uv (468, 2), triangles (898, 3)
    and the Procrustes basis (index (K,), weight (K,))."""
    from mediapipe.modules.face_geometry.protos import geometry_pipeline_metadata_pb2

    meta = geometry_pipeline_metadata_pb2.GeometryPipelineMetadata()
    meta.ParseFromString(raw)
    buf = np.asarray(meta.canonical_mesh.vertex_buffer, dtype=np.float32).reshape(-1, FLOATS_PER_VERTEX)
    tri = np.asarray(meta.canonical_mesh.index_buffer, dtype=np.int32).reshape(-1, 3)
    if buf.shape[0] != N_VERTICES or tri.shape[0] != N_TRIANGLES:
        raise SystemExit(f"unexpected mesh: {buf.shape[0]} vertices, {tri.shape[0]} triangles")
    basis = meta.procrustes_landmark_basis
    return {
        "vertices": buf[:, :3].copy(),
        "uv": buf[:, 3:].copy(),
        "triangles": tri,
        "procrustes_index": np.asarray([b.landmark_id for b in basis], dtype=np.int32),
        "procrustes_weight": np.asarray([b.weight for b in basis], dtype=np.float32),
    }


def chains(edges: Edges) -> list[list[int]]:
    """Split an edge set into connected chains (open paths or closed loops), each as an ordered vertex list.

    A closed loop is returned without repeating its first vertex.
    """
    adj: dict[int, list[int]] = {}
    for a, b in edges:
        adj.setdefault(a, []).append(b)
        adj.setdefault(b, []).append(a)
    seen: set[int] = set()
    out = []
    for start in sorted(adj, key=lambda v: (len(adj[v]) != 1, v)):  # path ends first
        if start in seen:
            continue
        path, prev, cur = [start], -1, start
        seen.add(start)
        while True:
            nxt = [n for n in adj[cur] if n != prev and n not in seen]
            if not nxt:
                break
            prev, cur = cur, nxt[0]
            path.append(cur)
            seen.add(cur)
        out.append(path)
    return out


def split_loop(loop: list[int], x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split a closed contour at its two x-extreme vertices (the corners) into (upper, lower) paths.

    Both paths include the corners and run from the subject's right corner (min x) to the left (max x).
    """
    i0 = loop.index(min(loop, key=lambda v: x[v]))
    ring = loop[i0:] + loop[:i0]
    i1 = ring.index(max(loop, key=lambda v: x[v]))
    first, second = ring[: i1 + 1], [*ring[i1:], ring[0]][::-1]
    if y[first].mean() > y[second].mean():
        return np.asarray(first, np.int32), np.asarray(second, np.int32)
    return np.asarray(second, np.int32), np.asarray(first, np.int32)


def contour_groups(vertices: np.ndarray) -> dict[str, np.ndarray]:
    """Ordered contour index arrays from MediaPipe's FaceMesh connection sets (group_<name> keys)."""
    from mediapipe.python.solutions import face_mesh_connections as fmc

    x, y = vertices[:, 0], vertices[:, 1]
    groups: dict[str, np.ndarray] = {}
    outer, inner = sorted(chains(fmc.FACEMESH_LIPS), key=lambda c: -np.ptp(x[c]))
    for name, loop in (("outer", outer), ("inner", inner)):
        groups[f"lips_upper_{name}"], groups[f"lips_lower_{name}"] = split_loop(loop, x, y)
    for side, eye, brow in (
        ("left", fmc.FACEMESH_LEFT_EYE, fmc.FACEMESH_LEFT_EYEBROW),
        ("right", fmc.FACEMESH_RIGHT_EYE, fmc.FACEMESH_RIGHT_EYEBROW),
    ):
        (loop,) = chains(eye)
        groups[f"eye_upper_{side}"], groups[f"eye_lower_{side}"] = split_loop(loop, x, y)
        lower, upper = sorted(chains(brow), key=lambda c: y[c].mean())
        groups[f"brow_upper_{side}"] = np.asarray(sorted(upper, key=lambda v: x[v]), np.int32)
        groups[f"brow_lower_{side}"] = np.asarray(sorted(lower, key=lambda v: x[v]), np.int32)
    (oval,) = chains(fmc.FACEMESH_FACE_OVAL)
    groups["face_oval"] = np.asarray(oval, np.int32)
    groups["nose"] = np.asarray(sorted({v for e in fmc.FACEMESH_NOSE for v in e}), np.int32)
    return {f"group_{k}": v for k, v in groups.items()}


NOTICE = """\
canonical_face.npz — MediaPipe canonical face model

The vertices, texture coordinates, triangles and Procrustes landmark weights in canonical_face.npz
were extracted by scripts/extract_canonical_mesh.py from the entry
  geometry_pipeline_metadata_landmarks.binarypb
of face_mesh_solution_packed_assets.data in the npm package {package}@{version}.
The named contour index lists (group_* arrays) were derived from the FaceMesh connection sets of
mediapipe.python.solutions.face_mesh_connections (mediapipe {mp_version}).

Copyright 2020-2022 The MediaPipe Authors (Google LLC).
Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file except in
compliance with the License. You may obtain a copy of the License at
    http://www.apache.org/licenses/LICENSE-2.0
Unless required by applicable law or agreed to in writing, software distributed under the License is
distributed on an "AS IS" BASIS, WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or
implied. See the License for the specific language governing permissions and limitations under the
License.
"""


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point: extract the npz and write the NOTICE next to it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("package_dir", type=Path, help=f"unpacked {NPM_PACKAGE}@{NPM_VERSION} (npm pack)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="assets folder (default: %(default)s)")
    args = parser.parse_args(argv)

    import mediapipe

    version = json.loads((args.package_dir / "package.json").read_text()).get("version")
    if version != NPM_VERSION:
        print(f"warning: package version {version}, this script was checked against {NPM_VERSION}")
    arrays = parse_metadata(read_entry(args.package_dir))
    arrays.update(contour_groups(arrays["vertices"]))
    args.out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out / "canonical_face.npz", **arrays)
    notice = NOTICE.format(package=NPM_PACKAGE, version=version, mp_version=mediapipe.__version__)
    (args.out / "NOTICE").write_text(notice)
    print(args.out / "canonical_face.npz")


if __name__ == "__main__":
    main()
