"""Does the expression reader read the face model's own coefficients back? Per blendshape and overall.

    python benchmarks/rig_readback.py [--rig procedural|calibrated|FILE] [--photo P] [--per-blendshape]

The rig's landmarks (``flowvq_cli.face.readback``: the 468 vertices plus derived irises, projected) of
a face shape are read by Blendshape V2 (``flowvq_cli.face.reader``). The face is a photo's fitted shape
made neutral by the rig under test (``readback.neutralize``); by default matplotlib's
``grace_hopper.jpg``, which the calibration (``scripts/calibrate_rig.py``) never sees. Prints:

- with ``--per-blendshape``: each blendshape's reading at weight 1 (frontal) and the largest vertex
  move of its field at weight 1 in mm (the canonical face is in cm; a real full smile moves the mouth
  corner about 10 mm);
- the read-back error of the active blendshapes, the one figure: mean |read - w| over the non-zero
  entries of w (of the blendshapes the reader sees: all but ``readback.UNREAD``), averaged over single
  activations at 1.0 and at 0.5 (frontal) and 200 random sparse combinations (2-4 blendshapes,
  U(0, 0.7)) at random head poses (pitch, roll ±20°, yaw ±30°); the crosstalk (mean reading of the zero
  entries); what the neutral face reads.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, run


def load_rig(which: str):
    """(basis (52, 468, 3), iris_basis (52, 10, 3), iris_offset (10, 3) or None) as float32 tensors."""
    import torch
    from safetensors.torch import load_file

    from flowvq_cli.face.readback import default_iris_basis, load_iris_model
    from flowvq_cli.face.rig import CALIBRATED_RIG, procedural_basis

    if which == "procedural":
        return torch.from_numpy(np.array(procedural_basis())), torch.from_numpy(default_iris_basis()), None
    path = str(CALIBRATED_RIG if which == "calibrated" else Path(which))
    return (load_file(path)["basis"], *load_iris_model(path))


def main() -> None:
    import matplotlib
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rig", default="procedural", help="procedural, calibrated or a safetensors file")
    ap.add_argument("--photo", type=Path, default=Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg")
    ap.add_argument("--per-blendshape", action="store_true")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    from flowvq_cli.face.analyze import photo_shape
    from flowvq_cli.face.readback import UNREAD, neutralize, read_rig
    from flowvq_cli.face.reader import default_reader
    from flowvq_cli.face.rig import ARKIT_NAMES, N_EXP, FaceRig, procedural_basis

    reader = default_reader()
    basis, iris, offset = load_rig(args.rig)
    shape = photo_shape(args.photo, FaceRig(procedural_basis())).astype(np.float32)  # the pose fit alone
    neutral, removed = neutralize(reader, torch.from_numpy(shape), basis, iris, offset)
    read = [i for i, n in enumerate(ARKIT_NAMES) if n not in UNREAD]
    eye = torch.eye(N_EXP)[read]
    g = torch.Generator().manual_seed(args.seed)
    combos = torch.zeros(200, N_EXP)
    for row in combos:
        ks = torch.tensor(read)[torch.randperm(len(read), generator=g)[: int(torch.randint(2, 5, (1,), generator=g))]]
        row[ks] = 0.7 * torch.rand(len(ks), generator=g)
    angles = (torch.rand(200, 3, generator=g) * 2 - 1) * torch.tensor([0.35, 0.52, 0.35])
    with torch.no_grad():
        rest = read_rig(reader, neutral, basis, iris, torch.zeros(1, N_EXP), iris_offset=offset)[0, read]
        active, crosstalk = [], []
        for w, a in ((eye, None), (0.5 * eye, None), (combos, angles)):
            err = (read_rig(reader, neutral, basis, iris, w, a, iris_offset=offset)[:, read] - w[:, read]).abs()
            on = w[:, read] > 0
            active.append(float(err[on].mean()))
            crosstalk.append(float(err[~on].mean()))
        singles = read_rig(reader, neutral, basis, iris, torch.eye(N_EXP), iris_offset=offset).diagonal()
    mm = 10 * basis.norm(dim=-1).max(dim=1).values
    if args.per_blendshape:
        print(f"{'blendshape':20s} read at 1.0   move at 1.0 (mm)")
        for k, name in enumerate(ARKIT_NAMES):
            print(f"{name:20s} {float(singles[k]):10.2f} {float(mm[k]):12.1f}")
    top = torch.argsort(rest, descending=True)[:3]
    print(f"neutral face reads: mean {float(rest.mean()):.3f}; highest "
          + ", ".join(f"{ARKIT_NAMES[read[i]]} {float(rest[i]):.2f}" for i in top))
    print("expression removed from the photo: " + ", ".join(
        f"{ARKIT_NAMES[i]} {float(removed[i]):.2f}" for i in torch.argsort(removed, descending=True)[:3]))
    print(f"crosstalk (mean reading of the inactive blendshapes): singles at 1.0 {crosstalk[0]:.3f}, "
          f"at 0.5 {crosstalk[1]:.3f}, combinations {crosstalk[2]:.3f}")
    print(f"read-back error of the active blendshapes ({args.rig}, {args.photo.name}): singles at 1.0 {active[0]:.3f}, "
          f"at 0.5 {active[1]:.3f}, combinations at random poses {active[2]:.3f}; mean {np.mean(active):.3f}")
    print(f"machine: {machine()}")


if __name__ == "__main__":
    run(main)
