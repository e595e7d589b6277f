"""How far can landmark geometry drive the expression reader? Per blendshape, free moves against smooth fields.

    python benchmarks/reader_reach.py [--photo P] [--names mouthFrownLeft browInnerUp ...] [--steps 300]

On a photo's neutral face (the calibrated rig, frontal; default photo ``grace_hopper.jpg``, which the
calibration never saw), for each blendshape the reader (Blendshape V2) is driven as high as it goes by
gradient ascent on its logit (Adam, ``--steps``), two ways:

- **free**: from the neutral face, any move of the 478 projected landmarks, penalised by their mean
  squared size (``--size``; each point on its own: what small landmark moves can make the reader read);
- **smooth**: from the rig's own field at weight 1, a correction of its 468 vertices in 3-D that a mesh
  Laplacian keeps smooth (``scripts/calibrate_rig.py``'s penalty, weight ``--smooth``) and that may
  move only where the field already moves the face (within 8 mm), as the calibration allows; the
  correction's landmark moves are penalised as the free ones are.

Prints per blendshape: the rig's field at 1.0, then for each way the reading reached, the largest and mean
landmark move in mm (from the neutral face), and the largest side effect (another blendshape's rise). The
figure: how many of the blendshapes read at least 0.5 each way. The reader's outputs saturate (logits of
-10 read 0.00005), so this works on logits: a squared error on the scores has no gradient there.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, run
from rig_readback import load_rig

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_NAMES = ("mouthFrownLeft", "mouthDimpleLeft", "mouthFunnel", "mouthClose", "jawForward", "cheekPuff",
                 "cheekSquintLeft", "noseSneerLeft", "browInnerUp", "eyeWideLeft", "jawOpen")


def calibration_helpers():
    """``scripts/calibrate_rig.py`` as a module (its Laplacian and support masks)."""
    spec = importlib.util.spec_from_file_location("calibrate_rig", ROOT / "scripts" / "calibrate_rig.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    import matplotlib
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photo", type=Path, default=Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg")
    ap.add_argument("--names", nargs="+", default=list(DEFAULT_NAMES))
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--size", type=float, default=30.0, help="weight of the mean squared move (cm²)")
    ap.add_argument("--smooth", type=float, default=0.3, help="weight of the Laplacian penalty (smooth way)")
    args = ap.parse_args()

    from flowvq_cli.face.analyze import photo_shape
    from flowvq_cli.face.readback import neutralize, rig_landmarks
    from flowvq_cli.face.reader import default_reader
    from flowvq_cli.face.rig import ARKIT_NAMES, N_EXP, FaceRig, procedural_basis

    unknown = [n for n in args.names if n not in ARKIT_NAMES]
    if unknown:
        raise SystemExit(f"error: not a blendshape: {', '.join(unknown)}")
    torch.manual_seed(0)
    reader = default_reader()
    cal = calibration_helpers()
    basis, iris, offset = load_rig("calibrated")
    shape = photo_shape(args.photo, FaceRig(procedural_basis())).astype(np.float32)
    neutral, _ = neutralize(reader, torch.from_numpy(shape), basis, iris, offset)
    lap, masks = cal.laplacian(), cal.support_masks(basis.numpy())
    zero, frontal = torch.zeros(1, N_EXP), torch.zeros(1, 3)
    with torch.no_grad():
        rest = rig_landmarks(neutral, basis, iris, zero, frontal, offset)  # (1, 478, 2) cm
        base = reader.read(rest)[0]

    def drive(k: int, landmarks) -> tuple[float, float, float, str]:
        """Ascend blendshape k's logit; landmarks() -> (1, 478, 2). Returns reading, max/mean mm, side."""
        with torch.no_grad():
            start = landmarks()
        opt = torch.optim.Adam(landmarks.params, lr=0.01)
        for _ in range(args.steps):
            points = landmarks()
            logit = reader.read(points, logits=True)[0, k]
            loss = -0.1 * torch.clamp(logit, max=3.0) + args.size * (points - start).square().sum(-1).mean()
            loss = loss + landmarks.penalty()
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            points = landmarks()
            read = reader.read(points)[0]
            moved = 10 * (points - rest)[0].norm(dim=-1)
            side = read - base
            side[k] = -1.0
            j = int(side.argmax())
        return float(read[k]), float(moved.max()), float(moved.mean()), f"{ARKIT_NAMES[j]} {float(side[j]):+.2f}"

    class Free:
        def __init__(self) -> None:
            self.delta = torch.zeros_like(rest, requires_grad=True)
            self.params = [self.delta]

        def __call__(self):
            return rest + self.delta

        def penalty(self):
            return 0.0

    class Smooth:
        def __init__(self, k: int) -> None:
            self.k = k
            self.residual = torch.zeros(468, 3, requires_grad=True)
            self.params = [self.residual]

        def field(self):
            return basis[self.k] + self.residual * masks[self.k]

        def __call__(self):
            fields = basis.clone()
            fields[self.k] = self.field()
            exp = torch.zeros(1, N_EXP)
            exp[0, self.k] = 1.0
            return rig_landmarks(neutral, fields, iris, exp, frontal, offset)

        def penalty(self):
            return args.smooth * (lap @ (self.residual * masks[self.k])).square().sum()

    print(f"{'blendshape':18s} {'field at 1.0':>12s} | {'free: read, max/mean mm, side effect':38s} | "
          "smooth: read, max/mean mm, side effect")
    reach = {"free": 0, "smooth": 0}
    for name in args.names:
        k = ARKIT_NAMES.index(name)
        exp = torch.zeros(1, N_EXP)
        exp[0, k] = 1.0
        with torch.no_grad():
            field_read = float(reader.read(rig_landmarks(neutral, basis, iris, exp, frontal, offset))[0, k])
        rows = []
        for way, landmarks in (("free", Free()), ("smooth", Smooth(k))):
            read, big, mean, side = drive(k, landmarks)
            reach[way] += read >= 0.5
            rows.append(f"{read:.2f}, {big:4.1f}/{mean:.2f} mm, {side:24s}")
        print(f"{name:18s} {field_read:12.2f} | {rows[0]:38s} | {rows[1]}", flush=True)
    print(f"read >= 0.5: free moves {reach['free']} of {len(args.names)}, smooth fields {reach['smooth']} of "
          f"{len(args.names)} ({args.photo.name})")
    print(f"machine: {machine()}")


if __name__ == "__main__":
    run(main)
