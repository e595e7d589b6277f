"""Does `flowvq analyze` recover the coefficients that drove a synthetic clip?

    python benchmarks/synth_consistency.py DATASET [--clips N] [--estimate-identity] [--photo-mode]

For each clip with frames, the rendered 256² crops are analysed like any video and compared with the
ground-truth coefficients: jawOpen correlation, mean absolute exp error, and mean absolute pitch / yaw /
roll error in degrees (the analysed poses, which are in the clip's crop, are re-expressed in the frames'
own pixels, the photo crop the ground truth was rendered in). By default the clip's known identity mesh is given
to the fit (as `flowvq analyze --identity` does), because a clip-long emotion offset (anger's lowered
brows throughout) cannot be told apart from the person's own face shape by any video-only fit;
`--estimate-identity` measures that harder case too. `--photo-mode` analyses every frame on its own as a
photo (MediaPipe's image mode, as the source photo was) instead of tracking the video: it tells how much of
the error is the difference between MediaPipe's tracking and image modes.
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


def photo_mode(path: Path, identity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every frame analysed as a photo: coefficients (T, 58) and crop matrices (T, 2, 3)."""
    from flowvq_cli.face.analyze import analyze_rgb
    from flowvq_cli.video import iter_frames

    fits = [analyze_rgb(frame, identity=identity) for frame in iter_frames(path)]
    return np.concatenate([f.coeffs for f in fits]), np.concatenate([f.crop_matrix for f in fits])


def clip_errors(root: Path, clip, estimate_identity: bool, photo: bool = False) -> dict[str, float]:
    from flowvq_cli.face import rig
    from flowvq_cli.face.analyze import analyze_video

    identity = None if estimate_identity else np.load(clip.path(root, "coeffs").parent / "identity.npy")
    if photo:
        coeffs, crops = photo_mode(clip.path(root, "frames"), identity)
    else:
        result = analyze_video(clip.path(root, "frames"), identity=identity)
        coeffs, crops = result.coeffs, result.crop_matrix
    gt = np.load(clip.path(root, "coeffs"))
    n = min(len(gt), len(coeffs))
    gt, fit = gt[:n], coeffs[:n]
    jaw = rig.ARKIT_NAMES.index("jawOpen")
    # The synthetic frames are the photo's 256² crop, so their pixels are the frame the ground truth is in.
    frame_pose = rig.rebase_pose(fit[:, rig.N_EXP :], crops[:n], np.eye(2, 3))
    angle_err = np.degrees(np.abs(frame_pose[:, :3] - gt[:, rig.N_EXP : rig.N_EXP + 3])).mean(axis=0)
    return {"jaw_corr": float(np.corrcoef(fit[:, jaw], gt[:, jaw])[0, 1]),
            "exp_mae": float(np.abs(fit[:, : rig.N_EXP] - gt[:, : rig.N_EXP]).mean()),
            "pitch_deg": float(angle_err[0]), "yaw_deg": float(angle_err[1]), "roll_deg": float(angle_err[2])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--clips", type=int, default=0, help="at most this many clips (0 = all with frames)")
    ap.add_argument("--estimate-identity", action="store_true", help="estimate identity from the clip instead")
    ap.add_argument("--photo-mode", action="store_true", help="analyse each frame as a photo, not as a tracked video")
    args = ap.parse_args()

    from flowvq_cli.data.manifest import read_manifest

    clips = [c for c in read_manifest(args.dataset) if "frames" in c.paths]
    clips = clips[: args.clips] if args.clips else clips
    if args.photo_mode and args.estimate_identity:
        raise SystemExit("--photo-mode needs the given identity (each frame is fitted on its own)")
    rows = [clip_errors(args.dataset, c, args.estimate_identity, args.photo_mode) for c in clips]
    mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    print(f"machine: {machine()}")
    mode = "photo mode, each frame on its own" if args.photo_mode else "tracked video"
    print(f"clips: {len(rows)}  identity: {'estimated' if args.estimate_identity else 'given'}  analysis: {mode}")
    for k, v in mean.items():
        print(f"{k}: {v:.4f}")


if __name__ == "__main__":
    main()
