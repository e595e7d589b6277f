"""A tiny FlowVQ dataset written directly to disk, shared by the dataset and training tests.

Audio is speech-like: noise amplitude-modulated by a slow syllable envelope; that envelope drives
``jawOpen`` in the coefficients, so audio and motion are related as in real talking faces. 3 speakers
(s0, s1 train; s2 val), 2 emotions (neutral, happy: happy raises the smile blendshapes). Optional extras:
a 30 fps clip whose jawOpen is a known ramp (resampling tests), frames.mp4 for chosen clips (frame t has
brightness ``frame_level(t)``) and an identity.npy for one of them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.io import wavfile

from flowvq_cli.data.manifest import Clip, write_manifest
from flowvq_cli.face.rig import ARKIT_NAMES
from flowvq_cli.video import VideoWriter

SR = 16_000
FPS = 25.0
JAW = ARKIT_NAMES.index("jawOpen")
SMILES = (ARKIT_NAMES.index("mouthSmileLeft"), ARKIT_NAMES.index("mouthSmileRight"))
SPLIT_OF = {"s0": "train", "s1": "train", "s2": "val"}
EMOTIONS = ("neutral", "happy")
FRAME_SIDE = 64
RAMP_CLIP = "s0_neutral_ramp30"


def frame_level(t: int) -> int:
    """Grey level of frame t of a test video (kept away from 0/255 so codecs do not clip)."""
    return 30 + 7 * t


def _envelope(n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """(n_samples,) syllable-rate envelope in [0, 1]: rectified sum of 3-6 Hz sinusoids."""
    t = np.arange(n_samples) / SR
    env = sum(np.sin(2 * np.pi * rng.uniform(3, 6) * t + rng.uniform(0, 2 * np.pi)) for _ in range(2))
    return np.clip(env / 2, 0, 1)


def _write_clip(root: Path, clip_id: str, speaker: str, emotion: str, seconds: float, fps: float,
                rng: np.random.Generator, ramp: bool = False) -> Clip:
    folder = root / "clips" / clip_id
    folder.mkdir(parents=True)
    n_samples = round(seconds * SR)
    env = _envelope(n_samples, rng)
    audio = 0.3 * env * rng.standard_normal(n_samples)
    wavfile.write(folder / "audio.wav", SR, (np.clip(audio, -1, 1) * 32767).astype(np.int16))
    frames = round(seconds * fps)
    times = np.arange(frames) / fps
    coeffs = np.zeros((frames, 58), dtype=np.float32)
    coeffs[:, :52] = 0.05 + 0.02 * rng.random((1, 52))
    coeffs[:, JAW] = np.linspace(0, 1, frames) if ramp else env[np.minimum((times * SR).astype(int), n_samples - 1)]
    if emotion == "happy":
        coeffs[:, list(SMILES)] = 0.6
    coeffs[:, 52:] = 0.1 * np.sin(2 * np.pi * 0.5 * times[:, None] + rng.uniform(0, 6, 6))
    np.save(folder / "coeffs.npy", coeffs)
    paths = {"coeffs": f"clips/{clip_id}/coeffs.npy", "audio": f"clips/{clip_id}/audio.wav"}
    return Clip(id=clip_id, speaker=speaker, emotion=emotion, intensity=2, split=SPLIT_OF[speaker], fps=fps,
                frames=frames, paths=paths)


def _write_frames(root: Path, clip: Clip, identity: bool) -> Clip:
    folder = root / "clips" / clip.id
    with VideoWriter(folder / "frames.mp4", fps=clip.fps, size=(FRAME_SIDE, FRAME_SIDE), preset="ultrafast") as w:
        for t in range(clip.frames):
            w.write(np.full((FRAME_SIDE, FRAME_SIDE, 3), frame_level(t), dtype=np.uint8))
    if identity:
        np.save(folder / "identity.npy", np.random.default_rng(0).normal(size=(468, 3)).astype(np.float32))
    return Clip(**{**clip.__dict__, "paths": {**clip.paths, "frames": f"clips/{clip.id}/frames.mp4"}})


def make_dataset(root: Path, *, seconds: float = 2.0, ramp_clip: bool = False, video_clips: int = 0,
                 video_seconds: float = 0.6) -> Path:
    """Write the dataset at ``root``: one clip per (speaker, emotion) of ``seconds``; optionally the 30 fps
    ramp clip and ``video_clips`` short extra clips of speaker s1 with frames.mp4 (the first one with an
    identity.npy)."""
    rng = np.random.default_rng(1234)
    clips = [_write_clip(root, f"{spk}_{emo}", spk, emo, seconds, FPS, rng)
             for spk in SPLIT_OF for emo in EMOTIONS]
    if ramp_clip:
        clips.append(_write_clip(root, RAMP_CLIP, "s0", "neutral", seconds, 30.0, rng, ramp=True))
    for n in range(video_clips):
        clip = _write_clip(root, f"s1_happy_video{n}", "s1", "happy", video_seconds, FPS, rng)
        clips.append(_write_frames(root, clip, identity=n == 0))
    write_manifest(root, clips)
    return root
