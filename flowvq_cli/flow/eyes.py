"""Eye motion of a generated video: blinks topped up to a natural rate, gaze from the fixation model
(``--eyes auto``, the default), or ExpFlow's samples untouched (``--eyes model``).

Blinks and gaze are random events, not functions of the audio, and on the shipped weights ExpFlow
samples both badly (``python benchmarks/eye_motion.py``):

- **Blinks** are rare, tail-of-the-prior latents: the sampled tracks of the two example pairs hold 9 and
  4 blinks per minute (10 seeds × 5 emotions), against the corpus's 10–16, and most 5-s happy, sad or
  surprised samples hold none. "No blinks" is a top complaint about talking-face tools.
- **Gaze drifts.** Frame-by-frame autoregressive sampling walks the eyeLook* channels to an emotion's
  extreme and holds it: happy samples look up (eyeLookUp ≈ 0.8 for the whole clip, even at temperature 0),
  neutral and sad ones look down, where the corpus's happy clips average 0.09 (sd 0.2 of fixations). The
  rolled-up eyes also change how the whole face reads: with them MediaPipe reads a happy video of the
  smiling astronaut as *less* smiling than the neutral one.

So by default:

- the sampled blinks are kept, and blink events drawn by :func:`~flowvq_cli.data.styles.sample_blinks` at
  the emotion's corpus rate (:data:`~flowvq_cli.data.styles.BLINK_RATE_PER_MIN`) are added, except where a
  sampled blink (a run of eyeBlink > :data:`SAMPLED_THRESHOLD`) starts within half the emotion's mean gap;
  an added blink raises eyeBlink to its profile (a maximum: the flow's own lids are never opened);
- the eyeLook* channels are replaced by :func:`~flowvq_cli.data.styles.gaze_track`, the corpus's own
  fixation-and-saccade model for that emotion (sad looks down, fear's gaze moves more, ...).

Both come from ``default_rng((seed, stream))``: same seed, same eyes. Everything else is the flow's.
"""

from __future__ import annotations

import numpy as np

from flowvq_cli.data.styles import (
    BLINK_RATE_PER_MIN,
    blink_frame_ranges,
    blink_track,
    gaze_track,
    gaze_weights,
    sample_blinks,
)
from flowvq_cli.errors import UsageError
from flowvq_cli.face import rig

EYE_MODES = ("auto", "model")
SAMPLED_THRESHOLD = 0.5
"""eyeBlink above which a sampled frame belongs to a blink (half closed)."""
BLINK_STREAM, GAZE_STREAM = 31, 32
"""Second keys of the random streams (independent of the flows' torch generator)."""
EYE_INDICES = (rig.ARKIT_NAMES.index("eyeBlinkLeft"), rig.ARKIT_NAMES.index("eyeBlinkRight"))
GAZE_INDICES = tuple(i for i, name in enumerate(rig.ARKIT_NAMES) if name.startswith("eyeLook"))


def check_eyes(mode: str) -> str:
    if mode not in EYE_MODES:
        raise UsageError(f"unknown --eyes {mode!r}; choose auto (blinks topped up to a natural rate, gaze from the "
                         "fixation model) or model (ExpFlow's samples only)")
    return mode


def _label(emotion: str) -> str:
    return emotion if emotion in BLINK_RATE_PER_MIN else "neutral"


def top_up_blinks(exp: np.ndarray, fps: float, emotion: str, seed: int) -> np.ndarray:
    """Expression coefficients (T, ≥52) in ARKit order, in [0, 1] → a float32 copy whose eyeBlink columns
    are at least the profiles of the blinks added where the sampled ones are missing (module docstring).
    ``emotion`` picks the natural rate (a label without one uses neutral's)."""
    n = len(exp)
    eyes = list(EYE_INDICES)
    label = _label(emotion)
    sampled_starts = blink_frame_ranges(exp[:, eyes], SAMPLED_THRESHOLD)[:, 0] / fps  # (B,) seconds
    events = sample_blinks(n / fps, label, np.random.default_rng((seed, BLINK_STREAM)))
    half_gap = 30.0 / BLINK_RATE_PER_MIN[label]
    added = [b for b in events if not np.any(np.abs(sampled_starts - b.start) < half_gap)]
    out = np.array(exp, dtype=np.float32)
    if added:
        out[:, eyes] = np.maximum(out[:, eyes], blink_track(n, fps, added))
    return out


def fixation_gaze(exp: np.ndarray, fps: float, emotion: str, seed: int) -> np.ndarray:
    """A float32 copy of ``exp`` (T, ≥52) whose eyeLook* columns follow the corpus's fixation model."""
    out = np.array(exp, dtype=np.float32)
    gaze = gaze_track(len(exp), fps, _label(emotion), np.random.default_rng((seed, GAZE_STREAM)))
    out[:, list(GAZE_INDICES)] = gaze_weights(gaze)[:, list(GAZE_INDICES)]
    return out


def eye_motion(exp: np.ndarray, fps: float, emotion: str, seed: int, mode: str = "auto") -> np.ndarray:
    """``--eyes``: ``auto`` → :func:`fixation_gaze` and :func:`top_up_blinks`; ``model`` → ``exp`` unchanged."""
    if check_eyes(mode) == "model":
        return exp
    return top_up_blinks(fixation_gaze(exp, fps, emotion, seed), fps, emotion, seed)
