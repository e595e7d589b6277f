"""Does `flowvq analyze` recover the coefficients that drove a synthetic clip?

    python benchmarks/synth_consistency.py DATASET [--clips N] [--estimate-identity]

For each clip with frames, the rendered 256² crops are analysed like any video and compared with the
ground-truth coefficients: jawOpen correlation, mean absolute exp error, and mean absolute pitch / yaw /
roll error in degrees (the analysed poses, which are in the clip's crop, are re-expressed in the frames'
own pixels, the photo crop the ground truth was rendered in). By default the clip's known identity mesh is given
to the fit (as `flowvq analyze --identity` does), because a clip-long emotion offset (anger's lowered
brows throughout) cannot be told apart from the person's own face shape by any video-only fit;
`--estimate-identity` measures that harder case too.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("GLOG_minloglevel", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine


def clip_errors(root: Path, clip, estimate_identity: bool) -> dict[str, float]:
    from flowvq_cli.face import rig
    from flowvq_cli.face.analyze import analyze_video

    identity = None if estimate_identity else np.load(clip.path(root, "coeffs").parent / "identity.npy")
    result = analyze_video(clip.path(root, "frames"), identity=identity)
    gt = np.load(clip.path(root, "coeffs"))
    n = min(len(gt), len(result.coeffs))
    gt, fit = gt[:n], result.coeffs[:n]
    jaw = rig.ARKIT_NAMES.index("jawOpen")
    # The synthetic frames are the photo's 256² crop, so their pixels are the frame the ground truth is in.
    frame_pose = rig.rebase_pose(fit[:, rig.N_EXP :], result.crop_matrix[:n], np.eye(2, 3))
    angle_err = np.degrees(np.abs(frame_pose[:, :3] - gt[:, rig.N_EXP : rig.N_EXP + 3])).mean(axis=0)
    return {"jaw_corr": float(np.corrcoef(fit[:, jaw], gt[:, jaw])[0, 1]),
            "exp_mae": float(np.abs(fit[:, : rig.N_EXP] - gt[:, : rig.N_EXP]).mean()),
            "pitch_deg": float(angle_err[0]), "yaw_deg": float(angle_err[1]), "roll_deg": float(angle_err[2])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--clips", type=int, default=0, help="at most this many clips (0 = all with frames)")
    ap.add_argument("--estimate-identity", action="store_true", help="estimate identity from the clip instead")
    args = ap.parse_args()

    from flowvq_cli.data.manifest import read_manifest

    clips = [c for c in read_manifest(args.dataset) if "frames" in c.paths]
    clips = clips[: args.clips] if args.clips else clips
    rows = [clip_errors(args.dataset, c, args.estimate_identity) for c in clips]
    mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    print(f"machine: {machine()}")
    print(f"clips: {len(rows)}  identity: {'estimated' if args.estimate_identity else 'given'}")
    for k, v in mean.items():
        print(f"{k}: {v:.4f}")


if __name__ == "__main__":
    main()
