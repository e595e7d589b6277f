"""Stop signals: SIGINT (Ctrl-C), SIGTERM and SIGHUP all stop a command the same clean way.

:func:`install` (called once by the CLI's ``main``) makes each of the three signals raise
:class:`Interrupted` in the main thread. ``Interrupted`` derives from :class:`BaseException` (like
``KeyboardInterrupt``), so ``except Exception`` never swallows it and every ``except BaseException`` /
``finally`` / ``with`` cleanup runs as it does for Ctrl-C: :func:`flowvq_cli.fsutil.atomic_write` and
:class:`flowvq_cli.video.VideoWriter` delete their temporary files and kill ffmpeg, worker pools are
stopped (:func:`stop_pool`), and the trainer saves a checkpoint. ``main`` then exits with
``128 + signal number``: 130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP.

- Only the first stop signal raises; later ones are ignored while the cleanup runs (SIGKILL still
  stops the process at once; the next run sweeps what it leaves, see :func:`flowvq_cli.fsutil.sweep_leftovers`).
- :func:`deferred` holds a stop back until a block ends (one optimizer step), so state is saved between
  steps, never half-way through one.
- A process forked from the one that installed the handlers (a DataLoader worker) gets the handler it had
  before, so a worker is not turned into a second copy of the CLI.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any, ClassVar, TypeVar

T = TypeVar("T")

STOP_SIGNALS: tuple[int, ...] = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))
"""The signals handled like Ctrl-C (SIGHUP does not exist on Windows)."""

PR_SET_PDEATHSIG = 1
"""Linux ``prctl`` option: the signal a process gets when its parent dies."""

POOL_STOP_SECONDS = 5.0
"""How long :func:`stop_pool` waits for its workers (all together) to clean up after SIGTERM before it
kills them."""


class Interrupted(BaseException):
    """A stop signal arrived: unwind, clean up, and exit with :attr:`exit_code`.

    Attributes:
        signum: the signal's number.
        note: what was kept, for the user (set by whoever saved something on the way out, e.g. the trainer).
    """

    def __init__(self, signum: int, note: str | None = None) -> None:
        super().__init__(signum)
        self.signum = signum
        self.note = note

    @property
    def name(self) -> str:
        """The signal's name, e.g. ``SIGTERM``."""
        try:
            return signal.Signals(self.signum).name
        except ValueError:
            return f"signal {self.signum}"

    @property
    def exit_code(self) -> int:
        """The shell's convention: 128 + the signal number (130, 143, 129)."""
        return 128 + self.signum

    def __str__(self) -> str:
        return f"interrupted by {self.name}"


class _State:
    """Module state: who installed the handlers, what they replaced, whether a stop is pending."""

    owner_pid: ClassVar[int | None] = None
    previous: ClassVar[dict[int, Any]] = {}
    stopping: ClassVar[bool] = False
    defer_depth: ClassVar[int] = 0
    pending: ClassVar[int | None] = None
    worker: ClassVar[bool] = False
    task_depth: ClassVar[int] = 0


def install() -> None:
    """Make SIGINT, SIGTERM and SIGHUP raise :class:`Interrupted` in this process (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        return
    _State.owner_pid = os.getpid()
    _State.stopping, _State.pending, _State.defer_depth = False, None, 0
    for signum in STOP_SIGNALS:
        previous = signal.signal(signum, _handle)
        if previous is not _handle:
            _State.previous[signum] = previous


def uninstall() -> None:
    """Put back the handlers :func:`install` replaced."""
    for signum, previous in _State.previous.items():
        signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
    _State.previous = {}
    _State.owner_pid = None


def _handle(signum: int, frame: FrameType | None) -> None:
    """The handler: raise :class:`Interrupted` once (or note it inside :func:`deferred`)."""
    if os.getpid() != _State.owner_pid:
        _forward_to_previous(signum, frame)
        return
    if _State.stopping:
        return  # already unwinding: let the cleanup finish
    if _State.worker and _State.task_depth == 0:
        os._exit(128 + signum)  # an idle pool worker holds nothing to clean up
    if _State.defer_depth > 0:
        _State.pending = _State.pending or signum
        return
    _State.stopping = True
    raise Interrupted(signum)


def _forward_to_previous(signum: int, frame: FrameType | None) -> None:
    """In a forked child: reinstate the handler it had before :func:`install`, and let it act."""
    previous = _State.previous.get(signum, signal.SIG_DFL)
    signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
    if callable(previous):
        previous(signum, frame)
    elif previous == signal.SIG_DFL:
        os.kill(os.getpid(), signum)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold stop signals back until the block ends, then raise :class:`Interrupted` (nestable)."""
    _State.defer_depth += 1
    try:
        yield
    finally:
        _State.defer_depth -= 1
    if _State.defer_depth == 0 and _State.pending is not None and not _State.stopping:
        signum, _State.pending = _State.pending, None
        _State.stopping = True
        raise Interrupted(signum)


def worker_init(*then: Callable[[], object]) -> None:
    """Initializer of spawned pool workers: a stop signal (SIGTERM from :func:`stop_pool`, or the SIGINT
    Ctrl-C sends to the whole process group) unwinds the task running in :func:`run_task`, so its
    temporary files and ffmpeg go, then ends the worker; an idle worker just exits. ``then`` are further
    initializers to call."""
    install()
    _State.worker = True
    _die_with_parent()
    for init in then:
        init()


def _die_with_parent() -> None:
    """Linux: have the kernel send this worker SIGTERM when its parent dies, however it dies (SIGKILL
    included), so no worker outlives the run; elsewhere a no-op."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    parent = multiprocessing.parent_process()
    if parent is not None and os.getppid() != parent.pid:  # it died before prctl took effect
        os._exit(128 + signal.SIGTERM)


def run_task(fn: Callable[..., T], *args: Any) -> T:
    """Call ``fn(*args)`` in a pool worker set up by :func:`worker_init` (see there)."""
    _State.task_depth += 1
    try:
        return fn(*args)
    except Interrupted as stop:
        os._exit(stop.exit_code)  # cleanup has run; the parent is stopping and wants no result
    finally:
        _State.task_depth -= 1


def stop_pool(pool: Any) -> None:
    """Stop a :class:`concurrent.futures.ProcessPoolExecutor` now: no new tasks, SIGTERM to every worker
    (each cleans up its temporary files and ffmpeg), then SIGKILL for any still running after
    :data:`POOL_STOP_SECONDS`."""
    pool.shutdown(wait=False, cancel_futures=True)
    processes = list((getattr(pool, "_processes", None) or {}).values())  # the stdlib has no public handle
    for process in processes:
        if process.is_alive():
            process.terminate()
    deadline = time.monotonic() + POOL_STOP_SECONDS
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()
