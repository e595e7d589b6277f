"""One synthetic clip's motion: speech + emotion → per-frame coefficients (T, 58) (``flowvq synth``).

Pipeline (every random draw comes from the caller's generator, in a fixed order, so the same seed
gives bit-identical arrays)::

    utterance.samples ─► energy envelope (T,) dB ─────────────────────┬──────────────► head pose (T, 6)
    utterance.phonemes ─► visemes.mouth_track (coarticulated, loudness) ─► emotion MouthStyle ─┐
    emotion, intensity ─► expression offset (+ slow drift) ──────────────────────────────────┼─► exp (T, 52)
                          blinks, gaze ───────────────────────────────────────────────────────┘
    lips-closed constraint re-applied last, so no expression offset can part the lips on /p b m/.

T = ``frames_for(duration, fps)`` (the same rounding as the audio features and the video writer).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flowvq_cli.audio.energy import energy_envelope
from flowvq_cli.audio.features import frames_for
from flowvq_cli.data import styles
from flowvq_cli.data.speech import Utterance
from flowvq_cli.data.visemes import apply_closure, arkit_index, mouth_track

POSE_ORDER = ("pitch", "yaw", "roll", "tx", "ty", "log_scale")
"""Column order of :func:`flowvq_cli.data.styles.head_track` (docs/design.md §2's pose layout)."""


@dataclass(frozen=True)
class ClipMotion:
    """Ground-truth motion of one synthetic clip.

    coeffs: (T, 58) float32 — exp[0:52] ARKit weights in [0, 1], pose[52:58].
    viseme_track: (T,) float32 — mouth opening (lip aperture) in [0, 1] after the emotion's jaw gain.
    blink_frames: (B, 2) int64 — [first, last + 1) frame of each blink.
    energy: (T,) float32 — speech energy envelope in dB (:func:`flowvq_cli.audio.energy.energy_envelope`).
    blinks: the blink events (times in seconds) the eyelid channels were made from.
    """

    coeffs: np.ndarray
    viseme_track: np.ndarray
    blink_frames: np.ndarray
    energy: np.ndarray
    blinks: tuple[styles.Blink, ...] = ()


def _pose_columns(pose: np.ndarray) -> np.ndarray:
    """Reorder (T, 6) pose columns from :data:`POSE_ORDER` to the rig's ``POSE_NAMES`` order."""
    from flowvq_cli.face.rig import POSE_NAMES

    return pose[:, [POSE_ORDER.index(name) for name in POSE_NAMES]]


def _with_blinks(exp: np.ndarray, eyelids: np.ndarray) -> np.ndarray:
    """Close the eyelids over the (T, 52) weights: blink = 1 − (1 − static)(1 − eyelid), per eye."""
    index = arkit_index()
    out = exp.copy()
    for column, name in enumerate(("eyeBlinkLeft", "eyeBlinkRight")):
        channel = index[name]
        out[:, channel] = 1.0 - (1.0 - out[:, channel]) * (1.0 - eyelids[:, column])
    return out


def _expression(utterance: Utterance, energy: np.ndarray, emotion: str, intensity: int, rng: np.random.Generator,
                fps: float) -> tuple[np.ndarray, np.ndarray, list[styles.Blink], np.ndarray]:
    """(T, 52) weights (not yet clipped), (T,) opening, blink events, (T, 2) eyelid closure."""
    n_frames = energy.size
    mouth = mouth_track(utterance.phonemes, n_frames, fps, energy)
    speech, jaw_gain = styles.modulate_mouth(mouth.weights, emotion, intensity)
    exp = speech + styles.expression_track(n_frames, fps, emotion, intensity, rng)
    exp, opening = apply_closure(exp, np.clip(mouth.opening * jaw_gain, 0.0, 1.0), mouth.closure)
    blinks = styles.sample_blinks(utterance.duration, emotion, rng)
    eyelids = styles.blink_track(n_frames, fps, blinks)
    exp = _with_blinks(np.clip(exp, 0.0, 1.0), eyelids)
    exp = exp + styles.gaze_weights(styles.gaze_track(n_frames, fps, emotion, rng))
    return exp, opening, blinks, eyelids


def make_clip_motion(
    utterance: Utterance, emotion: str, intensity: int, rng: np.random.Generator, fps: float = 25.0
) -> ClipMotion:
    """Per-frame coefficients for one synthetic clip.

    Args:
        utterance: the speech (audio and phoneme timings), e.g. from :func:`flowvq_cli.data.speech.synthesize`.
        emotion: one of :data:`flowvq_cli.data.manifest.EMOTIONS`.
        intensity: MEAD level 1, 2 or 3.
        rng: the clip's generator; the result is a deterministic function of its state.
        fps: video frame rate.
    """
    styles.check_style(emotion, intensity)
    n_frames = frames_for(utterance.duration, fps)
    energy = energy_envelope(utterance.samples, utterance.sample_rate, n_frames, fps)  # (T,) dB
    exp, opening, blinks, eyelids = _expression(utterance, energy, emotion, intensity, rng, fps)
    pose = _pose_columns(styles.head_track(energy, fps, emotion, intensity, rng))  # (T, 6)
    coeffs = np.concatenate([np.clip(exp, 0.0, 1.0), pose], axis=1).astype(np.float32)  # (T, 58)
    return ClipMotion(coeffs, opening.astype(np.float32), styles.blink_frame_ranges(eyelids),
                      energy.astype(np.float32), tuple(blinks))
