"""Reading the face model with the expression reader: the rig's own landmarks, as FaceMesh gives them.

The rig (``rig``) has FaceMesh's 468 mesh vertices; the reader (``reader``) also reads the 10 iris
points. Irises here are derived points: each iris centre sits ``IRIS_FORWARD`` cm in front of its eye
contour's centroid, its four ring points ``IRIS_RADII`` cm away in FaceMesh's order (image right, up,
left, down), all in the canonical frame, so they turn with the head. The eyeLook blendshapes move
them by per-blendshape iris fields (``iris_basis``, (52, 10, 3) cm at weight 1), as a gaze would.

Everything is in torch and differentiable, for calibrating the rig to the reader
(``scripts/calibrate_rig.py``) and for measuring it (``benchmarks/rig_readback.py``).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from flowvq_cli.face import canonical
from flowvq_cli.face.reader import BlendshapeReader
from flowvq_cli.face.rig import ARKIT_NAMES, CALIBRATED_RIG, CANONICAL_TO_IMAGE, N_EXP
from flowvq_cli.modeling import load_safetensors

UNREAD = (
    "jawForward", "mouthClose", "mouthFunnel", "mouthFrownLeft", "mouthFrownRight", "mouthDimpleLeft",
    "mouthDimpleRight", "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "noseSneerLeft", "noseSneerRight",
    "tongueOut",
)  # fmt: skip
"""Blendshapes the reader does not see in the rig's landmarks: on the canonical face it reads them at most
0.02 however far (up to 3 times) their fields move, and it has no tongueOut. Their fields are not
calibrated to it, and a neutral face is not corrected along them (``scripts/calibrate_rig.py``).
``benchmarks/reader_reach.py``: free landmark moves of a few mm make it read mouthFrown, mouthDimple and
mouthFunnel (not cheekPuff, cheekSquint, noseSneer, jawForward), smooth corrections of the fields do not."""
NOT_REMOVED = tuple(n for n in ARKIT_NAMES if n.startswith(("eyeBlink", "eyeLook")))
"""Kept in a neutral face: a blink is rebuilt per identity, not subtracted, and where the eyes look is
not part of the face's shape (the rig's irises are derived points)."""
IRIS_FORWARD = 0.3  # cm in front of the eye contour's centroid (the cornea bulges past the lids)
IRIS_RADII = (0.55, 0.46)  # cm, horizontal and vertical: FaceMesh's iris ring on the example photo
_RING = np.array([[0, 0], [1, 0], [0, 1], [-1, 0], [0, -1]], np.float64)  # centre, right, up, left, down
GAZE_SHIFT = 0.45  # cm: an eyeLook blendshape at 1 moves that eye's iris this far (about 25 degrees)
_GAZE = {"In": (-1.0, 0.0), "Out": (1.0, 0.0), "Up": (0.0, 1.0), "Down": (0.0, -1.0)}  # left eye, x/y


def _eye_rows(side: str) -> np.ndarray:
    return np.concatenate([canonical.group(f"eye_upper_{side}"), canonical.group(f"eye_lower_{side}")])


def iris_points(shapes: torch.Tensor) -> torch.Tensor:
    """Iris points of canonical shapes (B, 468, 3) cm -> (B, 10, 3) cm, FaceMesh order 468..477.

    468..472 are the subject's right iris (centre, then the ring), 473..477 the left one.
    """
    ring = torch.as_tensor(_RING * np.array(IRIS_RADII), dtype=shapes.dtype)  # (5, 2)
    ring = torch.cat([ring, ring.new_full((5, 1), IRIS_FORWARD)], dim=1)  # (5, 3)
    out = [shapes[:, _eye_rows(side)].mean(1, keepdim=True) + ring for side in ("right", "left")]
    return torch.cat(out, dim=1)  # (B, 10, 3)


def default_iris_basis() -> np.ndarray:
    """(52, 10, 3) cm: the eyeLook blendshapes shift their eye's whole iris by ``GAZE_SHIFT``."""
    basis = np.zeros((N_EXP, 10, 3), np.float32)
    for direction, (dx, dy) in _GAZE.items():
        # the nose is at x = 0: "In" is -x on the subject's left eye (x > 0) and +x on the right one
        for side, rows, sign in (("Left", slice(5, 10), 1.0), ("Right", slice(0, 5), -1.0)):
            basis[ARKIT_NAMES.index(f"eyeLook{direction}{side}"), rows] = (GAZE_SHIFT * dx * sign, GAZE_SHIFT * dy, 0)
    return basis


def rotation(angles: torch.Tensor) -> torch.Tensor:
    """``rig.rotation_matrix`` in torch: (B, 3) pitch, yaw, roll -> (B, 3, 3)."""
    p, y, r = angles.unbind(-1)
    cp, sp, cy, sy, cr, sr = p.cos(), p.sin(), y.cos(), y.sin(), r.cos(), r.sin()
    rows = [
        torch.stack([cr * cy, cr * sy * sp - sr * cp, cr * sy * cp + sr * sp], -1),
        torch.stack([sr * cy, sr * sy * sp + cr * cp, sr * sy * cp - cr * sp], -1),
        torch.stack([-sy, cy * sp, cy * cp], -1),
    ]
    return torch.stack(rows, -2)


def rig_landmarks(
    identity: torch.Tensor, basis: torch.Tensor, iris_basis: torch.Tensor, exp: torch.Tensor, angles: torch.Tensor,
    iris_offset: torch.Tensor | None = None,
) -> torch.Tensor:
    """The rig's 478 FaceMesh points, orthographically projected (image axes, cm): (B, 478, 2).

    Args:
        identity: (468, 3) or (B, 468, 3) neutral mesh, canonical cm.
        basis: (52, 468, 3) deformation fields; iris_basis: (52, 10, 3) iris fields.
        exp: (B, 52) blendshape weights; angles: (B, 3) pitch, yaw, roll in radians.
        iris_offset: (10, 3) cm added to the derived iris points (a calibrated rig's), or None.
    """
    shapes = identity + torch.einsum("bk,kvc->bvc", exp, basis)  # (B, 468, 3)
    iris = iris_points(shapes) + torch.einsum("bk,kvc->bvc", exp, iris_basis)  # (B, 10, 3)
    if iris_offset is not None:
        iris = iris + iris_offset
    points = torch.cat([shapes, iris], dim=1)  # (B, 478, 3)
    image = torch.as_tensor(CANONICAL_TO_IMAGE, dtype=points.dtype) @ rotation(angles)  # (B, 3, 3)
    return torch.einsum("bij,bvj->bvi", image, points)[..., :2]


def read_rig(
    reader: BlendshapeReader, identity: torch.Tensor, basis: torch.Tensor, iris_basis: torch.Tensor,
    exp: torch.Tensor, angles: torch.Tensor | None = None, iris_offset: torch.Tensor | None = None,
) -> torch.Tensor:
    """What the reader reads from the rig at ``exp`` (B, 52) and ``angles`` (B, 3; frontal if None): (B, 52)."""
    if angles is None:
        angles = exp.new_zeros(len(exp), 3)
    return reader.read(rig_landmarks(identity, basis, iris_basis, exp, angles, iris_offset))


def neutralize(
    reader: BlendshapeReader, shape: torch.Tensor, basis: torch.Tensor, iris_basis: torch.Tensor,
    iris_offset: torch.Tensor | None = None, iters: int = 8, keep: tuple[str, ...] = NOT_REMOVED,
    ridge: float = 0.01, step: float = 0.02,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Remove the expression a face shape shows: (468, 3) cm -> (neutral (468, 3), removed weights (52,)).

    Finds ``a`` in [0, 1]^52 minimising the reader's reading of ``shape - basis . a`` (frontal) plus a
    ridge, so that the neutral face reads as close to 0 as the fields allow; blendshapes in ``keep`` are
    not removed (:data:`NOT_REMOVED`), nor those in :data:`UNREAD` (their fields are not calibrated), but
    every reading counts: removing too much of a smile reads as dimples and a mouth pulled to one side.
    Levenberg-Marquardt: each iteration reads the candidate face and its ``step`` perturbations along
    every free field in one batch (finite differences), solves the bounded, damped linear least squares,
    and keeps the step only if the true objective falls.
    """
    from flowvq_cli.face.fit import FitConfig, solve_box_qp

    free = [k for k, n in enumerate(ARKIT_NAMES) if n not in keep and n not in UNREAD]
    read_idx = [k for k, n in enumerate(ARKIT_NAMES) if n != "tongueOut"]  # the reader has no tongueOut
    probes = np.vstack([np.zeros(N_EXP), step * np.eye(N_EXP)[free]])  # (1 + F, 52)
    zero = shape.new_zeros(len(probes), N_EXP)

    def read_at(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        weights = torch.as_tensor(a + probes, dtype=shape.dtype)
        shapes = shape - torch.einsum("bk,kvc->bvc", weights, basis)  # (1 + F, 468, 3)
        with torch.no_grad():
            read = read_rig(reader, shapes, basis, iris_basis, zero, iris_offset=iris_offset)[:, read_idx]
        return read[0].double().numpy(), ((read[1:] - read[0]) / step).double().numpy()  # (R,), (F, R)

    def objective(a: np.ndarray, r: np.ndarray) -> float:
        return float(r @ r + ridge * a @ a)

    a = np.zeros(N_EXP)
    r0, jac = read_at(a)
    best, damping = objective(a, r0), 1.0
    for _ in range(iters):
        gram = jac @ jac.T + (ridge + damping) * np.eye(len(free))
        rhs = jac @ (jac.T @ a[free] - r0) + damping * a[free]
        trial = a.copy()
        trial[free] = solve_box_qp(gram, rhs[None], float(np.linalg.eigvalsh(gram)[-1]), FitConfig())[0]
        r_trial, jac_trial = read_at(trial)
        value = objective(trial, r_trial)
        if value < best:
            a, r0, jac, best, damping = trial, r_trial, jac_trial, value, damping / 3.0
        else:
            damping *= 4.0
    removed = torch.as_tensor(a, dtype=shape.dtype)
    return shape - torch.einsum("k,kvc->vc", removed, basis), removed


@lru_cache(maxsize=2)
def load_iris_model(path: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A calibrated rig's iris fields (52, 10, 3) and neutral iris offset (10, 3), read once per file
    (``rig.CALIBRATED_RIG`` by default; treat them as read-only)."""
    tensors = load_safetensors(path or CALIBRATED_RIG, what="the calibrated rig")
    return tensors["iris_basis"].float(), tensors["iris_offset"].float()
