"""``flowvq ui``: a local web page over the Python API (Gradio, from the ``[ui]`` extra).

The models load once, at start (:func:`load_models`: the bundle's default renderer, and the other one when the
bundle has it, sharing the flows). Each job runs :func:`run_job`, plain Python over
:class:`~flowvq_cli.api.FlowVQ`: ``generate``, or ``transfer`` when a reference clip is given, once per sample
(seeds seed, seed+1, ...), writing each video beside its coefficients as a Live Link CSV, then the plots
``flowvq evaluate --plots`` draws (jawOpen against the speech energy, blinks, pose; the trace map for several
samples), here from the generated coefficients. :func:`build_app` lays out the page (the videos show as soon
as they are made, the plots after them), :func:`serve` runs it.

Offline: Gradio's analytics and version check are off (``GRADIO_ANALYTICS_ENABLED=False`` and
``analytics_enabled=False``), no share link is made, server-side rendering (Node) and the MCP server are off,
and the page loads nothing but this server's own files (the theme's fonts ship with Gradio). Jobs queue,
``jobs`` at a time (one by default). A failed job shows the CLI's one-line message
(:func:`flowvq_cli.errors.one_line`) on the page and the server goes on serving. Uploads, results and
Gradio's cache live in one temporary folder, removed when the server stops.
"""

from __future__ import annotations

import errno
import html
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import numpy as np

from flowvq_cli.errors import DEBUG_ENV, FlowVQError, UsageError, one_line

MAX_SAMPLES = 8
"""The most samples one job makes."""
KEEP_JOBS_S = 3600.0
"""Result folders of jobs older than this are removed when a new job starts (Gradio serves its own copies)."""
OFFLINE_ENV = {"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_DISABLE_TELEMETRY": "1"}
"""Set before Gradio is imported: no analytics, no version check, no Hub telemetry."""
STAGES: dict[str, tuple[str, float]] = {
    "reference": ("reading the reference clip", 0.0),
    "analysis": ("analysing the photo", 0.3),
    "audio_features": ("reading the speech", 0.05),
    "phones": ("finding the phones of the speech", 0.0),
    "motion": ("sampling expression and head motion", 0.1),
    "render": ("rendering frames", 0.55),
}
"""Each stage FlowVQ reports (its ``progress`` callback) → what the page says, and its share of a sample's time
(for the progress bar)."""
_STAGE_START = dict(zip(STAGES, np.cumsum([0.0, *(share for _, share in STAGES.values())])[:-1], strict=True))
NO_GRADIO = "the web page needs Gradio: pip install -e \".[ui]\" (the ui extra), then run flowvq ui again"


def gradio() -> ModuleType:
    """Gradio, imported with analytics off; a one-line error naming the extra when it is not installed."""
    for key, value in OFFLINE_ENV.items():
        os.environ[key] = value
    try:
        import gradio as gr
    except ImportError:
        raise FlowVQError(NO_GRADIO) from None
    return gr


# ---------------------------------------------------------------------------------------------- models

@dataclass
class Models:
    """One loaded bundle, once per renderer it offers (``{"warp": FlowVQ, "vqig": FlowVQ}``, the flows shared);
    ``default`` is the renderer ``auto`` picks (the bundle's own choice)."""

    by_renderer: dict
    default: str

    @property
    def renderers(self) -> list[str]:
        return ["auto", *self.by_renderer]

    def get(self, renderer: str):
        name = self.default if renderer in ("auto", "", None) else renderer
        if name not in self.by_renderer:
            raise UsageError(f"unknown renderer {renderer!r} for this bundle; use {', '.join(self.renderers)}")
        return self.by_renderer[name]


def load_models(weights: str | None = None, *, device: str = "auto", fp32: bool = False) -> Models:
    """Load the bundle once: its default renderer, plus the other one when the bundle has it."""
    from flowvq_cli.api import FlowVQ
    from flowvq_cli.bundle import read_bundle
    from flowvq_cli.hub import resolve_weights

    main = FlowVQ.from_pretrained(weights, device=device, fp32=fp32)
    models = {main.renderer: main}

    def sharing(renderer: str, vqig=None) -> FlowVQ:
        return FlowVQ(main.expflow, main.poseflow, renderer=renderer, device=main.device, weights_id=main.weights_id,
                      vqig=vqig)

    if main.renderer == "vqig":
        models["warp"] = sharing("warp")
    else:
        bundle = read_bundle(resolve_weights(weights), verify_hashes=False)  # checked in full just above
        if bundle.has("vqig") and bundle.has("codebook"):
            models["vqig"] = sharing("vqig", FlowVQ.from_pretrained(weights, device=device, renderer="vqig",
                                                                    fp32=fp32).vqig)
    return Models(by_renderer=models, default=main.renderer)


# ---------------------------------------------------------------------------------------------- jobs

@dataclass(frozen=True)
class JobRequest:
    """What the page sends: file paths (None when not given) and the options, as ``flowvq generate`` has them."""

    photo: str | None
    speech: str | None
    reference: str | None = None
    emotion: str = "neutral"
    intensity: int = 2
    seed: int = 0
    samples: int = 1
    pose: str = "generated"  # generated, still, or reference (the reference clip's head motion)
    pose_file: str | None = None  # a coefficient file (.npz from analyze, Live Link CSV): overrides pose
    pose_scale: float = 1.0
    renderer: str = "auto"
    temperature: float = 1.0
    eyes: str = "auto"
    crop_only: bool = False
    text: str = ""  # what the speech says (optional): its phones lead the lips
    phones: bool = False  # without text: the phones pocketsphinx recognises lead the lips (recorded voices)


@dataclass
class JobOutputs:
    """What one job wrote: a video and a Live Link CSV per sample, the plots, and each sample's summary."""

    videos: list[Path] = field(default_factory=list)
    csvs: list[Path] = field(default_factory=list)
    plots: list[Path] = field(default_factory=list)
    summaries: list[dict] = field(default_factory=list)
    results: list = field(default_factory=list)  # the GenerationResults, coefficients included


def run_job(models: Models, req: JobRequest, folder: Path, progress: Callable[[float, str], None] | None = None,
            *, plots: bool = True) -> JobOutputs:
    """Make ``req.samples`` videos into ``folder`` (created), with their CSVs and (with ``plots``) the plots.
    ``progress(fraction, text)`` hears every stage. Bad input raises the same
    :class:`~flowvq_cli.errors.FlowVQError` as the CLI."""
    from flowvq_cli.api import check_emotion, default_output_name

    if not req.photo:
        raise UsageError("no photo: upload one, or take a webcam snapshot")
    if not req.speech:
        raise UsageError("no speech: upload a recording, or record one with the microphone")
    emotion, intensity = check_emotion(req.emotion, int(req.intensity))
    samples = int(req.samples)
    if not 1 <= samples <= MAX_SAMPLES:
        raise UsageError(f"samples must be between 1 and {MAX_SAMPLES}, got {samples}")
    transfer = bool(req.reference)
    pose = req.pose_file or req.pose
    if pose == "reference" and not transfer:
        raise UsageError("head pose 'reference' is the reference clip's head motion: add a reference clip, or "
                         "pick generated or still")
    model = models.get(req.renderer)
    folder.mkdir(parents=True, exist_ok=True)
    out = JobOutputs()
    for k in range(samples):
        seed = int(req.seed) + k
        video = folder / default_output_name(req.photo, req.speech, "transfer" if transfer else emotion, seed)
        report = _reporter(progress, k, samples)
        common = {"seed": seed, "pose": pose, "pose_scale": float(req.pose_scale), "out": video,
                  "coeffs_out": video.with_suffix(".csv"), "eyes": req.eyes, "paste_back": not req.crop_only,
                  "text": (req.text or "").strip() or None, "phones": bool(req.phones), "progress": report}
        if transfer:
            report("reference", 0, 1)
            result = model.transfer(req.photo, req.speech, req.reference, ref_emotion=emotion, **common)
        else:
            result = model.generate(req.photo, req.speech, emotion=emotion, intensity=intensity,
                                    temperature=float(req.temperature), **common)
        out.results.append(result)
        out.videos.append(video)
        out.csvs.append(video.with_suffix(".csv"))
        out.summaries.append(result.summary())
    if plots:
        if progress is not None:
            progress(1.0, "drawing the plots")
        out.plots = draw_plots(out.results, req.speech, folder / "plots")
    return out


def _reporter(progress: Callable[[float, str], None] | None, k: int, n: int) -> Callable[[str, int, int], None]:
    """FlowVQ's ``(stage, done, total)`` callback for sample k of n, as the page's ``(fraction, text)``."""

    def report(stage: str, done: int, total: int) -> None:
        if progress is None:
            return
        label, share = STAGES.get(stage, (stage, 0.0))
        within = _STAGE_START.get(stage, 0.0) + share * (done / total if total else 1.0)
        text = f"{label} {done}/{total}" if stage == "render" else label
        progress(min(1.0, (k + within) / n), f"sample {k + 1}/{n}: {text}" if n > 1 else text)

    return report


def draw_plots(results: list, speech: str | Path, folder: Path) -> list[Path]:
    """The plots of ``flowvq evaluate --plots`` (:mod:`flowvq_cli.eval.plots`), drawn from the first sample's
    generated coefficients and the speech's energy; with several samples, also their trace map."""
    from flowvq_cli.audio.energy import energy_envelope
    from flowvq_cli.audio.load import load_audio
    from flowvq_cli.eval.plots import ClipTracks, write_plots
    from flowvq_cli.face import rig

    first = results[0]
    coeffs = first.coeffs
    wave = load_audio(speech)
    energy = energy_envelope(wave.samples, wave.sr, n_frames=len(coeffs), fps=first.fps).astype(np.float64)
    column = rig.ARKIT_NAMES.index
    tracks = ClipTracks(name=first.path.stem, fps=first.fps, jaw_open=coeffs[:, column("jawOpen")],
                        blink_left=coeffs[:, column("eyeBlinkLeft")], blink_right=coeffs[:, column("eyeBlinkRight")],
                        pose=coeffs[:, rig.POSE_SLICE], energy=energy)
    groups = {}
    if len(results) > 1:
        groups[first.path.stem.rsplit("_s", 1)[0]] = np.stack([r.coeffs[:, rig.POSE_SLICE] for r in results])
    return write_plots([tracks], folder, groups)


def page_message(exc: BaseException, uploads: tuple[str | None, ...]) -> str:
    """The CLI's one line for ``exc`` (:func:`~flowvq_cli.errors.one_line`), uploads named by their file names
    rather than the server's copies (``no face found in cat.png ...``, as ``flowvq generate cat.png ...`` says)."""
    message = one_line(exc)
    for path in uploads:
        if path:
            message = message.replace(str(path), Path(path).name)
    return message


def _prune(workdir: Path, keep_s: float = KEEP_JOBS_S) -> None:
    """Remove result folders of jobs that finished long ago (their files were copied into Gradio's cache)."""
    now = time.time()
    for job in workdir.glob("job-*"):
        try:
            if now - job.stat().st_mtime > keep_s:
                shutil.rmtree(job, ignore_errors=True)
        except OSError:
            pass


# ---------------------------------------------------------------------------------------------- page

INTRO = """# FlowVQ
A photo, a speech recording and an emotion make a talking-face video. Runs on this machine, offline.
A reference clip (under *More options*) takes the emotion from that clip instead (`flowvq transfer`)."""


def build_app(models: Models, workdir: Path, *, jobs: int = 1):
    """The page (a ``gradio.Blocks``, queued ``jobs`` at a time). Its endpoint ``/generate`` takes the inputs by
    name (photo, speech, reference, emotion, intensity, seed, samples, pose, pose_scale, renderer, pose_file,
    temperature, eyes, crop_only, text, phones) and yields twice: the first video, the other samples, the
    downloads (MP4s and CSVs), no plots yet and the summary, as soon as the videos are made; then the plots (the
    rest skipped)."""
    from flowvq_cli.labels import EMOTIONS

    gr = gradio()
    debug = os.environ.get(DEBUG_ENV, "") not in ("", "0")

    def generate(photo, speech, reference=None, emotion="neutral", intensity=2, seed=0, samples=1, pose="generated",
                 pose_scale=1.0, renderer="auto", pose_file=None, temperature=1.0, eyes="auto", crop_only=False,
                 text="", phones=False, progress=gr.Progress()):
        _prune(workdir)
        req = JobRequest(photo=photo, speech=speech, reference=reference, emotion=emotion, intensity=intensity,
                         seed=seed, samples=samples, pose=pose, pose_file=pose_file, pose_scale=pose_scale,
                         renderer=renderer, temperature=temperature, eyes=eyes, crop_only=bool(crop_only),
                         text=text or "", phones=bool(phones))
        folder = Path(tempfile.mkdtemp(prefix="job-", dir=workdir))
        report = lambda fraction, text: progress(fraction, desc=text)  # noqa: E731
        try:
            out = run_job(models, req, folder, report, plots=False)
            videos = [str(v) for v in out.videos]
            yield (videos[0], gr.Gallery(value=videos[1:], visible=len(videos) > 1),  # the videos, once made
                   [str(p) for pair in zip(out.videos, out.csvs, strict=True) for p in pair], [],
                   out.summaries[0] if len(out.summaries) == 1 else out.summaries)
            plots = draw_plots(out.results, speech, folder / "plots")
            yield gr.skip(), gr.skip(), gr.skip(), [str(p) for p in plots], gr.skip()  # then the plots (no progress
            # call before them: it would cover the videos just shown with its bar again)
        except Exception as exc:
            shutil.rmtree(folder, ignore_errors=True)
            message = page_message(exc, (photo, speech, reference, pose_file))
            print(message, file=sys.stderr)
            raise gr.Error(html.escape(message, quote=False), duration=None, print_exception=debug) from None

    with gr.Blocks(title="FlowVQ", analytics_enabled=False, delete_cache=(3600, 3600)) as app:
        gr.Markdown(INTRO)
        with gr.Row():
            with gr.Column():
                photo = gr.Image(label="Photo", sources=["upload", "webcam"], type="filepath", height=320,
                                 elem_id="photo")
                speech = gr.Audio(label="Speech", sources=["upload", "microphone"], type="filepath", format=None,
                                  elem_id="speech")
                text = gr.Textbox(value="", lines=1, elem_id="text",
                                  label="What the speech says (optional: its phones then lead the lips, which "
                                        "open with each vowel and shut on every p, b and m)")
                phones = gr.Checkbox(False, elem_id="phones",
                                     label="No text: the phones pocketsphinx hears lead the lips (recorded voices)")
                with gr.Row():
                    emotion = gr.Dropdown(list(EMOTIONS), value="neutral", label="Emotion", elem_id="emotion")
                    intensity = gr.Slider(1, 3, value=2, step=1, label="Intensity")
                with gr.Row():
                    seed = gr.Number(0, precision=0, label="Seed (same seed, same video)")
                    samples = gr.Slider(1, MAX_SAMPLES, value=1, step=1, label="Samples (seeds seed, seed+1, …)")
                with gr.Row():
                    pose = gr.Radio(["generated", "still", "reference"], value="generated", label="Head pose")
                    pose_scale = gr.Slider(0.0, 2.0, value=1.0, step=0.05, label="Head motion scale")
                renderer = gr.Dropdown(models.renderers, value="auto", label=f"Renderer (auto: {models.default})")
                with gr.Accordion("More options", open=False):
                    reference = gr.Video(label="Emotion reference clip: switches to transfer (emotion = the clip's)",
                                         sources=["upload", "webcam"], format=None)
                    pose_file = gr.File(label="Head motion from a file (.npz from analyze, or a Live Link CSV)",
                                        file_types=[".npz", ".csv"], type="filepath")
                    temperature = gr.Slider(0.0, 2.0, value=1.0, step=0.05, label="Temperature (diversity)")
                    eyes = gr.Radio(["auto", "model"], value="auto",
                                    label="Eyes: auto (blinks topped up, gaze model) or model (the flow's own)")
                    crop_only = gr.Checkbox(False, label="Crop only (the aligned 256² face, not the whole photo)")
                button = gr.Button("Generate", variant="primary", elem_id="generate")
            with gr.Column():
                video = gr.Video(label="Video", format=None, height=420, interactive=False, elem_id="video")
                others = gr.Gallery(label="Other samples", visible=False, columns=2, interactive=False)
                downloads = gr.File(label="Downloads: each video and its coefficients (Live Link Face CSV)",
                                    file_count="multiple", interactive=False)
                plots = gr.Gallery(label="Plots (flowvq evaluate's, of the generated coefficients)", columns=4,
                                   height=420, object_fit="contain", preview=True, selected_index=0,
                                   interactive=False, elem_id="plots")
                with gr.Accordion("Summary (as flowvq generate --json prints it)", open=False):
                    summary = gr.JSON(show_label=False)
        button.click(generate, inputs=[photo, speech, reference, emotion, intensity, seed, samples, pose, pose_scale,
                                       renderer, pose_file, temperature, eyes, crop_only, text, phones],
                     outputs=[video, others, downloads, plots, summary], api_name="generate", concurrency_limit=jobs)
    app.queue(default_concurrency_limit=jobs)
    return app


def serve(*, host: str = "127.0.0.1", port: int = 7860, weights: str | None = None, device: str = "auto",
          fp32: bool = False, jobs: int = 1) -> None:
    """Load the models, serve the page until stopped (Ctrl-C, SIGTERM), then remove the temporary folder."""
    _check_port(host, port)  # before the models load, not after
    workdir = Path(tempfile.mkdtemp(prefix="flowvq-ui-"))
    os.environ.setdefault("GRADIO_TEMP_DIR", str(workdir / "gradio"))  # uploads and served copies, removed below
    app = None
    try:
        gradio()
        print("loading models…", file=sys.stderr, flush=True)
        models = load_models(weights, device=device, fp32=fp32)
        app = build_app(models, workdir, jobs=jobs)
        try:
            app.launch(server_name=host, server_port=port, share=False, inbrowser=False, prevent_thread_lock=True,
                       quiet=True, show_error=True, ssr_mode=False, mcp_server=False, pwa=False,
                       enable_monitoring=False, allowed_paths=[str(workdir)])
        except OSError as exc:
            if "Cannot find empty port" in str(exc):  # taken while the models loaded
                raise UsageError(_port_taken(host, port)) from None
            raise
        print(f"FlowVQ web page: http://{host}:{port} (Ctrl-C stops it)", flush=True)
        while True:
            time.sleep(0.5)  # a stop signal raises here (flowvq_cli.stops)
    finally:
        if app is not None:
            app.close()
        shutil.rmtree(workdir, ignore_errors=True)


def _check_port(host: str, port: int) -> None:
    """A one-line error now if ``host:port`` cannot be listened on (taken, or an address not of this machine)."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UsageError(f"--host {host}: not an address of this machine ({exc.strerror}); use 127.0.0.1, or "
                         "0.0.0.0 to listen on every network") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise UsageError(_port_taken(host, port)) from None
            raise UsageError(f"cannot listen on {host}:{port} ({exc.strerror}); pass another --host or --port"
                             ) from None


def _port_taken(host: str, port: int) -> str:
    return f"port {port} on {host} is in use (another flowvq ui?); pass --port with a free one"
