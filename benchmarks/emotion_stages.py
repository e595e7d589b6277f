"""Where does a requested emotion get lost? Its key blendshapes followed through generate's three stages.

    python benchmarks/emotion_stages.py [--weights weights/flowvq-mini] [--seeds 0]
        [--face examples/face.png --face examples/face2.png --face BIDEN] [--speech examples/speech2.wav]

For each face, seed and emotion (neutral, angry, happy, sad, surprised) one video is made with `generate`'s
defaults, and each emotion's key blendshapes (``eval_emotion.KEYS``: angry browDown, happy mouthSmile, sad
browInnerUp and mouthFrown, surprised browOuterUp, eyeWide and jawOpen) are measured as a rise over the
neutral video of the same face and seed, at three stages:

1. **coefficients**: the mean weight the flows (and ``generate``'s eye motion) gave them;
2. **rig**: the expression reader (Blendshape V2) on the face model's own landmarks of those coefficients
   on the photo's neutral face, frontal (``readback.read_rig``): what the geometry says;
3. **video**: the reader on FaceMesh's landmarks of the rendered video (``analyze``), as
   ``eval_emotion.py`` and ``flowvq evaluate`` measure it: what survives the renderer and MediaPipe.

Prints one line per face, seed and key group, the mean per key group, and the figure: the share of the
rig's rise that the video keeps, over all key groups.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("GLOG_minloglevel", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, run
from eval_emotion import EMOTIONS, KEYS, default_faces, mean_reading, video_args
from rig_readback import load_rig


def main() -> None:
    args = video_args(__doc__.splitlines()[0], seeds=[0], out="runs/emotion-stages")

    import torch

    from flowvq_cli.api import FlowVQ
    from flowvq_cli.face.analyze import analyze
    from flowvq_cli.face.readback import read_rig
    from flowvq_cli.face.reader import default_reader
    from flowvq_cli.face.rig import ARKIT_NAMES, N_EXP

    model = FlowVQ.from_pretrained(args.weights)
    reader = default_reader()
    basis, iris_basis, iris_offset = load_rig("calibrated")
    print(f"machine: {machine()}")
    print(f"weights: {args.weights}  renderer: {model.renderer}  speech: {args.speech.name}  seeds: {args.seeds}")
    groups = [(e, g) for e in KEYS for g in KEYS[e]]
    rises: dict[tuple, list[np.ndarray]] = {key: [] for key in groups}
    for photo in args.face or default_faces():
        identity = torch.from_numpy(model.prepare_face(photo).identity.astype(np.float32))
        for seed in args.seeds:
            stages = {}
            for emotion in EMOTIONS:
                video = args.out / photo.stem / f"{photo.stem}_{args.speech.stem}_{emotion}_s{seed}.mp4"
                video.parent.mkdir(parents=True, exist_ok=True)
                result = model.generate(photo, args.speech, emotion=emotion, seed=seed, out=video, force=True)
                exp = torch.from_numpy(np.ascontiguousarray(result.coeffs[:, :N_EXP], np.float32))
                with torch.no_grad():
                    rig_read = read_rig(reader, identity, basis, iris_basis, exp, iris_offset=iris_offset).numpy()
                landmarks = analyze(video).landmarks
                stages[emotion] = {}
                for g in {g for _, g in groups}:
                    idx = [ARKIT_NAMES.index(n) for n in g]
                    stages[emotion][g] = np.array([result.coeffs[:, idx].mean(), rig_read[:, idx].mean(),
                                                   mean_reading(landmarks, g)])
            for emotion, g in groups:
                rise = stages[emotion][g] - stages["neutral"][g]
                rises[(emotion, g)].append(rise)
                print(f"{photo.name} s{seed} {emotion:9s} {'+'.join(g):32s} coefficients {rise[0]:+.3f}  "
                      f"rig {rise[1]:+.3f}  video {rise[2]:+.3f}", flush=True)
    print("mean rise over the neutral video (coefficients / rig / video):")
    for emotion, g in groups:
        r = np.mean(rises[(emotion, g)], axis=0)
        print(f"  {emotion:9s} {'+'.join(g):32s} {r[0]:+.3f} / {r[1]:+.3f} / {r[2]:+.3f}")
    total = np.sum([np.mean(v, axis=0) for v in rises.values()], axis=0)
    print(f"share of the coefficients' rise the rig reads: {total[1] / total[0]:.2f}")
    print(f"share of the rig's rise the video keeps: {total[2] / total[1]:.2f}")


if __name__ == "__main__":
    run(main)
