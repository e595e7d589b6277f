"""Errors a user can act on.

Every error FlowVQ raises on purpose derives from :class:`FlowVQError`; the CLI prints its message as
one line on stderr and exits with ``exit_code`` (no traceback unless ``FLOWVQ_DEBUG=1``). Messages say
what went wrong *and* what to do about it.
"""

from __future__ import annotations


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
