"""MediaPipe's canonical face (468 FaceMesh vertices) and the named vertex groups FlowVQ authors on.

The geometry comes from ``assets/canonical_face.npz`` (written once by
``scripts/extract_canonical_mesh.py``; Apache-2.0, see ``assets/NOTICE``). Canonical frame:
centimetres, **x towards the subject's left** (image right in a frontal photo), **y up**, **z towards
the viewer** (the nose tip has the largest z). The mesh is exactly left/right symmetric.

Groups (``group(name)``, ``group_names()``), all index arrays into the 468 vertices:

- contours read from MediaPipe's FaceMesh connection sets (stored in the npz): ``lips_{upper,lower}_
  {outer,inner}`` (from the subject's right corner to the left one), ``eye_{upper,lower}_{left,right}``
  (corner to corner, increasing x), ``brow_{upper,lower}_{left,right}`` (increasing x),
  ``face_oval`` (closed loop), ``nose``;
- derived here from the geometry: ``mouth_corner_{left,right}`` (outer and inner corner),
  ``lid_{upper,lower}_{left,right}`` (eye contours without the corners), ``eye_corner_{left,right}``,
  ``brow_{inner,outer}_{left,right}``, ``jaw`` (face oval below the mouth corners), ``chin``,
  ``cheek_{left,right}``, ``malar_{left,right}`` (cheek under the eye), ``nose_ala_{left,right}``,
  ``forehead``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from types import MappingProxyType

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import dijkstra

from flowvq_cli.errors import WeightsError

N_VERTICES = 468
ASSET_NAME = "canonical_face.npz"
_GROUP_PREFIX = "group_"

# Derived-group geometry, canonical centimetres.
_CHIN_RADIUS = 1.6  # around the lowest midline vertex
_CHEEK_CENTRE = (3.9, -2.6)  # (|x|, y): mid-cheek, lateral to the nose wing
_CHEEK_RADIUS = 1.6
_MALAR_CENTRE = (3.7, 0.6)  # (|x|, y): below the outer half of the eye
_MALAR_RADIUS = 1.1
_ALA_CENTRE = (1.45, -1.6)  # (|x|, y): the nose wing
_ALA_RADIUS = 0.6
_FOREHEAD_MIN_Y = 5.6  # above the brows
_BROW_INNER_COUNT = 2  # brow vertices per row counted as "inner" (nearest the midline)
_BROW_OUTER_COUNT = 2


@dataclass(frozen=True)
class CanonicalFace:
    """The canonical face mesh and its vertex groups.

    Attributes:
        vertices: (468, 3) float32, centimetres, x subject's left, y up, z towards the viewer.
        uv: (468, 2) float32 texture coordinates.
        triangles: (898, 3) int32 vertex indices.
        procrustes_index: (K,) int32 landmarks MediaPipe uses for rigid alignment.
        procrustes_weight: (K,) float32 their weights.
        groups: name -> (n,) int32 vertex indices.
    """

    vertices: np.ndarray
    uv: np.ndarray
    triangles: np.ndarray
    procrustes_index: np.ndarray
    procrustes_weight: np.ndarray
    groups: Mapping[str, np.ndarray]


@lru_cache(maxsize=1)
def load_canonical() -> CanonicalFace:
    """Load the packaged canonical face once (cached); raises ``WeightsError`` if the asset is broken."""
    try:
        with resources.files("flowvq_cli").joinpath("assets", ASSET_NAME).open("rb") as fh:
            data = dict(np.load(fh))
    except (FileNotFoundError, OSError, ValueError) as exc:
        raise WeightsError(
            f"cannot read flowvq_cli/assets/{ASSET_NAME} ({exc}); reinstall flowvq-cli or regenerate it "
            "with scripts/extract_canonical_mesh.py"
        ) from exc
    vertices = data["vertices"].astype(np.float32)
    if vertices.shape != (N_VERTICES, 3):
        raise WeightsError(f"{ASSET_NAME} holds {vertices.shape} vertices, expected ({N_VERTICES}, 3)")
    groups = {
        k.removeprefix(_GROUP_PREFIX): v.astype(np.int32)
        for k, v in data.items()
        if k.startswith(_GROUP_PREFIX)
    }
    groups.update(_derived_groups(vertices, groups))
    for arr in groups.values():
        arr.setflags(write=False)
    return CanonicalFace(
        vertices=vertices,
        uv=data["uv"].astype(np.float32),
        triangles=data["triangles"].astype(np.int32),
        procrustes_index=data["procrustes_index"].astype(np.int32),
        procrustes_weight=data["procrustes_weight"].astype(np.float32),
        groups=MappingProxyType(groups),
    )


def _near(vertices: np.ndarray, centre: tuple[float, float], radius: float, sign: float) -> np.ndarray:
    """Front-facing vertices within ``radius`` (in the x-y plane) of ``(sign*|x|, y)``."""
    d = np.hypot(vertices[:, 0] - sign * centre[0], vertices[:, 1] - centre[1])
    return np.flatnonzero((d < radius) & (vertices[:, 2] > 0)).astype(np.int32)


def _derived_groups(v: np.ndarray, g: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Groups computed from the geometry and the stored contours (see the module docstring)."""
    out: dict[str, np.ndarray] = {}
    corners = [g["lips_upper_outer"][[0, -1]], g["lips_upper_inner"][[0, -1]]]
    for side, sign, pick in (("left", 1.0, -1), ("right", -1.0, 0)):
        out[f"mouth_corner_{side}"] = np.array([c[pick] for c in corners], np.int32)
        out[f"lid_upper_{side}"] = g[f"eye_upper_{side}"][1:-1]
        out[f"lid_lower_{side}"] = g[f"eye_lower_{side}"][1:-1]
        out[f"eye_corner_{side}"] = g[f"eye_upper_{side}"][[0, -1]]
        rows = [g[f"brow_upper_{side}"], g[f"brow_lower_{side}"]]
        by_dist = [r[np.argsort(np.abs(v[r, 0]))] for r in rows]  # midline first
        out[f"brow_inner_{side}"] = np.concatenate([r[:_BROW_INNER_COUNT] for r in by_dist])
        out[f"brow_outer_{side}"] = np.concatenate([r[-_BROW_OUTER_COUNT:] for r in by_dist])
        out[f"cheek_{side}"] = _near(v, _CHEEK_CENTRE, _CHEEK_RADIUS, sign)
        out[f"malar_{side}"] = _near(v, _MALAR_CENTRE, _MALAR_RADIUS, sign)
        out[f"nose_ala_{side}"] = _near(v, _ALA_CENTRE, _ALA_RADIUS, sign)
    oval = g["face_oval"]
    out["jaw"] = oval[v[oval, 1] < v[out["mouth_corner_left"][0], 1]]
    chin_tip = oval[np.argmin(v[oval, 1])]
    out["chin"] = np.flatnonzero(np.linalg.norm(v - v[chin_tip], axis=1) < _CHIN_RADIUS).astype(np.int32)
    out["forehead"] = np.flatnonzero(v[:, 1] > _FOREHEAD_MIN_Y).astype(np.int32)
    return out


def group_names() -> tuple[str, ...]:
    """All group names, sorted."""
    return tuple(sorted(load_canonical().groups))


def group(name: str) -> np.ndarray:
    """Vertex indices (n,) int32 of a named group; raises ``KeyError`` listing the valid names."""
    groups = load_canonical().groups
    if name not in groups:
        raise KeyError(f"unknown vertex group {name!r}; known: {', '.join(sorted(groups))}")
    return groups[name]


@lru_cache(maxsize=1)
def mirror_index() -> np.ndarray:
    """(468,) int: ``mirror_index()[i]`` is the vertex at vertex ``i``'s mirror image (x -> -x).

    An involution (``m[m] == arange``); midline vertices map to themselves.
    """
    v = load_canonical().vertices.astype(np.float64)
    mirrored = v * np.array([-1.0, 1.0, 1.0])
    d2 = ((mirrored[:, None, :] - v[None, :, :]) ** 2).sum(-1)  # (468, 468)
    out = np.argmin(d2, axis=1)
    out.setflags(write=False)
    return out


def mirror_field(field: np.ndarray) -> np.ndarray:
    """Mirror per-vertex vectors across the midline: (..., 468, 3) -> (..., 468, 3).

    ``out[..., i] = diag(-1, 1, 1) @ field[..., mirror_index()[i]]``.
    """
    return field[..., mirror_index(), :] * np.array([-1.0, 1.0, 1.0], dtype=field.dtype)


def _cut_edges(face: CanonicalFace) -> set[tuple[int, int]]:
    """Edges spanning the mouth and eye openings (upper to lower contour, corners excluded).

    The canonical mesh triangulates the openings; geodesics must not cross them.
    """
    g = face.groups
    pairs = [("lips_upper_inner", "lips_lower_inner")]
    pairs += [(f"eye_upper_{s}", f"eye_lower_{s}") for s in ("left", "right")]
    cut = set()
    for up, low in pairs:
        a, b = set(g[up][1:-1].tolist()), set(g[low][1:-1].tolist())
        cut |= {(i, j) for i in a for j in b} | {(j, i) for i in a for j in b}
    return cut


@lru_cache(maxsize=1)
def geodesic_distances() -> np.ndarray:
    """(468, 468) float64 shortest-path distances (cm) along mesh edges, not crossing mouth or eyes."""
    face = load_canonical()
    tri = face.triangles
    edges = np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [2, 0]]])
    edges = np.unique(np.sort(edges, axis=1), axis=0)
    cut = _cut_edges(face)
    keep = np.array([(int(i), int(j)) not in cut for i, j in edges])
    edges = edges[keep]
    v = face.vertices.astype(np.float64)
    length = np.linalg.norm(v[edges[:, 0]] - v[edges[:, 1]], axis=1)
    graph = coo_matrix((length, (edges[:, 0], edges[:, 1])), shape=(N_VERTICES, N_VERTICES))
    dist = dijkstra(graph.tocsr(), directed=False)
    dist.setflags(write=False)
    return dist


def lip_gap(points: np.ndarray) -> np.ndarray:
    """How far the lips are apart: (..., 468+, 2 or 3) FaceMesh-topology points -> (...,).

    The largest distance between the inner upper and lower lip contours (paired vertex by vertex,
    corners excluded), in mouth widths (the distance between the outer corners 61 and 291). Lips that
    meet read about 0; 0.05 is the threshold the lip-closure measures use."""
    groups = load_canonical().groups
    upper, lower = groups["lips_upper_inner"][1:-1], groups["lips_lower_inner"][1:-1]
    pts = np.asarray(points, dtype=np.float64)
    gap = np.linalg.norm(pts[..., upper, :] - pts[..., lower, :], axis=-1).max(axis=-1)
    width = np.linalg.norm(pts[..., 291, :] - pts[..., 61, :], axis=-1)
    return gap / width
