"""Fit FlowVQ coefficients (``rig``) to FaceMesh landmarks in aligned-crop pixels, batched over frames.

Per frame, alternately (``FitConfig.pose_iters`` times):

1. **pose**: weighted similarity Procrustes (Umeyama) of the current model shape
   ``identity + basis . exp`` onto the landmarks. The first pass trusts only *rigid* vertices (those no
   blendshape moves); later passes add every vertex with a small weight.
2. **expression**: frontalise the landmarks with that pose and solve the bounded, ridge-regularised least
   squares ``min ||W (basis . exp - (frontal - identity))||² + frame_prior |exp|²`` with ``0 <= exp <= 1``
   (``W`` weighs depth by ``FitConfig.depth_weight``) for all frames at once: FISTA on the 52×52 normal
   matrix, then a few batched active-set Newton steps on the free variables.

Identity. If none is given it is estimated (``estimate_identity``): with one frame, identity =
frontalised landmarks minus ``basis . exp`` (exp fitted against the canonical face, with the ridge prior
``FitConfig.photo_prior``); with several,
the per-vertex median over frames of ``frontal - basis . u`` (``u`` = unconstrained coefficients
against the current identity) plus ``basis . quantile(u)``. That assumes every blendshape is at rest in
at least ``1 - rest_quantile`` of the frames (true of talking-head video). An estimated identity is
normalised (``normalize_identity``): a similarity transform aligns its rigid vertices to the
canonical face's, which fixes the otherwise arbitrary split of head pose and scale between the
identity and the per-frame pose.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from flowvq_cli.errors import InputError
from flowvq_cli.face import canonical
from flowvq_cli.face.rig import (
    ARKIT_NAMES,
    EXP_SLICE,
    N_COEFFS,
    N_EXP,
    POSE_SLICE,
    FaceRig,
    close_lips,
    default_rig,
    rig_for,
    transform_to_pose,
)

RIGID_TOLERANCE = 1e-3  # cm: vertices that no blendshape moves further than this anchor the pose
ALL_VERTEX_WEIGHT = 0.2  # weight of every vertex (rigid ones weigh 1) in the later pose passes


@dataclass(frozen=True)
class FitConfig:
    """Fitting knobs.

    Attributes:
        pose_iters: pose / expression alternations per fit.
        fista_iters: projected accelerated-gradient steps of the bounded least squares.
        newton_iters: batched active-set Newton steps after FISTA.
        identity_rounds: identity re-estimations (multi-frame, identity unknown).
        rest_quantile: per-blendshape quantile over frames taken as "at rest" (multi-frame identity).
        frame_prior: ridge weight (cm²) on exp in every per-frame fit. MediaPipe's landmarks follow a face's
            deformation only in part and with a bias of their own that depends on the face (the synthetic
            frames of ``benchmarks/synth_consistency.py`` show it: a brow lowered by a third of its range
            moves MediaPipe's brow points by almost nothing, and a still face reads browDown 0.6 on one
            side). Without a prior those biases land in blendshapes that move few vertices by little
            (eyeLook*, brows, mouthPress), up to 1. 3 cm² takes the exp error on those frames from 0.16 to
            0.08 and *raises* the mean correlation of the driven blendshapes with the truth (0.35 → 0.38);
            it shrinks jawOpen-scale shapes by about 1 %, and eyeBlink (which :data:`analyze.LID_GAIN`
            rescales) by more. ``FitConfig.exact()`` turns it off.
        prior_exempt: blendshapes the frame prior leaves alone. The eyelids are well observed (their
            reading correlates 0.65–0.75 with the truth on rendered frames) and MediaPipe's under-reading
            of a closed eye is corrected by :data:`analyze.LID_GAIN`, which the prior would halve.
        depth_weight: weight of the landmarks' depth (z) in the exp fit, relative to x and y (1). MediaPipe
            infers depth from a 2D image largely from its face prior, so its z disagrees with the face
            model's more than x/y do; 0.5 lowers the exp error on rendered frames by about 0.01 and leaves
            an exact (noise-free) fit exact. The pose fit uses all three axes at full weight.
        sparsity: L1 weight (cm²) on exp (exp >= 0, so a linear term). It lowers the exp error further by
            silencing every weak blendshape (0.5 sets most of them to 0 and cuts their correlation with the
            truth), so it is off.
        photo_prior: ridge weight (cm²) pulling exp towards 0 when a single photo is split into identity
            and expression. Without it, every way the subject's face differs from the canonical one is
            read as expression (a wider face = mouthStretch and eyeLookOut at 1); with it, only deformations
            the basis explains well (a smile) stay expression and the rest becomes identity. 20 cm² was
            chosen on the example photo: it reads its slight smile as mouthSmile ≈ 0.5.
    """

    pose_iters: int = 3
    fista_iters: int = 60
    newton_iters: int = 4
    identity_rounds: int = 2
    rest_quantile: float = 0.5
    photo_prior: float = 20.0
    frame_prior: float = 3.0
    depth_weight: float = 0.5
    prior_exempt: tuple[str, ...] = ("eyeBlinkLeft", "eyeBlinkRight")
    sparsity: float = 0.0

    @classmethod
    def tiny(cls) -> FitConfig:
        """Cheapest settings (tests of plumbing, not accuracy)."""
        return cls(pose_iters=1, fista_iters=10, newton_iters=1, identity_rounds=1)

    @classmethod
    def exact(cls) -> FitConfig:
        """No per-frame prior: ``fit(synthesise(c)) == c`` for noise-free model landmarks."""
        return cls(frame_prior=0.0)


@dataclass(frozen=True)
class FitResult:
    """Fitted coefficients.

    Attributes:
        coeffs: (T, 58) float32, layout of ``rig`` (exp in [0, 1], then pose).
        identity: (468, 3) float32 frontal neutral mesh, canonical cm (given or estimated).
        rms_px: (T,) float32 root-mean-square landmark residual in crop pixels.
    """

    coeffs: np.ndarray
    identity: np.ndarray
    rms_px: np.ndarray


@dataclass(frozen=True)
class _Similarity:
    """Batched similarity ``p = scale * rotation @ v + offset``: (T,), (T, 3, 3), (T, 3)."""

    scale: np.ndarray
    rotation: np.ndarray
    offset: np.ndarray

    def apply(self, shapes: np.ndarray) -> np.ndarray:
        """(T, N, 3) or (N, 3) -> (T, N, 3)."""
        shapes = np.broadcast_to(shapes, (len(self.scale), *np.shape(shapes)[-2:]))
        rotated = np.einsum("tij,tvj->tvi", self.rotation, shapes)
        return self.scale[:, None, None] * rotated + self.offset[:, None, :]

    def invert(self, points: np.ndarray) -> np.ndarray:
        """Frontalise: (T, N, 3) crop pixels -> (T, N, 3) model frame."""
        centred = points - self.offset[:, None, :]
        return np.einsum("tji,tvj->tvi", self.rotation, centred) / self.scale[:, None, None]


def procrustes(source: np.ndarray, target: np.ndarray, weights: np.ndarray) -> _Similarity:
    """Weighted similarity (Umeyama) mapping ``source`` onto ``target``, per frame.

    Args:
        source: (T, N, 3) or (N, 3) model points.
        target: (T, N, 3) observed points.
        weights: (N,) non-negative vertex weights.
    """
    source = np.broadcast_to(source, target.shape)
    w = weights / weights.sum()
    mu_t = np.einsum("v,tvi->ti", w, target)
    mu_s = np.einsum("v,tvi->ti", w, source)
    tc = target - mu_t[:, None, :]
    sc = source - mu_s[:, None, :]
    cov = np.einsum("v,tvi,tvj->tij", w, tc, sc)  # (T, 3, 3) target x source
    u, sig, vt = np.linalg.svd(cov)
    d = np.sign(np.linalg.det(u @ vt))
    fix = np.ones((len(d), 3))
    fix[:, 2] = d
    rot = (u * fix[:, None, :]) @ vt
    var_s = np.einsum("v,tvi,tvi->t", w, sc, sc)
    scale = (sig * fix).sum(axis=1) / var_s
    offset = mu_t - scale[:, None] * np.einsum("tij,tj->ti", rot, mu_s)
    return _Similarity(scale=scale, rotation=rot, offset=offset)


@lru_cache(maxsize=4)
def rigid_weights(rig: FaceRig) -> np.ndarray:
    """(468,) 1 on vertices no blendshape moves (> ``RIGID_TOLERANCE``), else 0."""
    motion = np.linalg.norm(rig.basis, axis=2).max(axis=0)  # (468,)
    return (motion < RIGID_TOLERANCE).astype(np.float64)


def _axis_weights(depth_weight: float) -> np.ndarray:
    """(3,) per-axis weights of the exp fit: x and y 1, z ``depth_weight``."""
    return np.array([1.0, 1.0, depth_weight])


@lru_cache(maxsize=8)
def _weighted_basis(rig: FaceRig, depth_weight: float) -> np.ndarray:
    """The basis with its z components scaled by ``depth_weight``, flattened: (52, 1404) float64."""
    return (rig.basis.astype(np.float64) * _axis_weights(depth_weight)).reshape(N_EXP, -1)


@lru_cache(maxsize=8)
def _normal_matrix(rig: FaceRig, depth_weight: float = 1.0) -> tuple[np.ndarray, float]:
    """Normal matrix G = B Bᵀ (52, 52) of the flattened (depth-weighted) basis and its largest eigenvalue."""
    flat = _weighted_basis(rig, depth_weight)
    gram = flat @ flat.T
    return gram, float(np.linalg.eigvalsh(gram)[-1])


def _weighted_rhs(rig: FaceRig, frontal: np.ndarray, identity: np.ndarray, depth_weight: float) -> np.ndarray:
    """Bᵀ r with the same axis weights on the residual r = frontal - identity: (T, 468, 3) -> (T, 52)."""
    residual = (frontal - identity) * _axis_weights(depth_weight)
    return residual.reshape(len(frontal), -1) @ _weighted_basis(rig, depth_weight).T


def solve_box_qp(
    gram: np.ndarray, rhs: np.ndarray, lipschitz: float, config: FitConfig, lo: float = 0.0, hi: float = 1.0
) -> np.ndarray:
    """Batched ``argmin_x ½ xᵀ G x - bᵀ x`` s.t. ``lo <= x <= hi``: G (n, n), rhs (T, n) -> (T, n).

    FISTA warm start, then active-set Newton steps: variables at a bound whose gradient pushes outwards
    stay fixed, the rest are solved exactly, and the result is clipped back into the box.
    """
    x = np.clip(rhs / np.diag(gram), lo, hi)
    y, x_prev, t = x.copy(), x.copy(), 1.0
    step = 1.0 / lipschitz
    for _ in range(config.fista_iters):
        x = np.clip(y - step * (y @ gram - rhs), lo, hi)
        t_next = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t))
        y = x + ((t - 1.0) / t_next) * (x - x_prev)
        x_prev, t = x, t_next
    eye = np.eye(len(gram), dtype=bool)
    for _ in range(config.newton_iters):
        grad = x @ gram - rhs
        fixed = ((x <= lo) & (grad > 0)) | ((x >= hi) & (grad < 0))  # (T, n)
        free = ~fixed
        pinned = np.where(fixed, x, 0.0)
        mat = np.where(free[:, :, None] & free[:, None, :], gram, eye)  # (T, n, n)
        vec = np.where(free, rhs - pinned @ gram, pinned)
        x = np.clip(np.linalg.solve(mat, vec[..., None])[..., 0], lo, hi)
    return x


def _fit_exp(
    rig: FaceRig, frontal: np.ndarray, identity: np.ndarray, config: FitConfig, ridge: float | np.ndarray = 0.0
) -> np.ndarray:
    """Bounded exp (T, 52) for frontalised shapes (T, 468, 3) around identity (468, 3); ``ridge`` (a scalar
    or one weight per blendshape, (52,)) adds ``Σ ridge_k exp_k²`` to the objective."""
    gram, lip = _normal_matrix(rig, config.depth_weight)
    rhs = _weighted_rhs(rig, frontal, identity, config.depth_weight) - config.sparsity  # (T, 52)
    ridge = np.broadcast_to(np.asarray(ridge, dtype=np.float64), (N_EXP,))
    return solve_box_qp(gram + np.diag(ridge), rhs, lip + float(ridge.max()), config)


def frame_ridge(config: FitConfig) -> np.ndarray:
    """(52,) per-blendshape ridge of the per-frame fit: ``frame_prior``, 0 on ``prior_exempt``."""
    ridge = np.full(N_EXP, config.frame_prior)
    ridge[[ARKIT_NAMES.index(n) for n in config.prior_exempt]] = 0.0
    return ridge


def _unconstrained_exp(rig: FaceRig, frontal: np.ndarray, identity: np.ndarray, depth_weight: float) -> np.ndarray:
    """Least-squares exp without bounds: (T, 468, 3) -> (T, 52)."""
    gram, _ = _normal_matrix(rig, depth_weight)
    return np.linalg.solve(gram, _weighted_rhs(rig, frontal, identity, depth_weight).T).T


def _shapes(rig: FaceRig, identity: np.ndarray, exp: np.ndarray) -> np.ndarray:
    """identity (468, 3) + basis . exp (T, 52) -> (T, 468, 3) float64."""
    return identity + (exp @ rig.basis.reshape(N_EXP, -1).astype(np.float64)).reshape(len(exp), -1, 3)


def _fit_pose_exp(
    rig: FaceRig, points: np.ndarray, identity: np.ndarray, config: FitConfig, ridge: float | np.ndarray = 0.0
) -> tuple[_Similarity, np.ndarray]:
    """Alternate pose and exp for known identity: points (T, 468, 3) -> (similarity, exp (T, 52))."""
    rigid = rigid_weights(rig)
    exp = np.zeros((len(points), N_EXP))
    sim = procrustes(identity, points, rigid)
    for it in range(config.pose_iters):
        if it > 0:
            sim = procrustes(_shapes(rig, identity, exp), points, rigid + ALL_VERTEX_WEIGHT)
        exp = _fit_exp(rig, sim.invert(points), identity, config, ridge)
    return sim, exp


def normalize_identity(identity: np.ndarray, rig: FaceRig | None = None) -> np.ndarray:
    """Similarity-align an identity mesh (468, 3) to the canonical face on the rigid vertices.

    Identities differing only by a similarity transform normalise to the same mesh; the canonical
    face is a fixed point.
    """
    rig = rig or default_rig()
    identity = np.asarray(identity, dtype=np.float64)
    sim = procrustes(identity, rig.neutral.astype(np.float64)[None], rigid_weights(rig))
    return sim.apply(identity)[0]


def frontal_shape(
    points: np.ndarray, rig: FaceRig | None = None, config: FitConfig | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """A photo's face shape and head pose: landmarks (1, 468, 3) crop pixels -> ((468, 3) cm, pose (6,)).

    The shape is the landmarks frontalised into canonical cm, expression included; posing it with the
    pose (``rig.FaceRig.pose_points``) gives the landmarks back (x, y exactly). The pose comes from the fit
    against the canonical face (``FitConfig.photo_prior`` on the expression)."""
    rig, config = rig or default_rig(), config or FitConfig()
    points = _check_landmarks(points)
    sim, _ = _fit_pose_exp(rig, points, rig.neutral.astype(np.float64), config, ridge=config.photo_prior)
    return sim.invert(points)[0], transform_to_pose(sim.scale, sim.rotation, sim.offset)[0]


def neutral_identity(shape: np.ndarray, rig: FaceRig | None = None) -> np.ndarray:
    """The neutral face (468, 3) of a face shape (468, 3) cm: the expression the reader sees in it removed.

    ``shape - basis . a``, with ``a`` in [0, 1] such that the reader reads the rig's neutral face as close
    to no expression as the fields allow (``readback.neutralize``), then its lips closed
    (``rig.close_lips``). A smiling photo's neutral face does not smile, and its lips meet. Blinks stay
    (a closed eye is rebuilt per identity, not subtracted)."""
    import torch

    from flowvq_cli.face.readback import load_iris_model, neutralize
    from flowvq_cli.face.reader import default_reader

    rig = rig or default_rig()
    iris_basis, iris_offset = load_iris_model()
    with torch.enable_grad():
        neutral, _ = neutralize(default_reader(), torch.from_numpy(np.asarray(shape, np.float32)),
                                torch.from_numpy(np.array(rig.basis)), iris_basis, iris_offset)
    return close_lips(neutral.numpy())


def estimate_identity(
    points: np.ndarray, rig: FaceRig | None = None, config: FitConfig | None = None
) -> np.ndarray:
    """Frontal neutral mesh (468, 3) float64 from landmarks (T, 468, 3) in crop pixels.

    One frame (a photo): :func:`neutral_identity` of its :func:`frontal_shape`. Several: the robust
    per-vertex estimate of the module docstring."""
    rig, config = rig or default_rig(), config or FitConfig()
    points = np.asarray(points, dtype=np.float64)
    identity = rig.neutral.astype(np.float64)
    if len(points) == 1:
        return neutral_identity(frontal_shape(points, rig, config)[0], rig)
    for _ in range(config.identity_rounds):
        sim, _ = _fit_pose_exp(rig, points, identity, config)
        frontal = sim.invert(points)
        u = _unconstrained_exp(rig, frontal, identity, config.depth_weight)  # (T, 52)
        rest = np.quantile(u, config.rest_quantile, axis=0)  # (52,)
        residual = np.median(frontal - _shapes(rig, np.zeros_like(identity), u), axis=0)
        identity = normalize_identity(residual + _shapes(rig, np.zeros_like(identity), rest[None])[0], rig)
    return identity


def _check_landmarks(landmarks: np.ndarray) -> np.ndarray:
    points = np.asarray(landmarks, dtype=np.float64)
    if points.ndim == 2:
        points = points[None]
    if points.ndim != 3 or points.shape[1:] != (canonical.N_VERTICES, 3):
        raise InputError(
            f"landmarks must have shape (T, {canonical.N_VERTICES}, 3) in crop pixels, got {points.shape}; "
            "pass MediaPipe FaceMesh landmarks (without the 10 iris points)"
        )
    if not np.isfinite(points).all():
        raise InputError("landmarks contain NaN or infinite values; drop frames where no face was found")
    return points


def fit_landmarks(
    landmarks: np.ndarray,
    identity: np.ndarray | None = None,
    config: FitConfig | None = None,
    rig: FaceRig | None = None,
) -> FitResult:
    """Fit coefficients to landmarks in aligned-crop pixels, all frames at once.

    Args:
        landmarks: (T, 468, 3) (or (468, 3)) crop pixels, MediaPipe's normalised landmarks × crop size.
        identity: (468, 3) frontal neutral mesh in canonical cm, or None to estimate it.
        config: fitting knobs (``FitConfig()`` by default).
        rig: the face model (by default ``rig.rig_for(identity)``: the shared basis with the identity's own
            blink fields, matching ``rig.synthesize``).
    Returns:
        ``FitResult`` with coeffs (T, 58), identity (468, 3) and the per-frame RMS residual.
    """
    config = config or FitConfig()
    points = _check_landmarks(landmarks)
    ridge = frame_ridge(config)
    if identity is None:
        identity = estimate_identity(points, rig, config)
        if len(points) == 1:
            # A photo split into identity + expression: that split already explains the photo exactly, so
            # a refit without prior returns its exp (a second prior would shrink the photo's smile again).
            ridge = np.zeros(N_EXP)
    identity = np.asarray(identity, dtype=np.float64)
    if identity.shape != (canonical.N_VERTICES, 3):
        raise InputError(f"identity must have shape ({canonical.N_VERTICES}, 3), got {identity.shape}")
    rig = rig or rig_for(identity)  # the identity's own blink fields, as synthesis uses
    sim, exp = _fit_pose_exp(rig, points, identity, config, ridge=ridge)
    coeffs = np.empty((len(points), N_COEFFS), dtype=np.float32)
    coeffs[:, EXP_SLICE] = exp
    coeffs[:, POSE_SLICE] = transform_to_pose(sim.scale, sim.rotation, sim.offset)
    model = sim.apply(_shapes(rig, identity, exp))
    rms = np.sqrt(((model - points) ** 2).sum(-1).mean(-1))
    return FitResult(coeffs=coeffs, identity=identity.astype(np.float32), rms_px=rms.astype(np.float32))
