"""Is a photo's neutral face neutral? What the expression reader reads on photos and on their neutral faces.

    python benchmarks/neutral_faces.py [--photo P ...]

For each photo (by default ``examples/face.png`` and ``examples/face2.png``; add e.g. scikit-image's
``astronaut.png`` or ``face_recognition`` 1.3.0's ``biden.jpg`` with ``--photo``), the rig's landmarks
(``flowvq_cli.face.readback``) of its frontalised shape and of its neutral face (``fit.neutral_identity``:
the read expression removed by ``readback.neutralize``, then the lips closed) are read by Blendshape V2.
Prints, per photo, the strongest readings of both and their sum of squares (eyeLook* included: where the
eyes look is kept), and last the one figure: the mean sum of squared readings of the neutral faces
(0 would be a face the reader reads as expressionless).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, machine, run


def readings(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(photo's reading (52,), its neutral face's reading (52,)), frontal."""
    import torch

    from flowvq_cli.face import analyze, fit
    from flowvq_cli.face import rig as rig_module
    from flowvq_cli.face.readback import load_iris_model, read_rig
    from flowvq_cli.face.reader import default_reader

    rig = rig_module.default_rig()
    iris_basis, iris_offset = load_iris_model()
    shape = analyze.photo_shape(path, rig)
    neutral = fit.neutral_identity(shape, rig)
    faces = torch.from_numpy(np.stack([shape, neutral]).astype(np.float32))
    with torch.no_grad():
        read = read_rig(default_reader(), faces, torch.from_numpy(np.array(rig.basis, np.float32)), iris_basis,
                        torch.zeros(2, rig_module.N_EXP), iris_offset=iris_offset)
    return read[0].numpy(), read[1].numpy()


def strongest(read: np.ndarray, top: int = 4) -> str:
    from flowvq_cli.face.rig import ARKIT_NAMES

    return ", ".join(f"{ARKIT_NAMES[k]} {read[k]:.2f}" for k in np.argsort(-read)[:top])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photo", type=Path, action="append", help="photos (default: the two examples)")
    args = parser.parse_args()
    photos = args.photo or [REPO / "examples" / "face.png", REPO / "examples" / "face2.png"]
    print(f"# {machine()}")
    totals = []
    for path in photos:
        photo, neutral = readings(path)
        totals.append(float(neutral @ neutral))
        print(f"{path.name}: photo {strongest(photo)} (sum of squares {photo @ photo:.2f}); "
              f"neutral {strongest(neutral)} (sum of squares {neutral @ neutral:.2f})")
    print(f"neutral faces' sum of squared readings, mean over {len(photos)} photos: {np.mean(totals):.2f}")


if __name__ == "__main__":
    run(main)
