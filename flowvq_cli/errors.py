"""Errors a user can act on.

Every error FlowVQ raises on purpose derives from :class:`FlowVQError`; the CLI prints its message as
one line on stderr and exits with ``exit_code`` (no traceback unless ``FLOWVQ_DEBUG=1``). Messages say
what went wrong *and* what to do about it.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

DEBUG_ENV = "FLOWVQ_DEBUG"
"""Set to 1 for full tracebacks instead of one-line errors."""


DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})
"""OS errors that mean "no room left": a full disk, or the user's quota reached."""


class FlowVQError(Exception):
    """Base class: a failure with a message meant for the user."""

    exit_code = 1


class UsageError(FlowVQError):
    """The command line itself is wrong (bad option value, conflicting flags)."""

    exit_code = 2


class InputError(FlowVQError):
    """An input file is missing, unreadable, empty or of an unsupported kind."""


class OutputError(FlowVQError):
    """An output cannot be written (exists without --force, folder missing or read-only)."""


class DiskFullError(OutputError):
    """The disk (or the quota) filled up while writing an output; nothing half-written is left."""


def format_bytes(n: float) -> str:
    """``n`` bytes in a human unit: ``512 B``, ``3.2 MB``, ``1.5 GB`` (powers of 1000)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def is_disk_full(error: BaseException) -> bool:
    """Whether ``error`` is an OS error meaning the disk or the quota is full."""
    return isinstance(error, OSError) and error.errno in DISK_FULL_ERRNOS


def disk_full_error(path: str | os.PathLike[str], written: int = 0) -> DiskFullError:
    """The one-line error for a disk that filled up while writing ``path`` (a file, or a folder when the
    file is unknown); ``written``: the bytes that had made it to disk."""
    path = Path(path)
    folder, what = (path, f"into {path}") if path.is_dir() else (path.parent, str(path))
    try:
        free = format_bytes(shutil.disk_usage(folder).free)
    except OSError:
        free = "unknown"
    needed = f"it needs more than {format_bytes(written)}" if written > 0 else "it needs more"
    return DiskFullError(f"disk full: cannot write {what} ({free} free in {folder}; {needed}); free some space "
                         "there or write to another disk, then run again")


class FaceNotFoundError(InputError):
    """No usable face in an image or video."""


class FaceTooSmallError(InputError):
    """A face was found but is too small to animate."""


class AudioError(InputError):
    """Audio that cannot be used: corrupt, empty, silent, too short."""


class WeightsError(FlowVQError):
    """A weights bundle that is missing, truncated, tampered with or made for another layout."""


def one_line(exc: BaseException) -> str:
    """The one line ``flowvq`` prints for a failed command, and ``flowvq ui`` shows on its page.

    A :class:`FlowVQError` is its own message; a full disk met outside FlowVQ's own writers (a log line, a
    library's file) gets the disk-full message; anything else is reported as a bug."""
    if isinstance(exc, FlowVQError):
        return f"error: {exc}"
    if is_disk_full(exc) or "No space left on device" in str(exc):
        filename = getattr(exc, "filename", None)
        where = Path(os.fsdecode(filename)) if filename else Path.cwd()
        return f"error: {disk_full_error(where)}"
    return (f"error: unexpected {type(exc).__name__}: {exc} (this is a bug; rerun with {DEBUG_ENV}=1 for the "
            "traceback and report it)")
