"""Does `flowvq analyze` recover the coefficients that drove a synthetic clip?

    python benchmarks/synth_consistency.py DATASET [--clips N] [--identity still|given|estimated] [--photo-mode]

For each clip with frames, the rendered 256² crops are analysed like any video and compared with the
ground-truth coefficients: jawOpen correlation, mean absolute exp error, and mean absolute pitch / yaw /
roll error in degrees (the analysed poses, which are in the clip's crop, are re-expressed in the frames'
own pixels, the photo crop the ground truth was rendered in); the ``*_motion_deg`` figures are the same
with each clip's constant angle offset removed (the head's motion alone).

The person's neutral face (identity) is fixed for the fit, because a clip-long emotion offset (anger's
lowered brows throughout) cannot be told apart from the person's own face shape by any video-only fit:

- ``still`` (default): measured from the clip's ``still.png`` (the same face at rest) exactly as a user
  does it: ``flowvq analyze still.png --out id.npz``, then ``flowvq analyze frames.mp4 --identity id.npz``.
- ``given``: the mesh the renderer used (``identity.npy``), which MediaPipe never sees as such: its reading
  of a face differs from the face model's by a bias of its own, and that bias is then read as expression.
- ``estimated``: from the clip's frames alone (the harder case above).

Beside the exp error it prints what predicting 0 for every blendshape would score (many blendshapes are
driven a little and are hardly visible in MediaPipe's landmarks, so that floor is low) and the mean
correlation with the truth of the blendshapes the corpus drives (std > 0.1), which a constant cannot
fake. ``--photo-mode`` analyses every frame on its own as a photo (MediaPipe's image mode, as the source
photo was) instead of tracking the video: it tells how much of the error is the difference between
MediaPipe's tracking and image modes.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("GLOG_minloglevel", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, run

DRIVEN_STD = 0.1  # a blendshape counts as driven by the corpus when its ground truth varies this much


def photo_mode(path: Path, identity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every frame analysed as a photo: coefficients (T, 58) and crop matrices (T, 2, 3)."""
    from flowvq_cli.face.analyze import analyze_rgb
    from flowvq_cli.video import iter_frames

    fits = [analyze_rgb(frame, identity=identity) for frame in iter_frames(path)]
    return np.concatenate([f.coeffs for f in fits]), np.concatenate([f.crop_matrix for f in fits])


def clip_identity(root: Path, clip, source: str) -> np.ndarray | None:
    from flowvq_cli.data.manifest import STILL_FILE
    from flowvq_cli.face.analyze import analyze_image

    folder = clip.path(root, "coeffs").parent
    if source == "estimated":
        return None
    if source == "given":
        return np.load(folder / "identity.npy")
    if not (folder / STILL_FILE).is_file():
        raise SystemExit(f"{folder} has no {STILL_FILE} (a corpus made before flowvq synth wrote one); "
                         "rebuild it or pass --identity given")
    return analyze_image(folder / STILL_FILE).identity


def clip_fit(root: Path, clip, identity_source: str, photo: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Ground truth (n, 58) and the analysis re-expressed in the frames' pixels (n, 58)."""
    from flowvq_cli.face import rig
    from flowvq_cli.face.analyze import analyze_video

    identity = clip_identity(root, clip, identity_source)
    if photo:
        coeffs, crops = photo_mode(clip.path(root, "frames"), identity)
    else:
        result = analyze_video(clip.path(root, "frames"), identity=identity)
        coeffs, crops = result.coeffs, result.crop_matrix
    gt = np.load(clip.path(root, "coeffs"))
    n = min(len(gt), len(coeffs))
    fit = coeffs[:n].copy()
    # The synthetic frames are the photo's 256² crop, so their pixels are the frame the ground truth is in.
    fit[:, rig.N_EXP :] = rig.rebase_pose(fit[:, rig.N_EXP :], crops[:n], np.eye(2, 3))
    return gt[:n], fit


def scores(pairs: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    from flowvq_cli.face import rig

    jaw = rig.ARKIT_NAMES.index("jawOpen")
    gt = np.concatenate([g for g, _ in pairs])
    fit = np.concatenate([f for _, f in pairs])
    exp_gt, exp_fit = gt[:, : rig.N_EXP], fit[:, : rig.N_EXP]
    angle_err = np.degrees(np.abs(fit[:, rig.N_EXP : rig.N_EXP + 3] - gt[:, rig.N_EXP : rig.N_EXP + 3]))
    driven = [i for i in range(rig.N_EXP) if exp_gt[:, i].std() > DRIVEN_STD]
    corr = [np.corrcoef(exp_fit[:, i], exp_gt[:, i])[0, 1] if exp_fit[:, i].std() > 1e-6 else 0.0 for i in driven]
    per_clip_mae = [np.abs(f[:, : rig.N_EXP] - g[:, : rig.N_EXP]).mean() for g, f in pairs]
    # Head motion alone: each clip's constant angle offset (how MediaPipe reads that face's rest pose) removed.
    motion = np.concatenate([np.abs(d - d.mean(axis=0)) for d in
                             (np.degrees(f[:, rig.N_EXP : rig.N_EXP + 3] - g[:, rig.N_EXP : rig.N_EXP + 3])
                              for g, f in pairs)])
    return {"jaw_corr": float(np.mean([np.corrcoef(f[:, jaw], g[:, jaw])[0, 1] for g, f in pairs])),
            "exp_mae": float(np.mean(per_clip_mae)),
            "exp_mae_if_all_zero": float(np.mean([np.abs(g[:, : rig.N_EXP]).mean() for g, _ in pairs])),
            "driven_blendshapes": float(len(driven)),
            "driven_corr": float(np.mean(corr)),
            "pitch_deg": float(angle_err[:, 0].mean()), "yaw_deg": float(angle_err[:, 1].mean()),
            "roll_deg": float(angle_err[:, 2].mean()),
            "pitch_motion_deg": float(motion[:, 0].mean()), "yaw_motion_deg": float(motion[:, 1].mean()),
            "roll_motion_deg": float(motion[:, 2].mean())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--clips", type=int, default=0, help="at most this many clips (0 = all with frames)")
    ap.add_argument("--identity", choices=("still", "given", "estimated"), default="still",
                    help="where the fit's neutral face comes from (see the module docstring)")
    ap.add_argument("--photo-mode", action="store_true", help="analyse each frame as a photo, not as a tracked video")
    args = ap.parse_args()

    from flowvq_cli.data.manifest import read_manifest

    clips = [c for c in read_manifest(args.dataset) if "frames" in c.paths]
    clips = clips[: args.clips] if args.clips else clips
    if args.photo_mode and args.identity == "estimated":
        raise SystemExit("--photo-mode needs a fixed identity (each frame is fitted on its own)")
    result = scores([clip_fit(args.dataset, c, args.identity, args.photo_mode) for c in clips])
    print(f"machine: {machine()}")
    mode = "photo mode, each frame on its own" if args.photo_mode else "tracked video"
    print(f"clips: {len(clips)}  identity: {args.identity}  analysis: {mode}")
    for k, v in result.items():
        print(f"{k}: {v:.4f}" if k != "driven_blendshapes" else f"{k}: {int(v)}")


if __name__ == "__main__":
    run(main)
