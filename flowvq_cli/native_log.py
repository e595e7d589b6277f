"""Native libraries' log noise kept off the terminal: one filter on file descriptor 2.

MediaPipe's C++ code (glog, absl, the TFLite runtime) logs straight to file descriptor 2, sometimes from
background threads after a call returned; Python-level settings cannot silence it. While the filter is on,
fd 2 is a pipe read by a thread that drops :data:`NOISE` lines and passes everything else on to the real
stderr, at once and unchanged, so ERROR and FATAL glog lines and FlowVQ's own messages still get through.

There is one filter per process, used two ways:

- :func:`filter_process` — the ``flowvq`` command: on for the whole run; ``sys.stderr`` then writes to
  the real stderr directly, so FlowVQ's one-line errors never wait on the pipe.
- :func:`filtered` — library code around native calls (:mod:`flowvq_cli.face.detect`): on while any such
  block runs, in any thread; nothing to do when the process-wide filter is already on.

Only the standard library is imported here: the CLI imports this module before parsing arguments.
"""

from __future__ import annotations

import atexit
import io
import os
import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

NOISE = re.compile(
    r"^(INFO: Created TensorFlow Lite|WARNING: All log messages before absl::InitializeLog"
    r"|[IW]\d{4} \d\d:\d\d:\d\d)"
)
"""MediaPipe's C++ chatter: TFLite delegate notices, absl's pre-init warning, glog INFO and WARNING lines."""

QUIET_ENV = {"GLOG_minloglevel": "2", "TF_CPP_MIN_LOG_LEVEL": "3"}
"""Log levels native libraries read at start-up (ERROR and above); set only where the user set none."""

JOIN_TIMEOUT_S = 0.5
"""How long stopping the filter waits for the reader thread to pass on what is still in the pipe."""


def is_noise(line: str) -> bool:
    """Whether a line written to fd 2 is native chatter that the user should not see."""
    return NOISE.match(line) is not None


def lower_native_log_levels() -> None:
    """Turn native logging down to errors (:data:`QUIET_ENV`) before a native library starts, unless set."""
    for name, value in QUIET_ENV.items():
        os.environ.setdefault(name, value)


class _Pump:
    """fd 2 redirected into a pipe, and the thread that passes on every line of it except noise."""

    def __init__(self) -> None:
        self.terminal = os.dup(2)  # the real stderr; OSError when there is no usable fd 2
        try:
            read_end, write_end = os.pipe()
            out = os.dup(self.terminal)  # the reader's own copy: it closes it when the pipe ends
        except OSError:
            os.close(self.terminal)
            raise
        _flush_python_stderr()
        os.dup2(write_end, 2)
        os.close(write_end)
        self.thread = threading.Thread(target=self._run, args=(read_end, out), name="flowvq-native-log",
                                       daemon=True)
        self.thread.start()

    @staticmethod
    def _run(read_end: int, out: int) -> None:
        broken = False
        with os.fdopen(read_end, "rb") as pipe:
            for raw in pipe:  # until every copy of the write end is closed
                if not broken and not is_noise(raw.decode(errors="replace")):
                    broken = not _write_all(out, raw)  # keep draining, so writers never block
        os.close(out)

    def stop(self, restore: bool) -> None:
        """Give fd 2 back to the real stderr (``restore``) or to /dev/null (at exit: native destructors still
        log), then let the reader pass on what is left."""
        _flush_python_stderr()
        if restore:
            os.dup2(self.terminal, 2)
        else:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            os.close(devnull)
        self.thread.join(timeout=JOIN_TIMEOUT_S)  # a child process may still hold the pipe: don't wait on it
        os.close(self.terminal)


_lock = threading.Lock()
_users = 0
_pump: _Pump | None = None


def _acquire() -> _Pump | None:
    """One more user of the filter, started by the first; None when fd 2 cannot be redirected."""
    global _users, _pump
    with _lock:
        if _pump is None:
            try:
                _pump = _Pump()
            except OSError:
                return None
        _users += 1
        return _pump


def _release(restore: bool = True) -> None:
    """One user less; the last one stops the filter."""
    global _users, _pump
    with _lock:
        _users -= 1
        if _users == 0 and _pump is not None:
            pump, _pump = _pump, None
            pump.stop(restore)


@contextmanager
def filtered() -> Iterator[None]:
    """Keep native noise off stderr while the block runs (nested and concurrent blocks share the filter)."""
    if _acquire() is None:  # no usable fd 2 (embedded interpreters): leave it alone
        yield
        return
    try:
        yield
    finally:
        _release()


def filter_process() -> None:
    """Keep native noise off stderr for the rest of the process (the ``flowvq`` command).

    ``sys.stderr`` is pointed at the real stderr, so Python's own messages bypass the pipe; at exit fd 2
    goes to /dev/null, where late native chatter (destructors) ends.
    """
    pump = _acquire()
    if pump is None:
        return
    sys.stderr = io.TextIOWrapper(os.fdopen(os.dup(pump.terminal), "wb", buffering=0), encoding="utf-8",
                                  errors="replace", line_buffering=True)
    atexit.register(_release, restore=False)


def _write_all(fd: int, data: bytes) -> bool:
    """Write all of ``data``; False when the real stderr is gone (a closed pipe)."""
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except OSError:
            return False
    return True


def _flush_python_stderr() -> None:
    """Python's buffered stderr goes out before fd 2 changes underneath it."""
    try:
        sys.stderr.flush()
    except (AttributeError, OSError, ValueError):
        pass
