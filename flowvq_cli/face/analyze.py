"""Photo/video → per-frame FlowVQ coefficients (the library side of ``flowvq analyze``).

One pipeline for both kinds of input: MediaPipe landmarks in image pixels → similarity alignment to
the 256² crop template → landmarks in crop pixels → face-model fit (pose + 52 ARKit blendshapes, and
the subject's neutral identity mesh) → eyeBlink rescaled by MediaPipe's lid gain (:func:`calibrate_lids`).
A photo is one frame; a video is tracked frame by frame and its identity is estimated robustly over all
frames.

Frames. The fit poses the head in the aligned crop, which turns with the head, and the renderers and flows
work in that crop (``Analysis.coeffs``). ``analyze``'s outputs (``save_npz``, ``save_csv``, ``summarize``)
report the pose in the image instead (``Analysis.image_pose``, ``export.image_pose``): a photo turned 20°
counter-clockwise reads a roll 20° larger.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flowvq_cli.errors import FaceNotFoundError, InputError
from flowvq_cli.face import align, export, rig
from flowvq_cli.face.fit import fit_landmarks, frontal_shape, neutral_identity
from flowvq_cli.fsutil import check_input_file

N_MESH = 468  # FaceMesh vertices the face model uses (the 10 iris points are not part of it)
LID_GAIN = 0.48
"""How far MediaPipe's eyelid landmarks follow a closing eye: on frames whose eyes the mesh-warp renderer
closes completely, the fit reads eyeBlink ≈ 0.45 (MediaPipe's lid points never meet): the slope of
the reading on the true value is 0.46 in video and 0.50 in photo mode with the calibrated fields (0.60 /
0.59 with the procedural ones, whose smaller eyeSquint took less of the closing). Measured by
``python benchmarks/lid_gain.py``; :func:`calibrate_lids` divides the fitted eyeBlink by it."""
BLINK_INDICES = (rig.ARKIT_NAMES.index("eyeBlinkLeft"), rig.ARKIT_NAMES.index("eyeBlinkRight"))
OVERLAY_COLOR = (40, 255, 120)  # RGB of the drawn mesh edges


@dataclass(frozen=True)
class Analysis:
    """What ``analyze`` found in one input.

    coeffs: (T, 58) float32 — exp[0:52] ARKit weights, pose[52:58] (pitch, yaw, roll, tx, ty, log_scale)
        in the crop of ``crop_matrix``: the frame the renderers and flows work in. The outputs report
        :attr:`image_pose` instead (:attr:`image_coeffs`).
    identity: (468, 3) float32 — the subject's frontalised neutral mesh (canonical units).
    landmarks: (T, 478, 3) float32 — MediaPipe landmarks in image pixels (NaN where the face was lost).
    crop_matrix: (T, 2, 3) float32 — similarity image → 256² crop, per frame; ``coeffs``' poses are in this
        crop. A video's frames share one crop (the clip's median alignment), so its pose track is the head's
        motion.
    valid: (T,) bool — frames where a face was tracked (others hold the nearest valid frame's fit).
    shape: (468, 3) float32 or None — a source photo's own face shape, expression included (canonical cm);
        posed with the photo's pose it gives its landmarks back. Renderers warp the photo from it.

    A photo analysed on its own (no ``identity`` given) is read by the expression reader: ``exp`` is
    Blendshape V2's reading of its landmarks (``reader``), the pose that of its frontalised shape, and the
    identity that shape made neutral (``fit.neutral_identity``: the expression the reader sees removed, the
    lips closed). A video, or a photo read against a given identity, is fitted (``fit.fit_landmarks``).
    """

    source: Path
    kind: str  # "image" or "video"
    coeffs: np.ndarray
    identity: np.ndarray
    landmarks: np.ndarray
    crop_matrix: np.ndarray
    valid: np.ndarray
    fps: float
    image_size: tuple[int, int]  # (width, height)
    shape: np.ndarray | None = None

    @property
    def image_pose(self) -> np.ndarray:
        """(T, 6) float32 — the head's pose in the image (``export.image_pose``): pitch, yaw, roll (radians)
        about the image's axes, roll > 0 turning the head counter-clockwise on screen; tx, ty the head's
        position in half image widths from the image's centre (x right, y down); log_scale 0 when the eyes
        are ``rig.REFERENCE_EYE_DISTANCE`` image widths apart."""
        return export.image_pose(self.coeffs[:, rig.N_EXP :], self.crop_matrix, self.image_size).astype(np.float32)

    @property
    def image_coeffs(self) -> np.ndarray:
        """(T, 58) float32 — ``coeffs`` with the pose in the image (:attr:`image_pose`): what the outputs hold."""
        out = np.array(self.coeffs, np.float32, copy=True)
        out[:, rig.N_EXP :] = self.image_pose
        return out


def load_identity(path: str | Path) -> np.ndarray:
    """A neutral mesh (468, 3) from an ``.npz`` written by ``--out`` or a plain ``.npy``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} does not exist; pass an .npz from `flowvq analyze --out` or a (468, 3) .npy")
    try:
        if path.suffix.lower() == ".npz":
            with np.load(path, allow_pickle=False) as data:
                mesh = np.asarray(data["identity"], np.float32)
        else:
            mesh = np.asarray(np.load(path, allow_pickle=False), np.float32)
    except (KeyError, ValueError, OSError) as exc:
        raise InputError(f"{path} holds no identity mesh ({exc}); pass an .npz from `flowvq analyze --out`") from None
    if mesh.shape != (N_MESH, 3):
        raise InputError(f"{path}: identity must be ({N_MESH}, 3), got {mesh.shape}")
    return mesh


def check_outputs(paths: list[Path], *, force: bool) -> None:
    """Fail before any work if an output exists (without ``force``) or its folder is unusable."""
    for p in paths:
        export.check_output(Path(p), force=force)


def analyze(path: str | Path, *, face_index: int = 0, progress: bool = False,
            identity: np.ndarray | None = None) -> Analysis:
    """Analyse a photo or a video file (decided by its content/extension); ``identity`` (468, 3) fixes
    the neutral mesh instead of estimating it."""
    from flowvq_cli.video import is_video

    path = check_input_file(path, "photo or video", "pass a photo or a video file")
    if is_video(path):
        return analyze_video(path, face_index=face_index, progress=progress, identity=identity)
    return analyze_image(path, face_index=face_index, identity=identity)


def calibrate_lids(coeffs: np.ndarray, gain: float = LID_GAIN) -> np.ndarray:
    """Fitted coefficients (T, 58) with eyeBlink divided by MediaPipe's lid gain (clipped to 1), so a
    closed eye reads ≈ 1 as the face model means it (and as the renderers close it). A copy."""
    out = np.array(coeffs, copy=True)
    idx = list(BLINK_INDICES)
    out[:, idx] = np.clip(out[:, idx] / gain, 0.0, 1.0)
    return out


def analyze_image(path: str | Path, *, face_index: int = 0, identity: np.ndarray | None = None) -> Analysis:
    """Analyse one photo file: landmarks → crop → fit (identity from the photo itself unless given)."""
    from flowvq_cli.image import load_image

    path = Path(path)
    return analyze_rgb(load_image(path), source=path, face_index=face_index, identity=identity)


def analyze_rgb(rgb: np.ndarray, *, source: str | Path = "the photo", face_index: int = 0,
                identity: np.ndarray | None = None, calibrate: bool = True) -> Analysis:
    """Analyse one RGB image (H, W, 3) uint8 already in memory; ``source`` names it in messages.
    ``calibrate=False`` keeps the raw fitted eyeBlink (see :func:`calibrate_lids`)."""
    lm, alignment, crop_lm = _crop_landmarks(rgb, str(source), face_index)
    h, w = rgb.shape[:2]
    common = dict(source=Path(source), kind="image", landmarks=lm[None].astype(np.float32),
                  crop_matrix=alignment.matrix[None].astype(np.float32), valid=np.ones(1, bool), fps=0.0,
                  image_size=(w, h))
    if identity is None:  # a source photo: read by the reader, its neutral face from its own shape
        from flowvq_cli.face.reader import read_blendshapes

        shape, pose = frontal_shape(crop_lm[None])
        coeffs = np.concatenate([read_blendshapes(lm)[0], pose])[None].astype(np.float32)
        return Analysis(coeffs=coeffs, identity=neutral_identity(shape).astype(np.float32),
                        shape=shape.astype(np.float32), **common)
    fit = fit_landmarks(crop_lm[None], identity=identity)
    coeffs = (calibrate_lids(fit.coeffs) if calibrate else fit.coeffs).astype(np.float32)
    return Analysis(coeffs=coeffs, identity=fit.identity, **common)


def photo_shape(path: str | Path, rig_: rig.FaceRig | None = None) -> np.ndarray:
    """A photo's face shape as it is, expression included: landmarks frontalised into canonical cm (468, 3)
    (``fit.frontal_shape``; the pose fitted with ``rig_``, by default the shared rig)."""
    from flowvq_cli.image import load_image

    crop_lm = _crop_landmarks(load_image(Path(path)), str(path))[2]
    return frontal_shape(crop_lm[None], rig_)[0]


def _crop_landmarks(rgb: np.ndarray, source: str, face_index: int = 0):
    """One face of an RGB image: its landmarks (478, 3) image pixels, its crop alignment, and its 468 mesh
    landmarks in crop pixels."""
    from flowvq_cli.face.detect import landmarks_image

    lm = landmarks_image(rgb, face_index=face_index, source=source).points  # (478, 3)
    alignment = align.estimate_alignment(lm)
    return lm, alignment, align.transform_landmarks(lm[:N_MESH], alignment)  # (468, 3) crop pixels


def analyze_video(path: str | Path, *, face_index: int = 0, progress: bool = False,
                  identity: np.ndarray | None = None, calibrate: bool = True) -> Analysis:
    """Analyse a video: tracked landmarks per frame, smoothed crops, identity estimated over frames
    (or the given ``identity`` (468, 3), e.g. from a neutral photo of the same person).
    ``calibrate=False`` keeps the raw fitted eyeBlink (see :func:`calibrate_lids`)."""
    from flowvq_cli.face.detect import VideoLandmarker
    from flowvq_cli.video import iter_frames, probe_video

    path = Path(path)
    info = probe_video(path)
    frames = _progress(iter_frames(path), info.n_frames, "analysing", enabled=progress)
    with VideoLandmarker(face_index=face_index, source=str(path)) as tracker:
        tracked = [tracker.process(f) for f in frames]
    if not tracked:
        raise InputError(f"{path} has no video frames; pass a video that plays")
    lms = np.stack([r.points for r in tracked]).astype(np.float32)  # (T, 478, 3)
    valid = np.array([r.found for r in tracked])
    if not valid.any():
        raise FaceNotFoundError(
            f"no face found in any frame of {path}; pass a video with one clearly visible, roughly frontal face"
        )
    alignments = align.video_alignments(lms, valid, mode="smooth")
    crop_lm = np.stack([align.transform_landmarks(lm[:N_MESH], a) for lm, a in zip(lms, alignments, strict=True)])
    fit = fit_landmarks(crop_lm[valid], identity=identity)
    # Fitted in crops that follow the head (best for the fit); reported in one crop for the whole clip, so
    # the pose track holds the head's motion through the clip (as a generated video's does).
    clip_crop = align.fixed_alignment([a for a, ok in zip(alignments, valid, strict=True) if ok])
    per_frame = np.stack([a.matrix for a in alignments])[valid]
    fit.coeffs[:, rig.N_EXP :] = rig.rebase_pose(fit.coeffs[:, rig.N_EXP :], per_frame, clip_crop.matrix)
    coeffs = _fill_invalid(calibrate_lids(fit.coeffs) if calibrate else fit.coeffs, valid)
    return Analysis(
        source=path, kind="video", coeffs=coeffs.astype(np.float32), identity=fit.identity,
        landmarks=lms, crop_matrix=np.repeat(clip_crop.matrix[None], len(lms), axis=0).astype(np.float32),
        valid=valid, fps=float(info.fps), image_size=(info.width, info.height),
    )


def _fill_invalid(coeffs_valid: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Spread the fits of valid frames over all T frames: each lost frame takes its nearest valid one."""
    idx_valid = np.flatnonzero(valid)
    nearest = np.abs(np.arange(len(valid))[:, None] - idx_valid[None, :]).argmin(axis=1)  # (T,)
    return coeffs_valid[nearest]


def _progress(it: Iterator, total: int | None, label: str, *, enabled: bool) -> Iterator:
    if not enabled:
        yield from it
        return
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task(label, total=total or None)
        for item in it:
            yield item
            bar.advance(task)


# ---------------------------------------------------------------------------------------------- outputs


def save_npz(a: Analysis, path: str | Path, *, force: bool = False) -> None:
    """Coefficients (T, 58) with the pose in the image (``pose_frame`` "image"), identity (468, 3),
    landmarks, crop transforms (``export.crop_pose`` takes the poses back to the crop), fps, image size and
    the layout version."""
    export.write_coeffs_npz(path, a.image_coeffs, fps=a.fps, identity=a.identity, force=force, pose_frame="image",
                            landmarks=a.landmarks, crop_matrix=a.crop_matrix, valid=a.valid,
                            image_size=np.asarray(a.image_size, np.int32))


def save_csv(a: Analysis, path: str | Path, *, force: bool = False) -> None:
    """One row per frame in Live Link Face's column order (see :func:`export.write_live_link_csv`); the head
    rotations are the head's in the image (:attr:`Analysis.image_pose`)."""
    export.write_live_link_csv(path, a.image_coeffs, fps=a.fps if a.fps > 0 else export.DEFAULT_FPS, force=force)


def fitted_mesh_image(a: Analysis, t: int) -> np.ndarray:
    """The fitted model mesh of frame ``t`` in image pixels: (468, 2)."""
    crop_pts = rig.synthesize(a.identity, a.coeffs[t : t + 1])[0]  # (468, 3) crop pixels
    m = np.vstack([a.crop_matrix[t].astype(np.float64), [0.0, 0.0, 1.0]])
    inv = np.linalg.inv(m)[:2]  # (2, 3) crop → image
    return crop_pts[:, :2] @ inv[:, :2].T + inv[:, 2]


def draw_mesh(rgb: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Draw the mesh's triangle edges (and vertices) on a copy of ``rgb`` (H, W, 3) uint8."""
    import cv2

    from flowvq_cli.face.canonical import load_canonical

    tris = load_canonical().triangles  # (898, 3)
    out = np.ascontiguousarray(rgb.copy())
    scale = max(1, round(max(out.shape[:2]) / 512))
    poly = np.round(pts[tris][:, :, :2] * 16).astype(np.int32)  # 4 fractional bits for sub-pixel lines
    cv2.polylines(out, list(poly), isClosed=True, color=OVERLAY_COLOR, thickness=scale, lineType=cv2.LINE_AA,
                  shift=4)
    return out


def save_overlay(a: Analysis, path: str | Path, *, force: bool = False, progress: bool = False) -> None:
    """PNG with the fitted mesh for a photo; MP4 (same fps, original audio) for a video."""
    path = Path(path)
    if a.kind == "image":
        from flowvq_cli.image import load_image, save_image

        check_outputs([path], force=force)
        drawn = draw_mesh(load_image(a.source), fitted_mesh_image(a, 0))
        save_image(path, drawn, force=True)  # itself atomic (temp file + rename)
        return
    from flowvq_cli.video import VideoWriter, iter_frames, probe_video

    check_outputs([path], force=force)
    info = probe_video(a.source)
    w, h = a.image_size
    frames = _progress(iter_frames(a.source), len(a.coeffs), "overlay", enabled=progress)
    audio = a.source if info.has_audio else None
    with VideoWriter(path, fps=a.fps, size=(w, h), audio_path=audio, force=force) as writer:
        for t, frame in enumerate(frames):
            if t >= len(a.coeffs):
                break
            writer.write(draw_mesh(frame, fitted_mesh_image(a, t)) if a.valid[t] else frame)


# ---------------------------------------------------------------------------------------------- summary


def summarize(a: Analysis, *, top: int = 5) -> dict:
    """A JSON-ready summary: the pose in the image (:attr:`Analysis.image_pose`; angles in degrees, mean /
    min / max over frames; translation and scale means) and the strongest blendshapes."""
    exp = a.coeffs[:, : rig.N_EXP]
    pose = a.image_pose
    angles = {}
    for i, name in enumerate(rig.POSE_NAMES[:3]):
        deg = np.degrees(pose[:, i])
        angles[name] = {"mean": round(float(deg.mean()), 2), "min": round(float(deg.min()), 2),
                        "max": round(float(deg.max()), 2)}
    mean_exp = exp.mean(axis=0)
    order = np.argsort(-mean_exp)[:top]
    return {
        "input": str(a.source),
        "kind": a.kind,
        "frames": len(a.coeffs),
        "frames_with_face": int(a.valid.sum()),
        "fps": a.fps if a.kind == "video" else None,
        "image_size": list(a.image_size),
        "pose_frame": "image",
        "pose_degrees": angles,
        "translation_scale": {n: round(float(pose[:, i].mean()), 4) for i, n in enumerate(rig.POSE_NAMES[3:], 3)},
        "top_blendshapes": {rig.ARKIT_NAMES[i]: round(float(mean_exp[i]), 3) for i in order},
        "coeff_layout_version": rig.COEFF_LAYOUT_VERSION,
    }


def format_summary(s: dict) -> str:
    """Human-readable lines for stdout."""
    lines = [f"{s['input']}: {s['kind']}, {s['frames']} frame(s)"
             + (f" at {s['fps']:.2f} fps, face in {s['frames_with_face']}" if s["kind"] == "video" else "")]
    pose = s["pose_degrees"]
    if s["frames"] == 1:
        lines.append("pose in the image: " + ", ".join(f"{k} {v['mean']:+.1f}°" for k, v in pose.items()))
    else:
        lines.append("pose in the image (mean [min, max]): "
                     + ", ".join(f"{k} {v['mean']:+.1f}° [{v['min']:+.1f}, {v['max']:+.1f}]" for k, v in pose.items()))
    lines.append("strongest blendshapes: " + ", ".join(f"{k} {v:.2f}" for k, v in s["top_blendshapes"].items()))
    for kind, p in s.get("outputs", {}).items():
        lines.append(f"wrote {kind}: {p}")
    return "\n".join(lines)
