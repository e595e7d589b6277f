"""Errors a user can act on.

Every error FlowVQ raises on purpose derives from :class:`FlowVQError`; the CLI prints its message as
one line on stderr and exits with ``exit_code`` (no traceback unless ``FLOWVQ_DEBUG=1``). Messages say
what went wrong *and* what to do about it.
"""

from __future__ import annotations

import os
from pathlib import Path

DEBUG_ENV = "FLOWVQ_DEBUG"
"""Set to 1 for full tracebacks instead of one-line errors."""


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
    from flowvq_cli.fsutil import disk_full_error, is_disk_full

    if is_disk_full(exc) or "No space left on device" in str(exc):
        filename = getattr(exc, "filename", None)
        where = Path(os.fsdecode(filename)) if filename else Path.cwd()
        return f"error: {disk_full_error(where)}"
    return (f"error: unexpected {type(exc).__name__}: {exc} (this is a bug; rerun with {DEBUG_ENV}=1 for the "
            "traceback and report it)")
