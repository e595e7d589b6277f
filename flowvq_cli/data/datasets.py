"""Training datasets over a FlowVQ dataset folder (docs/design.md §6).

Two map-style ``torch.utils.data.Dataset`` classes read ``DATASET/manifest.jsonl``:

- :class:`CoeffSequenceDataset` (ExpFlow / PoseFlow): fixed-length windows of T video frames over the
  clips of one split. An item (:class:`CoeffWindow`) holds exp (T, 52), pose (T, 6), audio features with
  k frames of context on each side (T + 2k, F), the source exp (52,), the L frames before the window
  (history) and the clip's labels. Batch items with :func:`collate_windows`.
- :class:`FrameTripletDataset` (codebook / VQIG): (source frame, target frame, their coefficients,
  identity) pairs from clips that carry ``frames.mp4``. Batch with :func:`collate_triplets`.

Choices (documented here because trainers depend on them):

- **Frame rate.** Coefficient models work at 25 fps (:data:`VIDEO_FPS`). A clip recorded at another rate
  has its coefficients resampled by linear interpolation between neighbouring frames (times ``i / 25`` s,
  clamped to the last frame); the window index is built on that 25 fps timeline.
- **Audio context.** Audio features of a window are taken from the clip's features at frames
  ``s - k .. s + T + k - 1``: the look-ahead / look-behind is real neighbouring audio wherever the clip
  has it; past the clip's ends it is zeros (= the per-utterance mean, which is also what the model pads
  with at inference). A feature track shorter than the coefficients (±1 frame rounding) is zero-padded.
- **Source exp.** ``source="random"`` (default): the exp of a random frame of the same clip (at
  inference the source is a photo showing an arbitrary expression, not the clip's first frame);
  ``source="first"``: the clip's first frame.
- **History.** The L frames before the window are real frames where the window does not start the clip;
  before the clip's first frame they are the source exp (exp) and zeros (pose), i.e. exactly what the
  flows use at inference when no history is given.
- **Randomness.** Every random choice of item ``i`` (source frame, augmentation) comes from
  ``numpy.random.default_rng((seed, epoch, i, stream))``: results do not depend on worker count or order.
  Trainers call :meth:`CoeffSequenceDataset.set_epoch` once per epoch.
- **Augmentation** (``augment``): a segment of the clip's audio (the window plus its context and
  :data:`AUGMENT_MARGIN_S` on each side) is augmented (:mod:`flowvq_cli.audio.augment`) and its features
  computed (normalised over that segment rather than over the whole clip). A tempo factor ``f`` makes
  speech ``f`` times faster, so a window of T output frames covers ``T·f`` original frames: the
  coefficients are time-stretched the same way (sampled at ``s + t·f``, linear interpolation), as is the
  history.
- **Caches** live under ``DATASET/cache/`` (or ``cache_dir``): audio features (``audio-features/``,
  via :func:`~flowvq_cli.audio.features.cached_features`), decoded audio samples for augmentation
  (``audio-samples/``) and decoded frames as uint8 ``.npy`` files read by memory map (``frames/``), so
  epochs never decode again. Entries are keyed by the content hash of their source file and written
  atomically.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import math
import multiprocessing
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from flowvq_cli.audio.augment import AugmentConfig, AugmentParams, apply_augment, sample_params
from flowvq_cli.audio.features import (
    VIDEO_FPS,
    AudioFeatureConfig,
    cached_features,
    feature_cache_key,
    features_from_samples,
    frames_for,
)
from flowvq_cli.audio.load import load_audio
from flowvq_cli.audio.phone_track import (
    N_PHONES,
    PHONE_SOURCES,
    PHONE_TRACK_VERSION,
    clip_phone_track,
    clip_text,
)
from flowvq_cli.audio.phones import check_pocketsphinx
from flowvq_cli.data.image_augment import ImageAugmentConfig, apply_image_augment, sample_image_params
from flowvq_cli.data.manifest import Clip, read_manifest
from flowvq_cli.errors import InputError
from flowvq_cli.face.rig import N_COEFFS, N_EXP
from flowvq_cli.fsutil import atomic_write, save_npy_atomic, sha256_file
from flowvq_cli.labels import EMOTIONS, TALK
from flowvq_cli.video import count_frames, iter_frames, probe_video

TALK_INTENSITY = 0
"""Intensity index of ``talk`` clips (the flows' "none"); MEAD clips keep their level 1..3."""

CACHE_DIRNAME = "cache"
FEATURES_SUBDIR = "audio-features"
PHONES_SUBDIR = "phones"
SAMPLES_SUBDIR = "audio-samples"
FRAMES_SUBDIR = "frames"
CACHE_VERSION = 1
"""Bumped when the sample / frame cache layout changes (feature caches carry their own version)."""

AUGMENT_MARGIN_S = 1.0
"""Audio (s) kept on each side of a window when augmenting, so effects and normalisation see context."""

IDENTITY_FILE = "identity.npy"
"""A clip's identity mesh (468, 3), read from the folder of its ``coeffs.npy`` when present."""

FRAME_SIZE = 256
"""Side of the aligned crops in ``frames.mp4``."""

SOURCE_STREAM, AUGMENT_STREAM, CROP_STREAM = 0, 1, 2
"""Sub-streams of an item's randomness, so that one kind of draw never shifts the other."""

SourceMode = Literal["first", "random"]
SOURCE_MODES = ("first", "random")


class EmptySplitError(InputError):
    """A split without usable clips; the message says what to change."""


# ---------------------------------------------------------------------------------------------- helpers


def _cache_key(path: Path, *settings: object) -> str:
    """Hex key from a file's content and the settings that shaped a cached derivative of it."""
    blob = f"{sha256_file(path)}|{CACHE_VERSION}|{'|'.join(map(str, settings))}"
    return hashlib.sha256(blob.encode()).hexdigest()


def _load_cached(target: Path) -> np.ndarray | None:
    """Memory-map a cache entry; None when missing or unreadable (it is then rebuilt)."""
    if not target.is_file():
        return None
    try:
        return np.load(target, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        return None


def _cache_phone_track(target: Path, track: np.ndarray) -> np.ndarray:
    """Write one clip's phone track to the cache entry ``target``; returns it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    save_npy_atomic(target, track, fsync=False)
    return track


def interp_rows(values: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Linear interpolation of rows at fractional indices, clamped to [0, N-1].

    Args:
        values: (N, D) array.
        positions: (M,) fractional row indices.

    Returns:
        (M, D) float32.
    """
    pos = np.clip(np.asarray(positions, dtype=np.float64), 0.0, values.shape[0] - 1)
    low = np.floor(pos).astype(np.int64)
    high = np.minimum(low + 1, values.shape[0] - 1)
    frac = (pos - low)[:, None]
    rows = np.asarray(values[low], dtype=np.float64) * (1.0 - frac) + np.asarray(values[high], dtype=np.float64) * frac
    return rows.astype(np.float32)


def resample_coeffs(coeffs: np.ndarray, fps: float, target_fps: float = VIDEO_FPS) -> np.ndarray:
    """Coefficients (N, D) at ``fps`` -> (frames_for(N / fps, target_fps), D) float32 at ``target_fps``.

    Output frame i is the linear interpolation at time ``i / target_fps`` (clamped to the last frame).
    """
    n_out = frames_for(coeffs.shape[0] / fps, target_fps)
    if math.isclose(fps, target_fps):
        return np.array(coeffs[:n_out], dtype=np.float32)
    return interp_rows(coeffs, np.arange(n_out) * (fps / target_fps))


def _slice_padded(feats: np.ndarray, start: int, length: int) -> np.ndarray:
    """Rows ``start .. start + length - 1`` of (N, F) features, zeros where out of range: (length, F)."""
    out = np.zeros((length, feats.shape[1]), dtype=np.float32)
    lo, hi = max(start, 0), min(start + length, feats.shape[0])
    if hi > lo:
        out[lo - start : hi - start] = feats[lo:hi]
    return out


def _split_clips(root: Path, split: str, need_frames: bool = False) -> list[Clip]:
    clips = [c for c in read_manifest(root) if c.split == split and (not need_frames or "frames" in c.paths)]
    if not clips:
        what = "clips with frames.mp4" if need_frames else "clips"
        raise EmptySplitError(f"{root} has no {what} in split {split!r}; check the manifest's splits "
                              "(`flowvq prepare ... --val-speakers N`) or choose another split")
    return clips


def _load_coeffs(root: Path, clip: Clip) -> np.ndarray:
    """The clip's (frames, 58) coefficients, memory-mapped; checked against the manifest."""
    path = clip.path(root, "coeffs")
    coeffs = np.load(path, mmap_mode="r", allow_pickle=False)
    if coeffs.ndim != 2 or coeffs.shape[1] != N_COEFFS or coeffs.shape[0] != clip.frames:
        raise InputError(f"{path}: coefficients have shape {coeffs.shape}, the manifest says ({clip.frames}, "
                         f"{N_COEFFS}); re-run the producer (`flowvq prepare` / `flowvq synth`) for {clip.id}")
    return coeffs


def _intensity(clip: Clip) -> int:
    return TALK_INTENSITY if clip.emotion == TALK else clip.intensity


# ---------------------------------------------------------------------------------------------- windows


@dataclass(frozen=True)
class CoeffWindow:
    """One window of a clip (T frames at 25 fps); L = history frames, k = audio context."""

    exp: Tensor  # (T, 52) in [0, 1]
    pose: Tensor  # (T, 6)
    audio: Tensor  # (T + 2k, F)
    source: Tensor  # (52,) source exp
    exp_history: Tensor  # (L, 52) exp frames before exp[0]
    pose_history: Tensor  # (L, 6) poses before pose[0]
    emotion: int  # index into EMOTIONS
    intensity: int  # 0 = talk, 1..3 = MEAD level
    speaker: str
    clip_id: str
    start: int  # first frame (25 fps timeline of the clip)


@dataclass(frozen=True)
class CoeffWindowBatch:
    """A batch of :class:`CoeffWindow` (B items); ``flowvq_cli.train.flows.exp_batch`` / ``pose_batch`` make the
    flows' batches of it."""

    exp: Tensor  # (B, T, 52)
    pose: Tensor  # (B, T, 6)
    audio: Tensor  # (B, T + 2k, F)
    source: Tensor  # (B, 52)
    exp_history: Tensor  # (B, L, 52)
    pose_history: Tensor  # (B, L, 6)
    emotion: Tensor  # (B,) long
    intensity: Tensor  # (B,) long
    speakers: tuple[str, ...]
    clip_ids: tuple[str, ...]

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> CoeffWindowBatch:
        """Move tensors to ``device``; floating tensors also to ``dtype`` when given."""
        def move(t: Tensor) -> Tensor:
            return t.to(device=device, dtype=dtype if dtype is not None and t.is_floating_point() else t.dtype)

        return CoeffWindowBatch(move(self.exp), move(self.pose), move(self.audio), move(self.source),
                                move(self.exp_history), move(self.pose_history), move(self.emotion),
                                move(self.intensity), self.speakers, self.clip_ids)


def collate_windows(items: Sequence[CoeffWindow]) -> CoeffWindowBatch:
    """Stack windows of equal length into a :class:`CoeffWindowBatch`."""
    def stack(name: str) -> Tensor:
        return torch.stack([getattr(it, name) for it in items])

    return CoeffWindowBatch(
        exp=stack("exp"), pose=stack("pose"), audio=stack("audio"), source=stack("source"),
        exp_history=stack("exp_history"), pose_history=stack("pose_history"),
        emotion=torch.tensor([it.emotion for it in items], dtype=torch.long),
        intensity=torch.tensor([it.intensity for it in items], dtype=torch.long),
        speakers=tuple(it.speaker for it in items), clip_ids=tuple(it.clip_id for it in items),
    )


@dataclass(frozen=True)
class _Timeline:
    """Where a window's frames sit in the clip (25 fps frame units) and its audio features."""

    positions: np.ndarray  # (T,) fractional frame of each output frame
    history: np.ndarray  # (L,) fractional frame of each history frame (< 0: before the clip)
    audio: np.ndarray  # (T + 2k, F)


class CoeffSequenceDataset(Dataset):
    """Fixed-length windows over the clips of one split (see the module docstring for the choices).

    Args:
        root: dataset folder (holding ``manifest.jsonl``).
        split: ``train``, ``val`` or ``test``.
        window_frames: T, frames per window (25 fps).
        audio_config: the audio front end (F = ``audio_config.video_feature_dim``).
        audio_context: k, audio frames of context on each side (the model's ``audio_context``).
        n_history: L, previous frames returned with each window (the model's ``n_history``).
        hop: frames between window starts (default T // 2); clips shorter than T give no window.
        augment: audio augmentation ranges, or None (no augmentation).
        seed: seed of the per-item randomness (source frame, augmentation).
        source: ``"random"`` (a random frame of the clip) or ``"first"`` (its first frame).
        cache_dir: where caches go (default ``root/cache``).
        phones: append each frame's phone features (:mod:`flowvq_cli.audio.phone_track`) to its log-mels
            (F = ``audio_config.video_feature_dim + N_PHONES``; needs pocketsphinx).
        phones_from: ``"text"``: each clip's phones aligned to its ``text.txt`` (recognised where it has
            none); ``"speech"``: recognised from its speech, as ``generate`` hears a voice without ``--text``.

    Raises:
        EmptySplitError: the split has no clip, or no clip of at least T frames.
    """

    def __init__(self, root: str | os.PathLike[str], split: str, window_frames: int,
                 audio_config: AudioFeatureConfig = AudioFeatureConfig(), *, audio_context: int = 2,
                 n_history: int = 8, hop: int | None = None, augment: AugmentConfig | None = None, seed: int = 0,
                 source: SourceMode = "random", cache_dir: str | os.PathLike[str] | None = None,
                 phones: bool = False, phones_from: str = "text"):
        if phones_from not in PHONE_SOURCES:
            raise ValueError(f"phones_from must be one of {', '.join(PHONE_SOURCES)}, got {phones_from!r}")
        if window_frames < 1 or audio_context < 0 or n_history < 1:
            raise ValueError(f"need window_frames >= 1, audio_context >= 0, n_history >= 1; got {window_frames}, "
                             f"{audio_context}, {n_history}")
        if source not in SOURCE_MODES:
            raise ValueError(f"source must be one of {SOURCE_MODES}, got {source!r}")
        self.root, self.split = Path(root), split
        self.window_frames, self.audio_config = window_frames, audio_config
        self.audio_context, self.n_history = audio_context, n_history
        self.hop = hop or max(1, window_frames // 2)
        self.augment, self.seed, self.source_mode = augment, seed, source
        self.phones, self.phones_from = phones, phones_from
        if phones:
            check_pocketsphinx()
        self.cache_dir = Path(cache_dir) if cache_dir is not None else self.root / CACHE_DIRNAME
        self.epoch = 0
        self.clips = _split_clips(self.root, split)
        self.index = self._build_index()
        self._feature_paths: dict[str, Path] = {}

    def _build_index(self) -> list[tuple[int, int]]:
        """(clip number, start frame) of every window."""
        index, longest = [], 0
        for n, clip in enumerate(self.clips):
            frames = self.clip_frames(clip)
            longest = max(longest, frames)
            index += [(n, s) for s in range(0, frames - self.window_frames + 1, self.hop)]
        if not index:
            raise EmptySplitError(f"no clip in split {self.split!r} of {self.root} has {self.window_frames} frames "
                                  f"at 25 fps (longest: {longest}); lower the window length (--window-frames)")
        return index

    @staticmethod
    def clip_frames(clip: Clip) -> int:
        """Frames of a clip on the 25 fps timeline."""
        return frames_for(clip.frames / clip.fps, VIDEO_FPS)

    def __len__(self) -> int:
        return len(self.index)

    def set_epoch(self, epoch: int) -> None:
        """Select the random draws of epoch ``epoch`` (source frames, augmentation)."""
        self.epoch = epoch

    @property
    def feature_dim(self) -> int:
        """F, audio features per frame (log-mels, then phones when the dataset has them)."""
        return self.audio_config.video_feature_dim + (N_PHONES if self.phones else 0)

    # ---- caches

    def features(self, clip: Clip) -> np.ndarray:
        """The clip's (T_a, F) audio features at 25 fps (computed once, then read from the cache)."""
        path = self._feature_paths.get(clip.id)
        if path is None:
            audio = clip.path(self.root, "audio")
            path = self.cache_dir / FEATURES_SUBDIR / f"{feature_cache_key(audio, VIDEO_FPS, self.audio_config)}.npy"
            self._feature_paths[clip.id] = path
        feats = _load_cached(path)
        if feats is None:
            feats = cached_features(clip.path(self.root, "audio"), path.parent, VIDEO_FPS, self.audio_config)
        return feats

    def phone_track(self, clip: Clip) -> np.ndarray:
        """The clip's (T, N_PHONES) phone features at 25 fps (pocketsphinx once, then read from the cache)."""
        target, (audio, frames, text) = self._phone_job(clip)
        track = _load_cached(target)
        if track is None:
            track = _cache_phone_track(target, clip_phone_track(audio, frames, VIDEO_FPS, text))
        return track

    def _phone_job(self, clip: Clip) -> tuple[Path, tuple[Path, int, str | None]]:
        """Where the clip's phone track is cached, and what computes it (audio, frames, text or None)."""
        audio, frames = clip.path(self.root, "audio"), self.clip_frames(clip)
        text = clip_text(audio) if self.phones_from == "text" else None
        key = _cache_key(audio, PHONE_TRACK_VERSION, VIDEO_FPS, frames,
                         sha256_file(audio.parent / "text.txt") if text is not None else "-")
        return self.cache_dir / PHONES_SUBDIR / f"{key}.npy", (audio, frames, text)

    def _warm_phones(self, workers: int) -> None:
        """Compute the missing phone tracks, ``workers`` pocketsphinx processes at a time."""
        jobs = [self._phone_job(clip) for clip in self.clips]
        jobs = [(target, job) for target, job in jobs if _load_cached(target) is None]
        if not jobs:
            return
        targets, (audios, frames, texts) = [t for t, _ in jobs], zip(*(job for _, job in jobs), strict=True)
        fps = [VIDEO_FPS] * len(jobs)
        if workers <= 1 or len(jobs) == 1:
            tracks = map(clip_phone_track, audios, frames, fps, texts)
            for target, track in zip(targets, tracks, strict=True):
                _cache_phone_track(target, track)
            return
        context = multiprocessing.get_context("spawn")  # pocketsphinx in fresh processes, not torch's forks
        with concurrent.futures.ProcessPoolExecutor(min(workers, len(jobs)), mp_context=context) as pool:
            for target, track in zip(targets, pool.map(clip_phone_track, audios, frames, fps, texts, chunksize=4),
                                     strict=True):
                _cache_phone_track(target, track)

    def samples(self, clip: Clip) -> np.ndarray:
        """The clip's decoded (N,) float32 audio at the front end's rate (cached; used by augmentation)."""
        audio, sr = clip.path(self.root, "audio"), self.audio_config.sample_rate
        target = self.cache_dir / SAMPLES_SUBDIR / f"{_cache_key(audio, sr)}.npy"
        samples = _load_cached(target)
        if samples is None:
            samples = load_audio(audio, sr=sr).samples.astype(np.float32)
            target.parent.mkdir(parents=True, exist_ok=True)
            save_npy_atomic(target, samples, fsync=False)
        return samples

    def warm_cache(self, workers: int | None = None) -> int:
        """Compute every cache entry this dataset will read (call once before spawning workers or ranks);
        the phone tracks in ``workers`` processes (default: one per CPU). Returns the number of clips."""
        if self.phones:
            self._warm_phones((os.cpu_count() or 1) if workers is None else workers)
        for clip in self.clips:
            self.features(clip)
            if self.augment is not None:
                self.samples(clip)
        return len(self.clips)

    # ---- items

    def class_balanced_indices(self, per_class: int, seed: int | None = None) -> list[int]:
        """Up to ``per_class`` window indices for every emotion present (random, seeded), sorted."""
        rng = np.random.default_rng(self.seed if seed is None else seed)
        by_class: dict[str, list[int]] = {}
        for i, (n, _) in enumerate(self.index):
            by_class.setdefault(self.clips[n].emotion, []).append(i)
        picked = [int(i) for rows in by_class.values()
                  for i in rng.permutation(rows)[:per_class]]
        return sorted(picked)

    def _rng(self, i: int, stream: int) -> np.random.Generator:
        """Item i's random stream (0: source frame, 1: augmentation) in the current epoch."""
        return np.random.default_rng((self.seed, self.epoch, i, stream))

    def augment_params(self, i: int) -> AugmentParams | None:
        """The augmentation item ``i`` gets in the current epoch (None without augmentation)."""
        return None if self.augment is None else sample_params(self._rng(i, AUGMENT_STREAM), self.augment)

    def _timeline(self, clip: Clip, start: int, params: AugmentParams | None) -> _Timeline:
        T, k, L = self.window_frames, self.audio_context, self.n_history
        if params is None:
            line = _Timeline(np.arange(start, start + T, dtype=np.float64),
                             np.arange(start - L, start, dtype=np.float64),
                             _slice_padded(self.features(clip), start - k, T + 2 * k))
        else:
            line = self._augmented_timeline(clip, start, params)
        if not self.phones:
            return line
        return dataclasses.replace(line, audio=np.hstack([line.audio, self._phone_rows(clip, line.positions)]))

    def _phone_rows(self, clip: Clip, positions: np.ndarray) -> np.ndarray:
        """Phone features of the audio frames of a window whose output frames sit at clip frames ``positions``
        (T,): the k frames before and after included, the frame nearest each position; silence outside the
        clip (as the log-mels there are zeros)."""
        k, track = self.audio_context, self.phone_track(clip)
        step = positions[1] - positions[0] if len(positions) > 1 else 1.0
        at = np.rint(positions[0] + np.arange(-k, len(positions) + k) * step).astype(np.int64)
        rows = np.zeros((len(at), N_PHONES), np.float32)
        rows[:, 0] = 1.0  # silence (PHONES[0])
        inside = (at >= 0) & (at < len(track))
        rows[inside] = track[at[inside]]
        return rows

    def _augmented_timeline(self, clip: Clip, start: int, params: AugmentParams) -> _Timeline:
        """Augment the audio around the window; a tempo f maps output frame t to clip frame ``a + t·f``."""
        T, k, L = self.window_frames, self.audio_context, self.n_history
        sr, frames = self.audio_config.sample_rate, self.clip_frames(clip)
        f = min(params.tempo, (frames - 1) / max(T - 1, 1))  # a stretched window must fit in the clip
        start = min(start, math.floor(frames - 1 - (T - 1) * f))  # ... so it may start a little earlier
        samples = self.samples(clip)
        t0 = max(0.0, (start - k * f) / VIDEO_FPS - AUGMENT_MARGIN_S)
        t1 = (start + (T + k) * f) / VIDEO_FPS + AUGMENT_MARGIN_S
        i0, i1 = int(t0 * sr), min(samples.size, math.ceil(t1 * sr))
        segment = apply_augment(np.asarray(samples[i0:i1]), sr, dataclasses.replace(params, tempo=f))
        feats = features_from_samples(segment, VIDEO_FPS, self.audio_config)  # frame j ↔ clip frame a0 + j·f
        a0 = i0 / sr * VIDEO_FPS
        j0 = round((start - a0) / f)  # feature frame of the window's first frame
        first = a0 + j0 * f  # exact clip frame the window starts at
        return _Timeline(first + np.arange(T) * f, first + np.arange(-L, 0) * f,
                         _slice_padded(feats, j0 - k, T + 2 * k))

    def _coeff_rows(self, coeffs: np.ndarray, clip: Clip, positions: np.ndarray) -> np.ndarray:
        """Coefficients at 25 fps frame positions (fractional) -> (len, 58) float32."""
        src = positions * (clip.fps / VIDEO_FPS)  # in the clip's own frames
        if math.isclose(clip.fps, VIDEO_FPS) and np.all(src == np.round(src)):
            return np.asarray(coeffs[src.astype(np.int64)], dtype=np.float32)
        return interp_rows(coeffs, src)

    def __getitem__(self, i: int) -> CoeffWindow:
        n, start = self.index[i]
        clip = self.clips[n]
        coeffs = _load_coeffs(self.root, clip)
        source_frame = 0 if self.source_mode == "first" else int(self._rng(i, SOURCE_STREAM).integers(clip.frames))
        source = np.array(coeffs[source_frame, :N_EXP], dtype=np.float32)
        line = self._timeline(clip, start, self.augment_params(i))
        window = self._coeff_rows(coeffs, clip, line.positions)  # (T, 58)
        past = self._coeff_rows(coeffs, clip, np.maximum(line.history, 0.0))  # (L, 58)
        before = line.history < 0
        past[before, :N_EXP] = source
        past[before, N_EXP:] = 0.0
        return CoeffWindow(
            exp=torch.from_numpy(window[:, :N_EXP]), pose=torch.from_numpy(window[:, N_EXP:]),
            audio=torch.from_numpy(line.audio), source=torch.from_numpy(source),
            exp_history=torch.from_numpy(past[:, :N_EXP]), pose_history=torch.from_numpy(past[:, N_EXP:]),
            emotion=EMOTIONS.index(clip.emotion), intensity=_intensity(clip), speaker=clip.speaker,
            clip_id=clip.id, start=start,
        )


# ---------------------------------------------------------------------------------------------- frame pairs


@dataclass(frozen=True)
class FrameTriplet:
    """A source frame, a target frame of the same clip and their coefficients (S = image side)."""

    source: Tensor  # (3, S, S) float32 in [-1, 1]
    target: Tensor  # (3, S, S) float32 in [-1, 1]
    source_coeffs: Tensor  # (58,)
    target_coeffs: Tensor  # (58,)
    identity: Tensor | None  # (468, 3) neutral mesh, None when the clip has no identity.npy
    clip_id: str
    source_index: int
    target_index: int


@dataclass(frozen=True)
class FrameTripletBatch:
    source: Tensor  # (B, 3, S, S)
    target: Tensor  # (B, 3, S, S)
    source_coeffs: Tensor  # (B, 58)
    target_coeffs: Tensor  # (B, 58)
    identity: Tensor | None  # (B, 468, 3), None unless every item has one
    clip_ids: tuple[str, ...]

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> FrameTripletBatch:
        """Move tensors to ``device`` (and ``dtype`` when given)."""
        def move(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.to(device=device, dtype=dtype or t.dtype)

        return FrameTripletBatch(move(self.source), move(self.target), move(self.source_coeffs),
                                 move(self.target_coeffs), move(self.identity), self.clip_ids)


def collate_triplets(items: Sequence[FrameTriplet]) -> FrameTripletBatch:
    """Stack triplets; ``identity`` is batched only when every item has one."""
    identity = None
    if all(it.identity is not None for it in items):
        identity = torch.stack([it.identity for it in items])
    return FrameTripletBatch(
        source=torch.stack([it.source for it in items]), target=torch.stack([it.target for it in items]),
        source_coeffs=torch.stack([it.source_coeffs for it in items]),
        target_coeffs=torch.stack([it.target_coeffs for it in items]),
        identity=identity, clip_ids=tuple(it.clip_id for it in items),
    )


def to_unit_range(frame: np.ndarray) -> Tensor:
    """(H, W, 3) uint8 RGB -> (3, H, W) float32 in [-1, 1]."""
    return torch.from_numpy(np.array(frame)).permute(2, 0, 1).float() / 127.5 - 1.0


class FrameTripletDataset(Dataset):
    """Random (source, target) frame pairs within the clips of a split that carry ``frames.mp4``.

    One item per (clip, target frame) per epoch; the source frame is drawn uniformly among the clip's
    other frames from ``default_rng((seed, epoch, i))``. Frames are decoded once per clip (resized to
    ``size`` by ffmpeg) into ``cache/frames/<key>.npy`` (uint8 (N, S, S, 3)) and read by memory map.
    A clip's usable frames are min(video frames, coefficient frames). With ``augment`` the item's source
    and target frames get one random colour and lighting change
    (:mod:`~flowvq_cli.data.image_augment`), drawn from ``default_rng((seed, epoch, i, 1))``.

    Raises:
        EmptySplitError: no clip of the split has ``frames.mp4`` (or all have fewer than 2 frames).
    """

    def __init__(self, root: str | os.PathLike[str], split: str, *, size: int = FRAME_SIZE, seed: int = 0,
                 cache_dir: str | os.PathLike[str] | None = None, augment: ImageAugmentConfig | None = None):
        if size < 8:
            raise ValueError(f"size must be >= 8, got {size}")
        self.root, self.split, self.size, self.seed = Path(root), split, size, seed
        self.augment = augment
        self.cache_dir = Path(cache_dir) if cache_dir is not None else self.root / CACHE_DIRNAME
        self.epoch = 0
        self.clips = _split_clips(self.root, split, need_frames=True)
        self._frames: dict[str, np.ndarray] = {}
        self.index = self._build_index()

    def _build_index(self) -> list[tuple[int, int, int]]:
        """(clip number, target frame, usable frames of the clip) per item."""
        index = []
        for n, clip in enumerate(self.clips):
            usable = min(clip.frames, self.frames(clip).shape[0])
            if usable >= 2:
                index += [(n, t, usable) for t in range(usable)]
        if not index:
            raise EmptySplitError(f"the clips with frames.mp4 in split {self.split!r} of {self.root} have fewer "
                                  "than 2 frames each; add longer clips")
        return index

    def __len__(self) -> int:
        return len(self.index)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def frames(self, clip: Clip) -> np.ndarray:
        """The clip's decoded frames (N, S, S, 3) uint8, memory-mapped from the cache (decoded on first use)."""
        cached = self._frames.get(clip.id)
        if cached is not None:
            return cached
        video = clip.path(self.root, "frames")
        target = self.cache_dir / FRAMES_SUBDIR / f"{_cache_key(video, self.size)}.npy"
        frames = _load_cached(target)
        if frames is None:
            _decode_to_cache(video, target, self.size)
            frames = np.load(target, mmap_mode="r", allow_pickle=False)
        self._frames[clip.id] = frames
        return frames

    def warm_cache(self) -> int:
        """Decode every clip's frames into the cache (done at construction); returns the clip count."""
        for clip in self.clips:
            self.frames(clip)
        return len(self.clips)

    def __getitem__(self, i: int) -> FrameTriplet:
        n, t, usable = self.index[i]
        clip = self.clips[n]
        s = int(self.rng(i, SOURCE_STREAM).integers(usable - 1))
        s += s >= t  # uniform over the other frames
        frames, coeffs = self.frames(clip), _load_coeffs(self.root, clip)
        identity_path = clip.path(self.root, "coeffs").parent / IDENTITY_FILE
        identity = torch.from_numpy(np.load(identity_path).astype(np.float32)) if identity_path.is_file() else None
        source, target = to_unit_range(frames[s]), to_unit_range(frames[t])
        if self.augment is not None:
            params = sample_image_params(self.rng(i, AUGMENT_STREAM), self.augment)
            source, target = apply_image_augment(source, params), apply_image_augment(target, params)
        return FrameTriplet(
            source=source, target=target,
            source_coeffs=torch.from_numpy(np.array(coeffs[s], dtype=np.float32)),
            target_coeffs=torch.from_numpy(np.array(coeffs[t], dtype=np.float32)),
            identity=identity, clip_id=clip.id, source_index=s, target_index=t,
        )

    def rng(self, i: int, stream: int) -> np.random.Generator:
        """Item i's random stream (:data:`SOURCE_STREAM`, :data:`AUGMENT_STREAM`, :data:`CROP_STREAM`) in the
        current epoch (the source stream keeps the seed tuple it had before the others existed)."""
        key = (self.seed, self.epoch, i) if stream == SOURCE_STREAM else (self.seed, self.epoch, i, stream)
        return np.random.default_rng(key)


def _decode_to_cache(video: Path, target: Path, size: int) -> None:
    """Decode ``video`` resized to size² into an uint8 (N, size, size, 3) ``.npy`` at ``target``, atomically."""
    info = probe_video(video, exact_frames=False)
    resize = None if (info.width, info.height) == (size, size) else (size, size)
    n = count_frames(video)
    target.parent.mkdir(parents=True, exist_ok=True)

    def write(tmp: Path) -> None:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, size, size, 3))
        got = 0
        for got, frame in enumerate(iter_frames(video, size=resize, max_frames=n), 1):
            out[got - 1] = frame
        out.flush()
        del out
        if got != n:  # the demuxer's count was off: keep what was decoded
            decoded = np.load(tmp, mmap_mode="r")[:got].copy()
            with open(tmp, "wb") as fh:
                np.save(fh, decoded)

    atomic_write(target, write, fsync=False)
