"""Stopped jobs leave nothing behind: stop signals, hard kills, a full disk, two runs on one folder.

The end-to-end tests run the real CLI in a subprocess with the real ffmpeg and the shipped weights,
rendering with the mesh warp (fast on CPU). A run is signalled once its temporary video appears, so it
is really encoding when the signal lands.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
import wave
from pathlib import Path

import pytest

from flowvq_cli import stops
from flowvq_cli.errors import DiskFullError, OutputError
from flowvq_cli.fsutil import (
    atomic_write,
    being_written,
    create_temp,
    publish,
    sweep_leftovers,
)
from flowvq_cli.video import probe_video

FLOWVQ = [sys.executable, "-m", "flowvq_cli"]
WAIT_S = 90.0
FPS = 25


def wav(path: Path, source: Path, seconds: float) -> Path:
    """``source`` looped or cut to ``seconds`` (same format)."""
    with wave.open(str(source)) as w:
        params, data = w.getparams(), w.readframes(w.getnframes())
    n_bytes = int(seconds * params.framerate) * params.sampwidth * params.nchannels
    with wave.open(str(path), "wb") as out:
        out.setparams(params)
        out.writeframes((data * (n_bytes // len(data) + 1))[:n_bytes])
    return path


def leftovers(folder: Path) -> list[str]:
    """Hidden temporary files in ``folder``."""
    return sorted(p.name for p in folder.glob(".*partial*"))


def start(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([*FLOWVQ, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def wait_for_temp(proc: subprocess.Popen, folder: Path, contains: str = "") -> str:
    """Poll until a temporary video whose name holds ``contains`` appears in ``folder``."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        found = [name for name in leftovers(folder) if contains in name]
        if found:
            return found[0]
        if proc.poll() is not None:
            pytest.fail(f"the run ended before writing (status {proc.returncode}): {proc.stderr.read()}")
        time.sleep(0.1)
    proc.kill()
    pytest.fail("no temporary file appeared")


def processes_mentioning(text: str) -> list[int]:
    """Pids of live processes whose command line contains ``text`` (e.g. an ffmpeg writing in tmp_path)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


@pytest.fixture()
def long_wav(tmp_path: Path, speech_wav: Path) -> Path:
    return wav(tmp_path / "long.wav", speech_wav, 30.0)


@pytest.fixture()
def short_wav(tmp_path: Path, speech_wav: Path) -> Path:
    return wav(tmp_path / "short.wav", speech_wav, 1.6)


# ------------------------------------------------------------------------------------- stop signals


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143)])
@pytest.mark.slow
def test_signal_stops_generate_cleanly(sig: int, code: int, tmp_path: Path, face_png: Path,
                                       long_wav: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    proc = start("generate", str(face_png), str(long_wav), "--renderer", "warp", "--out", str(out / "a.mp4"),
                 "--coeffs", str(out / "a.npz"))
    wait_for_temp(proc, out)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == code, stderr
    assert list(out.iterdir()) == []  # no video, no coefficients, no hidden leftovers
    assert stderr.strip().splitlines()[-1].startswith(f"interrupted by {signal.Signals(sig).name}")
    assert "Traceback" not in stderr
    assert processes_mentioning(str(tmp_path)) == []  # ffmpeg was stopped too


@pytest.mark.slow
def test_sigterm_stops_batch_cleanly(tmp_path: Path, face_png: Path, short_wav: Path,
                                                               long_wav: Path) -> None:
    (tmp_path / "jobs.csv").write_text(f"face,audio,seed\n{face_png},{short_wav},1\n{face_png},{long_wav},2\n")
    out = tmp_path / "out"
    args = ("batch", str(tmp_path / "jobs.csv"), "--renderer", "warp", "--out", str(out))
    proc = start(*args)
    wait_for_temp(proc, out, contains="_long_")
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 143, stderr
    assert [p.name for p in out.iterdir()] == ["face_short_neutral_s1.mp4"]  # the finished row stays, whole
    assert processes_mentioning(str(tmp_path)) == []
    info = probe_video(out / "face_short_neutral_s1.mp4")
    assert info.n_frames == 40 and info.has_audio


@pytest.mark.slow
def test_sigkill_leftovers_are_swept_by_the_next_run(tmp_path: Path, face_png: Path, short_wav: Path,
                                                     long_wav: Path) -> None:
    (tmp_path / "jobs.csv").write_text(f"face,audio,seed\n{face_png},{short_wav},1\n{face_png},{long_wav},2\n")
    out = tmp_path / "out"
    proc = start("batch", str(tmp_path / "jobs.csv"), "--renderer", "warp", "--out", str(out))
    leftover = wait_for_temp(proc, out, contains="_long_")
    proc.kill()
    proc.communicate(timeout=30)
    for pid in processes_mentioning(str(tmp_path)):  # the orphaned ffmpeg
        os.kill(pid, signal.SIGKILL)
    assert leftovers(out) == [leftover]
    # a restart with --skip-existing: row 1 is skipped, the leftover is swept before anything is written
    (tmp_path / "jobs.csv").write_text(f"face,audio,seed\n{face_png},{short_wav},1\n")
    again = subprocess.run([*FLOWVQ, "batch", str(tmp_path / "jobs.csv"), "--renderer", "warp", "--out", str(out),
                            "--skip-existing"], capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert "1 skipped" in again.stderr
    assert leftovers(out) == []


def children_of(pid: int) -> set[int]:
    """Pids of the live processes whose parent is ``pid``."""
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue
    return found


@pytest.mark.slow  # synthesises a speech corpus
def test_sigterm_stops_synth_and_its_workers(tmp_path: Path) -> None:
    out = tmp_path / "synth"
    proc = start("synth", str(out), "--clips", "40", "--workers", "2", "--no-frames", "-q")
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline and not list((out / "clips").glob("*/*")):
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.1)
    workers = children_of(proc.pid)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr
    assert not list(out.rglob(".*partial*")) and "Traceback" not in stderr
    deadline = time.monotonic() + 15  # stop_pool's grace, and the resource tracker seeing them go
    while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in workers):
        time.sleep(0.2)
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()]  # no worker outlived the run


def test_stop_signals_raise_interrupted_with_shell_exit_codes() -> None:
    stops.install()
    try:
        for sig, code in ((signal.SIGHUP, 129), (signal.SIGINT, 130), (signal.SIGTERM, 143)):
            stops._State.stopping = False
            with pytest.raises(stops.Interrupted) as caught:
                os.kill(os.getpid(), sig)
                time.sleep(1)  # the handler runs at the next bytecode
            assert caught.value.exit_code == code and caught.value.signum == sig
        stops._State.stopping = False
        with pytest.raises(stops.Interrupted), stops.deferred():  # held back until the block ends
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.2)
            finished = True
        assert finished
    finally:
        stops._State.stopping = False
        stops.uninstall()


@pytest.mark.slow  # trains
def test_train_checkpoints_on_sigterm_and_resumes(tmp_path: Path) -> None:
    from dataset_testutils import make_dataset

    from flowvq_cli.training_state import latest_training_state, load_training_state

    data = make_dataset(tmp_path / "data")
    run = tmp_path / "run"
    args = ("train", "expflow", str(data), "--config", "tiny", "--out", str(run), "--batch-size", "4",
            "--warmup", "1", "--eval-every", "0", "--save-every", "2", "--window-frames", "16", "--no-augment",
            "--set", "audio_layers=1", "-q")
    proc = start(*args, "--steps", "100000")
    deadline = time.monotonic() + WAIT_S
    log = run / "train_log.jsonl"
    while time.monotonic() < deadline and not (log.exists() and '"checkpoint"' in log.read_text()):
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr
    assert "continue with --resume" in stderr and "Traceback" not in stderr
    saved = load_training_state(run / "checkpoints", device="cpu").step
    assert saved > 0 and leftovers(run / "checkpoints") == []
    resumed = subprocess.run([*FLOWVQ, *args, "--steps", str(saved + 1), "--resume"], capture_output=True,
                             text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["step"] for e in events if e["event"] == "interrupted"] == [saved]
    assert [e["step"] for e in events if e["event"] == "resume"] == [saved]
    assert latest_training_state(run / "checkpoints").name.startswith(f"step-{saved + 1:08d}")


# --------------------------------------------------------------------------------------- leftovers


def test_sweep_removes_only_files_whose_owner_is_gone(tmp_path: Path) -> None:
    live, fd = create_temp(tmp_path / "b.mp4")  # this process holds its lock: a live run's
    dead = tmp_path / ".a.mp4.abcd1234.partial.mp4"
    dead.write_bytes(b"x")  # nobody holds its lock: a killed run's
    other = tmp_path / ".notes.partial"  # not our name pattern
    other.write_text("keep")
    try:
        assert sweep_leftovers(tmp_path) == [dead]
        assert live.exists() and other.exists() and not dead.exists()
        assert being_written(tmp_path / "b.mp4") and not being_written(tmp_path / "a.mp4")
    finally:
        os.close(fd)
    assert sweep_leftovers(tmp_path) == [live]  # its owner let go


def test_publish_without_replace_never_overwrites(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    atomic_write(target, lambda tmp: tmp.write_text("first"), replace=False)
    with pytest.raises(OutputError, match="already exists"):
        atomic_write(target, lambda tmp: tmp.write_text("second"), replace=False)
    assert target.read_text() == "first" and leftovers(tmp_path) == []
    tmp, fd = create_temp(target)
    tmp.write_text("third")
    publish(tmp, target, replace=True)
    os.close(fd)
    assert target.read_text() == "third" and leftovers(tmp_path) == []


# --------------------------------------------------------------------------------------- disk full


def test_atomic_write_on_a_full_disk_is_one_line(tmp_path: Path) -> None:
    def fill(tmp: Path) -> None:
        tmp.write_bytes(b"\0" * 5000)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(DiskFullError) as caught:
        atomic_write(tmp_path / "big.npy", fill)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"disk full: cannot write {tmp_path / 'big.npy'}")
    assert "free in" in message and "more than 5.0 kB" in message and "free some space" in message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_ffmpeg_failing_to_write_on_a_full_disk_is_one_line(tmp_path: Path, face_png: Path,
                                                            short_wav: Path) -> None:
    from flowvq_cli.video import ffmpeg_exe

    fake = tmp_path / "ffmpeg"  # the real ffmpeg, with its output file replaced by /dev/full (ENOSPC)
    fake.write_text(f"#!{sys.executable}\nimport os, sys\nargs = sys.argv[1:]\n"
                    "if args and args[-1].endswith('.partial.mp4'):\n"
                    "    args = args[:-1] + ['-f', 'mp4', '/dev/full']\n"
                    f"os.execv({ffmpeg_exe()!r}, [{ffmpeg_exe()!r}, *args])\n")
    fake.chmod(0o755)
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.run([*FLOWVQ, "generate", str(face_png), str(short_wav), "--renderer", "warp", "--out",
                           str(out / "a.mp4")], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "IMAGEIO_FFMPEG_EXE": str(fake)})
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: disk full: cannot write {out / 'a.mp4'}"), lines
    assert list(out.iterdir()) == []


@pytest.fixture()
def tiny_tmpfs(tmp_path: Path):
    """A 40 kB tmpfs (needs root and a mount namespace that allows it; skipped otherwise)."""
    mount = tmp_path / "full"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.parametrize("command", ["generate", "batch"])
@pytest.mark.slow
def test_writing_into_a_full_filesystem_is_one_line(command: str, tiny_tmpfs: Path, tmp_path: Path, face_png: Path,
                                                    short_wav: Path) -> None:
    if command == "generate":
        args, target = [str(face_png), str(short_wav), "--out", str(tiny_tmpfs / "a.mp4")], tiny_tmpfs / "a.mp4"
    else:  # two rows: the batch stops at the first full disk instead of failing every row
        (tmp_path / "jobs.csv").write_text(f"face,audio,seed\n{face_png},{short_wav},1\n{face_png},{short_wav},2\n")
        args, target = [str(tmp_path / "jobs.csv"), "--out", str(tiny_tmpfs)], tiny_tmpfs / "face_short_neutral_s1.mp4"
    proc = subprocess.run([*FLOWVQ, command, *args, "--renderer", "warp"], capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: disk full: cannot write {target}"), lines
    assert "free in" in lines[0] and "needs more than" in lines[0], lines
    assert list(tiny_tmpfs.iterdir()) == []


# --------------------------------------------------------------------------------- two runs, one folder


@pytest.mark.slow
def test_two_batches_on_one_folder_write_every_file_once_and_whole(tmp_path: Path, face_png: Path,
                                                                   short_wav: Path) -> None:
    rows = "".join(f"{face_png},{short_wav},{seed}\n" for seed in range(2))
    (tmp_path / "jobs.csv").write_text("face,audio,seed\n" + rows)
    out = tmp_path / "out"
    args = ("batch", str(tmp_path / "jobs.csv"), "--renderer", "warp", "--crop-only", "--out", str(out),
            "--skip-existing")
    first, second = start(*args), start(*args)
    results = [p.communicate(timeout=180) for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, results
    stderr = "".join(err for _, err in results)
    assert stderr.count(": done: ") == 2 and stderr.count(": skipped: ") == 2  # each row done by one run
    assert ": failed: " not in stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"face_short_neutral_s{seed}.mp4" for seed in range(2)]  # no hidden leftovers either
    for name in names:
        info = probe_video(out / name)
        assert info.n_frames == 40 and info.has_audio and (info.width, info.height) == (256, 256)
