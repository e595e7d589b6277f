"""FlowVQ's linear face model: 52 ARKit blendshapes authored on MediaPipe's canonical face, plus pose.

Coefficient layout (version 1, ``N_COEFFS = 58`` floats per frame)::

    coeffs[..., 0:52]  exp   ARKit blendshape weights in [0, 1], ordered as ``ARKIT_NAMES``
    coeffs[..., 52:58] pose  pitch, yaw, roll (radians), tx, ty, log_scale

``ARKIT_NAMES`` follows Live Link Face's blendshape enumeration, the order of its network protocol and
of Unreal's ``EARFaceBlendShape`` (EyeBlinkLeft = 0, ..., JawForward, JawLeft, JawRight, JawOpen = 17,
..., MouthLeft = 21, MouthRight = 22, ..., TongueOut = 51). Some CSV exports list JawRight/JawLeft and
MouthRight/MouthLeft the other way round; CSV consumers match columns by name, so FlowVQ's CSV writes
this order with the names in its header. "Left"/"Right" always mean the **subject's** left/right.

Geometry. The identity is a frontal neutral mesh (468, 3) in the canonical frame (centimetres, x to
the subject's left, y up, z towards the viewer; see ``canonical``). Synthesis::

    shape = identity + sum_k exp[k] * basis[k]                       # (468, 3), canonical cm
    p     = s * F @ R(pitch, yaw, roll) @ shape + o                  # (468, 3), crop pixels
    R     = Rz(roll) @ Ry(yaw) @ Rx(pitch)                           # about canonical x, y, z
    F     = diag(1, -1, -1)                                          # canonical -> image axes
    s     = REFERENCE_SCALE * exp(log_scale)                         # pixels per cm
    o     = (CROP_SIZE/2 * (1 + tx), CROP_SIZE/2 * (1 + ty), 0)

Output points are *aligned crop pixel coordinates* of a ``CROP_SIZE``² crop: x right, y down, z as
MediaPipe gives it in pixels (negative = towards the camera); the projection to the image is
orthographic (drop z). Sign conventions (frontal view):

- yaw > 0: the head turns towards the subject's left (the nose moves to the image right);
- pitch > 0: the head nods down (the nose moves down in the image);
- roll > 0: the subject's left side moves up (the face turns counter-clockwise on screen);
- tx, ty: model origin (canonical (0, 0, 0), inside the head near the nose bridge) relative to the
  crop centre, in half-crop units (x right, y down);
- log_scale = 0: eye centres ``REFERENCE_EYE_DISTANCE`` crop widths apart (frontal).

A mirrored photo has the same pitch and opposite yaw, roll and tx; see ``mirror_coeffs``.

Expression basis. One deformation field (468, 3) per blendshape, in canonical cm at weight 1,
authored from vertex groups (``canonical.group``) with smooth geodesic falloff (distances along the
mesh that do not cross the mouth or the eye openings). Right-side fields are the exact mirror images of
the left-side ones; symmetric fields are exactly symmetric.

=====================  ==========================================================================
blendshape             deformation (Left versions; Right mirrored)
=====================  ==========================================================================
eyeBlink               upper lid comes down to meet the lower lid (which rises a little): gap 0
eyeLookDown            both lids follow a downward gaze; the lid fold above comes down too
eyeLookIn              lids shift towards the nose, the inner upper lid rises slightly
eyeLookOut             lids shift towards the ear, the outer upper lid rises slightly
eyeLookUp              both lids and the lower brow rise with an upward gaze
eyeSquint              lower lid rises and bulges, upper lid lowers a little
eyeWide                upper lid and lid fold rise, lower lid drops a little
jawForward             jaw (lower lip, chin, jaw line) slides forward, most at the chin
jawRight / jawLeft     jaw rotates about a vertical axis through the opposite joint (chin sideways)
jawOpen                jaw rotates down and back about the jaw-joint axis (mouth opens)
mouthClose             lips move towards each other at the centre (closes lips over an open jaw)
mouthFunnel            lips push forward and part into an "O", corners move in
mouthPucker            corners pull in strongly, closed lips push forward
mouthRight/mouthLeft   both lips shift sideways; the leading corner goes back, the other forward
mouthSmile             corner up, out and back; the cheek above rises
mouthFrown             corner down; the skin below the corner comes down
mouthDimple            corner pulled back and slightly out (tight region)
mouthStretch           corner and lower lip pulled out and down; the jaw-side skin follows
mouthRollLower/Upper   lower/upper lip rolls in (back and towards the mouth line)
mouthShrugLower        lower lip pushed up and forward by the chin (mentalis), chin rises
mouthShrugUpper        upper lip pushed up and forward
mouthPress             lip red thins on that side (outer lip contour moves to the inner one)
mouthLowerDown         lateral lower lip drops (shows lower teeth)
mouthUpperUp           lateral upper lip rises (shows upper teeth), nasolabial region rises
browDown               brow lowers and moves towards the midline (more at the inner end)
browInnerUp            inner ends of both brows and the central forehead rise
browOuterUp            outer part of the brow rises
cheekPuff              both cheeks bulge outwards and forwards
cheekSquint            cheek under the eye rises and pushes the lower lid up a little
noseSneer              nose wing and side of the nose rise, the upper lip beside it follows
tongueOut              lower lip centre pushed down and forward (tongue over it), lips part
=====================  ==========================================================================
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from flowvq_cli.face import canonical

COEFF_LAYOUT_VERSION = 1
FACE_MODEL_VERSION = 2
"""What 1.0 of a blendshape means. 1: the authored rig (about a third of a real face's range). 2: the
calibrated face model, whose 1.0 the expression reader (Blendshape V2) reads as 1.0 on a real face. Flows
record the version they learned, and a bundle whose flows learned another one is refused."""


def face_model_mismatch(version: object) -> str | None:
    """Why flows that learned face model ``version`` cannot be used (None when they can)."""
    if version == FACE_MODEL_VERSION:
        return None
    return (f"learned the expressions of face model {version}, but this FlowVQ uses face model {FACE_MODEL_VERSION} "
            "(expressions at a real face's size); use weights made for it, e.g. retrain with "
            "`bash scripts/train_mini.sh flows`")
ARKIT_NAMES: tuple[str, ...] = (
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft",
    "eyeSquintLeft", "eyeWideLeft",
    "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight", "eyeLookOutRight", "eyeLookUpRight",
    "eyeSquintRight", "eyeWideRight",
    "jawForward", "jawLeft", "jawRight", "jawOpen",
    "mouthClose", "mouthFunnel", "mouthPucker", "mouthLeft", "mouthRight",
    "mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft", "mouthFrownRight",
    "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper",
    "mouthPressLeft", "mouthPressRight", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthUpperUpLeft", "mouthUpperUpRight",
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "noseSneerLeft", "noseSneerRight",
    "tongueOut",
)  # fmt: skip
N_EXP = 52
N_POSE = 6
N_COEFFS = N_EXP + N_POSE
POSE_NAMES = ("pitch", "yaw", "roll", "tx", "ty", "log_scale")
EXP_SLICE = slice(0, N_EXP)
POSE_SLICE = slice(N_EXP, N_COEFFS)
CROP_SIZE = 256
REFERENCE_EYE_DISTANCE = 0.28  # eye-centre distance / crop width at log_scale = 0
CANONICAL_TO_IMAGE = np.diag([1.0, -1.0, -1.0])  # F: canonical (y up, z to viewer) -> image axes
CALIBRATED_RIG = Path(__file__).resolve().parents[1] / "assets" / "rig_calibrated.safetensors"
"""The fields calibrated to the expression reader, with the iris fields used to read the rig
(``scripts/calibrate_rig.py``; ``flowvq_cli.face.readback``)."""

assert len(ARKIT_NAMES) == N_EXP and len(set(ARKIT_NAMES)) == N_EXP


def _swap_side(name: str) -> str:
    if name.endswith("Left"):
        return name[: -len("Left")] + "Right"
    if name.endswith("Right"):
        return name[: -len("Right")] + "Left"
    return name


MIRROR_PERMUTATION = np.array([ARKIT_NAMES.index(_swap_side(n)) for n in ARKIT_NAMES])
_MIRROR_POSE_SIGN = np.array([1.0, -1.0, -1.0, -1.0, 1.0, 1.0])  # pitch, yaw, roll, tx, ty, log_scale


def mirror_coeffs(coeffs: np.ndarray) -> np.ndarray:
    """Coefficients of the mirror-image face: (..., 58) -> (..., 58).

    Left/Right blendshapes swap (jawLeft <-> jawRight too); yaw, roll and tx change sign.
    """
    coeffs = np.asarray(coeffs)
    out = np.empty_like(coeffs)
    out[..., EXP_SLICE] = coeffs[..., MIRROR_PERMUTATION]
    out[..., POSE_SLICE] = coeffs[..., POSE_SLICE] * _MIRROR_POSE_SIGN.astype(coeffs.dtype)
    return out


# --------------------------------------------------------------------------------------------------
# Rotations
# --------------------------------------------------------------------------------------------------


def rotation_matrix(pitch: np.ndarray, yaw: np.ndarray, roll: np.ndarray) -> np.ndarray:
    """R = Rz(roll) @ Ry(yaw) @ Rx(pitch) in the canonical frame: (...,) x3 -> (..., 3, 3)."""
    cp, sp = np.cos(pitch), np.sin(pitch)
    cy, sy = np.cos(yaw), np.sin(yaw)
    cr, sr = np.cos(roll), np.sin(roll)
    rows = [
        [cr * cy, cr * sy * sp - sr * cp, cr * sy * cp + sr * sp],
        [sr * cy, sr * sy * sp + cr * cp, sr * sy * cp - cr * sp],
        [-sy, cy * sp, cy * cp],
    ]
    return np.stack([np.stack(r, axis=-1) for r in rows], axis=-2)


def euler_from_rotation(rot: np.ndarray) -> np.ndarray:
    """Inverse of ``rotation_matrix``: (..., 3, 3) -> (..., 3) as (pitch, yaw, roll), |yaw| <= pi/2."""
    pitch = np.arctan2(rot[..., 2, 1], rot[..., 2, 2])
    yaw = np.arctan2(-rot[..., 2, 0], np.hypot(rot[..., 2, 1], rot[..., 2, 2]))
    roll = np.arctan2(rot[..., 1, 0], rot[..., 0, 0])
    return np.stack([pitch, yaw, roll], axis=-1)


# --------------------------------------------------------------------------------------------------
# Authoring tools (canonical cm)
# --------------------------------------------------------------------------------------------------

_SHEPARD_EPS = 0.05  # cm; softens the inverse-distance weights at the seeds
_JAW_UPPER_MIN_RISE = 1.5  # cm above the mouth corners: everything higher is "upper face" for the jaw


@dataclass(frozen=True)
class _Mesh:
    """What the recipes need: vertices (468, 3) float64, geodesics (468, 468), jaw weight (468,)."""

    v: np.ndarray
    geo: np.ndarray
    jaw: np.ndarray

    def g(self, name: str) -> np.ndarray:
        return canonical.group(name)


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _spread(mesh: _Mesh, seeds: np.ndarray, disp: np.ndarray, radius: float) -> np.ndarray:
    """Displacement field (468, 3): seeds (k,) move by ``disp`` ((k, 3) or (3,)); other vertices get the
    inverse-geodesic-distance average of the seed displacements times a smooth falloff to 0 at
    ``radius`` cm from the nearest seed."""
    disp = np.broadcast_to(np.asarray(disp, np.float64), (len(seeds), 3))
    d = mesh.geo[:, seeds]  # (468, k)
    w = 1.0 / (d**2 + _SHEPARD_EPS**2)
    field = (w @ disp) / w.sum(axis=1, keepdims=True)
    return field * (1.0 - _smoothstep(d.min(axis=1) / radius))[:, None]


def _lid_profile(n: int) -> np.ndarray:
    """(n,) bump over the lid vertices between the corners: 0 at the corners, 1 in the middle."""
    return np.sin(np.pi * np.arange(1, n + 1) / (n + 1))


def _centre_profile(x: np.ndarray, half_width: float) -> np.ndarray:
    """cos² bump across the mouth: 1 at the midline, 0 at |x| >= half_width."""
    return np.cos(0.5 * np.pi * np.clip(np.abs(x) / half_width, 0.0, 1.0)) ** 2


def _gauss(x: np.ndarray, centre: float, width: float) -> np.ndarray:
    return np.exp(-(((x - centre) / width) ** 2))


def _jaw_weight(v: np.ndarray, geo: np.ndarray) -> np.ndarray:
    """(468,) share of the mandible's motion: 1 on the lower lip / chin / jaw line, 0 on the upper lip
    and everything above, geodesically blended in between (0.5 at the mouth corners)."""
    lower = np.concatenate([canonical.group(f"lips_lower_{k}")[1:-1] for k in ("outer", "inner")])
    lower = np.concatenate([lower, canonical.group("jaw"), canonical.group("chin")])
    upper = np.concatenate([canonical.group(f"lips_upper_{k}")[1:-1] for k in ("outer", "inner")])
    corner_y = v[canonical.group("mouth_corner_left")[0], 1]
    upper = np.concatenate([upper, np.flatnonzero(v[:, 1] > corner_y + _JAW_UPPER_MIN_RISE)])
    d_low, d_up = geo[:, lower].min(axis=1), geo[:, upper].min(axis=1)
    return d_up / np.maximum(d_up + d_low, _SHEPARD_EPS)


def _rotation_field(
    v: np.ndarray, weight: np.ndarray, axis: np.ndarray, pivot: np.ndarray, angle: float
) -> np.ndarray:
    """Linearised rotation ``angle * axis x (v - pivot)`` times ``weight``: (468, 3)."""
    return angle * np.cross(axis, v - pivot) * weight[:, None]


# ---- eyes (left eye; +x is the subject's left) ---------------------------------------------------
_BLINK_MEET = 0.2  # lids meet this far up from the lower lid (fraction of the open gap)
_BLINK_RADIUS = 0.9
_LOOK_DOWN = ((0.0, -0.42, 0.06), (0.0, -0.12, 0.14))  # (upper, lower) lid motion at the lid centre
_LOOK_DOWN_RADIUS = 1.6
_LOOK_UP = ((0.0, 0.2, -0.06), (0.0, 0.32, 0.0))
_LOOK_UP_BROW = (0.0, 0.12, 0.0)
_LOOK_UP_RADIUS = 1.4
# lid shift towards the gaze, rise of the leading upper lid, forward bulge over the cornea (cm)
_LOOK_SIDE = (0.36, 0.12, 0.12)
_LOOK_SIDE_RADIUS = 1.3
_SQUINT = ((0.0, -0.12, 0.0), (0.0, 0.34, 0.12))
_SQUINT_RADIUS = 1.3
_WIDE = ((0.0, 0.4, -0.12), (0.0, -0.06, 0.0))
_WIDE_BROW = (0.0, 0.2, 0.0)
_WIDE_RADIUS = 1.4


def _lids(mesh: _Mesh, upper: Vec3, lower: Vec3, radius: float, extra: Seeds = ()) -> np.ndarray:
    """Lid field: centre-weighted upper/lower lid displacement, corners pinned, plus extra seeds."""
    up, low, corners = mesh.g("lid_upper_left"), mesh.g("lid_lower_left"), mesh.g("eye_corner_left")
    p = _lid_profile(len(up))[:, None]
    seeds = [up, low, corners] + [s for s, _ in extra]
    disp = [p * np.asarray(upper), p * np.asarray(lower), np.zeros((2, 3))]
    disp += [np.broadcast_to(np.asarray(d, float), (len(s), 3)) for s, d in extra]
    return _spread(mesh, np.concatenate(seeds), np.concatenate(disp), radius)


def _eye_blink(mesh: _Mesh) -> np.ndarray:
    up, low, corners = mesh.g("lid_upper_left"), mesh.g("lid_lower_left"), mesh.g("eye_corner_left")
    meet = mesh.v[low] + _BLINK_MEET * (mesh.v[up] - mesh.v[low])  # contours share x per index
    brow = mesh.g("brow_lower_left")  # pinned: the lid moves, the brow does not
    seeds = np.concatenate([up, low, corners, brow])
    disp = np.concatenate([meet - mesh.v[up], meet - mesh.v[low], np.zeros((2 + len(brow), 3))])
    return _spread(mesh, seeds, disp, _BLINK_RADIUS)


def _eye_look_down(mesh: _Mesh) -> np.ndarray:
    brow_pinned = ((mesh.g("brow_lower_left"), (0.0, 0.0, 0.0)),)  # the lid fold follows, not the brow
    return _lids(mesh, *_LOOK_DOWN, _LOOK_DOWN_RADIUS, brow_pinned)


def _eye_look_up(mesh: _Mesh) -> np.ndarray:
    brow = ((mesh.g("brow_lower_left"), _LOOK_UP_BROW),)
    return _lids(mesh, *_LOOK_UP, _LOOK_UP_RADIUS, brow)


def _eye_look_side(mesh: _Mesh, towards_nose: bool) -> np.ndarray:
    up, low, corners = mesh.g("lid_upper_left"), mesh.g("lid_lower_left"), mesh.g("eye_corner_left")
    n = len(up)
    ramp = np.linspace(1.0, 0.3, n) if towards_nose else np.linspace(0.3, 1.0, n)  # lids run nose->ear
    p = (_lid_profile(n) * ramp)[:, None]
    shift, rise, bulge = _LOOK_SIDE
    dx = -shift if towards_nose else shift
    disp_up = p * np.array([dx, rise, bulge])
    disp_low = p * np.array([dx, 0.0, bulge])
    seeds = np.concatenate([up, low, corners])
    return _spread(mesh, seeds, np.concatenate([disp_up, disp_low, np.zeros((2, 3))]), _LOOK_SIDE_RADIUS)


def _eye_squint(mesh: _Mesh) -> np.ndarray:
    return _lids(mesh, *_SQUINT, _SQUINT_RADIUS)


def _eye_wide(mesh: _Mesh) -> np.ndarray:
    return _lids(mesh, *_WIDE, _WIDE_RADIUS, ((mesh.g("brow_lower_left"), _WIDE_BROW),))


# ---- jaw ------------------------------------------------------------------------------------------
_JAW_PIVOT = np.array([0.0, 0.0, -3.0])  # on the jaw-joint axis (x), behind the face surface
_JAW_OPEN_ANGLE = 0.2  # rad at jawOpen = 1: ~2.4 cm at the chin
_JAW_FORWARD = (0.0, -0.08, 0.5)  # cm at the chin
_JAW_FORWARD_BACK_SHARE = 0.3  # share of the chin's motion at the back of the jaw line
_JAW_SIDE = (0.6, 0.0, 0.0)  # cm, whole jaw towards the subject's left (jawLeft)
_JAW_SIDE_BACK = -0.5  # cm, the leading jaw angle also swings back (z)
_JAW_SIDE_WIDTH = 4.0  # cm, width of the leading-side ramp across x


def _jaw_open(mesh: _Mesh) -> np.ndarray:
    return _rotation_field(mesh.v, mesh.jaw, np.array([1.0, 0.0, 0.0]), _JAW_PIVOT, _JAW_OPEN_ANGLE)


def _jaw_forward(mesh: _Mesh) -> np.ndarray:
    z = mesh.v[:, 2]
    front = _JAW_FORWARD_BACK_SHARE + (1 - _JAW_FORWARD_BACK_SHARE) * _smoothstep((z - z.min()) / np.ptp(z))
    return mesh.jaw[:, None] * front[:, None] * np.asarray(_JAW_FORWARD)


def _jaw_left(mesh: _Mesh) -> np.ndarray:
    lead = _smoothstep(mesh.v[:, 0] / _JAW_SIDE_WIDTH)  # 0 at the midline, 1 on the left jaw angle
    field = np.broadcast_to(np.asarray(_JAW_SIDE), mesh.v.shape).copy()
    field[:, 2] += _JAW_SIDE_BACK * lead
    return field * mesh.jaw[:, None]


# ---- mouth ----------------------------------------------------------------------------------------
_LIP_KEYS = ("upper_outer", "upper_inner", "lower_outer", "lower_inner")


def _lip_field(mesh: _Mesh, recipe: dict, radius: float, extra: Seeds = ()) -> np.ndarray:
    """Field from lip contour seeds. ``recipe`` maps a lip key (``_LIP_KEYS``) to a function
    x (k,) -> (k, 3) (missing keys are pinned at 0), and ``"corner_left"``/``"corner_right"`` to a
    (3,) displacement of the outer and inner corner. ``extra``: (indices, displacement) seeds."""
    seeds, disp = [], []
    for key in _LIP_KEYS:
        idx = mesh.g(f"lips_{key}")[1:-1]
        fn = recipe.get(key)
        seeds.append(idx)
        disp.append(fn(mesh.v[idx, 0]) if fn else np.zeros((len(idx), 3)))
    for side in ("left", "right"):
        seeds.append(mesh.g(f"mouth_corner_{side}"))
        disp.append(np.broadcast_to(np.asarray(recipe.get(f"corner_{side}", (0.0, 0.0, 0.0)), float), (2, 3)))
    for idx, d in extra:
        seeds.append(idx)
        disp.append(np.broadcast_to(np.asarray(d, float), (len(idx), 3)))
    return _spread(mesh, np.concatenate(seeds), np.concatenate(disp), radius)


LipEntry = Callable[[np.ndarray], np.ndarray]  # x (k,) -> displacement (k, 3)
Vec3 = tuple[float, float, float]
Seeds = Sequence[tuple[np.ndarray, Vec3]]


def _vec(d: Vec3, profile: Callable[[np.ndarray], np.ndarray]) -> LipEntry:
    """Lip recipe entry: x (k,) -> profile(x)[:, None] * d."""
    return lambda x: profile(x)[:, None] * np.asarray(d)


def _mouth_half_width(mesh: _Mesh) -> float:
    return float(mesh.v[mesh.g("mouth_corner_left")[0], 0])


_CLOSE = ((0.0, -0.3, 0.04), (0.0, 0.42, 0.06))  # upper, lower lip at the centre
_CLOSE_RADIUS = 0.9


def _mouth_close(mesh: _Mesh) -> np.ndarray:
    hw = _mouth_half_width(mesh)
    c = lambda x: _centre_profile(x, hw)  # noqa: E731
    up, low = _CLOSE
    recipe = {"upper_outer": _vec(up, c), "upper_inner": _vec(up, c), "lower_outer": _vec(low, c),
              "lower_inner": _vec(low, c)}  # fmt: skip
    return _lip_field(mesh, recipe, _CLOSE_RADIUS)


_FUNNEL = {"upper_outer": (0.0, 0.12, 0.35), "upper_inner": (0.0, 0.2, 0.3),
           "lower_outer": (0.0, -0.14, 0.35), "lower_inner": (0.0, -0.24, 0.3)}  # fmt: skip
_FUNNEL_CORNER = (-0.25, 0.0, 0.12)  # left corner; the right one is mirrored
_FUNNEL_RADIUS = 1.2
_PUCKER_FORWARD = {"upper_outer": 0.45, "upper_inner": 0.35, "lower_outer": 0.45, "lower_inner": 0.35}
_PUCKER_SQUEEZE = 0.25  # cm: lips gather towards the midline (at the corners' x)
_PUCKER_CORNER = (-0.55, 0.0, 0.25)
_PUCKER_RADIUS = 1.5


def _mirror_x(d: Vec3) -> Vec3:
    return (-d[0], d[1], d[2])


def _mouth_funnel(mesh: _Mesh) -> np.ndarray:
    hw = _mouth_half_width(mesh)
    wide = lambda x: _centre_profile(x, 1.3 * hw)  # noqa: E731  (lips open across the whole width)
    recipe = {k: _vec(d, wide) for k, d in _FUNNEL.items()}
    recipe |= {"corner_left": _FUNNEL_CORNER, "corner_right": _mirror_x(_FUNNEL_CORNER)}
    return _lip_field(mesh, recipe, _FUNNEL_RADIUS)


def _mouth_pucker(mesh: _Mesh) -> np.ndarray:
    hw = _mouth_half_width(mesh)

    def entry(forward: float) -> LipEntry:
        return lambda x: np.stack(
            [-_PUCKER_SQUEEZE * x / hw, np.zeros_like(x), forward * _centre_profile(x, 1.3 * hw)], axis=1
        )

    recipe = {k: entry(f) for k, f in _PUCKER_FORWARD.items()}
    recipe |= {"corner_left": _PUCKER_CORNER, "corner_right": _mirror_x(_PUCKER_CORNER)}
    return _lip_field(mesh, recipe, _PUCKER_RADIUS)


_MOUTH_SIDE = 0.45  # cm, both lips towards the subject's left (mouthLeft)
_MOUTH_SIDE_FLATTEN = -0.2  # cm, the taut lips flatten against the teeth
_MOUTH_SIDE_LEAD_BACK = -0.18  # the leading (left) corner goes back
_MOUTH_SIDE_TRAIL_FORWARD = 0.1  # the trailing corner flattens forward
_MOUTH_SIDE_RADIUS = 1.4


def _mouth_left(mesh: _Mesh) -> np.ndarray:
    shift = lambda x: np.tile([_MOUTH_SIDE, 0.0, _MOUTH_SIDE_FLATTEN], (len(x), 1))  # noqa: E731
    recipe = {k: shift for k in _LIP_KEYS}
    recipe |= {"corner_left": (_MOUTH_SIDE, 0.0, _MOUTH_SIDE_LEAD_BACK),
               "corner_right": (_MOUTH_SIDE, 0.0, _MOUTH_SIDE_TRAIL_FORWARD)}  # fmt: skip
    return _lip_field(mesh, recipe, _MOUTH_SIDE_RADIUS)


def _midline_lips(mesh: _Mesh) -> np.ndarray:
    idx = np.concatenate([mesh.g(f"lips_{k}") for k in _LIP_KEYS])
    return idx[np.abs(mesh.v[idx, 0]) < 1e-6]


def _corner_shape(mesh: _Mesh, corner: Vec3, radius: float, extra: Seeds = ()) -> np.ndarray:
    """Left-corner field; the lip midline is pinned so the motion fades across the lips."""
    seeds = [(mesh.g("mouth_corner_left"), corner), (_midline_lips(mesh), (0.0, 0.0, 0.0)), *extra]
    idx = np.concatenate([s for s, _ in seeds])
    disp = np.concatenate([np.broadcast_to(np.asarray(d, float), (len(s), 3)) for s, d in seeds])
    return _spread(mesh, idx, disp, radius)


_SMILE_CORNER = (0.3, 0.45, -0.2)
_SMILE_CHEEK = (0.1, 0.25, 0.05)
_SMILE_MALAR = (0.0, 0.12, 0.03)
_SMILE_RADIUS = 2.0
_FROWN_CORNER = (0.05, -0.4, 0.0)
_FROWN_RADIUS = 1.8
_DIMPLE_CORNER = (0.2, 0.02, -0.35)
_DIMPLE_RADIUS = 1.1
_STRETCH_CORNER = (0.4, -0.12, -0.05)
_STRETCH_JAW = (0.08, -0.1, 0.0)
_STRETCH_RADIUS = 1.6


def _mouth_smile(mesh: _Mesh) -> np.ndarray:
    extra = ((mesh.g("cheek_left"), _SMILE_CHEEK), (mesh.g("malar_left"), _SMILE_MALAR))
    return _corner_shape(mesh, _SMILE_CORNER, _SMILE_RADIUS, extra)


def _mouth_frown(mesh: _Mesh) -> np.ndarray:
    return _corner_shape(mesh, _FROWN_CORNER, _FROWN_RADIUS)


def _mouth_dimple(mesh: _Mesh) -> np.ndarray:
    return _corner_shape(mesh, _DIMPLE_CORNER, _DIMPLE_RADIUS)


def _mouth_stretch(mesh: _Mesh) -> np.ndarray:
    jaw = mesh.g("jaw")
    jaw_left = jaw[mesh.v[jaw, 0] > _mouth_half_width(mesh)]
    return _corner_shape(mesh, _STRETCH_CORNER, _STRETCH_RADIUS, ((jaw_left, _STRETCH_JAW),))


# Roll: the red lip curls in (outer edge towards the mouth line, inner edge back); lower lip, upper mirrored.
_ROLL = {"outer": (0.0, 0.26, -0.14), "inner": (0.0, -0.04, -0.34)}
_ROLL_RADIUS = 0.6
# Shrug: the whole lip and the skin next to it move as a unit.
_SHRUG_LOWER = {"lower_outer": (0.0, 0.12, 0.25), "lower_inner": (0.0, 0.12, 0.25)}
_SHRUG_CHIN = (0.0, 0.3, 0.15)
_SHRUG_LOWER_RADIUS = 1.8
_SHRUG_UPPER = {"upper_outer": (0.0, 0.12, 0.25), "upper_inner": (0.0, 0.12, 0.25)}
_SHRUG_UPPER_RADIUS = 1.6


def _mouth_roll(mesh: _Mesh, lip: str) -> np.ndarray:
    hw = _mouth_half_width(mesh)
    wide = lambda x: _centre_profile(x, 1.2 * hw)  # noqa: E731
    flip = 1.0 if lip == "lower" else -1.0
    recipe = {f"{lip}_{k}": _vec((d[0], flip * d[1], d[2]), wide) for k, d in _ROLL.items()}
    return _lip_field(mesh, recipe, _ROLL_RADIUS)


def _mouth_shrug_lower(mesh: _Mesh) -> np.ndarray:
    hw = _mouth_half_width(mesh)
    wide = lambda x: _centre_profile(x, 1.2 * hw)  # noqa: E731
    recipe = {k: _vec(d, wide) for k, d in _SHRUG_LOWER.items()}
    return _lip_field(mesh, recipe, _SHRUG_LOWER_RADIUS, ((mesh.g("chin"), _SHRUG_CHIN),))


def _mouth_shrug_upper(mesh: _Mesh) -> np.ndarray:
    hw = _mouth_half_width(mesh)
    wide = lambda x: _centre_profile(x, 1.2 * hw)  # noqa: E731
    recipe = {k: _vec(d, wide) for k, d in _SHRUG_UPPER.items()}
    tip = ((np.asarray(_NOSE_TIP), (0.0, 0.0, 0.0)),)
    return _lip_field(mesh, recipe, _SHRUG_UPPER_RADIUS, tip)


_PRESS = {"upper_outer": (0.0, -0.2, -0.08), "lower_outer": (0.0, 0.22, -0.08)}
_PRESS_CORNER = (0.1, 0.0, -0.1)
_PRESS_SIDE_WIDTH = 1.5  # cm, ramp across the midline to the pressed side
_PRESS_RADIUS = 0.9
_LOWER_DOWN = (0.03, -0.45, 0.06)
_UPPER_UP = (0.0, 0.42, 0.1)
_LATERAL_LIP_CENTRE = 1.0  # cm from the midline (over the canine)
_LATERAL_LIP_WIDTH = 0.9
_LATERAL_LIP_RADIUS = 1.2


def _mouth_press(mesh: _Mesh) -> np.ndarray:
    side = lambda x: _smoothstep(0.5 + x / _PRESS_SIDE_WIDTH)  # noqa: E731
    recipe = {k: _vec(d, side) for k, d in _PRESS.items()} | {"corner_left": _PRESS_CORNER}
    return _lip_field(mesh, recipe, _PRESS_RADIUS)


def _lateral_lip(mesh: _Mesh, lip: str, d: Vec3) -> np.ndarray:
    bump = lambda x: _gauss(x, _LATERAL_LIP_CENTRE, _LATERAL_LIP_WIDTH)  # noqa: E731
    recipe = {f"{lip}_{k}": _vec(d, bump) for k in ("outer", "inner")}
    return _lip_field(mesh, recipe, _LATERAL_LIP_RADIUS)


_TONGUE = {"lower_inner": (0.0, -0.45, 0.3), "lower_outer": (0.0, -0.35, 0.3),
           "upper_inner": (0.0, 0.1, 0.05)}  # fmt: skip
_TONGUE_HALF_WIDTH = 0.7  # of the mouth half width
_TONGUE_RADIUS = 1.0


def _tongue_out(mesh: _Mesh) -> np.ndarray:
    hw = _TONGUE_HALF_WIDTH * _mouth_half_width(mesh)
    narrow = lambda x: _centre_profile(x, hw)  # noqa: E731
    return _lip_field(mesh, {k: _vec(d, narrow) for k, d in _TONGUE.items()}, _TONGUE_RADIUS)


# ---- brows, cheeks, nose --------------------------------------------------------------------------
_BROW_DOWN = (-0.2, -0.35, 0.1)  # at the inner end: down, towards the midline, forward
_BROW_DOWN_OUTER_SHARE = 0.6
_BROW_DOWN_RADIUS = 1.5
_BROW_INNER_UP = (0.0, 0.45, 0.0)
_BROW_INNER_UP_RADIUS = 2.2
_BROW_OUTER_UP = (0.0, 0.4, 0.0)
_BROW_OUTER_UP_RADIUS = 1.8
_CHEEK_PUFF = (0.35, 0.0, 0.15)  # left cheek
_CHEEK_PUFF_RADIUS = 2.2
_CHEEK_SQUINT = (0.05, 0.3, 0.05)
_CHEEK_SQUINT_LID = (0.0, 0.08, 0.0)
_CHEEK_SQUINT_RADIUS = 1.8
_SNEER_ALA = (0.04, 0.28, 0.02)
_SNEER_BROW = (0.0, -0.08, 0.0)
_SNEER_RADIUS = 1.4
_NOSE_TIP = (1, 4)  # MediaPipe indices: nose tip, pinned when the wings move


def _seeded(mesh: _Mesh, seeds: Seeds, radius: float) -> np.ndarray:
    idx = np.concatenate([s for s, _ in seeds])
    disp = np.concatenate([np.broadcast_to(np.asarray(d, float), (len(s), 3)) for s, d in seeds])
    return _spread(mesh, idx, disp, radius)


def _brow_down(mesh: _Mesh) -> np.ndarray:
    idx = np.concatenate([mesh.g("brow_upper_left"), mesh.g("brow_lower_left")])
    x = mesh.v[idx, 0]
    share = 1.0 - (1.0 - _BROW_DOWN_OUTER_SHARE) * (x - x.min()) / np.ptp(x)  # 1 inner -> share outer
    return _spread(mesh, idx, share[:, None] * np.asarray(_BROW_DOWN), _BROW_DOWN_RADIUS)


def _brow_inner_up(mesh: _Mesh) -> np.ndarray:
    seeds = [(mesh.g(f"brow_inner_{s}"), _BROW_INNER_UP) for s in ("left", "right")]
    seeds += [(mesh.g(f"brow_outer_{s}"), (0.0, 0.0, 0.0)) for s in ("left", "right")]
    return _seeded(mesh, seeds, _BROW_INNER_UP_RADIUS)


def _brow_outer_up(mesh: _Mesh) -> np.ndarray:
    seeds = [(mesh.g("brow_outer_left"), _BROW_OUTER_UP), (mesh.g("brow_inner_left"), (0.0, 0.0, 0.0))]
    return _seeded(mesh, seeds, _BROW_OUTER_UP_RADIUS)


def _cheek_puff(mesh: _Mesh) -> np.ndarray:
    lips = np.concatenate([mesh.g(f"lips_{k}") for k in _LIP_KEYS])
    seeds = [(mesh.g("cheek_left"), _CHEEK_PUFF), (mesh.g("cheek_right"), _mirror_x(_CHEEK_PUFF))]
    return _seeded(mesh, [*seeds, (lips, (0.0, 0.0, 0.0))], _CHEEK_PUFF_RADIUS)


def _cheek_squint(mesh: _Mesh) -> np.ndarray:
    seeds = [(mesh.g("malar_left"), _CHEEK_SQUINT), (mesh.g("lid_lower_left"), _CHEEK_SQUINT_LID)]
    return _seeded(mesh, seeds, _CHEEK_SQUINT_RADIUS)


def _nose_sneer(mesh: _Mesh) -> np.ndarray:
    seeds = [(mesh.g("nose_ala_left"), _SNEER_ALA), (mesh.g("brow_inner_left"), _SNEER_BROW)]
    seeds.append((np.asarray(_NOSE_TIP), (0.0, 0.0, 0.0)))
    return _seeded(mesh, seeds, _SNEER_RADIUS)


# ---- the basis ------------------------------------------------------------------------------------
_LEFT_RECIPES = {
    "eyeBlinkLeft": _eye_blink,
    "eyeLookDownLeft": _eye_look_down,
    "eyeLookInLeft": lambda m: _eye_look_side(m, towards_nose=True),
    "eyeLookOutLeft": lambda m: _eye_look_side(m, towards_nose=False),
    "eyeLookUpLeft": _eye_look_up,
    "eyeSquintLeft": _eye_squint,
    "eyeWideLeft": _eye_wide,
    "jawLeft": _jaw_left,
    "mouthLeft": _mouth_left,
    "mouthSmileLeft": _mouth_smile,
    "mouthFrownLeft": _mouth_frown,
    "mouthDimpleLeft": _mouth_dimple,
    "mouthStretchLeft": _mouth_stretch,
    "mouthPressLeft": _mouth_press,
    "mouthLowerDownLeft": lambda m: _lateral_lip(m, "lower", _LOWER_DOWN),
    "mouthUpperUpLeft": lambda m: _lateral_lip(m, "upper", _UPPER_UP),
    "browDownLeft": _brow_down,
    "browOuterUpLeft": _brow_outer_up,
    "cheekSquintLeft": _cheek_squint,
    "noseSneerLeft": _nose_sneer,
}
_SYMMETRIC_RECIPES = {
    "jawForward": _jaw_forward,
    "jawOpen": _jaw_open,
    "mouthClose": _mouth_close,
    "mouthFunnel": _mouth_funnel,
    "mouthPucker": _mouth_pucker,
    "mouthRollLower": lambda m: _mouth_roll(m, "lower"),
    "mouthRollUpper": lambda m: _mouth_roll(m, "upper"),
    "mouthShrugLower": _mouth_shrug_lower,
    "mouthShrugUpper": _mouth_shrug_upper,
    "browInnerUp": _brow_inner_up,
    "cheekPuff": _cheek_puff,
    "tongueOut": _tongue_out,
}


@lru_cache(maxsize=1)
def procedural_basis() -> np.ndarray:
    """The authored fields (the recipes above), (52, 468, 3) float32 canonical cm at weight 1 (read-only):
    where ``scripts/calibrate_rig.py`` starts from."""
    face = canonical.load_canonical()
    v = face.vertices.astype(np.float64)
    geo = canonical.geodesic_distances()
    mesh = _Mesh(v=v, geo=geo, jaw=_jaw_weight(v, geo))
    fields = {}
    for name, recipe in _LEFT_RECIPES.items():
        fields[name] = recipe(mesh)
        fields[_swap_side(name)] = canonical.mirror_field(fields[name])
    for name, recipe in _SYMMETRIC_RECIPES.items():
        f = recipe(mesh)
        fields[name] = 0.5 * (f + canonical.mirror_field(f))
    basis = np.stack([fields[n] for n in ARKIT_NAMES]).astype(np.float32)
    basis.setflags(write=False)
    return basis


@lru_cache(maxsize=1)
def expression_basis() -> np.ndarray:
    """The 52 deformation fields, (52, 468, 3) float32, canonical cm at weight 1 (read-only, cached):
    :func:`procedural_basis` calibrated to the expression reader (:data:`CALIBRATED_RIG`)."""
    from flowvq_cli.modeling import load_safetensors  # torch: this module is numpy-only until the fields are read

    tensors = load_safetensors(CALIBRATED_RIG, what="the calibrated rig")
    basis = np.ascontiguousarray(tensors["basis"].float().numpy(), dtype=np.float32)
    if basis.shape != (N_EXP, canonical.N_VERTICES, 3):
        raise ValueError(f"{CALIBRATED_RIG} holds fields of shape {basis.shape}; rerun scripts/calibrate_rig.py")
    basis.setflags(write=False)
    return basis


# --------------------------------------------------------------------------------------------------
# Synthesis
# --------------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def reference_scale() -> float:
    """Pixels per canonical cm at log_scale = 0: eye centres ``REFERENCE_EYE_DISTANCE`` crops apart."""
    v = canonical.load_canonical().vertices.astype(np.float64)
    centres = [v[np.concatenate([canonical.group(f"eye_{k}_{s}") for k in ("upper", "lower")])].mean(0)
               for s in ("left", "right")]  # fmt: skip
    return float(REFERENCE_EYE_DISTANCE * CROP_SIZE / np.linalg.norm(centres[0] - centres[1]))


@dataclass(frozen=True)
class PoseTransform:
    """Similarity from the canonical frame to crop pixels: ``p = scale * rotation @ v + offset``.

    Attributes:
        scale: (T,) pixels per canonical cm.
        rotation: (T, 3, 3) ``F @ R`` (includes the canonical -> image axis flip).
        offset: (T, 3) crop pixels.
    """

    scale: np.ndarray
    rotation: np.ndarray
    offset: np.ndarray


def pose_transform(pose: np.ndarray) -> PoseTransform:
    """Pose (T, 6) -> ``PoseTransform`` (float64)."""
    pose = np.asarray(pose, dtype=np.float64)
    half = CROP_SIZE / 2
    rot = CANONICAL_TO_IMAGE @ rotation_matrix(pose[:, 0], pose[:, 1], pose[:, 2])  # (T, 3, 3)
    offset = np.stack([half * (1 + pose[:, 3]), half * (1 + pose[:, 4]), np.zeros(len(pose))], axis=1)
    return PoseTransform(scale=reference_scale() * np.exp(pose[:, 5]), rotation=rot, offset=offset)


def transform_to_pose(scale: np.ndarray, rotation: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Inverse of ``pose_transform`` (the z offset is dropped): (T,), (T, 3, 3), (T, 3) -> (T, 6)."""
    half = CROP_SIZE / 2
    angles = euler_from_rotation(CANONICAL_TO_IMAGE @ rotation)  # F is its own inverse
    t = offset[:, :2] / half - 1.0
    return np.concatenate([angles, t, np.log(scale / reference_scale())[:, None]], axis=1)


def rebase_pose(pose: np.ndarray, from_crop: np.ndarray, to_crop: np.ndarray) -> np.ndarray:
    """Re-express head poses measured in per-frame crops in one common crop.

    A video is fitted in per-frame (smoothed) crops that follow the head, so each frame's pose says
    little about how the head moved through the clip: the crop absorbed most of it. Composing each
    frame's pose with "its crop → image → the common crop" restores the motion.

    Args:
        pose: (T, 6) poses, frame ``t`` in the crop of ``from_crop[t]``.
        from_crop: (T, 2, 3) (or (2, 3)) image → crop pixel similarities the poses were measured in.
        to_crop: (2, 3) (or (T, 2, 3)) image → crop pixel similarity to express them in.
    Returns:
        (T, 6) float64 poses in ``to_crop``; ``rebase_pose(rebase_pose(p, a, b), b, a) == p``.
    """
    pose = np.asarray(pose, dtype=np.float64)
    n = len(pose)

    def homogeneous(m: np.ndarray) -> np.ndarray:
        m = np.broadcast_to(np.asarray(m, dtype=np.float64), (n, 2, 3))
        out = np.zeros((n, 3, 3))
        out[:, :2], out[:, 2, 2] = m, 1.0
        return out

    change = homogeneous(to_crop) @ np.linalg.inv(homogeneous(from_crop))  # (T, 3, 3): crop_t -> common crop
    linear = change[:, :2, :2]
    sigma = np.sqrt(np.abs(np.linalg.det(linear)))  # similarity scale
    turn = np.zeros((n, 3, 3))
    turn[:, :2, :2], turn[:, 2, 2] = linear / sigma[:, None, None], 1.0  # in-plane rotation, z kept
    tf = pose_transform(pose)
    offset = sigma[:, None] * np.einsum("tij,tj->ti", turn, tf.offset)
    offset[:, :2] += change[:, :2, 2]
    return transform_to_pose(sigma * tf.scale, turn @ tf.rotation, offset)


class FaceRig:
    """Linear face model: ``shape = identity + basis . exp``, posed into crop pixels.

    Args:
        basis: (52, 468, 3) deformation fields in canonical cm (``expression_basis()`` by default).
    """

    def __init__(self, basis: np.ndarray | None = None) -> None:
        self.basis = expression_basis() if basis is None else np.asarray(basis, dtype=np.float32)
        self.neutral = canonical.load_canonical().vertices
        self._flat = self.basis.reshape(N_EXP, -1)  # (52, 1404)

    def deform(self, identity: np.ndarray, exp: np.ndarray) -> np.ndarray:
        """Frontal 3D shapes before pose: identity (468, 3) or (T, 468, 3), exp (T, 52) -> (T, 468, 3) cm."""
        exp = np.asarray(exp, dtype=np.float32)
        delta = (exp @ self._flat).reshape(len(exp), -1, 3)  # (T, 468, 3)
        return np.asarray(identity, dtype=np.float32) + delta

    def pose_points(self, shapes: np.ndarray, pose: np.ndarray) -> np.ndarray:
        """Pose canonical shapes (T, 468, 3) cm with pose (T, 6) -> crop pixels (T, 468, 3) float32."""
        tf = pose_transform(pose)
        posed = np.einsum("tij,tvj->tvi", tf.rotation, shapes) * tf.scale[:, None, None]
        return (posed + tf.offset[:, None, :]).astype(np.float32)

    def synthesize(self, identity: np.ndarray, coeffs: np.ndarray) -> np.ndarray:
        """Landmarks in aligned-crop pixels: identity (468, 3), coeffs (T, 58) -> (T, 468, 3) float32.

        x right, y down, z in pixels (negative towards the camera), as MediaPipe's normalised landmarks
        of a ``CROP_SIZE``² crop times ``CROP_SIZE``.
        """
        coeffs = np.atleast_2d(np.asarray(coeffs))
        return self.pose_points(self.deform(identity, coeffs[:, EXP_SLICE]), coeffs[:, POSE_SLICE])

    def synthesize_3d(self, identity: np.ndarray, coeffs: np.ndarray) -> np.ndarray:
        """The pre-pose 3D shapes for coeffs (T, 58): (T, 468, 3) canonical cm (pose is ignored)."""
        coeffs = np.atleast_2d(np.asarray(coeffs))
        return self.deform(identity, coeffs[:, EXP_SLICE])


@lru_cache(maxsize=1)
def default_rig() -> FaceRig:
    """The shared ``FaceRig`` with the procedural ARKit basis (cached)."""
    return FaceRig()


IDENTITY_ADAPTED = ("eyeBlinkLeft", "eyeBlinkRight")
"""Blendshapes whose field is rebuilt on each identity. A blink is a *target* (the upper lid meets the
lower one), not a fixed displacement: authored on the canonical face it would leave a person with wider
eyes half open. Every other field is a displacement and is shared by all identities."""


def _blink_on(vertices: np.ndarray) -> np.ndarray:
    """The left-eye blink field authored on another neutral mesh (468, 3) -> (468, 3)."""
    geo = canonical.geodesic_distances()
    return _eye_blink(_Mesh(v=vertices, geo=geo, jaw=_jaw_weight(vertices, geo)))


def identity_basis(identity: np.ndarray) -> np.ndarray:
    """``expression_basis()`` with the :data:`IDENTITY_ADAPTED` fields rebuilt on ``identity`` (468, 3)."""
    v = np.asarray(identity, dtype=np.float64)
    mirrored = v[canonical.mirror_index()] * np.array([-1.0, 1.0, 1.0])  # the subject's right side as left
    basis = expression_basis().copy()
    basis[ARKIT_NAMES.index("eyeBlinkLeft")] = _blink_on(v)  # blinks are not calibrated: a target, not a size
    basis[ARKIT_NAMES.index("eyeBlinkRight")] = canonical.mirror_field(_blink_on(mirrored))
    basis.setflags(write=False)
    return basis


LIP_CLOSE_LOWER_SHARE = 0.65
"""When a neutral face's parted lips are closed (:func:`close_lips`), the share of the gap the lower lip
travels (the jaw closes); the upper lip travels the rest."""
_LIP_CLOSE_RADIUS = 1.0  # cm: how far around the lips the skin follows


def close_lips(identity: np.ndarray) -> np.ndarray:
    """A neutral face (468, 3) cm with its lips meeting: (468, 3) float64.

    A photo's face shape with its expression removed (``fit.neutral_identity``) keeps the lips as far apart
    as the photo shows them, and MediaPipe's canonical face itself has them parted (0.12 mouth widths).
    At rest the lips meet: the inner contours move to a line between them (the lower lip
    :data:`LIP_CLOSE_LOWER_SHARE` of the way), the corners stay, the skin around follows smoothly, so that
    p, b and m close the lips, and ``jawOpen`` opens them from there."""
    v = np.asarray(identity, dtype=np.float64)
    up, low = canonical.group("lips_upper_inner")[1:-1], canonical.group("lips_lower_inner")[1:-1]
    meet = v[low] + LIP_CLOSE_LOWER_SHARE * (v[up] - v[low])  # contours pair up index by index
    corners = np.concatenate([canonical.group(f"mouth_corner_{s}") for s in ("left", "right")])
    geo = canonical.geodesic_distances()
    mesh = _Mesh(v=v, geo=geo, jaw=np.zeros(len(v)))
    seeds = np.concatenate([up, low, corners])
    disp = np.concatenate([meet - v[up], meet - v[low], np.zeros((len(corners), 3))])
    return v + _spread(mesh, seeds, disp, _LIP_CLOSE_RADIUS)


_RIG_CACHE: dict[bytes, FaceRig] = {}
_RIG_CACHE_SIZE = 16


def rig_for(identity: np.ndarray) -> FaceRig:
    """The ``FaceRig`` of one identity (its :func:`identity_basis`), cached for the last few identities.

    Fitting and synthesis of a given identity both go through this, so ``fit(synthesise(c)) ≈ c`` holds
    for every identity, and ``eyeBlink = 1`` closes that person's eyes."""
    key = np.ascontiguousarray(identity, dtype=np.float32).tobytes()
    rig = _RIG_CACHE.get(key)
    if rig is None:
        if len(_RIG_CACHE) >= _RIG_CACHE_SIZE:
            _RIG_CACHE.pop(next(iter(_RIG_CACHE)))
        rig = _RIG_CACHE[key] = FaceRig(identity_basis(identity))
    return rig


def synthesize(identity: np.ndarray, coeffs: np.ndarray) -> np.ndarray:
    """``rig_for(identity).synthesize``: identity (468, 3), coeffs (T, 58) -> crop pixels (T, 468, 3)."""
    return rig_for(identity).synthesize(identity, coeffs)


def synthesize_3d(identity: np.ndarray, coeffs: np.ndarray) -> np.ndarray:
    """``rig_for(identity).synthesize_3d``: identity (468, 3), coeffs (T, 58) -> canonical cm (T, 468, 3)."""
    return rig_for(identity).synthesize_3d(identity, coeffs)
