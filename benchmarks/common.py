"""Shared bits of the benchmark scripts: which machine a figure was measured on, the precision VQIG rendered
in, and how a script ends on FlowVQ's own errors."""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def machine() -> str:
    """One line: CPU model, usable cores, OS, Python; the GPU when torch sees one."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = ""
    try:
        import torch

        if torch.cuda.is_available():
            gpu = f", GPU {torch.cuda.get_device_name(0)}"
    except ImportError:
        pass
    return f"{cpu}, {cores} cores{gpu}, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def precision(vqig) -> str:
    """The precision a VQIG renders in on this machine, e.g. ``bfloat16`` (``VQIG.render_dtype``)."""
    return vqig.render_precision


def run(main: Callable[[], object]) -> None:
    """Run a script's ``main``; FlowVQ's own errors (a missing or mismatched weights folder, an unreadable
    dataset, bad input) end it with their message and exit status 1 instead of a traceback."""
    from flowvq_cli.errors import FlowVQError

    try:
        main()
    except FlowVQError as error:
        raise SystemExit(f"error: {error}") from None
