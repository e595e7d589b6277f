"""The Python API: load the models once, make many videos.

    from flowvq_cli.api import FlowVQ

    fv = FlowVQ.from_pretrained()                       # the bundle shipped in weights/, offline
    result = fv.generate("face.png", "speech.wav", emotion="angry", seed=3, out="out.mp4")
    result.coeffs                                        # (T, 58) generated coefficients

One job (docs/design.md §1): the photo is analysed once (crop, identity, source coefficients); audio becomes
per-video-frame features; ExpFlow samples the expression and PoseFlow the head motion, seeded; the
renderer turns (source crop, coefficients) into 256² frames, which go back into the photo (the mesh warp's
motion resampling the photo itself at its own resolution: ``face.paste.WarpPaste``) and are streamed to
ffmpeg in chunks, so memory does not grow with the audio's length.

The frames are drawn by :mod:`flowvq_cli.frames` (render orchestration), batch files of jobs are run by
:mod:`flowvq_cli.batch`, and a job's output path and result are :mod:`flowvq_cli.job`'s; their names stay
importable from here.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch

from flowvq_cli.batch import (  # noqa: F401 (re-exported: part of the API)
    JOB_FIELDS,
    Job,
    JobOutcome,
    _batch_row,
    _job,
    _job_pose,
    _run_job,
    parse_shard,
    read_jobs,
    run_batch,
)
from flowvq_cli.errors import UsageError, WeightsError
from flowvq_cli.face import export, rig
from flowvq_cli.face.source import MAX_VIDEO_SIDE, SourceFace, prepare_face  # noqa: F401 (part of the API)
from flowvq_cli.flow.eyes import check_eyes, eye_motion
from flowvq_cli.frames import (  # noqa: F401 (re-exported: part of the API)
    RENDER_CHUNK,
    corpus_frames,
    mesh_motion,
    mesh_renderer,
    vqig_frames,
    vqig_source,
    warp_frames,
)
from flowvq_cli.job import (  # noqa: F401 (re-exported: part of the API)
    DEFAULT_FPS,
    POSE_KINDS,
    GenerationResult,
    default_output_name,
    resolve_output,
)
from flowvq_cli.labels import check_emotion
from flowvq_cli.modeling import resolve_device

if TYPE_CHECKING:
    from flowvq_cli.flow.lips import SpokenLips

Renderer = Literal["auto", "vqig", "warp"]


class FlowVQ:
    """Models of one weights bundle, loaded once; :meth:`generate` and :meth:`transfer` run jobs."""

    def __init__(self, expflow, poseflow, *, renderer: str, device: torch.device, weights_id: str,
                 vqig=None) -> None:
        self.expflow = expflow.to(device).eval()
        self.poseflow = poseflow.to(device).eval()
        self.vqig = vqig
        self.renderer = renderer
        self.device = device
        self.weights_id = weights_id

    @classmethod
    def from_pretrained(cls, weights: str | Path | None = None, *, device: str = "auto", renderer: Renderer = "auto",
                        cache_dir: str | Path | None = None, fp32: bool = False) -> FlowVQ:
        """Load a bundle: None = the one shipped in ``weights/``; a folder; or a Hub id ``org/name[@rev]``.

        ``renderer``: ``vqig`` (needs the bundle's codebook + vqig), ``warp`` (the analytic mesh-warp
        renderer, no weights), or ``auto`` (the bundle's default renderer if its manifest names one, else vqig
        when the bundle has it, else warp).

        ``fp32``: VQIG renders in float32 even where it would use bf16 / fp16 (a GPU, a CPU with hardware bf16;
        :attr:`VQIG.render_dtype`): slower, for frames that do not depend on the machine's half precision.
        """
        from flowvq_cli.bundle import read_bundle
        from flowvq_cli.flow import ExpFlow, PoseFlow
        from flowvq_cli.hub import resolve_weights

        dev = resolve_device(device)
        folder = resolve_weights(weights, cache_dir=cache_dir)
        bundle = read_bundle(folder)
        for name in ("expflow", "poseflow"):
            if not bundle.has(name):
                raise WeightsError(f"the weights bundle {folder} has no {name} component; it cannot generate motion")
        has_vqig = bundle.has("vqig") and bundle.has("codebook")
        if renderer == "auto":
            renderer = bundle.renderer
        if renderer not in ("vqig", "warp"):
            raise UsageError(f"unknown renderer {renderer!r}; use auto, vqig or warp")
        if renderer == "vqig" and not has_vqig:
            raise WeightsError(f"the weights bundle {folder} has no VQIG renderer (codebook + vqig components); "
                               "pass --renderer warp, or --weights a bundle that has one")
        expflow = ExpFlow.from_pretrained(bundle.component("expflow"), device=dev)
        poseflow = PoseFlow.from_pretrained(bundle.component("poseflow"), device=dev)
        vqig = None
        if renderer == "vqig":
            from flowvq_cli.vq import VQGAN
            from flowvq_cli.vqig import VQIG

            codebook = VQGAN.from_pretrained(bundle.component("codebook"), device=dev)
            vqig = VQIG.from_pretrained(bundle.component("vqig"), codebook=codebook, device=dev)
            vqig.half_precision = not fp32
        return cls(expflow, poseflow, renderer=renderer, device=dev, weights_id=str(weights or folder), vqig=vqig)

    # ------------------------------------------------------------------------------------------ stages
    def prepare_face(self, face: str | Path | np.ndarray, *, face_index: int = 0) -> SourceFace:
        """Load and analyse the photo once: crop, identity, source coefficients."""
        return prepare_face(face, face_index=face_index)

    @property
    def needs_phones(self) -> bool:
        """ExpFlow hears phones beside the log-mels (its config's ``phone_dim``): generation runs pocketsphinx."""
        return self.expflow.config.phone_dim > 0

    def speech_phones(self, audio: str | Path, text: str | None = None) -> list:
        """pocketsphinx's phones of the speech: aligned to ``text`` (what it says), else recognised with the
        narrow search ExpFlow's corpus phones were recognised with; none when the recogniser hears no speech
        (:mod:`flowvq_cli.audio.phones`)."""
        from flowvq_cli.audio.phones import heard_phones

        return heard_phones(audio, text)

    def audio_features(self, audio: str | Path, fps: float, *, text: str | None = None,
                       phones: list | None = None) -> tuple[np.ndarray, float]:
        """(T, F) features per video frame and the audio duration in seconds. When ExpFlow hears phones
        (:attr:`needs_phones`), their track follows the log-mels: from ``phones`` when given, else from
        :meth:`speech_phones` (``text``)."""
        from flowvq_cli.audio.features import features_from_samples
        from flowvq_cli.audio.load import load_audio

        decoded = load_audio(audio)
        feats = features_from_samples(decoded.samples, fps)
        if self.needs_phones:
            from flowvq_cli.audio.phone_track import phone_track

            if phones is None:
                phones = self.speech_phones(audio, text)
            feats = np.hstack([feats, phone_track(phones, len(feats), fps)])
        return feats, decoded.duration

    def motion(self, source: SourceFace, feats: np.ndarray, *, emotion: str, intensity: int, seed: int,
               temperature: float = 1.0, pose: str | Path = "generated", pose_scale: float = 1.0,
               exp_latents: torch.Tensor | None = None, project: bool = False, eyes: str = "auto",
               fps: float = DEFAULT_FPS, lips: SpokenLips | None = None) -> np.ndarray:
        """Coefficients (T, 58) at ``fps``: sampled expression + head motion relative to the photo's own pose.

        ``eyes``: ``auto`` tops the sampled blinks up to the emotion's natural rate and takes the gaze from
        the corpus's fixation model, ``model`` keeps the flow's samples (:mod:`flowvq_cli.flow.eyes`).

        ``project``: the paper's manifold projection of sampled latents onto the training latents. Off by
        default: on the shipped weights it removes blinks (rare, tail-of-the-prior latents are pulled to
        their typical neighbours; see benchmarks/eval_flows.py --project).

        ``lips``: the phones of the speech lead the mouth and shut it on p, b and m (:meth:`spoken_lips`,
        :mod:`flowvq_cli.flow.lips`)."""
        n = len(feats)
        audio = torch.from_numpy(np.ascontiguousarray(feats, np.float32)).to(self.device)[None]  # (1, T, F)
        src = torch.from_numpy(source.coeffs[: rig.N_EXP].astype(np.float32)).to(self.device)[None]  # (1, 52)
        gen = torch.Generator(device="cpu").manual_seed(seed)
        with torch.inference_mode():
            exp = self.expflow.sample(audio, src, emotion, intensity, generator=gen, temperature=temperature,
                                      project=project and self.expflow.has_latents(emotion),
                                      z=exp_latents)[0].cpu().numpy()
            delta = self._pose_delta(audio[..., : self.poseflow.config.audio_dim], n, gen, temperature, pose)
        coeffs = np.empty((n, rig.N_COEFFS), np.float32)
        exp = np.clip(exp, 0.0, 1.0)
        if lips is not None:
            from flowvq_cli.flow.lips import follow_phones

            exp = follow_phones(exp, lips)
        coeffs[:, : rig.N_EXP] = eye_motion(exp, fps, emotion, seed, eyes)
        coeffs[:, rig.N_EXP :] = source.coeffs[rig.N_EXP :] + pose_scale * delta
        return coeffs

    def spoken_lips(self, audio: str | Path, n_frames: int, fps: float, *, emotion: str, intensity: int,
                    text: str | None = None, phones: list | None = None) -> SpokenLips:
        """What the phones of the speech say the lips do over ``n_frames`` frames (:mod:`flowvq_cli.flow.lips`):
        ``phones`` when given, else pocketsphinx's, aligned to ``text`` (what it says) or, without it, found by
        its phone recogniser (:func:`flowvq_cli.audio.phones.loop_phones`)."""
        from flowvq_cli.audio.energy import energy_envelope
        from flowvq_cli.audio.load import load_audio
        from flowvq_cli.audio.phones import align_phones, loop_phones
        from flowvq_cli.flow.lips import spoken_lips

        if phones is None:
            phones = loop_phones(audio) if text is None else align_phones(audio, text)
        decoded = load_audio(audio)
        energy = energy_envelope(decoded.samples, decoded.sr, n_frames, fps)
        return spoken_lips(phones, energy, fps, emotion, intensity)

    def _pose_delta(self, audio: torch.Tensor, n: int, gen: torch.Generator, temperature: float,
                    pose: str | Path | np.ndarray) -> np.ndarray:
        """Head motion (T, 6) around the photo's pose: generated, none, or taken from a coefficient file."""
        if isinstance(pose, np.ndarray):  # coefficients (T', 58) of a reference clip
            track = _loop_to(pose[:, rig.N_EXP :], n)
        elif str(pose) == "still":
            return np.zeros((n, rig.N_POSE), np.float32)
        elif str(pose) == "generated":
            track = self.poseflow.sample(audio, generator=gen, temperature=temperature)[0].cpu().numpy()
        else:
            coeffs, _ = export.read_coeffs(pose)
            track = _loop_to(coeffs[:, rig.N_EXP :], n)
        return (track - np.median(track, axis=0)).astype(np.float32)

    def render(self, source: SourceFace, coeffs: np.ndarray, *, paste_back: bool = True,
               chunk: int = RENDER_CHUNK) -> Iterator[np.ndarray]:
        """Frames (H, W, 3) uint8, rendered ``chunk`` at a time (constant memory)."""
        if self.renderer == "vqig":
            return vqig_frames(self.vqig, source, coeffs, paste_back=paste_back, chunk=chunk)
        return warp_frames(source, coeffs, paste_back=paste_back, chunk=chunk)

    # ------------------------------------------------------------------------------------------ jobs
    def generate(self, face: str | Path, audio: str | Path, *, emotion: str = "neutral", intensity: int = 2,
                 seed: int = 0, temperature: float = 1.0, pose: str | Path = "generated", pose_scale: float = 1.0,
                 fps: float = DEFAULT_FPS, out: str | Path | None = None, write: bool = True,
                 paste_back: bool = True, force: bool = False, face_index: int = 0,
                 coeffs_out: str | Path | None = None, project: bool = False, eyes: str = "auto",
                 text: str | None = None, phones: bool = False,
                 progress: Callable[[str, int, int], None] | None = None) -> GenerationResult:
        """One video from a photo, a speech recording and an emotion label.

        ``text`` (what the speech says) or ``phones`` (recognise it: for recorded voices) shut the lips on
        every p, b and m, from pocketsphinx's phones (``pip install '.[phones]'``)."""
        emotion, intensity = check_emotion(emotion, intensity)
        return self._run(face, audio, emotion=emotion, intensity=intensity, seed=seed, temperature=temperature,
                         pose=pose, pose_scale=pose_scale, fps=fps, out=out, write=write, paste_back=paste_back,
                         force=force, face_index=face_index, coeffs_out=coeffs_out, progress=progress,
                         project=project, eyes=eyes, text=text, phones=phones)

    def transfer(self, face: str | Path, audio: str | Path, ref: str | Path, *, ref_emotion: str = "neutral",
                 seed: int = 0, pose: str | Path = "generated", pose_scale: float = 1.0, fps: float = DEFAULT_FPS,
                 out: str | Path | None = None, write: bool = True, paste_back: bool = True, force: bool = False,
                 face_index: int = 0, coeffs_out: str | Path | None = None, eyes: str = "auto",
                 text: str | None = None, phones: bool = False,
                 progress: Callable[[str, int, int], None] | None = None) -> GenerationResult:
        """Emotion from a reference clip: its coefficients → latents by the flow's forward pass → reused
        (looped back and forth or trimmed) with the new audio. ``pose="reference"`` also takes its head motion.
        ``text`` / ``phones``: as :meth:`generate`."""
        from flowvq_cli.audio.features import audio_features
        from flowvq_cli.face.analyze import analyze

        check_eyes(eyes)
        if self.needs_phones:
            from flowvq_cli.audio.phones import check_pocketsphinx

            check_pocketsphinx()
        ref_analysis = analyze(ref)
        ref_feats = self.audio_features(ref, fps)[0] if self.needs_phones else audio_features(ref, fps=fps)
        n = min(len(ref_feats), len(ref_analysis.coeffs))
        ref_exp = torch.from_numpy(ref_analysis.coeffs[:n, : rig.N_EXP]).to(self.device)[None]
        ref_audio = torch.from_numpy(ref_feats[:n].astype(np.float32)).to(self.device)[None]
        src = torch.from_numpy(ref_analysis.coeffs[0, : rig.N_EXP]).to(self.device)[None]
        with torch.inference_mode():
            z = self.expflow.encode(ref_exp, ref_audio, src, ref_emotion)
        if str(pose) == "reference":
            pose = ref_analysis.coeffs  # the clip's own head motion
        return self._run(face, audio, emotion=ref_emotion, intensity=2, seed=seed, temperature=1.0, pose=pose,
                         pose_scale=pose_scale, fps=fps, out=out, write=write, paste_back=paste_back, force=force,
                         face_index=face_index, coeffs_out=coeffs_out, progress=progress, exp_latents=z,
                         out_tag="transfer", eyes=eyes, text=text, phones=phones)

    def _run(self, face, audio, *, emotion: str, intensity: int, seed: int, temperature: float,
             pose, pose_scale: float, fps: float, out, write: bool, paste_back: bool, force: bool,
             face_index: int, coeffs_out, progress, exp_latents: torch.Tensor | None = None,
             out_tag: str | None = None, project: bool = False, eyes: str = "auto", text: str | None = None,
             phones: bool = False) -> GenerationResult:
        check_eyes(eyes)
        if text is not None or phones or self.needs_phones:
            from flowvq_cli.audio.phones import check_pocketsphinx, words_of

            check_pocketsphinx()
            if text is not None and not words_of(text):
                raise UsageError(f"--text {text!r} holds no words; give the words the speech says")
        if not isinstance(pose, np.ndarray) and str(pose) not in POSE_KINDS and not Path(pose).is_file():
            raise UsageError(f"--pose must be generated, still or a coefficient file (.npz/.csv); got {pose!r}")
        path = resolve_output(out, face, audio, out_tag or emotion, seed, force=force) if write else None
        if coeffs_out is not None:
            export.check_output(Path(coeffs_out), force=force)
        timings: dict[str, float] = {}

        def stage(name: str, work: Callable[[], object]) -> object:
            if progress is not None:
                progress(name, 0, 1)
            t0 = time.perf_counter()
            value = work()
            timings[name] = timings.get(name, 0.0) + time.perf_counter() - t0
            if progress is not None:
                progress(name, 1, 1)
            return value

        source = stage("analysis", lambda: self.prepare_face(face, face_index=face_index))
        heard = spoken = None  # pocketsphinx's phones: ExpFlow's (when it hears them), the lips' (text or phones)
        if text is not None or self.needs_phones:
            heard = stage("phones", lambda: self.speech_phones(audio, text))
        if text is not None:
            spoken = heard
        elif phones:
            from flowvq_cli.audio.phones import loop_phones

            spoken = stage("phones", lambda: loop_phones(audio))
        feats, duration = stage("audio_features", lambda: self.audio_features(audio, fps, phones=heard))
        lips = None
        if spoken is not None:
            lips = self.spoken_lips(audio, len(feats), fps, emotion=emotion, intensity=intensity, phones=spoken)
        coeffs = stage("motion", lambda: self.motion(source, feats, emotion=emotion, intensity=intensity, seed=seed,
                                                     temperature=temperature, pose=pose, pose_scale=pose_scale,
                                                     exp_latents=exp_latents, project=project, eyes=eyes,
                                                     fps=fps, lips=lips))
        result = GenerationResult(path=path, coeffs=coeffs, fps=fps, seed=seed, emotion=emotion,
                                  intensity=intensity, duration=duration, renderer=self.renderer,
                                  weights=self.weights_id, timings=timings,
                                  precision=self.vqig.render_precision if self.vqig is not None else "float32",
                                  bilabials=None if lips is None else lips.bilabials)
        if path is not None:
            self._write_video(result, source, audio, path, paste_back=paste_back, force=force, progress=progress)
        if coeffs_out is not None:
            _write_coeffs(Path(coeffs_out), coeffs, fps, source.identity, force=force)
        return result

    def _write_video(self, result: GenerationResult, source: SourceFace, audio: str | Path, path: Path, *,
                     paste_back: bool, force: bool, progress: Callable[[str, int, int], None] | None) -> None:
        from flowvq_cli.video import VideoWriter

        frames = self.render(source, result.coeffs, paste_back=paste_back)
        h, w = (source.image.shape[:2] if paste_back else source.crop.shape[:2])
        meta = {"comment": json.dumps({k: v for k, v in result.summary().items() if k != "timings_s"}),
                "title": f"FlowVQ {result.emotion} seed {result.seed}"}
        render_s = encode_s = 0.0
        with VideoWriter(path, fps=result.fps, size=(w, h), audio_path=audio, metadata=meta, force=force) as writer:
            done = 0
            while True:
                t0 = time.perf_counter()
                batch = [f for _, f in zip(range(RENDER_CHUNK), frames, strict=False)]
                render_s += time.perf_counter() - t0
                if not batch:
                    break
                t0 = time.perf_counter()
                writer.write(np.stack(batch))
                encode_s += time.perf_counter() - t0
                done += len(batch)
                if progress is not None:
                    progress("render", done, result.n_frames)
            t0 = time.perf_counter()
        encode_s += time.perf_counter() - t0
        result.timings["render"] = render_s
        result.timings["encode"] = encode_s


def _write_coeffs(path: Path, coeffs: np.ndarray, fps: float, identity: np.ndarray, *, force: bool) -> None:
    if path.suffix.lower() == ".csv":
        export.write_live_link_csv(path, coeffs, fps=fps, force=force)
    elif path.suffix.lower() == ".npz":
        export.write_coeffs_npz(path, coeffs, fps=fps, identity=identity, force=force)
    else:
        raise UsageError(f"--coeffs {path}: use a .npz or .csv file name")


def _loop_to(track: np.ndarray, n: int) -> np.ndarray:
    """Loop a (T', D) track back and forth (no jump at the seam) or trim it to n frames."""
    if len(track) >= n:
        return track[:n]
    period = np.r_[np.arange(len(track)), np.arange(len(track) - 2, 0, -1)] if len(track) > 1 else np.zeros(1, int)
    return track[period[np.arange(n) % len(period)]]

