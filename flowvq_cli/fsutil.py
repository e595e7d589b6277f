"""Atomic file writes: a file is either absent, its previous content, or complete — never torn.

:func:`atomic_write` is the one primitive every "write a temporary file beside the target, then
``os.replace`` it into place" in FlowVQ goes through. The temporary file is hidden and keeps the
target's extension (``.coeffs.npy.k3j9x2.partial.npy``), so writers that look at the extension (ffmpeg,
``np.lib.format.open_memmap``, ``wave``) behave as they would on the target. The target's folder must
exist; callers that want it created do so themselves.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np


def fsync_file(path: Path) -> None:
    """Flush ``path``'s content to disk."""
    with path.open("rb") as fh:
        os.fsync(fh.fileno())


def fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable (no-op where directories cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], object], *, fsync: bool = True) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then ``os.replace`` it into place.

    Args:
        path: the target file; its folder must exist.
        write: fills the (empty, already created) temporary file it is given; its return value is ignored.
        fsync: flush the temporary file to disk before the rename, and the folder after it, so the new
            content survives a power loss.

    Returns:
        ``path`` as a :class:`Path`.

    On any exception (Ctrl-C included) the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".partial{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        if fsync:
            fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if fsync:
        fsync_dir(path.parent)
    return path


def save_npy_atomic(path: str | os.PathLike[str], array: np.ndarray, *, fsync: bool = True) -> Path:
    """``np.save(array)`` to ``path`` through :func:`atomic_write`."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.save(fh, array)

    return atomic_write(path, write, fsync=fsync)


HASH_CHUNK_BYTES = 1 << 20


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks (constant memory)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while chunk := fh.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def check_input_file(path: str | os.PathLike[str], what: str, hint: str,
                     empty_error: type[Exception] | None = None) -> Path:
    """One-line errors for an input that cannot be read at all: missing, a folder, empty or unreadable.

    ``what`` names the expected kind ("image", "audio file", ...), ``hint`` says what to pass instead;
    ``empty_error`` is the error class for a 0-byte file (default :class:`~flowvq_cli.errors.InputError`).
    """
    from flowvq_cli.errors import InputError

    path = Path(path)
    if not path.exists():
        raise InputError(f"{what} not found: {path}; {hint}")
    if path.is_dir():
        article = "an" if what[:1] in "aeiou" else "a"
        raise InputError(f"{path} is a folder, not {article} {what}; {hint}")
    if path.stat().st_size == 0:
        raise (empty_error or InputError)(f"{path} is an empty file (0 bytes); {hint}")
    if not os.access(path, os.R_OK):
        raise InputError(f"cannot read {path} (permission denied); {hint}")
    return path
