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
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from flowvq_cli import __version__
from flowvq_cli.errors import InputError, OutputError, UsageError, WeightsError
from flowvq_cli.face import export, rig
from flowvq_cli.face.source import MAX_VIDEO_SIDE, SourceFace, prepare_face  # noqa: F401 (part of the API)
from flowvq_cli.flow.eyes import check_eyes, eye_motion
from flowvq_cli.labels import check_emotion
from flowvq_cli.modeling import resolve_device

RENDER_CHUNK = 25  # frames rendered and encoded per step (one second at 25 fps)
DEFAULT_FPS = 25.0
POSE_KINDS = ("generated", "still")
Renderer = Literal["auto", "vqig", "warp"]


@dataclass
class GenerationResult:
    """What one job produced. ``coeffs`` (T, 58); ``path`` is None when no file was written."""

    path: Path | None
    coeffs: np.ndarray
    fps: float
    seed: int
    emotion: str
    intensity: int
    duration: float
    renderer: str
    weights: str
    timings: dict[str, float] = field(default_factory=dict)
    precision: str = "float32"  # what the renderer computed in (VQIG: bfloat16 / float16 where it uses them)
    bilabials: int | None = None  # p/b/m phones whose lips were shut (``text`` / ``phones``); None: not asked

    @property
    def n_frames(self) -> int:
        return len(self.coeffs)

    def summary(self) -> dict:
        """JSON-ready summary (also written into the MP4's metadata)."""
        return {"output": str(self.path) if self.path else None, "frames": self.n_frames, "fps": self.fps,
                "duration": round(self.duration, 3), "seed": self.seed, "emotion": self.emotion,
                "intensity": self.intensity, "renderer": self.renderer, "precision": self.precision,
                "weights": self.weights, **({} if self.bilabials is None else {"bilabials": self.bilabials}),
                "flowvq_version": __version__, "timings_s": {k: round(v, 3) for k, v in self.timings.items()}}


def default_output_name(face: str | Path, audio: str | Path, emotion: str, seed: int) -> str:
    """``face_speech_angry_s3.mp4`` from the inputs' stems."""
    return f"{Path(face).stem}_{Path(audio).stem}_{emotion}_s{seed}.mp4"


def resolve_output(out: str | Path | None, face: str | Path, audio: str | Path, emotion: str, seed: int,
                   *, force: bool) -> Path:
    """A file path for the video: ``out`` as a file, ``out`` as a folder (created; the name derived from
    the inputs), or the derived name in the current folder. Checked before any work is done."""
    name = default_output_name(face, audio, emotion, seed)
    if out is None:
        path = Path(name)
    else:
        out = Path(out)
        is_folder = out.is_dir() or str(out).endswith(("/", "\\")) or out.suffix == ""
        if is_folder:
            out.mkdir(parents=True, exist_ok=True)
            path = out / name
        else:
            if not out.parent.exists():
                raise OutputError(f"cannot write {out}: folder {out.parent} does not exist; create it, or pass "
                                  f"--out {out.parent}/ to have it created")
            path = out
    export.check_output(path, force=force)
    return path


def mesh_renderer(source: SourceFace, crop: np.ndarray | None = None):
    """The photo's mesh-warp renderer: its crop (or ``crop``, that crop resized to S × S) warped along the
    photo's face mesh. Returns (renderer, scale): target meshes for it are ``rig.synthesize(...) · scale``."""
    from flowvq_cli.render.meshwarp import MeshWarpConfig, MeshWarpRenderer

    crop = source.crop if crop is None else crop
    scale = crop.shape[0] / rig.CROP_SIZE
    source_mesh = source.mesh * scale
    return MeshWarpRenderer(crop, source_mesh, MeshWarpConfig(size=crop.shape[0])), scale


def mesh_motion(source: SourceFace, crop: np.ndarray, *, frame: bool = False):
    """Each frame's mesh-warp motion, for a ``mesh_prior`` VQIG rendering ``crop`` (S × S): a function from
    coefficients (B, 58) to their :class:`~flowvq_cli.vqig.MeshPrior` (with the renderer's frames and the
    mouth's paint alone for a ``prior_frame`` VQIG: ``frame``)."""
    from flowvq_cli.vqig import MeshPrior

    renderer, scale = mesh_renderer(source, crop)

    def motion(coeffs: np.ndarray) -> MeshPrior:
        return MeshPrior.from_render(renderer.render(rig.synthesize(source.identity, coeffs) * scale), frame=frame)

    return motion


def warp_frames(source: SourceFace, coeffs: np.ndarray, *, paste_back: bool = True,
                chunk: int = RENDER_CHUNK, identity: np.ndarray | None = None) -> Iterator[np.ndarray]:
    """The mesh-warp renderer over coefficients (T, 58): frames (H, W, 3) uint8, ``chunk`` at a time;
    the photo's size with ``paste_back``, else the 256² crop. ``identity`` (468, 3), when given, is the
    face shape of the output frames (default: the photo's own)."""
    from flowvq_cli.face.paste import WarpPaste

    warp, _ = mesh_renderer(source)  # at the crop's own size: meshes in crop pixels
    paster = WarpPaste.from_renderer(source.image, source.crop_matrix, warp, draw=True) if paste_back else None
    for start in range(0, len(coeffs), chunk):
        meshes = rig.synthesize(source.identity if identity is None else identity, coeffs[start : start + chunk])
        result = warp.render(meshes)
        if paster is None:
            yield from result.frames
            continue
        for k, frame in enumerate(result.frames):
            yield paster(frame, result.flow[k], result.paint[k], result.mouth_paint[k], meshes[k])
        del result  # its flow and paint maps go before the next chunk's are made


def corpus_frames(source: SourceFace, coeffs: np.ndarray, identity: np.ndarray) -> Iterator[np.ndarray]:
    """``flowvq synth``'s frames (:class:`flowvq_cli.data.synth.FrameRenderer`): the mesh warp's aligned
    crops (256, 256, 3) uint8 of coefficients (T, 58), the face shaped ``identity`` (468, 3)."""
    return warp_frames(source, coeffs, paste_back=False, identity=identity)


def vqig_source(source: SourceFace, size: int) -> tuple[np.ndarray, torch.Tensor]:
    """The photo's aligned crop as VQIG reads it: (S, S, 3) uint8 (area-resized when its side is not S) and
    (1, 3, S, S) in [-1, 1]."""
    import cv2

    crop = source.crop
    if crop.shape[0] != size:
        crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
    return crop, torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1)[None].float() / 127.5 - 1.0


def vqig_frames(vqig, source: SourceFace, coeffs: np.ndarray, *, paste_back: bool = True,
                chunk: int = RENDER_CHUNK) -> Iterator[np.ndarray]:
    """The learned renderer: the source crop is encoded once, then each frame is rendered from a window of
    ±w target coefficient frames (edges repeated), ``chunk`` frames per batch; frames at the photo's size
    with ``paste_back``, else S². A ``mesh_prior`` VQIG also gets each frame's mesh-warp motion. A
    ``prior_frame`` VQIG at the crop's size (its frame is the mesh warp's but for the mouth interior) is
    composed into the photo like the mesh warp (:class:`~flowvq_cli.face.paste.WarpPaste`: the photo
    sampled at its own resolution, lip line and lids drawn there, the mouth interior from VQIG's frame); others
    are pasted back."""
    import cv2

    from flowvq_cli.face.paste import PasteBack, WarpPaste
    from flowvq_cli.vqig import MeshPrior

    size = vqig.codebook.config.image_size
    crop_size = source.crop.shape[0]
    device = next(vqig.parameters()).device
    crop, src = vqig_source(source, size)
    cache = vqig.prepare_source(src.to(device), torch.from_numpy(source.coeffs[None].astype(np.float32)).to(device))
    w = vqig.config.window
    padded = np.pad(np.asarray(coeffs, np.float32), ((w, w), (0, 0)), mode="edge")  # (T + 2w, 58)
    renderer, scale = mesh_renderer(source, crop) if vqig.config.mesh_prior else (None, 1.0)
    native = paste_back and vqig.config.prior_frame and size == crop_size  # prior_frame needs mesh_prior
    if native:
        paster = WarpPaste.from_renderer(source.image, source.crop_matrix, renderer, draw=True)
    else:
        paster = PasteBack.build(source.image, source.crop_matrix) if paste_back else None
    for start in range(0, len(coeffs), chunk):
        idx = np.arange(start, min(len(coeffs), start + chunk))
        windows = torch.from_numpy(np.stack([padded[i : i + 2 * w + 1] for i in idx]))  # (B, 2w+1, 58)
        warped, prior, meshes = None, None, None
        if renderer is not None:
            meshes = rig.synthesize(source.identity, np.asarray(coeffs)[idx]) * scale
            warped = renderer.render(meshes)
            prior = MeshPrior.from_render(warped, frame=vqig.config.prior_frame)
        out = vqig.render_prepared(cache, windows.to(device), prior=prior)  # (B, 3, S, S) in [-1, 1]
        frames = ((out + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        for k, frame in enumerate(frames):
            if native:
                yield paster(frame, warped.flow[k], warped.paint[k], warped.mouth_paint[k], meshes[k],
                             under=warped.frames[k])
                continue
            if size != crop_size:
                frame = cv2.resize(frame, (crop_size, crop_size), interpolation=cv2.INTER_CUBIC)
            yield paster(frame) if paster is not None else frame
        del warped, prior, meshes  # the mesh-warp maps go before the next chunk's are made


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
        """pocketsphinx's phones of the speech: aligned to ``text`` (what it says), else recognised; none when
        the recogniser hears no speech (:mod:`flowvq_cli.audio.phones`)."""
        from flowvq_cli.audio.phones import AlignmentError, phones_of

        try:
            return phones_of(audio, text)
        except AlignmentError:
            if text is not None:
                raise
            return []

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
               fps: float = DEFAULT_FPS, closure: np.ndarray | None = None) -> np.ndarray:
        """Coefficients (T, 58) at ``fps``: sampled expression + head motion relative to the photo's own pose.

        ``eyes``: ``auto`` tops the sampled blinks up to the emotion's natural rate and takes the gaze from
        the corpus's fixation model, ``model`` keeps the flow's samples (:mod:`flowvq_cli.flow.eyes`).

        ``project``: the paper's manifold projection of sampled latents onto the training latents. Off by
        default: on the shipped weights it removes blinks (rare, tail-of-the-prior latents are pulled to
        their typical neighbours; see benchmarks/eval_flows.py --project).

        ``closure`` (T,) in [0, 1]: shut the lips there (:meth:`lip_closure`)."""
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
        if closure is not None:
            from flowvq_cli.flow.lips import close_lips

            exp = close_lips(exp, closure)
        coeffs[:, : rig.N_EXP] = eye_motion(exp, fps, emotion, seed, eyes)
        coeffs[:, rig.N_EXP :] = source.coeffs[rig.N_EXP :] + pose_scale * delta
        return coeffs

    def lip_closure(self, audio: str | Path, n_frames: int, fps: float, *, text: str | None = None
                    ) -> tuple[np.ndarray, int]:
        """Where the lips must shut, (T,) in [0, 1], and how many p/b/m phones: pocketsphinx's phones of the
        speech, aligned to ``text`` (what it says) or, without it, recognised (:mod:`flowvq_cli.flow.lips`)."""
        return self._closure(self.speech_phones(audio, text), n_frames, fps)

    @staticmethod
    def _closure(phones: list, n_frames: int, fps: float) -> tuple[np.ndarray, int]:
        from flowvq_cli.audio.phones import BILABIALS
        from flowvq_cli.flow.lips import bilabial_closure

        return bilabial_closure(phones, n_frames, fps), sum(p.label in BILABIALS for p in phones)

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
            timings[name] = time.perf_counter() - t0
            if progress is not None:
                progress(name, 1, 1)
            return value

        source = stage("analysis", lambda: self.prepare_face(face, face_index=face_index))
        heard = None  # pocketsphinx's phones, once, for the lips and for ExpFlow
        if text is not None or phones or self.needs_phones:
            heard = stage("phones", lambda: self.speech_phones(audio, text))
        feats, duration = stage("audio_features", lambda: self.audio_features(audio, fps, phones=heard))
        closure, bilabials = None, None
        if text is not None or phones:
            closure, bilabials = self._closure(heard, len(feats), fps)
        coeffs = stage("motion", lambda: self.motion(source, feats, emotion=emotion, intensity=intensity, seed=seed,
                                                     temperature=temperature, pose=pose, pose_scale=pose_scale,
                                                     exp_latents=exp_latents, project=project, eyes=eyes,
                                                     fps=fps, closure=closure))
        result = GenerationResult(path=path, coeffs=coeffs, fps=fps, seed=seed, emotion=emotion,
                                  intensity=intensity, duration=duration, renderer=self.renderer,
                                  weights=self.weights_id, timings=timings,
                                  precision=self.vqig.render_precision if self.vqig is not None else "float32",
                                  bilabials=bilabials)
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


# ---------------------------------------------------------------------------------------------- batch

JOB_FIELDS = ("face", "audio", "emotion", "intensity", "seed", "out", "pose", "pose_scale", "temperature", "ref",
              "ref_emotion", "coeffs", "eyes", "text")


@dataclass(frozen=True)
class Job:
    """One row of a batch file. ``row`` is its 1-based data row number (for messages and reports)."""

    row: int
    face: str
    audio: str
    emotion: str = "neutral"
    intensity: int = 2
    seed: int = 0
    out: str | None = None
    pose: str = "generated"
    pose_scale: float = 1.0
    temperature: float = 1.0
    ref: str | None = None
    ref_emotion: str = "neutral"
    coeffs: str | None = None
    eyes: str = "auto"
    text: str | None = None  # what the speech says: the lips shut on its p, b and m


def read_jobs(path: str | Path) -> list[Job]:
    """Jobs from a CSV (header row with the field names) or JSONL file; relative paths are taken relative
    to the batch file's folder. Unknown columns and missing face/audio are errors naming the row."""
    import csv

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} does not exist; pass a CSV or JSONL file of jobs")
    if path.suffix.lower() == ".jsonl":
        rows = []
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if line.strip():
                try:
                    rows.append((n, json.loads(line)))
                except json.JSONDecodeError as exc:
                    raise InputError(f"{path}:{n}: not valid JSON ({exc.msg})") from None
    elif path.suffix.lower() == ".csv":
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            rows = [(n, {k: v for k, v in r.items() if v not in (None, "")}) for n, r in enumerate(reader, 2)]
    else:
        raise InputError(f"{path}: batch files are .csv or .jsonl")
    return [_job(path, n, r) for n, r in rows]


def _job(path: Path, n: int, row: dict) -> Job:
    unknown = set(row) - set(JOB_FIELDS)
    if unknown:
        raise InputError(f"{path}:{n}: unknown column(s) {', '.join(sorted(unknown))}; known: {', '.join(JOB_FIELDS)}")
    if "face" not in row or "audio" not in row:
        raise InputError(f"{path}:{n}: every job needs face and audio")
    base = path.parent

    def rel(v: str | None) -> str | None:
        return None if v is None else str(base / v) if not Path(v).is_absolute() else v

    try:
        return Job(row=n, face=rel(row["face"]), audio=rel(row["audio"]), emotion=row.get("emotion", "neutral"),
                   intensity=int(row.get("intensity", 2)), seed=int(row.get("seed", 0)), out=rel(row.get("out")),
                   pose=_job_pose(row.get("pose", "generated"), rel), pose_scale=float(row.get("pose_scale", 1.0)),
                   temperature=float(row.get("temperature", 1.0)), ref=rel(row.get("ref")),
                   ref_emotion=row.get("ref_emotion", "neutral"), coeffs=rel(row.get("coeffs")),
                   eyes=row.get("eyes", "auto"), text=row.get("text") or None)
    except ValueError as exc:
        raise InputError(f"{path}:{n}: {exc}") from None


def _job_pose(pose: str, rel: Callable[[str], str | None]) -> str:
    """A pose keyword stays as is; a coefficient file path is made relative to the batch file."""
    return pose if pose in (*POSE_KINDS, "reference") else str(rel(pose))


def parse_shard(spec: str | None) -> tuple[int, int]:
    """``i/n`` (1-based) → (i, n); None → (1, 1)."""
    if spec is None:
        return 1, 1
    try:
        i, n = (int(x) for x in spec.split("/"))
    except ValueError:
        raise UsageError(f"--shard must look like 2/4 (this machine's part / number of parts), got {spec!r}") from None
    if not 1 <= i <= n:
        raise UsageError(f"--shard {spec}: the part must be between 1 and {n}")
    return i, n


@dataclass
class JobOutcome:
    row: int
    status: str  # "done", "skipped" or "failed"
    output: str | None = None
    error: str | None = None


def run_batch(model: FlowVQ, jobs: list[Job], *, out_dir: str | Path | None = None, shard: tuple[int, int] = (1, 1),
              skip_existing: bool = False, force: bool = False, paste_back: bool = True, fps: float = DEFAULT_FPS,
              on_job: Callable[[JobOutcome], None] | None = None) -> list[JobOutcome]:
    """Run this shard's jobs (rows i, i+n, ...) with one loaded model; a failing row is reported, never
    fatal. Each job's seed is its own, so a row gives the same video wherever it stands in the batch.

    Several runs may share one output folder (see docs/stops.md): every file appears complete or not at
    all; without ``force`` the first run to finish a file keeps it. With ``skip_existing`` a row is also
    skipped when its output is being written by another live run, or was finished by one meanwhile.
    Temporary files that killed runs left in an output folder are removed first. A full disk stops the
    batch (:class:`~flowvq_cli.errors.DiskFullError`) instead of failing every row after it."""
    from flowvq_cli.errors import DiskFullError, FlowVQError

    part, parts = shard
    outcomes = []
    for k, job in enumerate(jobs):
        if k % parts != part - 1:
            continue
        out = job.out or (str(Path(out_dir) / "") if out_dir is not None else None)
        try:
            tag = "transfer" if job.ref else job.emotion.strip().lower()
            target = resolve_output(out, job.face, job.audio, tag, job.seed, force=True)
            outcome = _batch_row(model, job, target, skip_existing=skip_existing, force=force,
                                 paste_back=paste_back, fps=fps)
        except DiskFullError:
            raise  # every later row would fail the same way: stop with the one line
        except FlowVQError as exc:
            outcome = JobOutcome(job.row, "failed", error=str(exc))
        outcomes.append(outcome)
        if on_job is not None:
            on_job(outcome)
    return outcomes


def _batch_row(model: FlowVQ, job: Job, target: Path, *, skip_existing: bool, force: bool, paste_back: bool,
               fps: float) -> JobOutcome:
    """One batch row: skipped (done, or another run is on it), done, or an :class:`OutputError` from the
    run that lost the race to an existing file."""
    from flowvq_cli.fsutil import being_written, sweep_once

    sweep_once(target.parent)
    if skip_existing and (target.exists() or being_written(target)):
        return JobOutcome(job.row, "skipped", str(target))
    try:
        result = _run_job(model, job, target, force=force, paste_back=paste_back, fps=fps)
    except OutputError:
        if skip_existing and not force and target.exists():  # another run finished it first
            return JobOutcome(job.row, "skipped", str(target))
        raise
    return JobOutcome(job.row, "done", str(result.path))


def _run_job(model: FlowVQ, job: Job, target: Path, *, force: bool, paste_back: bool, fps: float) -> GenerationResult:
    if job.ref:
        return model.transfer(job.face, job.audio, job.ref, ref_emotion=job.ref_emotion, seed=job.seed, pose=job.pose,
                              pose_scale=job.pose_scale, fps=fps, out=target, paste_back=paste_back, force=force,
                              coeffs_out=job.coeffs, eyes=job.eyes, text=job.text)
    return model.generate(job.face, job.audio, emotion=job.emotion, intensity=job.intensity, seed=job.seed,
                          temperature=job.temperature, pose=job.pose, pose_scale=job.pose_scale, fps=fps, out=target,
                          paste_back=paste_back, force=force, coeffs_out=job.coeffs, eyes=job.eyes, text=job.text)
