"""Emotion styles of the procedural corpus: expressions, speech modulation, blinks, gaze, head motion.

For each of the 9 classes (:data:`flowvq_cli.data.manifest.EMOTIONS`) at MEAD's 3 intensities:

- a static ARKit expression offset (:data:`EXPRESSIONS`, full-intensity weights) scaled by
  :data:`INTENSITY_SCALE`, varied per clip (log-normal weight jitter, random side for the one-sided
  contempt) and slowly over time (:func:`expression_track`); ``talk`` draws a mild random mix;
- a modulation of the speech mouth track (:data:`MOUTH_STYLES`: jaw range, lip spread, rounding, press);
- espeak parameters (:func:`voice_params`: rate, pitch, volume, pitch range);
- blinks (:func:`sample_blinks`, :func:`blink_track`): a renewal process at an emotion-dependent rate
  (:data:`BLINK_RATE_PER_MIN`), 150–400 ms each, fast close, short hold, slower open, right eye a few
  ms behind the left;
- gaze (:func:`gaze_track`): fixations joined by quick saccades, mapped to the eyeLook* channels;
- head pose (:func:`head_track`): a smooth random process (two cascaded Ornstein–Uhlenbeck / AR(1)
  filters per axis) plus nods on the peaks of the speech energy envelope, emotion-dependent gain,
  soft-limited to :data:`HEAD_LIMIT_DEG`.

Pose convention (docs/design.md §2): pitch, yaw, roll in radians, tx, ty in face-crop units, log-scale. A nod
is a positive pitch pulse (this module only assumes pitch is the nodding axis; its sign is symmetric
enough not to matter for training data).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import find_peaks, lfilter

from flowvq_cli.data.visemes import arkit_index, frame_times, weight_vector
from flowvq_cli.labels import check_emotion

INTENSITY_SCALE = {1: 0.45, 2: 0.78, 3: 1.0}
"""MEAD intensity level → scale of the expression offset and of every emotion-specific modulation: an
emotion's key blendshapes (0.9 in :data:`EXPRESSIONS`) reach about 0.4 / 0.7 / 0.9 at intensities 1 / 2 / 3."""

EXPRESSIONS: dict[str, dict[str, float]] = {
    # FACS-like prototypes (EMFACS action units → ARKit; docs/face-model.md, "Emotion prototypes"), in the
    # face model's units (face model 2: 1.0 is what the expression reader reads as 1.0 on a real face).
    # AU4 brow lowerer + AU7 lid tightener + AU23/24 lip tightener/presser (+ AU9 a little)
    "angry": {"browDownLeft": 0.9, "browDownRight": 0.9, "eyeSquintLeft": 0.5, "eyeSquintRight": 0.5,
              "mouthPressLeft": 0.5, "mouthPressRight": 0.5, "noseSneerLeft": 0.4, "noseSneerRight": 0.4,
              "mouthFrownLeft": 0.3, "mouthFrownRight": 0.3, "jawForward": 0.1},
    # unilateral AU14 dimpler + AU12 lip corner puller
    "contempt": {"mouthDimpleLeft": 0.9, "mouthSmileLeft": 0.55, "mouthLeft": 0.2, "eyeSquintLeft": 0.2,
                 "browDownRight": 0.1, "mouthPressRight": 0.2},
    # AU9 nose wrinkler + AU10 upper lip raiser + AU15 + AU16/17, AU4
    "disgusted": {"noseSneerLeft": 0.9, "noseSneerRight": 0.9, "mouthUpperUpLeft": 0.7,
                  "mouthUpperUpRight": 0.7, "browDownLeft": 0.45, "browDownRight": 0.45, "eyeSquintLeft": 0.4,
                  "eyeSquintRight": 0.4, "mouthFrownLeft": 0.35, "mouthFrownRight": 0.35, "mouthShrugUpper": 0.3,
                  "cheekSquintLeft": 0.3, "cheekSquintRight": 0.3, "mouthLowerDownLeft": 0.2,
                  "mouthLowerDownRight": 0.2},
    # AU1+2+4 brows + AU5 upper lid raiser + AU20 lip stretcher + AU26 jaw drop
    "fear": {"browInnerUp": 0.9, "browOuterUpLeft": 0.5, "browOuterUpRight": 0.5, "browDownLeft": 0.25,
             "browDownRight": 0.25, "eyeWideLeft": 0.8, "eyeWideRight": 0.8, "mouthStretchLeft": 0.7,
             "mouthStretchRight": 0.7, "mouthFrownLeft": 0.15, "mouthFrownRight": 0.15, "jawOpen": 0.12},
    # AU6 cheek raiser + AU12 lip corner puller (Duchenne smile), upper lip lifted a little
    "happy": {"mouthSmileLeft": 0.9, "mouthSmileRight": 0.9, "cheekSquintLeft": 0.7, "cheekSquintRight": 0.7,
              "eyeSquintLeft": 0.4, "eyeSquintRight": 0.4, "mouthDimpleLeft": 0.25, "mouthDimpleRight": 0.25,
              "mouthUpperUpLeft": 0.15, "mouthUpperUpRight": 0.15, "browOuterUpLeft": 0.1,
              "browOuterUpRight": 0.1},
    "neutral": {},
    # AU1 inner brow raiser + AU4 + AU15 lip corner depressor + AU17 chin raiser, gaze down
    "sad": {"browInnerUp": 0.9, "mouthFrownLeft": 0.8, "mouthFrownRight": 0.8, "browDownLeft": 0.2,
            "browDownRight": 0.2, "mouthShrugLower": 0.4, "eyeLookDownLeft": 0.15, "eyeLookDownRight": 0.15,
            "mouthPressLeft": 0.15, "mouthPressRight": 0.15},
    # AU1+2 brows raised + AU5 upper lid raiser + AU26 jaw drop
    "surprised": {"browOuterUpLeft": 0.9, "browOuterUpRight": 0.9, "browInnerUp": 0.8, "eyeWideLeft": 0.85,
                  "eyeWideRight": 0.85, "jawOpen": 0.3, "mouthFunnel": 0.15},
    "talk": {},
}
"""Emotion → static ARKit offset at intensity 3 (before per-clip variation)."""

TALK_POOL = ("mouthSmileLeft", "mouthSmileRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
             "eyeSquintLeft", "eyeSquintRight", "mouthPressLeft", "mouthPressRight", "browDownLeft", "browDownRight")
"""Channels ``talk`` (everyday speech) draws its mild random expression from."""

TALK_CHANNELS = (2, 5)
"""Fewest and most channels of :data:`TALK_POOL` a ``talk`` clip uses."""

TALK_MAX_WEIGHT = 0.25
WEIGHT_JITTER = 0.2
"""Standard deviation of the log-normal per-clip factor on each expression weight."""

INTENSITY_JITTER = 0.08
"""Half-width of the uniform per-clip jitter of the intensity scale."""

DRIFT_DEPTH = 0.15
"""Relative depth of the slow variation of the expression over a clip."""

DRIFT_TIMESCALE_S = 1.5

MIRROR = {"Left": "Right", "Right": "Left"}


@dataclass(frozen=True)
class MouthStyle:
    """Emotion-specific gains on the speech mouth track (1 = unchanged), at intensity 3."""

    jaw: float = 1.0  # jawOpen, lower/upper lip openers and the opening ground truth
    spread: float = 1.0  # mouthStretch, mouthSmile
    rounding: float = 1.0  # mouthPucker, mouthFunnel
    press: float = 1.0  # mouthPress, mouthRoll, mouthClose


MOUTH_STYLES = {
    "angry": MouthStyle(jaw=1.1, spread=1.2, rounding=0.9, press=1.8),
    "contempt": MouthStyle(jaw=0.85, press=1.2),
    "disgusted": MouthStyle(jaw=0.9, rounding=0.8),
    "fear": MouthStyle(jaw=0.9, spread=1.4, rounding=0.9),
    "happy": MouthStyle(jaw=1.05, spread=1.5, rounding=0.7),
    "neutral": MouthStyle(),
    "sad": MouthStyle(jaw=0.7, spread=0.8, press=1.2),
    "surprised": MouthStyle(jaw=1.3, spread=0.9, rounding=1.2, press=0.8),
    "talk": MouthStyle(),
}

MOUTH_GROUPS = {
    "jaw": ("jawOpen", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft", "mouthUpperUpRight"),
    "spread": ("mouthStretchLeft", "mouthStretchRight", "mouthSmileLeft", "mouthSmileRight"),
    "rounding": ("mouthPucker", "mouthFunnel"),
    "press": ("mouthPressLeft", "mouthPressRight", "mouthRollLower", "mouthRollUpper", "mouthClose"),
}


@dataclass(frozen=True)
class VoiceParams:
    """espeak-ng parameters of one clip (see :func:`flowvq_cli.data.speech.synthesize`)."""

    rate: int
    pitch: int
    volume: int
    pitch_range: int


VOICE_SHIFTS = {
    # emotion: (rate factor, pitch delta, volume delta, pitch-range delta) at intensity 3
    "angry": (1.10, 8, 25, 20),
    "contempt": (0.95, -3, 0, -15),
    "disgusted": (0.92, -5, 0, -5),
    "fear": (1.15, 12, -5, 10),
    "happy": (1.05, 10, 10, 25),
    "neutral": (1.0, 0, 0, 0),
    "sad": (0.85, -8, -20, -25),
    "surprised": (1.0, 15, 10, 35),
    "talk": (1.0, 0, 0, 5),
}
BASE_RATE_WPM = (150.0, 195.0)
BASE_PITCH = (35.0, 65.0)
BASE_RANGE = (40.0, 60.0)
BASE_VOLUME = 100

BLINK_RATE_PER_MIN = {"angry": 12.0, "contempt": 13.0, "disgusted": 14.0, "fear": 24.0, "happy": 16.0,
                      "neutral": 15.0, "sad": 11.0, "surprised": 10.0, "talk": 19.0}
BLINK_DURATION_S = (0.15, 0.4)
BLINK_CLOSE, BLINK_HOLD = 0.3, 0.15
"""Fractions of a blink spent closing and fully closed; the rest (0.55) is the slower opening."""

BLINK_REFRACTORY_S = 0.5
"""Least time between two blink starts beyond the first blink's duration."""

BLINK_DEPTH = (0.9, 1.0)
BLINK_EYE_DELAY_S = 0.012
"""Largest delay of the right eye's blink behind the left's."""

BLINK_TRACK_THRESHOLD = 0.05
"""Eyelid weight above which a frame counts as part of a blink in :attr:`ClipMotion.blink_frames`."""

GAZE_AMPLITUDE = {"angry": 0.12, "contempt": 0.2, "disgusted": 0.2, "fear": 0.35, "happy": 0.2,
                  "neutral": 0.18, "sad": 0.15, "surprised": 0.25, "talk": 0.22}
"""Emotion → standard deviation of fixation points (in eyeLook* weight units)."""

GAZE_BIAS = {"sad": (0.0, -0.2), "disgusted": (0.05, -0.05), "contempt": (0.1, 0.0)}
"""Emotion → mean (horizontal, vertical) fixation; vertical < 0 looks down."""

FIXATION_MEAN_S = 0.9
FIXATION_MIN_S = 0.2
SACCADE_S = 0.05

HEAD_STD_DEG = np.array([2.0, 3.0, 1.2])
"""Stationary standard deviation of the random head rotation (pitch, yaw, roll) at gain 1."""

HEAD_SHIFT_STD = np.array([0.006, 0.006, 0.01])
"""Standard deviation of tx, ty (face-crop units) and log-scale at gain 1."""

HEAD_TIMESCALE_S = 0.8
HEAD_GAIN = {"angry": 1.3, "contempt": 0.8, "disgusted": 1.0, "fear": 1.0, "happy": 1.2, "neutral": 0.8,
             "sad": 0.6, "surprised": 1.15, "talk": 1.1}
HEAD_LIMIT_DEG = 8.0
"""Soft limit (tanh) on each rotation angle."""

NOD_DEG = 2.0
"""Nod amplitude per unit prominence of an energy peak (normalised energy)."""

NOD_WIDTH_S = 0.4
NOD_DELAY_S = 0.05
NOD_MIN_PROMINENCE = 0.15
NOD_MIN_GAP_S = 0.25
ENERGY_RANGE_DB = 40.0
"""Energy envelope range mapped to [0, 1] (below its maximum) for nod detection."""


@dataclass(frozen=True)
class Blink:
    """One blink: start time and duration (s) of the left eye, right-eye delay (s), closure depths."""

    start: float
    duration: float
    right_delay: float
    depth_left: float
    depth_right: float


def check_style(emotion: str, intensity: int) -> tuple[str, float]:
    """The (emotion, intensity) pair checked (:func:`flowvq_cli.labels.check_emotion`): the label lower-cased
    and the intensity's scale."""
    name, _ = check_emotion(emotion, intensity)
    return name, INTENSITY_SCALE[intensity]


# ---------------------------------------------------------------------------------------------
# Expression
# ---------------------------------------------------------------------------------------------


def _mirrored(name: str) -> str:
    for side, other in MIRROR.items():
        if name.endswith(side):
            return name[: -len(side)] + other
    return name


def expression_weights(emotion: str, intensity: int, rng: np.random.Generator) -> dict[str, float]:
    """This clip's static expression offset: named ARKit weights, scaled by intensity and jittered."""
    emotion, scale = check_style(emotion, intensity)
    scale = scale * (1.0 + rng.uniform(-INTENSITY_JITTER, INTENSITY_JITTER))
    if emotion == "talk":
        names = rng.choice(TALK_POOL, size=int(rng.integers(*TALK_CHANNELS, endpoint=True)), replace=False)
        base = {str(n): float(rng.uniform(0.0, TALK_MAX_WEIGHT)) for n in names}
    else:
        base = dict(EXPRESSIONS[emotion])
    if emotion == "contempt" and rng.random() < 0.5:
        base = {_mirrored(n): w for n, w in base.items()}
    jitter = rng.lognormal(0.0, WEIGHT_JITTER, size=len(base))
    return {n: float(np.clip(w * scale * j, 0.0, 1.0)) for (n, w), j in zip(base.items(), jitter, strict=True)}


def slow_noise(n_frames: int, fps: float, timescale_s: float, rng: np.random.Generator, dims: int = 1) -> np.ndarray:
    """Smooth zero-mean unit-variance noise: two cascaded AR(1) filters; returns (T, dims) float64.

    A burn-in of three time constants makes the start as stationary as the rest.
    """
    a = float(np.exp(-1.0 / (timescale_s * fps)))
    burn = int(np.ceil(3 * timescale_s * fps))
    white = rng.standard_normal((n_frames + burn, dims))
    smooth = lfilter([1.0 - a], [1.0, -a], lfilter([1.0 - a], [1.0, -a], white, axis=0), axis=0)[burn:]
    std = np.sqrt((1.0 - a) ** 4 * (1.0 + a * a) / (1.0 - a * a) ** 3)  # of the cascade, analytically
    return smooth / std


def expression_track(n_frames: int, fps: float, emotion: str, intensity: int, rng: np.random.Generator) -> np.ndarray:
    """Static expression with a slow per-channel drift: (T, 52) float32 weights."""
    offset = weight_vector(expression_weights(emotion, intensity, rng)).astype(np.float64)  # (52,)
    drift = 1.0 + DRIFT_DEPTH * slow_noise(n_frames, fps, DRIFT_TIMESCALE_S, rng, dims=offset.size)  # (T, 52)
    return np.clip(offset[None, :] * drift, 0.0, 1.0).astype(np.float32)


def modulate_mouth(weights: np.ndarray, emotion: str, intensity: int) -> tuple[np.ndarray, float]:
    """Apply the emotion's :class:`MouthStyle` to a (T, 52) speech track; returns (new weights, jaw gain)."""
    emotion, scale = check_style(emotion, intensity)
    style = MOUTH_STYLES[emotion]
    index = arkit_index()
    gains = np.ones(len(index))
    for group, names in MOUTH_GROUPS.items():
        gains[[index[n] for n in names]] = 1.0 + scale * (getattr(style, group) - 1.0)
    return (weights * gains[None, :]).astype(np.float32), float(1.0 + scale * (style.jaw - 1.0))


def voice_params(emotion: str, intensity: int, rng: np.random.Generator) -> VoiceParams:
    """espeak parameters for a clip: a random speaker baseline shifted by the emotion (:data:`VOICE_SHIFTS`)."""
    emotion, scale = check_style(emotion, intensity)
    rate_factor, pitch_delta, volume_delta, range_delta = VOICE_SHIFTS[emotion]
    rate = rng.uniform(*BASE_RATE_WPM) * (1.0 + scale * (rate_factor - 1.0))
    pitch = rng.uniform(*BASE_PITCH) + scale * pitch_delta
    pitch_range = rng.uniform(*BASE_RANGE) + scale * range_delta
    volume = BASE_VOLUME + scale * volume_delta
    return VoiceParams(rate=round(rate), pitch=int(np.clip(round(pitch), 0, 100)), volume=round(volume),
                       pitch_range=int(np.clip(round(pitch_range), 0, 100)))


# ---------------------------------------------------------------------------------------------
# Blinks and gaze
# ---------------------------------------------------------------------------------------------


def sample_blinks(duration_s: float, emotion: str, rng: np.random.Generator) -> list[Blink]:
    """Blink events over ``duration_s`` seconds at :data:`BLINK_RATE_PER_MIN` [emotion] on average.

    Gaps between starts are the blink's duration + :data:`BLINK_REFRACTORY_S` + an exponential
    remainder whose mean keeps the average gap at 60 / rate (a renewal process at exactly that rate).
    """
    emotion, _ = check_emotion(emotion)
    mean_gap = 60.0 / BLINK_RATE_PER_MIN[emotion]
    blinks: list[Blink] = []
    t = float(rng.uniform(0.0, mean_gap))
    while t < duration_s:
        length = float(rng.uniform(*BLINK_DURATION_S))
        depths = rng.uniform(*BLINK_DEPTH, size=2)
        blinks.append(Blink(t, length, float(rng.uniform(0.0, BLINK_EYE_DELAY_S)), float(depths[0]), float(depths[1])))
        dead = length + BLINK_REFRACTORY_S
        t += dead + float(rng.exponential(max(mean_gap - dead, 1e-3)))
    return blinks


def smoothstep(x: np.ndarray) -> np.ndarray:
    """3x² − 2x³ of values in [0, 1] (zero slope at both ends)."""
    return x * x * (3.0 - 2.0 * x)


def blink_profile(times: np.ndarray, start: float, duration: float) -> np.ndarray:
    """Eyelid closure of one blink at ``times`` (T,): smoothstep close, hold, slower smoothstep open."""
    u = (times - start) / duration
    close = np.clip(u / BLINK_CLOSE, 0.0, 1.0)
    reopen = np.clip((u - BLINK_CLOSE - BLINK_HOLD) / (1.0 - BLINK_CLOSE - BLINK_HOLD), 0.0, 1.0)
    return np.where((u >= 0.0) & (u < 1.0), smoothstep(close) * (1.0 - smoothstep(reopen)), 0.0)


def blink_track(n_frames: int, fps: float, blinks: list[Blink]) -> np.ndarray:
    """Eyelid closure of both eyes at the video frames: (T, 2) float32 [left, right] in [0, 1]."""
    times = frame_times(n_frames, fps)
    track = np.zeros((n_frames, 2))
    for b in blinks:
        track[:, 0] = np.maximum(track[:, 0], b.depth_left * blink_profile(times, b.start, b.duration))
        track[:, 1] = np.maximum(track[:, 1], b.depth_right * blink_profile(times, b.start + b.right_delay, b.duration))
    return track.astype(np.float32)


def blink_frame_ranges(track: np.ndarray, threshold: float = BLINK_TRACK_THRESHOLD) -> np.ndarray:
    """[first, last + 1) frame of each run where either eye's closure (T, 2) exceeds ``threshold``: (B, 2) int64."""
    active = np.concatenate([[False], track.max(axis=1) > threshold, [False]])
    edges = np.flatnonzero(np.diff(active.astype(np.int8)))  # alternating run starts and ends
    return edges.reshape(-1, 2).astype(np.int64)


def gaze_track(n_frames: int, fps: float, emotion: str, rng: np.random.Generator) -> np.ndarray:
    """Gaze direction per frame: (T, 2) float32 [horizontal (+ = subject's left), vertical (+ = up)].

    Fixations of random length (≥ :data:`FIXATION_MIN_S`, mean :data:`FIXATION_MEAN_S`) at random
    points around the emotion's bias, joined by :data:`SACCADE_S` smoothstep saccades.
    """
    emotion, _ = check_emotion(emotion)
    if n_frames == 0:
        return np.zeros((0, 2), dtype=np.float32)
    times = frame_times(n_frames, fps)
    bias = np.array(GAZE_BIAS.get(emotion, (0.0, 0.0)))
    amplitude = GAZE_AMPLITUDE[emotion]
    point = bias + amplitude * rng.standard_normal(2)
    gaze = np.tile(point, (n_frames, 1))
    t = float(rng.uniform(0.0, FIXATION_MEAN_S))  # the clip starts mid-fixation
    while t < times[-1]:
        new = bias + amplitude * rng.standard_normal(2)
        ramp = np.clip((times - t) / SACCADE_S, 0.0, 1.0)[:, None]
        gaze = gaze + (new - point)[None, :] * smoothstep(ramp)
        point = new
        t += FIXATION_MIN_S + float(rng.exponential(FIXATION_MEAN_S - FIXATION_MIN_S))
    return np.clip(gaze, -1.0, 1.0).astype(np.float32)


def gaze_weights(gaze: np.ndarray) -> np.ndarray:
    """(T, 2) gaze -> (T, 52) eyeLook* weights (both eyes turn together)."""
    index = arkit_index()
    out = np.zeros((gaze.shape[0], len(index)), dtype=np.float32)
    left, right = np.maximum(gaze[:, 0], 0.0), np.maximum(-gaze[:, 0], 0.0)
    up, down = np.maximum(gaze[:, 1], 0.0), np.maximum(-gaze[:, 1], 0.0)
    for name, value in (("eyeLookOutLeft", left), ("eyeLookInRight", left), ("eyeLookInLeft", right),
                        ("eyeLookOutRight", right), ("eyeLookUpLeft", up), ("eyeLookUpRight", up),
                        ("eyeLookDownLeft", down), ("eyeLookDownRight", down)):
        out[:, index[name]] = value
    return out


# ---------------------------------------------------------------------------------------------
# Head motion
# ---------------------------------------------------------------------------------------------


def normalized_energy(energy_db: np.ndarray) -> np.ndarray:
    """(T,) dB envelope -> (T,) in [0, 1]: 1 at its maximum, 0 at :data:`ENERGY_RANGE_DB` below."""
    if energy_db.size == 0:
        return np.zeros(0)
    loud = float(energy_db.max())
    return np.clip(1.0 + (energy_db.astype(np.float64) - loud) / ENERGY_RANGE_DB, 0.0, 1.0)


def nod_track(energy_db: np.ndarray, fps: float, gain: float, rng: np.random.Generator) -> np.ndarray:
    """Pitch nods (radians) on the energy envelope's prominent peaks: (T,) -> (T,) float64.

    Each nod is a raised-cosine pulse of :data:`NOD_WIDTH_S`, :data:`NOD_DELAY_S` after the peak,
    with amplitude ∝ the peak's prominence.
    """
    level = normalized_energy(energy_db)
    peaks, props = find_peaks(level, prominence=NOD_MIN_PROMINENCE, distance=max(1, round(NOD_MIN_GAP_S * fps)))
    times = frame_times(level.size, fps)
    nods = np.zeros(level.size)
    for peak, prominence in zip(peaks, props["prominences"], strict=True):
        phase = (times - times[peak] - NOD_DELAY_S) / NOD_WIDTH_S  # pulse over phase ∈ [-0.5, 0.5]
        pulse = np.where(np.abs(phase) < 0.5, 0.5 * (1.0 + np.cos(2.0 * np.pi * phase)), 0.0)
        nods += np.deg2rad(NOD_DEG) * gain * prominence * rng.uniform(0.5, 1.5) * pulse
    return nods


def head_track(
    energy_db: np.ndarray, fps: float, emotion: str, intensity: int, rng: np.random.Generator
) -> np.ndarray:
    """Head pose per frame: (T,) energy envelope (dB) -> (T, 6) float32 [pitch, yaw, roll, tx, ty, log_scale].

    Rotations are soft-limited to ±:data:`HEAD_LIMIT_DEG`.
    """
    emotion, scale = check_style(emotion, intensity)
    gain = (1.0 + scale * (HEAD_GAIN[emotion] - 1.0)) * float(rng.uniform(0.8, 1.2))
    n = energy_db.size
    noise = slow_noise(n, fps, HEAD_TIMESCALE_S, rng, dims=6)  # (T, 6)
    angles = np.deg2rad(HEAD_STD_DEG)[None, :] * gain * noise[:, :3]
    angles[:, 0] += nod_track(energy_db, fps, gain, rng)
    limit = np.deg2rad(HEAD_LIMIT_DEG)
    angles = limit * np.tanh(angles / limit)
    shifts = HEAD_SHIFT_STD[None, :] * gain * noise[:, 3:]
    return np.concatenate([angles, shifts], axis=1).astype(np.float32)
