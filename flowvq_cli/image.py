"""Reading and writing still images as ``(H, W, 3) uint8`` RGB arrays.

Every photo FlowVQ reads goes through :func:`load_image`, which turns whatever Pillow (or, as a
fallback, OpenCV) can decode into one canonical layout:

- **orientation**: the EXIF orientation tag is applied (a phone photo stored sideways with tag 6
  comes back upright), so pixel coordinates always refer to the image as a viewer sees it;
- **transparency** (RGBA, LA, palette with a transparent colour): composited over **white**, the
  way image viewers and browsers show it; the alpha channel is then dropped;
- **grayscale / 1-bit**: replicated to three channels;
- **16-bit and 32-bit integer, float**: rescaled to 8 bits (16-bit: ``v / 257``, rounded);
- **CMYK, YCbCr, LAB, HSV**: converted to RGB by Pillow;
- **multi-frame files** (animated GIF/WebP, multi-page TIFF): the first frame.

Failures raise :class:`~flowvq_cli.errors.InputError` with a one-line message that names the file
and says what to pass instead.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from flowvq_cli.errors import InputError, OutputError
from flowvq_cli.fsutil import check_input_file

WHAT_TO_PASS = "pass a PNG, JPEG, WebP, BMP or TIFF photo"
"""The hint every unreadable-image message ends with."""

BACKGROUND_RGB = (255, 255, 255)
"""Colour transparent pixels are composited over (white, as viewers show them)."""

_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
_DIRECT_RGB_MODES = frozenset({"1", "L", "CMYK", "YCbCr", "LAB", "HSV", "RGBX"})
_DECODE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError)


def _to_uint8(values: np.ndarray) -> np.ndarray:
    """Rescale an integer or float array of any depth to ``uint8``.

    Args:
        values: ``(H, W)`` or ``(H, W, C)`` array.

    Returns:
        Same shape, ``uint8``. 16-bit data is divided by 257 (65535 -> 255); float data is taken as
        ``[0, 1]`` when its maximum is at most 1, else as ``[0, 255]``.
    """
    if values.dtype == np.uint8:
        return values
    if values.dtype.kind == "f":
        finite = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        top = 1.0 if finite.size and finite.max() <= 1.0 else 255.0
        return np.clip(np.rint(finite * (255.0 / top)), 0, 255).astype(np.uint8)
    as_int = values.astype(np.int64)
    if as_int.size and as_int.max() > 255:
        as_int = (as_int + 128) // 257  # 16-bit range -> 8-bit, rounded
    return np.clip(as_int, 0, 255).astype(np.uint8)


def _composite_on_background(rgba: np.ndarray) -> np.ndarray:
    """Blend ``(H, W, 4) uint8`` RGBA over :data:`BACKGROUND_RGB`; returns ``(H, W, 3) uint8``."""
    alpha = rgba[..., 3:4].astype(np.float32) / 255.0
    background = np.asarray(BACKGROUND_RGB, dtype=np.float32)
    blended = rgba[..., :3].astype(np.float32) * alpha + background * (1.0 - alpha)
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def _pil_to_rgb(image: Image.Image) -> np.ndarray:
    """Convert a decoded, upright Pillow image of any mode to ``(H, W, 3) uint8`` RGB."""
    mode = image.mode
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        mode = image.mode
    if mode == "RGB":
        return np.asarray(image, dtype=np.uint8).copy()
    if mode in _ALPHA_MODES:
        return _composite_on_background(np.asarray(image.convert("RGBA"), dtype=np.uint8))
    if mode in _DIRECT_RGB_MODES:
        return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()
    # "I", "I;16", "I;16B", "F", ...: single-channel, deeper than 8 bits.
    gray = _to_uint8(np.asarray(image))
    if gray.ndim != 2:
        raise ValueError(f"unexpected array shape {gray.shape} for mode {mode}")
    return np.repeat(gray[:, :, None], 3, axis=2)


def _load_with_opencv(path: Path) -> np.ndarray | None:
    """Decode with OpenCV (``IMREAD_UNCHANGED``) when Pillow cannot; ``None`` if OpenCV cannot either.

    Returns:
        ``(H, W, 3) uint8`` RGB or ``None``. EXIF orientation is applied by OpenCV only in its
        default mode, so it is re-read that way for 8-bit colour files.
    """
    import cv2

    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        return None
    if raw.ndim == 2:
        return np.repeat(_to_uint8(raw)[:, :, None], 3, axis=2)
    channels = raw.shape[2]
    if channels == 4:
        rgba = cv2.cvtColor(_to_uint8(raw), cv2.COLOR_BGRA2RGBA)
        return _composite_on_background(rgba)
    if channels == 3:
        return np.ascontiguousarray(cv2.cvtColor(_to_uint8(raw), cv2.COLOR_BGR2RGB))
    return None


def load_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a photo as upright RGB.

    Args:
        path: an image file Pillow or OpenCV can decode (PNG, JPEG, WebP, BMP, TIFF, GIF, ...).

    Returns:
        ``(H, W, 3) uint8`` RGB array, EXIF orientation applied, transparency composited over white.

    Raises:
        InputError: the path is missing, a folder, empty, unreadable, or not a decodable image.
    """
    path = Path(path)
    check_input_file(path, "image", f"check the path and {WHAT_TO_PASS}")
    try:
        with Image.open(path) as image, warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image.seek(0)
            image.load()
            upright = ImageOps.exif_transpose(image)
            rgb = _pil_to_rgb(upright)
    except _DECODE_ERRORS as error:
        rgb = _load_with_opencv(path)
        if rgb is None:
            reason = "not an image or corrupt" if isinstance(error, UnidentifiedImageError) else str(error)
            raise InputError(f"cannot read {path} as an image ({reason}); {WHAT_TO_PASS}") from error
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise InputError(f"{path} has no pixels ({rgb.shape[1]}x{rgb.shape[0]}); {WHAT_TO_PASS}")
    return rgb


def _check_rgb(rgb: np.ndarray) -> np.ndarray:
    """Validate a ``(H, W, 3) uint8`` array and return it C-contiguous."""
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3:
        shape = getattr(rgb, "shape", None)
        raise ValueError(f"expected an (H, W, 3) RGB array, got shape {shape}")
    if rgb.dtype != np.uint8:
        raise ValueError(f"expected a uint8 RGB array, got dtype {rgb.dtype}")
    return np.ascontiguousarray(rgb)


def save_image(path: str | os.PathLike[str], rgb: np.ndarray, force: bool = True) -> Path:
    """Write an RGB array to an image file, atomically (temporary file, then rename).

    Args:
        path: output file; the format follows its extension (``.png``, ``.jpg``, ``.webp``, ...).
        rgb: ``(H, W, 3) uint8`` RGB array.
        force: overwrite an existing file (default); with ``False`` an existing file is an error.

    Returns:
        The written path.

    Raises:
        OutputError: the file exists (without ``force``), the folder is missing or not writable, or
            the extension names no image format.
        ValueError: ``rgb`` is not an ``(H, W, 3) uint8`` array.
    """
    path = Path(path)
    rgb = _check_rgb(rgb)
    if path.exists() and not force:
        raise OutputError(f"{path} already exists; pass --force to overwrite it")
    if not path.parent.is_dir():
        raise OutputError(f"cannot write {path}: folder {path.parent} does not exist")
    try:
        handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    except OSError as error:
        raise OutputError(f"cannot write {path}: folder {path.parent} is not writable ({error})") from error
    os.close(handle)
    try:
        Image.fromarray(rgb).save(temp_name)  # the format follows the (kept) extension
        os.chmod(temp_name, 0o666 & ~_current_umask())
        os.replace(temp_name, path)
    except (ValueError, KeyError, OSError) as error:
        Path(temp_name).unlink(missing_ok=True)
        raise OutputError(f"cannot write {path} ({error}); use a .png or .jpg file name") from error
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return path


def _current_umask() -> int:
    """The process umask (read without changing it for longer than one call)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask
