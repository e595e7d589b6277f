"""VQIG vs. the analytic mesh-warp renderer on held-out faces: PSNR/SSIM to the real frames, sharpness, identity.

    python benchmarks/eval_renderers.py DATASET --weights-codebook DIR [--weights-vqig DIR] [--clips 10]
        [--trained-on TRAIN_DATASET] [--warp-interpolation cubic|linear]

Clips: with ``--trained-on``, the clips of DATASET (any split) whose face (``face.txt``, else
``identity.npy``) no training clip of TRAIN_DATASET shows, e.g. a corpus rendered on a photo kept out of
training (``flowvq synth EVAL --faces DIR``); without it, DATASET's val clips whose face no training clip
of DATASET shows — when there is none, the val clips are used and the output says that their faces were
seen in training, or that the whole dataset shares one face. Both renderers start from the clip's first
frame and its coefficients and render every later frame from the clip's coefficients, at the codebook's
resolution. The mesh warp, and so the frame a ``prior_frame`` VQIG composes on, samples the photo
bicubically, or bilinearly (the earlier default) with ``--warp-interpolation linear``. A
third row, ``codebook``, is the codebook model's reconstruction of the real frames: the
sharpest and most faithful picture its decoder can give, which bounds what VQIG can reach.

- PSNR / SSIM of the rendered frames to the clip's real frames (``flowvq_cli.eval.image_metrics``);
- sharpness: variance of the Laplacian over the face region (the box of the source mesh) of each output
  frame divided by that of the source frame (``flowvq_cli.eval.sharpness``; 1 = as crisp as the photo);
  printed for the real frames too, as the reference;
- identity distance: dlib face-descriptor distance output ↔ source (< 0.6 = same person), only when dlib
  and its models are installed (``pip install .[eval]``).

Prints one line per renderer, the precision VQIG rendered in (bf16 on a GPU or a CPU with hardware bf16), the
machine, and a fingerprint of the clips evaluated (SHA-256 of their ids, ``coeffs.npy`` and ``frames.mp4``):
``flowvq synth`` on another espeak-ng or renderer revision makes other frames, so only runs with the same
fingerprint compare figure for figure.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, precision, run

from flowvq_cli.data.datasets import FrameTripletDataset, _load_coeffs
from flowvq_cli.data.manifest import Clip, read_manifest
from flowvq_cli.eval import psnr, sharpness_ratio, ssim
from flowvq_cli.face import rig
from flowvq_cli.fsutil import sha256_file
from flowvq_cli.render.meshwarp import INTERPOLATIONS, MeshWarpConfig, MeshWarpRenderer
from flowvq_cli.train.images import clip_face_key, to_uint8
from flowvq_cli.vq import VQGAN
from flowvq_cli.vqig import VQIG, MeshPrior

CHUNK = 16  # frames per VQIG forward
DLIB_HINT = "unavailable (needs dlib, `pip install .[eval]`)"
RENDERERS = ("vqig", "warp", "codebook")
REAL = "real"  # the clips' real frames: only their sharpness is kept, as the reference for the renderers'


@dataclass
class Scores:
    """Per-frame figures of one renderer, pooled over clips."""

    psnr: list[float] = field(default_factory=list)
    ssim: list[float] = field(default_factory=list)
    sharpness: list[float] = field(default_factory=list)
    identity: list[float] = field(default_factory=list)
    visible: list[float] = field(default_factory=list)  # VQIG's occlusion mask, mean per frame (1 = photo)


def pick_unseen(root: Path, trained_on: Path, limit: int) -> tuple[list[Clip], str]:
    """Clips of ``root`` (any split) whose face no training clip of ``trained_on`` shows."""
    train_keys = {clip_face_key(trained_on, c) for c in read_manifest(trained_on) if c.split == "train"}
    clips = [c for c in read_manifest(root) if "frames" in c.paths]
    unseen = [c for c in clips if (k := clip_face_key(root, c)) is not None and k not in train_keys]
    if not unseen:
        raise SystemExit(f"every clip of {root} shows a face of {trained_on}'s training clips; render an "
                         "evaluation corpus on another photo (flowvq synth EVAL --faces DIR)")
    return unseen[:limit], f"{min(len(unseen), limit)} clips of faces never seen in training ({trained_on})"


def pick_clips(root: Path, limit: int) -> tuple[list[Clip], str]:
    """Val clips with frames, unseen faces first; and a sentence on whose faces they show."""
    clips = [c for c in read_manifest(root) if "frames" in c.paths]
    keys = {c.id: clip_face_key(root, c) for c in clips}  # each clip's face, read once
    train_keys = {keys[c.id] for c in clips if c.split == "train"}
    val = [c for c in clips if c.split == "val"]
    if not val:
        raise SystemExit(f"{root} has no val clips with frames.mp4; build it with held-out speakers")
    unseen = [c for c in val if keys[c.id] is not None and keys[c.id] not in train_keys]
    all_keys = set(keys.values())
    if unseen:
        return unseen[:limit], f"{min(len(unseen), limit)} val clips with faces never seen in training"
    if len(all_keys) == 1 and None not in all_keys:
        return val[:limit], ("NOTE: every clip of this dataset shows the same face, so no face is unseen: "
                             "these figures are on a face seen in training (held-out speakers only)")
    return val[:limit], ("NOTE: no val clip shows an unseen face (or identities are missing): these figures "
                         "are on faces seen in training")


def vqig_frames(model: VQIG, source: torch.Tensor, coeffs: np.ndarray, targets: np.ndarray,
                mesh: MeshWarpRenderer, meshes: np.ndarray) -> tuple[np.ndarray, list[float]]:
    """VQIG renders of frames ``targets`` (N,) from ``source`` (1, 3, S, S) = frame 0 → (N, S, S, 3) uint8,
    and the mean of its visibility mask per frame (how much of the photo it uses). ``mesh`` (the source's
    mesh-warp renderer) and ``meshes`` (N, 468, 3), the target meshes, give a ``mesh_prior`` VQIG its motion."""
    w, last = model.config.window, len(coeffs) - 1
    windows = torch.from_numpy(np.stack([coeffs[np.clip(np.arange(t - w, t + w + 1), 0, last)]
                                         for t in targets])).float()  # (N, 2w+1, 58)
    cache = model.prepare_source(source, torch.from_numpy(coeffs[:1]).float())
    frames, visible = [], []
    for i in range(0, len(windows), CHUNK):
        prior = None
        if model.config.mesh_prior:
            motion = mesh.render(meshes[i:i + CHUNK])
            prior = MeshPrior.from_render(motion, frame=model.config.prior_frame)
        rendered, out = model.render_prepared(cache, windows[i:i + CHUNK], return_output=True, prior=prior)
        frames.append(rendered.cpu())
        visible += out.visibility(tuple(rendered.shape[-2:])).float().mean(dim=(1, 2, 3)).tolist()
    return to_uint8(torch.cat(frames)), visible


def warp_frames(source_rgb: np.ndarray, identity: np.ndarray, coeffs: np.ndarray, targets: np.ndarray,
                interpolation: str = MeshWarpConfig.interpolation
                ) -> tuple[np.ndarray, tuple[int, int, int, int], MeshWarpRenderer, np.ndarray]:
    """Mesh-warp renders (N, S, S, 3) of frames ``targets`` from frame 0, the source mesh's face box, the
    renderer and the target meshes (N, 468, 3)."""
    size = source_rgb.shape[0]
    scale = size / rig.CROP_SIZE
    meshes = rig.synthesize(identity, np.concatenate([coeffs[:1], coeffs[targets]])) * scale  # (1+N, 468, 3)
    renderer = MeshWarpRenderer(source_rgb, meshes[0], MeshWarpConfig(size=size, interpolation=interpolation))
    frames = np.concatenate([renderer.render(meshes[1 + i:1 + i + CHUNK]).frames
                             for i in range(0, len(targets), CHUNK)])
    x0, y0 = np.floor(meshes[0, :, :2].min(axis=0)).astype(int)
    x1, y1 = np.ceil(meshes[0, :, :2].max(axis=0)).astype(int)
    box = (max(0, x0), max(0, y0), min(size, x1), min(size, y1))
    return frames, box, renderer, meshes[1:]


def identity_model():
    """dlib's face models, or the reason they cannot be used."""
    if importlib.util.find_spec("dlib") is None:
        return None, DLIB_HINT
    try:
        from flowvq_cli.eval.dlib_models import load_dlib_models

        return load_dlib_models(), ""
    except (ImportError, OSError, RuntimeError, ValueError) as error:  # includes DlibUnavailableError (InputError)
        return None, f"unavailable ({error})"


def identity_distances(models, source: np.ndarray, frames: np.ndarray) -> list[float]:
    """dlib descriptor distance of each frame to the source (frames where no face is found are skipped)."""
    from flowvq_cli.eval.dlib_models import face_distance

    ref = models.embedding(source)
    if ref is None:
        return []
    out = []
    for frame in frames:
        emb = models.embedding(frame)
        if emb is not None:
            out.append(float(face_distance(emb, ref)))
    return out


def codebook_frames(codebook: VQGAN, frames: np.ndarray) -> np.ndarray:
    """The codebook model's reconstructions (N, S, S, 3) uint8 of frames (N, S, S, 3) uint8."""
    images = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 127.5 - 1
    return to_uint8(torch.cat([codebook(images[i:i + CHUNK]).recon for i in range(0, len(images), CHUNK)]))


def evaluate_clip(root: Path, clip: Clip, frames_of: FrameTripletDataset, model: VQIG | None, codebook: VQGAN,
                  max_frames: int, scores: dict[str, Scores], dlib_models,
                  interpolation: str = MeshWarpConfig.interpolation) -> None:
    real = np.asarray(frames_of.frames(clip))  # (T, S, S, 3) uint8
    coeffs = np.asarray(_load_coeffs(root, clip), dtype=np.float32)
    n = min(len(real), len(coeffs))
    targets = np.arange(1, min(n, max_frames + 1))
    identity_path = clip.path(root, "coeffs").parent / "identity.npy"
    if len(targets) == 0 or not identity_path.is_file():
        print(f"skip {clip.id}: {'fewer than 2 frames' if len(targets) == 0 else 'no identity.npy'}")
        return
    source_rgb = np.array(real[0])  # a writable copy of the memory-mapped frame
    source = torch.from_numpy(source_rgb).permute(2, 0, 1)[None].float() / 127.5 - 1  # (1, 3, S, S)
    warp, box, mesh, meshes = warp_frames(source_rgb, np.load(identity_path), coeffs[:n], targets, interpolation)
    gt = real[targets]
    outputs = {"warp": warp, "codebook": codebook_frames(codebook, gt)}
    if model is not None:
        outputs["vqig"], visible = vqig_frames(model, source, coeffs[:n], targets, mesh, meshes)
        scores["vqig"].visible += visible
    scores[REAL].sharpness += sharpness_ratio(gt, source_rgb, box, box).tolist()
    for name, frames in outputs.items():
        s = scores[name]
        s.psnr += psnr(frames, gt).tolist()
        s.ssim += ssim(frames, gt).tolist()
        s.sharpness += sharpness_ratio(frames, source_rgb, box, box).tolist()
        if dlib_models is not None:
            s.identity += identity_distances(dlib_models, source_rgb, frames)


def clips_fingerprint(root: Path, clips: list[Clip]) -> str:
    """First 12 hex digits of the SHA-256 over the clips' ids and the SHA-256 of their coefficients and frame
    videos, in order."""
    digest = hashlib.sha256()
    for clip in clips:
        digest.update(clip.id.encode())
        for kind in ("coeffs", "frames"):
            digest.update(sha256_file(clip.path(root, kind)).encode())
    return digest.hexdigest()[:12]


def line(name: str, s: Scores, identity_note: str) -> str:
    ident = f"{np.mean(s.identity):.3f}" if s.identity else (identity_note or "no face found by dlib")
    finite = [v for v in s.psnr if np.isfinite(v)]
    return (f"{name:8s} PSNR {np.mean(finite):.2f} dB  SSIM {np.mean(s.ssim):.4f}  "
            f"sharpness (face, output/source) {np.mean(s.sharpness):.3f}  identity distance {ident}  "
            f"({len(s.psnr)} frames)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--weights-codebook", type=Path, required=True, help="folder from VQGAN.save_pretrained")
    parser.add_argument("--weights-vqig", type=Path, help="folder from VQIG.save_pretrained (default: no VQIG row)")
    parser.add_argument("--trained-on", type=Path, help="the training dataset: evaluate DATASET's clips whose face "
                        "it never showed")
    parser.add_argument("--clips", type=int, default=10, help="val clips to evaluate (default 10)")
    parser.add_argument("--frames", type=int, default=100, help="frames per clip after the source (default 100)")
    parser.add_argument("--warp-interpolation", choices=tuple(INTERPOLATIONS), default=MeshWarpConfig.interpolation,
                        help="how the mesh warp samples the photo (MeshWarpConfig.interpolation; default %(default)s)")
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    torch.set_grad_enabled(False)
    codebook = VQGAN.from_pretrained(args.weights_codebook).eval()
    model = VQIG.from_pretrained(args.weights_vqig, codebook=codebook).eval() if args.weights_vqig else None
    size = codebook.config.image_size
    if args.trained_on is not None:
        clips, note = pick_unseen(args.dataset, args.trained_on, args.clips)
    else:
        clips, note = pick_clips(args.dataset, args.clips)
    frames_of = FrameTripletDataset(args.dataset, clips[0].split, size=size)  # decodes any clip's frames
    dlib_models, identity_note = identity_model()
    scores = {name: Scores() for name in (*RENDERERS, REAL)}
    for clip in clips:
        evaluate_clip(args.dataset, clip, frames_of, model, codebook, args.frames, scores, dlib_models,
                      args.warp_interpolation)
    print(f"{note}; {size}² frames, source = each clip's first frame, mesh warp sampling "
          f"{args.warp_interpolation}")
    for name in RENDERERS:
        if scores[name].psnr:
            print(line(name, scores[name], identity_note))
    if scores[REAL].sharpness:
        print(f"the real frames themselves: sharpness (face, frame/source) {np.mean(scores[REAL].sharpness):.3f}")
    if scores["vqig"].visible:
        print(f"vqig occlusion mask: mean {np.mean(scores['vqig'].visible):.3f} of the photo visible "
              f"(compose {model.config.compose}, mesh prior {model.config.mesh_prior}); rendered in "
              f"{precision(model)}")
    print(f"machine: {machine()}; clips fingerprint {clips_fingerprint(args.dataset, clips)}")


if __name__ == "__main__":
    run(main)
