"""flowvq_cli.native_log: native chatter written to fd 2 is dropped, everything else still gets through."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from flowvq_cli.native_log import is_noise

NOISE_LINES = (
    "I0000 00:00:1733220000.123456   4242 gl_context.cc:357] GL version: 3.2 (OpenGL ES 3.2 Mesa 23.2.1)",
    "W0000 00:00:1733220000.234567   4243 inference_feedback_manager.cc:114] Feedback manager requires a model",
    "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
)
KEPT_LINES = (
    "E0000 00:00:1733220000.345678   4244 calculator_graph.cc:887] INVALID_ARGUMENT: a real native error",
    "error: no face found in chelsea.png",
    "warning: 2 faces found; using the largest (--face-index to choose)",
)


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=60)


def test_noise_pattern() -> None:
    assert all(is_noise(line) for line in NOISE_LINES)
    assert not any(is_noise(line) for line in KEPT_LINES)


def test_filtered_block_drops_noise_and_gives_fd2_back() -> None:
    proc = _run(f"""
        import os, sys, threading
        from flowvq_cli import native_log

        noise, kept = {NOISE_LINES!r}, {KEPT_LINES!r}
        before = os.fstat(2)

        def native(lines):
            for line in lines:
                os.write(2, (line + "\\n").encode())

        with native_log.filtered():
            native(noise + kept[:1])
            print(kept[1], file=sys.stderr, flush=True)
            threads = [threading.Thread(target=lambda: [native(noise) for _ in range(20)]) for _ in range(4)]
            for t in threads:
                t.start()
            with native_log.filtered():  # nested and concurrent blocks share the one filter
                native(noise)
            for t in threads:
                t.join()
        after = os.fstat(2)
        assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino), "fd 2 not given back"
        native(kept[2:])
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == list(KEPT_LINES)


def test_filter_process_covers_late_background_output() -> None:
    proc = _run(f"""
        import os, sys, threading, time
        from flowvq_cli import native_log

        noise, kept = {NOISE_LINES!r}, {KEPT_LINES!r}
        native_log.filter_process()

        def background():  # native threads log after the call that started them returned
            time.sleep(0.2)
            for line in noise + kept[:1]:
                os.write(2, (line + "\\n").encode())

        threading.Thread(target=background).start()
        print(kept[1], file=sys.stderr)
    """)
    assert proc.returncode == 0, proc.stderr
    assert sorted(proc.stderr.splitlines()) == sorted(KEPT_LINES[:2])
