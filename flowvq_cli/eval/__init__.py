"""Evaluation metrics of ``flowvq evaluate`` (paper Table 1 and the diversity study), as a library.

Every function takes arrays, never files: frames ``(T, H, W, 3) uint8`` RGB, 68-point landmarks
``(T, 68, 2)``, per-frame tracks ``(T,)``, seed samples ``(K, T, D)``. Detectors and networks
(landmarks, face embeddings, emotion classifier, FID features) are plugged in by the caller.

- :mod:`.image_metrics` — SSIM, PSNR
- :mod:`.cpbd` — CPBD no-reference sharpness
- :mod:`.sharpness` — variance-of-Laplacian sharpness and its output/source ratio
- :mod:`.landmark_metrics` — M-LMD, F-LMD
- :mod:`.sync` — mouth opening vs. audio energy correlation and A/V offset (SyncNet substitute)
- :mod:`.phone_sync` — phone-level lip sync: p/b/m closure, vowel openness correlation, rounding on uw/ow/w
- :mod:`.phones` — the speech's ARPAbet phones from pocketsphinx (optional; aligned to text, or recognised)
- :mod:`.motion` — blinks, landmark jitter, pose / expression diversity across seeds
- :mod:`.fid` — Fréchet distance, FID with an injected feature extractor
- :mod:`.report` — :class:`MetricResult`, mean ± std summaries, table rows, JSON
- :mod:`.suite` — every metric of one clip from the arrays at hand; aggregation over clips
- :mod:`.run` — ``flowvq evaluate``: videos in, :class:`~.run.EvalReport` out (``evaluate``)
- :mod:`.dlib_models`, :mod:`.emotion` — optional dlib landmarks / embeddings and the FER classifier
- :mod:`.plots` — diagnostic PNGs

``evaluate``, ``EvalReport``, ``ClipReport``, ``ClipTracks`` and ``write_plots`` are imported on first
use (they pull in torch and matplotlib).
"""

from typing import Any

from flowvq_cli.eval.cpbd import cpbd, cpbd_image
from flowvq_cli.eval.fid import FeatureExtractor, fid, frechet_distance, gaussian_fit
from flowvq_cli.eval.image_metrics import psnr, ssim, ssim_image
from flowvq_cli.eval.landmark_metrics import f_lmd, lmd_per_frame, m_lmd
from flowvq_cli.eval.motion import (
    BlinkResult,
    blink_openness,
    detect_blinks,
    expression_spread,
    eye_aspect_ratio,
    landmark_jitter,
    pose_trace_variance,
)
from flowvq_cli.eval.report import (
    MetricResult,
    results_from_json,
    results_to_json,
    summarize,
    summary_rows,
    unavailable,
)
from flowvq_cli.eval.sharpness import laplacian_variance, sharpness_ratio
from flowvq_cli.eval.suite import ClipInputs, aggregate_clips, clip_metrics
from flowvq_cli.eval.sync import SyncResult, audio_energy_envelope, av_sync, mouth_opening

_LAZY = {"evaluate": "run", "EvalReport": "run", "ClipReport": "run", "ClipTracks": "plots",
         "write_plots": "plots"}


def __getattr__(name: str) -> Any:
    """Import the heavy entry points (:mod:`.run`, :mod:`.plots`) only when asked for."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"flowvq_cli.eval.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BlinkResult",
    "ClipInputs",
    "ClipReport",
    "ClipTracks",
    "EvalReport",
    "FeatureExtractor",
    "MetricResult",
    "SyncResult",
    "aggregate_clips",
    "audio_energy_envelope",
    "av_sync",
    "blink_openness",
    "clip_metrics",
    "cpbd",
    "cpbd_image",
    "detect_blinks",
    "evaluate",
    "expression_spread",
    "eye_aspect_ratio",
    "f_lmd",
    "fid",
    "frechet_distance",
    "gaussian_fit",
    "landmark_jitter",
    "laplacian_variance",
    "lmd_per_frame",
    "m_lmd",
    "mouth_opening",
    "pose_trace_variance",
    "psnr",
    "results_from_json",
    "results_to_json",
    "sharpness_ratio",
    "ssim",
    "ssim_image",
    "summarize",
    "summary_rows",
    "unavailable",
    "write_plots",
]
