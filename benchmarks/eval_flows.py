"""ExpFlow/PoseFlow quality on held-out speakers of a synthetic corpus: lip sync, emotion, diversity.

    python benchmarks/eval_flows.py DATASET --weights BUNDLE [--clips 40] [--seeds 5]

- lip sync: Pearson correlation of generated jawOpen with the clip's ground-truth viseme track
  (`viseme.npy`, the lip aperture the corpus was made from), on val-split clips (voices never trained on);
- emotion: a multinomial logistic-regression classifier is fitted on ground-truth coefficients of the
  train split (mean and std of each blendshape over 2 s windows) and applied to generated samples of the
  requested emotion: accuracy over val clips;
- diversity: for one val clip, `--seeds` samples: mean std across seeds of the brow and pose tracks,
  how many distinct blink onset frames occur, and the jawOpen correlation of every seed (lip sync holds?).
Prints one line per figure and the machine.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, run

WINDOW = 50  # frames per classifier window (2 s at 25 fps)
BLINK_THRESHOLD = 0.5


def window_features(exp: np.ndarray) -> np.ndarray:
    """(T, 52) → (W, 104): mean and std of every blendshape over consecutive 2 s windows."""
    n = max(1, len(exp) // WINDOW)
    chunks = np.array_split(exp[: max(WINDOW, n * WINDOW)], n)
    return np.stack([np.r_[c.mean(0), c.std(0)] for c in chunks])


def fit_classifier(x: np.ndarray, y: np.ndarray, n_classes: int, steps: int = 500) -> torch.nn.Module:
    torch.manual_seed(0)
    mu, sd = x.mean(0), x.std(0) + 1e-6
    model = torch.nn.Linear(x.shape[1], n_classes)
    opt = torch.optim.Adam(model.parameters(), lr=0.05, weight_decay=1e-4)
    xt, yt = torch.tensor((x - mu) / sd, dtype=torch.float32), torch.tensor(y)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(xt), yt).backward()
        opt.step()
    model.norm = (mu, sd)
    return model


def classify(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    mu, sd = model.norm
    with torch.no_grad():
        return model(torch.tensor((x - mu) / sd, dtype=torch.float32)).argmax(1).numpy()


def blink_onsets(track: np.ndarray) -> set[int]:
    closed = track > BLINK_THRESHOLD
    return {int(t) for t in np.flatnonzero(closed[1:] & ~closed[:-1]) + 1}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--clips", type=int, default=40, help="val clips to evaluate")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (as `generate`)")
    ap.add_argument("--project", action="store_true", help="use manifold projection (as `generate --project`)")
    args = ap.parse_args()

    from flowvq_cli.api import FlowVQ
    from flowvq_cli.audio.features import cached_features
    from flowvq_cli.data.manifest import read_manifest
    from flowvq_cli.face import rig
    from flowvq_cli.labels import EMOTIONS

    torch.set_num_threads(2)
    fv = FlowVQ.from_pretrained(args.weights, device="cpu", renderer="warp")
    clips = read_manifest(args.dataset)
    train = [c for c in clips if c.split == "train"]
    val = [c for c in clips if c.split == "val"][: args.clips]
    jaw, blink = rig.ARKIT_NAMES.index("jawOpen"), rig.ARKIT_NAMES.index("eyeBlinkLeft")
    brows = [rig.ARKIT_NAMES.index(n) for n in ("browDownLeft", "browInnerUp", "browOuterUpLeft")]

    xs, ys = [], []
    for c in train:
        f = window_features(np.load(c.path(args.dataset, "coeffs"))[:, : rig.N_EXP])
        xs.append(f)
        ys += [EMOTIONS.index(c.emotion)] * len(f)
    clf = fit_classifier(np.concatenate(xs), np.array(ys), len(EMOTIONS))

    def sample(clip, seed: int) -> np.ndarray:
        feats = cached_features(clip.path(args.dataset, "audio"), args.dataset / "cache" / "audio-features")
        gt = np.load(clip.path(args.dataset, "coeffs"))
        src = torch.from_numpy(gt[0, : rig.N_EXP]).float()[None]
        audio = torch.from_numpy(np.asarray(feats, np.float32))[None]
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            exp = fv.expflow.sample(audio, src, clip.emotion, clip.intensity, generator=gen,
                                    temperature=args.temperature,
                                    project=args.project and fv.expflow.has_latents(clip.emotion))[0].numpy()
            pose = fv.poseflow.sample(audio, generator=gen, temperature=args.temperature)[0].numpy()
        return np.concatenate([exp, pose], axis=1)

    corrs, correct, total = [], 0, 0
    for c in val:
        out = sample(c, 0)
        vis = np.load(c.path(args.dataset, "coeffs").parent / "viseme.npy")
        n = min(len(vis), len(out))
        corrs.append(np.corrcoef(out[:n, jaw], vis[:n])[0, 1])
        pred = classify(clf, window_features(out[:, : rig.N_EXP]))
        correct += int((pred == EMOTIONS.index(c.emotion)).sum())
        total += len(pred)

    clip = next(c for c in val if c.emotion != "neutral")
    runs = [sample(clip, s) for s in range(args.seeds)]
    stack = np.stack(runs)  # (S, T, 58)
    vis = np.load(clip.path(args.dataset, "coeffs").parent / "viseme.npy")
    n = min(len(vis), stack.shape[1])
    seed_corrs = [np.corrcoef(r[:n, jaw], vis[:n])[0, 1] for r in runs]
    onsets = [blink_onsets(r[:, blink]) for r in runs]
    print(f"machine: {machine()}")
    print(f"val clips: {len(val)} (speakers never trained on), train clips: {len(train)}, "
          f"manifold projection {'on' if args.project else 'off'}, temperature {args.temperature}")
    print(f"lip sync, corr(generated jawOpen, GT viseme track): mean {np.mean(corrs):.3f}, "
          f"median {np.median(corrs):.3f}")
    print(f"emotion accuracy of a GT-trained classifier on generated samples: {correct / max(total, 1):.3f} "
          f"({total} windows)")
    print(f"diversity over {args.seeds} seeds on {clip.id} ({clip.emotion}): "
          f"brow std {stack[:, :, brows].std(0).mean():.4f}, "
          f"pose std {np.degrees(stack[:, :, rig.N_EXP:rig.N_EXP + 3].std(0)).mean():.3f} deg, "
          f"blink onsets per seed {[sorted(o) for o in onsets]}")
    print(f"lip sync per seed: {[round(float(x), 3) for x in seed_corrs]}")


if __name__ == "__main__":
    run(main)
