"""The ``flowvq`` command line: parse arguments, call the library, show progress.

Nothing here does real work: every command is a thin wrapper over a library function, so anything the
CLI does is callable from Python. Heavy modules (numpy, torch, mediapipe) are imported inside the
commands, so ``flowvq --version`` and ``--help`` answer instantly.

Results go to stdout; progress, warnings and hints go to stderr. Known failures
(:class:`flowvq_cli.errors.FlowVQError`) print one line and exit 1 (usage errors exit 2); set
``FLOWVQ_DEBUG=1`` to see the full traceback.
"""

from __future__ import annotations

import atexit
import io
import json
import os
import re
import sys
import threading
import warnings
from pathlib import Path
from typing import Annotated

import typer

from flowvq_cli import __version__
from flowvq_cli.errors import FlowVQError

DEBUG_ENV = "FLOWVQ_DEBUG"

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
    as_json: Annotated[bool, typer.Option("--json", help="Print a machine-readable summary on stdout.")] = False,
    top: Annotated[int, typer.Option("--top", min=1, max=52, help="How many blendshapes to list.")] = 5,
    force: Annotated[bool, typer.Option("--force", "-f", help="Overwrite existing output files.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress on stderr.")] = False,
) -> None:
    """Fit FlowVQ's face model to a photo or video: head pose and the 52 ARKit blendshapes per frame."""
    from flowvq_cli.face import analyze as analysis_mod

    outputs = [p for p in (out, csv, overlay) if p is not None]
    analysis_mod.check_outputs(outputs, force=force)
    result = analysis_mod.analyze(input, face_index=face_index, progress=not quiet)
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


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings are one line on stderr, without the source location."""
    print(f"warning: {message}", file=sys.stderr)


_NATIVE_NOISE = re.compile(
    r"^(INFO: Created TensorFlow Lite|WARNING: All log messages before absl::InitializeLog"
    r"|[IW]\d{4} \d\d:\d\d:\d\d)"
)


def _filter_native_stderr() -> None:
    """Keep MediaPipe's C++ chatter off the terminal for the whole process.

    Native libraries log straight to file descriptor 2, sometimes from background threads after a call
    returned. fd 2 becomes a pipe read by a thread that drops glog INFO/WARNING lines and TFLite notices
    and passes everything else on; Python's own ``sys.stderr`` writes to the real stderr directly.
    """
    try:
        real = os.dup(2)
        read_end, write_end = os.pipe()
    except OSError:
        return
    sys.stderr.flush()
    os.dup2(write_end, 2)
    os.close(write_end)
    sys.stderr = io.TextIOWrapper(os.fdopen(real, "wb", buffering=0), encoding="utf-8", errors="replace",
                                  line_buffering=True)

    def pump() -> None:
        with os.fdopen(read_end, "rb") as pipe:
            for raw in pipe:
                line = raw.decode(errors="replace")
                if not _NATIVE_NOISE.match(line):
                    sys.stderr.write(line)

    thread = threading.Thread(target=pump, name="flowvq-stderr-filter", daemon=True)
    thread.start()

    def drain() -> None:
        os.close(2)  # the pump sees end-of-file once native code holds no other copy
        thread.join(timeout=0.5)

    atexit.register(drain)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``flowvq`` console script: maps known failures to one line and an exit code."""
    debug = os.environ.get(DEBUG_ENV, "") not in ("", "0")
    if not debug:
        warnings.showwarning = _show_warning
        _filter_native_stderr()
    try:
        # Standalone mode: Typer itself reports usage errors (exit 2), --help and --version (exit 0).
        app(args=argv, prog_name="flowvq")
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except FlowVQError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except Exception as exc:
        if debug:
            raise
        print(
            f"error: unexpected {type(exc).__name__}: {exc} (this is a bug; rerun with {DEBUG_ENV}=1 "
            "for the traceback and report it)",
            file=sys.stderr,
        )
        sys.exit(1)

if __name__ == "__main__":
    main()
