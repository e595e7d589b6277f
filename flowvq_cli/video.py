"""Video in and out through the ffmpeg binary that ships with ``imageio-ffmpeg``.

- :func:`probe_video` reads a clip's frame rate, size, duration and audio presence by parsing the
  banner ``ffmpeg -i`` prints on stderr (imageio-ffmpeg ships no ``ffprobe``).
- :func:`iter_frames` streams decoded frames as ``(H, W, 3) uint8`` RGB arrays over a pipe
  (``rawvideo rgb24``): memory stays constant whatever the clip's length.
- :class:`VideoWriter` streams RGB frames into ffmpeg's stdin and encodes H.264 (``yuv420p``,
  ``+faststart``), optionally muxing an audio file as AAC. The file appears only when encoding
  succeeded: frames go to a hidden temporary file in the target folder that is renamed at the end,
  and an exception (Ctrl-C and SIGTERM included, see :mod:`flowvq_cli.stops`) kills ffmpeg and deletes
  it. The temporary file is locked for the writer's lifetime, so one a killed run left is swept by
  the next run into that folder (:func:`flowvq_cli.fsutil.sweep_leftovers`). A disk that fills up
  gives one line (:class:`flowvq_cli.errors.DiskFullError`), not ffmpeg's messages.

Every ffmpeg call gets an argument list (no shell) and its exit status is checked.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import IO

import numpy as np

from flowvq_cli.errors import DiskFullError, InputError, OutputError, disk_full_error
from flowvq_cli.fsutil import check_input_file, create_temp, publish

VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".m4v", ".mkv", ".avi", ".webm", ".flv", ".mpg", ".mpeg",
                              ".wmv", ".3gp", ".ts", ".mts", ".gif"})
"""Extensions :func:`is_video` accepts without probing."""

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
"""Extensions :func:`is_video` rejects without probing (stills ffmpeg could also open)."""

DEFAULT_CRF = 18
"""x264 constant rate factor: visually lossless for talking heads, small files."""

DEFAULT_PRESET = "medium"
"""x264 speed/size trade-off."""

AUDIO_BITRATE = "192k"
"""AAC bitrate of muxed audio."""

FPS_MAX_DENOMINATOR = 1001
"""Frame rates are passed to ffmpeg as exact fractions (29.97 -> 30000/1001)."""

STDERR_TAIL_CHARS = 600
"""How much of ffmpeg's stderr an error message quotes."""

_DURATION_RE = re.compile(r"Duration:\s*(\d+):(\d+):(\d+(?:\.\d+)?)")
_VIDEO_STREAM_RE = re.compile(r"Stream #\d+:\d+.*?: Video: (.*)")
_SIZE_RE = re.compile(r"[,\s](\d{1,5})x(\d{1,5})(?=[\s,\[])")
_FPS_RE = re.compile(r"([\d.]+)(k?) (fps|tbr)")
_ROTATION_RE = re.compile(r"rotation of (-?[\d.]+) degrees")
_AUDIO_STREAM_RE = re.compile(r"Stream #\d+:\d+.*?: Audio: ")
_FRAME_COUNT_RE = re.compile(r"frame=\s*(\d+)")
_DISK_FULL_RE = re.compile(r"No space left on device|Disk quota exceeded", re.IGNORECASE)


@functools.lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary bundled with imageio-ffmpeg (or named by ``IMAGEIO_FFMPEG_EXE``)."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe_video` learns about a clip.

    Attributes:
        fps: frames per second of the first video stream.
        n_frames: frame count: exact when probed with ``exact_frames=True`` (the default), else the
            estimate ``round(duration * fps)``.
        width, height: decoded frame size in pixels, after the container's rotation is applied
            (ffmpeg auto-rotates when decoding, so this is the size :func:`iter_frames` yields).
        duration: seconds, the container's duration (the longest stream; 0.0 when it does not say).
        has_audio: whether the file holds at least one audio stream.
    """

    fps: float
    n_frames: int
    width: int
    height: int
    duration: float
    has_audio: bool


def _tail(text: str) -> str:
    """The last :data:`STDERR_TAIL_CHARS` characters of ffmpeg's stderr, on one line."""
    return " ".join(text.strip()[-STDERR_TAIL_CHARS:].split())


def _parse_fps(stream_line: str) -> float | None:
    """Frame rate from a ``Video:`` stream line: ``fps`` preferred over ``tbr``."""
    found = {kind: float(value) * (1000.0 if kilo else 1.0) for value, kilo, kind in
             _FPS_RE.findall(stream_line)}
    return found.get("fps") or found.get("tbr")


def _parse_banner(banner: str, path: Path) -> VideoInfo:
    """Build a :class:`VideoInfo` from the stderr of ``ffmpeg -i path``.

    Raises:
        InputError: no video stream, or its size / frame rate cannot be read.
    """
    stream = _VIDEO_STREAM_RE.search(banner)
    if stream is None:
        raise InputError(f"{path} holds no video stream ({_tail(banner)}); pass a video such as clip.mp4")
    stream_line = stream.group(1)
    size = _SIZE_RE.search(stream_line)
    fps = _parse_fps(stream_line)
    if size is None or not fps:
        raise InputError(f"cannot read the frame size or rate of {path}; re-encode it as H.264 MP4")
    width, height = int(size.group(1)), int(size.group(2))
    rotation = _ROTATION_RE.search(banner[stream.start():])
    if rotation is not None and round(abs(float(rotation.group(1)))) % 180 == 90:
        width, height = height, width
    duration_match = _DURATION_RE.search(banner)
    duration = 0.0
    if duration_match is not None:
        hours, minutes, seconds = duration_match.groups()
        duration = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    return VideoInfo(fps=fps, n_frames=round(duration * fps), width=width, height=height,
                     duration=duration, has_audio=_AUDIO_STREAM_RE.search(banner) is not None)


def count_frames(path: str | os.PathLike[str]) -> int:
    """Exact number of frames in the first video stream (demuxed, not decoded: fast).

    Raises:
        InputError: ffmpeg cannot read the file.
    """
    path = Path(path)
    check_input_file(path, "video", "pass a video file such as clip.mp4")
    command = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path), "-map", "0:v:0", "-c", "copy",
               "-f", "null", "-"]
    result = subprocess.run(command, capture_output=True, text=True, errors="replace", check=False)
    counts = _FRAME_COUNT_RE.findall(result.stderr)
    if result.returncode != 0 or not counts:
        raise InputError(f"cannot count the frames of {path} ({_tail(result.stderr)}); pass a readable video")
    return int(counts[-1])


def probe_video(path: str | os.PathLike[str], exact_frames: bool = True) -> VideoInfo:
    """Read a clip's frame rate, size, duration and audio presence.

    Args:
        path: a video file ffmpeg can read.
        exact_frames: count the frames by demuxing the stream (see :func:`count_frames`; a second,
            fast ffmpeg run) instead of estimating ``round(duration * fps)``, which overestimates when
            the audio track outlasts the video.

    Raises:
        InputError: the file is missing, empty, not a video, or corrupt.
    """
    path = Path(path)
    check_input_file(path, "video", "pass a video file such as clip.mp4")
    # Without an output ffmpeg prints the input banner and exits with status 1 ("At least one output
    # file must be specified"): that status is expected; a missing banner is the real failure.
    command = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)]
    result = subprocess.run(command, capture_output=True, text=True, errors="replace", check=False)
    if "Input #0" not in result.stderr:
        raise InputError(f"cannot read {path} as a video ({_tail(result.stderr)}); pass an MP4, MOV, MKV "
                         "or WebM file")
    info = _parse_banner(result.stderr, path)
    if exact_frames:
        info = VideoInfo(fps=info.fps, n_frames=count_frames(path), width=info.width, height=info.height,
                         duration=info.duration, has_audio=info.has_audio)
    return info


def is_video(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a video: by extension, else by probing for a multi-frame video stream."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in VIDEO_EXTENSIONS:
        return True
    if suffix in IMAGE_EXTENSIONS or not path.is_file():
        return False
    try:
        return probe_video(path, exact_frames=False).n_frames > 1
    except InputError:
        return False


def _filters(size: tuple[int, int] | None, fps: float | None) -> list[str]:
    """ffmpeg ``-vf`` arguments for an optional resample to ``fps`` and resize to ``size = (W, H)``."""
    chain = []
    if fps is not None:
        chain.append(f"fps={_fraction(fps)}")
    if size is not None:
        chain.append(f"scale={size[0]}:{size[1]}:flags=area")
    return ["-vf", ",".join(chain)] if chain else []


def _fraction(fps: float) -> str:
    """``fps`` as an exact ffmpeg rational, e.g. ``30000/1001``."""
    value = Fraction(fps).limit_denominator(FPS_MAX_DENOMINATOR)
    return f"{value.numerator}/{value.denominator}"


def iter_frames(path: str | os.PathLike[str], size: tuple[int, int] | None = None,
                fps: float | None = None, start: float = 0.0,
                max_frames: int | None = None) -> Iterator[np.ndarray]:
    """Stream a clip's frames as RGB arrays, one at a time (constant memory).

    Args:
        path: a video file.
        size: ``(width, height)`` to resize to; ``None`` keeps the decoded size.
        fps: resample to this frame rate (frames dropped / duplicated by ffmpeg); ``None`` keeps it.
        start: seconds to skip at the beginning.
        max_frames: stop after this many frames.

    Yields:
        ``(H, W, 3) uint8`` RGB frames (each a fresh, writable array).

    Raises:
        InputError: the file cannot be read or ffmpeg fails while decoding.
    """
    path = Path(path)
    info = probe_video(path, exact_frames=False)
    width, height = size if size is not None else (info.width, info.height)
    command = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error"]
    if start > 0:
        command += ["-ss", f"{start:.6f}"]
    command += ["-i", str(path), "-map", "0:v:0", *_filters(size, fps), "-f", "rawvideo",
                "-pix_fmt", "rgb24"]
    if max_frames is not None:
        command += ["-frames:v", str(max_frames)]
    command.append("-")
    frame_bytes = width * height * 3
    with tempfile.TemporaryFile() as stderr_file:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=stderr_file)
        finished = False
        try:
            yield from _read_frames(process.stdout, frame_bytes, (height, width))
            finished = True
        finally:
            _finish_reader(process, finished, stderr_file, path)


def _read_frames(stream: IO[bytes] | None, frame_bytes: int, shape: tuple[int, int]) -> Iterator[np.ndarray]:
    """Split a raw rgb24 byte stream into ``(H, W, 3)`` frames; a trailing partial frame is dropped."""
    if stream is None:
        return
    while True:
        buffer = stream.read(frame_bytes)
        if len(buffer) < frame_bytes:
            return
        yield np.frombuffer(buffer, dtype=np.uint8).reshape(shape[0], shape[1], 3).copy()


def _finish_reader(process: subprocess.Popen[bytes], finished: bool, stderr_file: IO[bytes],
                   path: Path) -> None:
    """Reap the decoder: kill it when the consumer stopped early, check its status when it ran out."""
    if not finished and process.poll() is None:
        process.kill()
    if process.stdout is not None:
        process.stdout.close()
    status = process.wait()
    if finished and status != 0:
        stderr_file.seek(0)
        message = stderr_file.read().decode("utf-8", errors="replace")
        raise InputError(f"ffmpeg failed while decoding {path} ({_tail(message)}); the file may be "
                         "truncated or corrupt: re-encode it as H.264 MP4")


class VideoWriter:
    """Encode RGB frames into an H.264 MP4, atomically.

    Frames must all have the size given at construction. ``yuv420p`` needs an even width and height:
    an odd size is **padded** by one row / column that repeats the edge pixels, so the file is
    ``output_size`` (at most one pixel larger than ``size``) and players show no border.

    Audio: with ``audio_path`` the file's first audio stream is encoded as AAC and muxed. ``-shortest``
    is not used: the caller decides the length by the number of frames it writes (an audio track
    longer than the frames stays whole).

    Usage::

        with VideoWriter("out.mp4", fps=25, size=(256, 256), audio_path="speech.wav") as writer:
            for frame in frames:          # (256, 256, 3) uint8
                writer.write(frame)

    Raises (at construction): OutputError when ``path`` exists and ``force`` is false, or its folder is
    missing or not writable.
    """

    def __init__(self, path: str | os.PathLike[str], fps: float, size: tuple[int, int],
                 audio_path: str | os.PathLike[str] | None = None,
                 metadata: Mapping[str, str] | None = None, force: bool = False,
                 crf: int = DEFAULT_CRF, preset: str = DEFAULT_PRESET) -> None:
        """Validate the arguments; nothing is started or written before ``__enter__``.

        Args:
            path: output file (``.mp4``, ``.mov`` or ``.mkv``).
            fps: frame rate (exact rationals are derived, e.g. 29.97 -> 30000/1001).
            size: ``(width, height)`` of the frames that will be written.
            audio_path: audio (or video with audio) to mux; ``None`` for a silent video.
            metadata: container tags (``title``, ``comment``, ...).
            force: replace an existing file.
            crf: x264 quality (lower is better, 18 is visually lossless).
            preset: x264 preset.
        """
        self.path = Path(path)
        self.fps = float(fps)
        self.size = (int(size[0]), int(size[1]))
        self.output_size = (self.size[0] + self.size[0] % 2, self.size[1] + self.size[1] % 2)
        self.audio_path = Path(audio_path) if audio_path is not None else None
        self.metadata = dict(metadata or {})
        self.force = force
        self.crf = crf
        self.preset = preset
        self.frames_written = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._temp_path: Path | None = None
        self._lock_fd: int | None = None
        self._validate()

    def _validate(self) -> None:
        """Check arguments and the output location before any work is done."""
        if self.fps <= 0 or min(self.size) <= 0:
            raise ValueError(f"fps and size must be positive, got fps={self.fps}, size={self.size}")
        if self.audio_path is not None:
            check_input_file(self.audio_path, "audio", "pass an audio or video file to mux")
        _check_output_path(self.path, self.force)

    def _command(self, temp_path: Path) -> list[str]:
        """The ffmpeg argument list: raw RGB from stdin (+ audio file) -> H.264 (+ AAC) in ``temp_path``."""
        width, height = self.output_size
        command = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
                   "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}",
                   "-framerate", _fraction(self.fps), "-i", "-"]
        if self.audio_path is not None:
            command += ["-i", str(self.audio_path), "-map", "0:v:0", "-map", "1:a:0",
                        "-c:a", "aac", "-b:a", AUDIO_BITRATE]
        command += ["-c:v", "libx264", "-preset", self.preset, "-crf", str(self.crf), "-pix_fmt", "yuv420p",
                    "-movflags", "+faststart"]
        for key, value in self.metadata.items():
            command += ["-metadata", f"{key}={value}"]
        return [*command, str(temp_path)]

    def __enter__(self) -> VideoWriter:
        """Create the temporary file and start ffmpeg."""
        _check_output_path(self.path, self.force)
        try:
            self._temp_path, self._lock_fd = create_temp(self.path)
        except DiskFullError:
            raise
        except OSError as error:
            raise OutputError(f"cannot write {self.path}: folder {self.path.parent} is not writable "
                              f"({error.strerror})") from error
        self._stderr = tempfile.TemporaryFile()
        try:
            self._process = subprocess.Popen(self._command(self._temp_path), stdin=subprocess.PIPE,
                                             stdout=subprocess.DEVNULL, stderr=self._stderr)
        except BaseException:
            self._abort()
            raise
        return self

    def write(self, frame: np.ndarray) -> None:
        """Append one ``(H, W, 3) uint8`` RGB frame (``H, W`` = ``size``); a batch ``(N, H, W, 3)`` too."""
        if self._process is None or self._process.stdin is None:
            raise RuntimeError("VideoWriter.write() called outside its `with` block")
        frames = frame if frame.ndim == 4 else frame[None]
        width, height = self.size
        if frames.shape[1:] != (height, width, 3) or frames.dtype != np.uint8:
            raise ValueError(f"expected uint8 frames of shape ({height}, {width}, 3), got "
                             f"{frames.dtype} {frames.shape[1:]}")
        if self.output_size != self.size:
            pad = ((0, 0), (0, self.output_size[1] - height), (0, self.output_size[0] - width), (0, 0))
            frames = np.pad(frames, pad, mode="edge")
        try:
            self._process.stdin.write(np.ascontiguousarray(frames).tobytes())
        except BrokenPipeError as error:
            self._process.wait()
            self._raise_if_disk_full()
            raise OutputError(f"ffmpeg stopped while writing {self.path} ({self._stderr_text()})") from error
        self.frames_written += len(frames)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        """Finish the file and move it into place; on any exception discard everything."""
        if exc_type is not None:
            self._abort()
            return
        try:
            self._finish()
        except BaseException:
            self._abort()
            raise

    def _finish(self) -> None:
        """Close ffmpeg's input, check its exit status, then rename the temporary file."""
        assert self._process is not None and self._temp_path is not None
        if self.frames_written == 0:
            raise OutputError(f"no frames were written to {self.path}; nothing to encode")
        if self._process.stdin is not None:
            self._process.stdin.close()
        status = self._process.wait()
        if status != 0:
            self._raise_if_disk_full()
            raise OutputError(f"ffmpeg failed to encode {self.path} (exit status {status}: "
                              f"{self._stderr_text()})")
        _check_output_path(self.path, self.force)
        os.chmod(self._temp_path, 0o666 & ~_umask())
        publish(self._temp_path, self.path, replace=self.force)  # without --force: the first finisher's file
        self._temp_path = None
        self._release()

    def _raise_if_disk_full(self) -> None:
        """ffmpeg failed: when for lack of room, raise the one-line :class:`DiskFullError`."""
        if self._stderr is None:
            return
        self._stderr.seek(0)
        if _DISK_FULL_RE.search(self._stderr.read().decode("utf-8", errors="replace")):
            written = self._temp_path.stat().st_size if self._temp_path is not None and self._temp_path.exists() \
                else 0
            raise disk_full_error(self.path, written) from None

    def _abort(self) -> None:
        """Kill ffmpeg and delete the temporary file (safe to call twice)."""
        if self._process is not None:
            if self._process.poll() is None:
                self._process.kill()
            if self._process.stdin is not None:
                try:
                    self._process.stdin.close()
                except BrokenPipeError:
                    pass
            self._process.wait()
        if self._temp_path is not None:
            self._temp_path.unlink(missing_ok=True)
            self._temp_path = None
        self._release()

    def _release(self) -> None:
        """Close ffmpeg's stderr file and let go of the temporary file's lock."""
        self._close_stderr()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _stderr_text(self) -> str:
        """ffmpeg's stderr so far, shortened to one line."""
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return _tail(self._stderr.read().decode("utf-8", errors="replace")) or "no message"

    def _close_stderr(self) -> None:
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None


def _check_output_path(path: Path, force: bool) -> None:
    """Raise :class:`OutputError` when ``path`` cannot or must not be written."""
    if path.is_dir():
        raise OutputError(f"{path} is a folder; pass an output file name such as out.mp4")
    if path.exists() and not force:
        raise OutputError(f"{path} already exists; pass --force to overwrite it")
    if not path.parent.is_dir():
        raise OutputError(f"cannot write {path}: folder {path.parent} does not exist; create it first")
    if not os.access(path.parent, os.W_OK):
        raise OutputError(f"cannot write {path}: folder {path.parent} is read-only")


def _umask() -> int:
    """The process umask (so renamed temporary files get ordinary permissions)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask
