"""All metrics of one clip from whatever arrays are at hand, and their aggregate over clips.

``flowvq evaluate`` decodes the videos, runs the detectors it has (landmarks, FID features) and
hands the arrays to :func:`clip_metrics`; a metric whose inputs are missing comes back
*unavailable* with the reason, so the table always shows every metric and never a made-up value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from flowvq_cli.errors import InputError
from flowvq_cli.eval.cpbd import cpbd
from flowvq_cli.eval.fid import FeatureExtractor, fid
from flowvq_cli.eval.image_metrics import psnr, ssim
from flowvq_cli.eval.landmark_metrics import f_lmd, m_lmd
from flowvq_cli.eval.motion import DEFAULT_FPS, detect_blinks, eye_aspect_ratio, landmark_jitter
from flowvq_cli.eval.report import MetricResult, summarize, unavailable
from flowvq_cli.eval.sharpness import sharpness_ratio
from flowvq_cli.eval.sync import av_sync, mouth_opening

NEEDS_GT = "needs ground-truth frames: give the ground-truth video"
NEEDS_LANDMARKS = "needs 68-point landmarks of the generated video: give a landmark detector"
NEEDS_GT_LANDMARKS = "needs 68-point landmarks of both the generated and the ground-truth video"
NEEDS_AUDIO = "needs the speech audio: give the audio the clip was generated from"
NEEDS_SOURCE = "needs the source photo: give the photo the clip was generated from"


@dataclass(frozen=True)
class ClipInputs:
    """Arrays describing one generated clip; everything but ``frames`` is optional.

    Attributes:
        frames: ``(T, H, W, 3)`` uint8 generated frames.
        gt_frames: ``(T, H, W, 3)`` uint8 ground-truth frames.
        source: ``(H', W', 3)`` uint8 source photo (or its aligned crop).
        landmarks: ``(T, 68, 2)`` landmarks of the generated frames.
        gt_landmarks: ``(T, 68, 2)`` landmarks of the ground-truth frames.
        audio_energy: ``(T,)`` audio energy per video frame (see ``sync.audio_energy_envelope``).
        fps: frame rate.
    """

    frames: np.ndarray
    gt_frames: np.ndarray | None = None
    source: np.ndarray | None = None
    landmarks: np.ndarray | None = None
    gt_landmarks: np.ndarray | None = None
    audio_energy: np.ndarray | None = None
    fps: float = DEFAULT_FPS


def _reference_metrics(clip: ClipInputs, extractor: FeatureExtractor | None) -> list[MetricResult]:
    if clip.gt_frames is None:
        return [unavailable(n, NEEDS_GT, u, hib) for n, u, hib in
                (("SSIM", "", True), ("PSNR", "dB", True), ("FID", "", False))]
    return [summarize("SSIM", ssim(clip.frames, clip.gt_frames), higher_is_better=True),
            summarize("PSNR", psnr(clip.frames, clip.gt_frames), "dB", higher_is_better=True),
            fid(clip.frames, clip.gt_frames, extractor)]


def _landmark_metrics(clip: ClipInputs) -> list[MetricResult]:
    if clip.landmarks is None or clip.gt_landmarks is None:
        return [unavailable("M-LMD", NEEDS_GT_LANDMARKS, "px", False),
                unavailable("F-LMD", NEEDS_GT_LANDMARKS, "px", False)]
    return [summarize("M-LMD", m_lmd(clip.landmarks, clip.gt_landmarks), "px", higher_is_better=False),
            summarize("F-LMD", f_lmd(clip.landmarks, clip.gt_landmarks), "px", higher_is_better=False)]


def _motion_metrics(clip: ClipInputs) -> list[MetricResult]:
    names = (("sync correlation", "", True), ("A/V offset", "frames", None),
             ("blink rate", "/min", None), ("jitter", "px/frame²", False))
    if clip.landmarks is None:
        return [unavailable(n, NEEDS_LANDMARKS, u, hib) for n, u, hib in names]
    out = []
    if clip.audio_energy is None:
        out += [unavailable(n, NEEDS_AUDIO, u, hib) for n, u, hib in names[:2]]
    else:
        sync = av_sync(mouth_opening(clip.landmarks), clip.audio_energy)
        out.append(summarize("sync correlation", [sync.correlation_at_zero], higher_is_better=True))
        offset = [np.nan] if sync.offset is None else [sync.offset]
        out.append(summarize("A/V offset", offset, "frames"))
    blinks = detect_blinks(eye_aspect_ratio(clip.landmarks), fps=clip.fps)
    out.append(summarize("blink rate", [blinks.rate_per_minute], "/min"))
    if clip.landmarks.shape[0] >= 3:
        out.append(summarize("jitter", landmark_jitter(clip.landmarks), "px/frame²", higher_is_better=False))
    else:
        out.append(unavailable("jitter", "needs at least 3 frames", "px/frame²", False))
    return out


def clip_metrics(clip: ClipInputs, fid_extractor: FeatureExtractor | None = None) -> list[MetricResult]:
    """Every metric of one clip, each summarised as mean ± std over its frames.

    Args:
        clip: the arrays available for the clip.
        fid_extractor: FID feature extractor (None → FID unavailable, "no Inception weights").

    Returns:
        Results in table order: SSIM, PSNR, FID, CPBD, sharpness ratio, M-LMD, F-LMD,
        sync correlation, A/V offset, blink rate, jitter.
    """
    ref = _reference_metrics(clip, fid_extractor)
    out = [*ref, summarize("CPBD", cpbd(clip.frames), higher_is_better=True)]
    if clip.source is None:
        out.append(unavailable("sharpness ratio", NEEDS_SOURCE))
    else:
        out.append(summarize("sharpness ratio", sharpness_ratio(clip.frames, clip.source)))
    return out + _landmark_metrics(clip) + _motion_metrics(clip)


def aggregate_clips(per_clip: Sequence[Sequence[MetricResult]]) -> list[MetricResult]:
    """Mean ± std over clips of each metric's per-clip mean (clips where it is unavailable skipped).

    Args:
        per_clip: one result list per clip, all in the same metric order (as :func:`clip_metrics`).

    Returns:
        One result per metric; unavailable (with the first clip's reason) where no clip has it.
    """
    out = []
    for column in zip(*per_clip, strict=True):
        first = column[0]
        if any(r.name != first.name for r in column):
            raise InputError(f"clips list metrics in different orders ({[r.name for r in column]}); "
                             "build every clip's results with clip_metrics")
        values = [r.value for r in column if r.available and r.value is not None]
        if not values:
            out.append(unavailable(first.name, first.reason or "not available", first.unit,
                                   first.higher_is_better))
            continue
        out.append(summarize(first.name, values, first.unit, first.higher_is_better))
    return out
