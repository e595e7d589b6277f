"""Tests for flowvq_cli.video: write a real MP4 with ffmpeg, read it back, and the failure modes."""

from __future__ import annotations

import os
import signal
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from flowvq_cli.errors import InputError, OutputError
from flowvq_cli.video import VideoWriter, ffmpeg_exe, is_video, iter_frames, probe_video

FACE_PNG = Path(__file__).resolve().parents[1] / "examples" / "face.png"
FPS = 25
N_FRAMES = 12
SIZE = (128, 96)  # (width, height)


def _frames(n: int = N_FRAMES, size: tuple[int, int] = SIZE) -> list[np.ndarray]:
    """``n`` (H, W, 3) uint8 frames: the example photo, resized, shifted right by 2 px per frame."""
    base = np.asarray(Image.open(FACE_PNG).convert("RGB").resize(size))
    return [np.ascontiguousarray(np.roll(base, 2 * i, axis=1)) for i in range(n)]


def _write_sine(path: Path, seconds: float, rate: int = 16000) -> Path:
    """A 440 Hz mono 16-bit WAV."""
    t = np.arange(int(seconds * rate)) / rate
    samples = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(samples.tobytes())
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A silent 12-frame 128x96 MP4 at 25 fps."""
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    with VideoWriter(path, FPS, SIZE, metadata={"comment": "flowvq test"}) as writer:
        for frame in _frames():
            writer.write(frame)
    return path


def test_probe(clip: Path) -> None:
    info = probe_video(clip)
    assert (info.fps, info.n_frames, info.width, info.height) == (FPS, N_FRAMES, *SIZE)
    assert info.duration == pytest.approx(N_FRAMES / FPS, abs=0.05)
    assert not info.has_audio
    assert probe_video(clip, exact_frames=False).n_frames == N_FRAMES


def test_metadata_and_faststart(clip: Path) -> None:
    banner = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(clip)], capture_output=True,
                            text=True, check=False).stderr
    assert "flowvq test" in banner and "yuv420p" in banner and "h264" in banner
    head = clip.read_bytes()[:4096]
    assert head.find(b"moov") < head.find(b"mdat") or b"mdat" not in head  # moov atom first


def test_read_back(clip: Path) -> None:
    frames = list(iter_frames(clip))
    assert len(frames) == N_FRAMES
    assert all(frame.shape == (SIZE[1], SIZE[0], 3) and frame.dtype == np.uint8 for frame in frames)
    originals = _frames()
    errors = [np.abs(a.astype(float) - b).mean() for a, b in zip(frames, originals, strict=True)]
    assert max(errors) < 6  # H.264 at crf 18


def test_read_options(clip: Path) -> None:
    assert len(list(iter_frames(clip, max_frames=5))) == 5
    small = list(iter_frames(clip, size=(64, 48), fps=12.5))
    assert small[0].shape == (48, 64, 3) and len(small) == N_FRAMES // 2
    assert len(list(iter_frames(clip, start=0.2))) == N_FRAMES - 5


def test_stop_reading_early(clip: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    decoders: list[subprocess.Popen] = []
    popen = subprocess.Popen

    def recording_popen(*args, **kwargs) -> subprocess.Popen:
        process = popen(*args, **kwargs)
        if "rawvideo" in process.args:  # the decoder, not the probe
            decoders.append(process)
        return process

    monkeypatch.setattr(subprocess, "Popen", recording_popen)
    stream = iter_frames(clip)
    first = next(stream)
    assert first.shape == (SIZE[1], SIZE[0], 3)
    (decoder,) = decoders
    assert decoder.poll() is None  # blocked on a full pipe: the other frames are not read yet
    stream.close()  # must not raise
    assert decoder.returncode == -signal.SIGKILL  # killed, and reaped (returncode is set by wait)
    assert decoder.stdout is not None and decoder.stdout.closed
    with pytest.raises(ChildProcessError):  # no zombie left behind
        os.waitpid(decoder.pid, os.WNOHANG)


def test_audio_mux_and_odd_size(tmp_path: Path) -> None:
    audio = _write_sine(tmp_path / "sine.wav", seconds=1.0)
    path = tmp_path / "talk.mp4"
    with VideoWriter(path, FPS, (101, 75), audio_path=audio) as writer:
        writer.write(np.stack(_frames(FPS, size=(101, 75))))  # a batch (N, H, W, 3)
    info = probe_video(path)
    assert info.has_audio and info.n_frames == FPS
    assert (info.width, info.height) == (102, 76)  # padded to even for yuv420p
    assert info.duration == pytest.approx(1.0, abs=0.1)


def _only_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_exception_leaves_nothing(tmp_path: Path, error: type[BaseException]) -> None:
    path = tmp_path / "broken.mp4"
    with pytest.raises(error), VideoWriter(path, FPS, SIZE) as writer:
        writer.write(_frames(1)[0])
        raise error("stop")
    assert _only_files(tmp_path) == []


def test_no_frames_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="no frames"), VideoWriter(tmp_path / "empty.mp4", FPS, SIZE):
        pass
    assert _only_files(tmp_path) == []


def test_wrong_frame_shape(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="shape"), VideoWriter(tmp_path / "x.mp4", FPS, SIZE) as writer:
        writer.write(np.zeros((SIZE[0], SIZE[1], 3), np.uint8))  # (W, H) swapped
    assert _only_files(tmp_path) == []


def test_overwrite_rules(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    path.write_bytes(b"precious")
    with pytest.raises(OutputError, match=r"already exists.*--force"):
        VideoWriter(path, FPS, SIZE)
    assert path.read_bytes() == b"precious"
    with VideoWriter(path, FPS, SIZE, force=True) as writer:
        writer.write(_frames(1)[0])
    assert probe_video(path).n_frames == 1
    assert _only_files(tmp_path) == ["out.mp4"]


def test_missing_and_read_only_folder(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="does not exist"):
        VideoWriter(tmp_path / "nowhere" / "out.mp4", FPS, SIZE)
    if os.geteuid() == 0:
        pytest.skip("root can write into read-only folders")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        with pytest.raises(OutputError, match="read-only"):
            VideoWriter(locked / "out.mp4", FPS, SIZE)
    finally:
        locked.chmod(0o755)


def test_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        probe_video(tmp_path / "missing.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(InputError, match="empty file"):
        probe_video(tmp_path / "empty.mp4")
    (tmp_path / "junk.mp4").write_bytes(os.urandom(2048))
    with pytest.raises(InputError, match=r"junk\.mp4"):
        probe_video(tmp_path / "junk.mp4")
    with pytest.raises(InputError, match="no video stream"):
        probe_video(_write_sine(tmp_path / "a.wav", seconds=0.2))
    with pytest.raises(InputError, match="not found"):
        VideoWriter(tmp_path / "v.mp4", FPS, SIZE, audio_path=tmp_path / "missing.wav")


def test_is_video(clip: Path, tmp_path: Path) -> None:
    assert is_video(clip) and is_video("anything.MOV")
    assert not is_video(FACE_PNG)
    renamed = tmp_path / "clip.data"
    renamed.write_bytes(clip.read_bytes())
    assert is_video(renamed)
    assert not is_video(_write_sine(tmp_path / "a.data", seconds=0.2))
