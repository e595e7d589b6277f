"""Contact sheet of the default weights: one row per emotion, frames across the example speech.

    python scripts/contact_sheet.py [--weights BUNDLE] [--out weights/flowvq-mini/contact_sheet.png] [--seed 0]

Each row is `flowvq generate examples/face.png examples/speech.wav --emotion E --seed S --crop-only`,
sampled at evenly spaced frames; the row label names the emotion.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
EMOTION_ROWS = ("neutral", "angry", "happy", "sad", "surprised", "fear", "disgusted", "contempt", "talk")
COLUMNS = 6
TILE = 160


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=None)
    ap.add_argument("--out", type=Path, default=REPO / "weights" / "flowvq-mini" / "contact_sheet.png")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from flowvq_cli.api import FlowVQ
    from flowvq_cli.image import save_image

    fv = FlowVQ.from_pretrained(args.weights, device="cpu")
    face, speech = REPO / "examples" / "face.png", REPO / "examples" / "speech.wav"
    source = fv.prepare_face(face)
    feats, _ = fv.audio_features(speech, 25.0)
    rows = []
    for emotion in EMOTION_ROWS:
        coeffs = fv.motion(source, feats, emotion=emotion, intensity=3, seed=args.seed)
        picks = set(np.linspace(5, len(coeffs) - 5, COLUMNS).round().astype(int).tolist())
        tiles = [cv2.resize(f[24:232, 24:232], (TILE, TILE), interpolation=cv2.INTER_AREA)
                 for t, f in enumerate(fv.render(source, coeffs, paste_back=False)) if t in picks]
        row = np.hstack(tiles)
        cv2.putText(row, emotion, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 0), 1, cv2.LINE_AA)
        rows.append(row)
    print(save_image(args.out, np.vstack(rows), force=True))


if __name__ == "__main__":
    main()
