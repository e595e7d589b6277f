"""Atomic file writes: a file is either absent, its previous content, or complete — never torn.

:func:`atomic_write` is the one primitive every "write a temporary file beside the target, then
``os.replace`` it into place" in FlowVQ goes through. The temporary file is hidden and keeps the
target's extension (``.coeffs.npy.k3j9x2.partial.npy``), so writers that look at the extension (ffmpeg,
``np.lib.format.open_memmap``, ``wave``) behave as they would on the target. The target's folder must
exist; callers that want it created do so themselves.

Leftovers: a temporary file is made by :func:`create_temp`, which holds an exclusive ``flock`` on it
for as long as its process lives. A process killed outright (SIGKILL, power loss) leaves its temporary
file behind, unlocked; the next run that writes into the same folder removes it
(:func:`sweep_leftovers`). A temporary file whose lock is held belongs to a live run (another ``batch``
on the same folder) and is never touched. Where locks are not available (Windows, some network file
systems) nothing is swept.

Disk full: an ``ENOSPC`` / ``EDQUOT`` while writing becomes :class:`~flowvq_cli.errors.DiskFullError`, one
line that says where, how much is free, how much the file needed at least, and what to do.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from flowvq_cli.errors import InputError, OutputError, disk_full_error, is_disk_full

try:
    import fcntl
except ImportError:  # Windows: no flock, so no sweeping
    fcntl = None

PARTIAL_RE = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.partial(\.[^.]+)?$")
"""Names of FlowVQ's temporary files: ``.NAME.<8 random>.partial[.ext]`` (hidden, beside the target)."""

TEMP_ATTEMPTS = 8
"""How often :func:`create_temp` retries when a sweep of another run removed its fresh file."""

_swept: set[str] = set()


def _lock(fd: int, name: str) -> bool:
    """Lock a fresh temporary file; False when a sweep removed it meanwhile (then make another)."""
    if fcntl is None:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except OSError:
        return True  # a file system without locks: the file is never swept, so it is safe to use
    try:
        return os.path.samestat(os.stat(name), os.fstat(fd))
    except FileNotFoundError:
        return False


def create_temp(path: str | os.PathLike[str]) -> tuple[Path, int]:
    """Create ``.NAME.<random>.partial.EXT`` beside ``path``, locked by this process for its lifetime.

    Sweeps the folder's leftovers first (once per folder and process). Returns the temporary file and
    the descriptor holding its lock: close it (after renaming or deleting the file) with ``os.close``.

    Raises:
        DiskFullError: no room for even an empty file. OSError: the folder is missing or read-only.
    """
    path = Path(path)
    sweep_once(path.parent)
    for _ in range(TEMP_ATTEMPTS):
        try:
            fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".partial{path.suffix}", dir=path.parent)
        except OSError as error:
            if is_disk_full(error):
                raise disk_full_error(path) from None
            raise
        try:
            if _lock(fd, name):
                return Path(name), fd
        except BaseException:  # a stop signal while locking: the caller never sees this file
            os.close(fd)
            Path(name).unlink(missing_ok=True)
            raise
        os.close(fd)
    raise OutputError(f"cannot create a temporary file beside {path}: another process keeps removing them")


def _take_lock(path: str) -> tuple[int | None, bool]:
    """Open ``path`` and try its lock without waiting: (the descriptor, now holding the lock, or None;
    whether a live process holds it). No locks on this system or file, or no file: (None, False)."""
    if fcntl is None:
        return None, False
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None, False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fd, False
    except OSError as error:  # held by a live run, or no locks on this file system
        os.close(fd)
        return None, isinstance(error, BlockingIOError)


def _owner_gone(path: str) -> int | None:
    """Open ``path`` and try its lock: the open descriptor (lock now held) when its owner is gone, else None."""
    return _take_lock(path)[0]


def sweep_leftovers(folder: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary files in ``folder`` whose process is gone (see the module docstring).

    Returns the paths removed. Never raises for an unreadable folder or a file that vanished.
    """
    removed = []
    try:
        entries = [e for e in os.scandir(folder) if PARTIAL_RE.match(e.name) and e.is_file(follow_symlinks=False)]
    except OSError:
        return removed
    for entry in entries:
        fd = _owner_gone(entry.path)
        if fd is None:
            continue
        try:
            if os.path.samestat(os.stat(entry.path), os.fstat(fd)):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            pass  # removed meanwhile, or not ours to remove
        finally:
            os.close(fd)
    return removed


def sweep_once(folder: str | os.PathLike[str]) -> list[Path]:
    """:func:`sweep_leftovers` the first time this process writes into ``folder``; later calls do nothing."""
    key = os.path.abspath(folder)
    if key in _swept:
        return []
    _swept.add(key)
    return sweep_leftovers(folder)


def _lock_held(path: str) -> bool:
    """Whether another open description holds ``path``'s lock (its writer is alive)."""
    fd, held = _take_lock(path)
    if fd is not None:
        os.close(fd)
    return held


def being_written(path: str | os.PathLike[str]) -> bool:
    """Whether a live process is writing ``path`` right now (its locked temporary file is beside it)."""
    path = Path(path)
    prefix = f".{path.name}."
    try:
        names = [e.path for e in os.scandir(path.parent) if e.name.startswith(prefix) and PARTIAL_RE.match(e.name)]
    except OSError:
        return False
    return any(_lock_held(name) for name in names)


def publish(tmp: Path, path: Path, *, replace: bool = True) -> None:
    """Move the finished ``tmp`` to ``path`` in one step.

    With ``replace`` an existing ``path`` is replaced (``os.replace``: readers see the old file or the
    new one). Without it an existing ``path`` is never overwritten, even one another process finished a
    moment ago: the file is hard-linked into place (which fails if the name exists), falling back to a
    check and a rename where the file system has no hard links.

    Raises:
        OutputError: ``replace`` is false and ``path`` exists.
    """
    if replace:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise OutputError(f"{path} already exists (another run may have written it meanwhile); pass --force "
                          "to overwrite it") from None
    except OSError:  # no hard links here (FAT, some network or FUSE file systems)
        if path.exists():
            raise OutputError(f"{path} already exists; pass --force to overwrite it") from None
        os.replace(tmp, path)
        return
    tmp.unlink()


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


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], object], *, fsync: bool = True,
                 replace: bool = True) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then move it into place (:func:`publish`).

    Args:
        path: the target file; its folder must exist.
        write: fills the (empty, already created) temporary file it is given; its return value is ignored.
        fsync: flush the temporary file to disk before the rename, and the folder after it, so the new
            content survives a power loss.
        replace: replace an existing ``path``; with False an existing ``path`` is an :class:`OutputError`.

    Returns:
        ``path`` as a :class:`Path`.

    Raises:
        DiskFullError: the disk or quota filled up (one line: where, free space, what to do).

    On any exception (Ctrl-C and SIGTERM included) the temporary file is removed and ``path`` is left as
    it was.
    """
    path = Path(path)
    tmp, fd = create_temp(path)
    try:  # (signal handlers run at calls and loops: none between create_temp and here)
        write(tmp)
        if fsync:
            fsync_file(tmp)
        publish(tmp, path, replace=replace)
    except OSError as error:
        written = _size(tmp)
        tmp.unlink(missing_ok=True)
        if is_disk_full(error):
            raise disk_full_error(path, written) from None
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)
    if fsync:
        fsync_dir(path.parent)
    return path


def _size(path: Path) -> int:
    """Size of ``path`` in bytes, 0 when it cannot be read."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


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
