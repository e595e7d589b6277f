"""Tests for flowvq_cli.image: every input kind a user may pass, and the errors for bad ones."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from flowvq_cli.errors import InputError, OutputError
from flowvq_cli.image import BACKGROUND_RGB, load_image, save_image

FACE_PNG = Path(__file__).resolve().parents[1] / "examples" / "face.png"
EXIF_ORIENTATION = 0x0112


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    """The example photo as (H, W, 3) uint8 RGB, read with Pillow directly."""
    return np.asarray(Image.open(FACE_PNG).convert("RGB"))


def test_load_rgb_png(face: np.ndarray) -> None:
    rgb = load_image(FACE_PNG)
    assert rgb.shape == face.shape and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb, face)


def test_grayscale_becomes_three_equal_channels(tmp_path: Path, face: np.ndarray) -> None:
    path = tmp_path / "gray.png"
    Image.fromarray(face).convert("L").save(path)
    rgb = load_image(path)
    assert rgb.shape == face.shape
    np.testing.assert_array_equal(rgb[..., 0], rgb[..., 2])


def test_rgba_composited_on_white(tmp_path: Path, face: np.ndarray) -> None:
    rgba = np.dstack([face, np.full(face.shape[:2], 255, np.uint8)])
    rgba[:10, :10, 3] = 0  # fully transparent corner
    rgba[20:30, :10, 3] = 128  # half transparent
    path = tmp_path / "rgba.png"
    Image.fromarray(rgba, "RGBA").save(path)
    rgb = load_image(path)
    assert rgb.shape == face.shape
    np.testing.assert_array_equal(rgb[:10, :10], np.broadcast_to(BACKGROUND_RGB, (10, 10, 3)))
    expected = np.rint(face[20:30, :10] * (128 / 255) + 255 * (127 / 255))
    assert np.abs(rgb[20:30, :10].astype(float) - expected).max() <= 1
    np.testing.assert_array_equal(rgb[50:], face[50:])


def test_la_and_palette_with_transparency(tmp_path: Path, face: np.ndarray) -> None:
    la = Image.fromarray(face).convert("LA")
    la.putalpha(0)
    la.save(tmp_path / "la.png")
    assert (load_image(tmp_path / "la.png") == 255).all()
    palette = Image.fromarray(face).convert("P")
    palette.info["transparency"] = int(np.asarray(palette)[0, 0])
    palette.save(tmp_path / "p.png", transparency=palette.info["transparency"])
    rgb = load_image(tmp_path / "p.png")
    assert rgb.shape == face.shape
    np.testing.assert_array_equal(rgb[0, 0], BACKGROUND_RGB)


def test_16_bit_gray_and_rgb(tmp_path: Path, face: np.ndarray) -> None:
    deep = face.astype(np.uint16) * 257
    cv2.imwrite(str(tmp_path / "gray16.png"), deep[..., 0])
    assert Image.open(tmp_path / "gray16.png").mode.startswith("I")
    gray = load_image(tmp_path / "gray16.png")
    np.testing.assert_array_equal(gray[..., 1], face[..., 0])
    cv2.imwrite(str(tmp_path / "rgb16.png"), deep[..., ::-1])  # OpenCV writes BGR
    rgb = load_image(tmp_path / "rgb16.png")
    assert np.abs(rgb.astype(int) - face).max() <= 1


def test_cmyk_jpeg(tmp_path: Path, face: np.ndarray) -> None:
    path = tmp_path / "cmyk.jpg"
    Image.fromarray(face).convert("CMYK").save(path, quality=95)
    rgb = load_image(path)
    assert rgb.shape == face.shape
    assert np.abs(rgb.astype(float) - face).mean() < 6


@pytest.mark.parametrize(("orientation", "turns"), [(3, 2), (6, 1), (8, 3)])
def test_exif_orientation_applied(tmp_path: Path, face: np.ndarray, orientation: int, turns: int) -> None:
    upright = face[:, 40:]  # not square, so a missed rotation changes the shape
    stored = np.rot90(upright, k=turns)  # how a camera stores the pixels for this tag
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    path = tmp_path / f"exif{orientation}.jpg"
    Image.fromarray(np.ascontiguousarray(stored)).save(path, quality=95, exif=exif)
    rgb = load_image(path)
    assert rgb.shape == upright.shape
    assert np.abs(rgb.astype(float) - upright).mean() < 4


def test_first_frame_of_animated_gif(tmp_path: Path, face: np.ndarray) -> None:
    frames = [Image.fromarray(face), Image.fromarray(255 - face)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    rgb = load_image(tmp_path / "anim.gif")
    assert rgb.shape == face.shape
    assert np.abs(rgb.astype(float) - face).mean() < 12


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"not found: .*nope\.png.*pass a PNG"):
        load_image(tmp_path / "nope.png")


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="is a folder"):
        load_image(tmp_path)


def test_zero_byte_file(tmp_path: Path) -> None:
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(InputError, match=r"empty\.png is an empty file"):
        load_image(tmp_path / "empty.png")


def test_garbage_and_truncated_files(tmp_path: Path) -> None:
    (tmp_path / "garbage.jpg").write_bytes(b"this is not an image at all\n" * 20)
    with pytest.raises(InputError, match=r"cannot read .*garbage\.jpg as an image.*pass a PNG") as info:
        load_image(tmp_path / "garbage.jpg")
    assert "\n" not in str(info.value)
    data = FACE_PNG.read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 3])
    with pytest.raises(InputError, match=r"cut\.png"):
        load_image(tmp_path / "cut.png")


def test_save_roundtrip_and_overwrite_rules(tmp_path: Path, face: np.ndarray) -> None:
    path = save_image(tmp_path / "out.png", face)
    np.testing.assert_array_equal(load_image(path), face)
    with pytest.raises(OutputError, match="already exists"):
        save_image(path, face, force=False)
    with pytest.raises(OutputError, match="does not exist"):
        save_image(tmp_path / "missing" / "out.png", face)
    with pytest.raises(OutputError, match=r"\.png or \.jpg"):
        save_image(tmp_path / "out.unknownext", face)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]  # no temporary files left
    with pytest.raises(ValueError, match="uint8"):
        save_image(tmp_path / "f.png", face.astype(np.float32))
