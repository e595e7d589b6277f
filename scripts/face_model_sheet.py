"""Contact sheet of the face model alone: each photo rendered neutral and with each emotion's expression.

    python scripts/face_model_sheet.py [--out docs/face_model_sheet.jpg] [--intensity 2] [--face F ...]
        [--zoom docs/face_model_zoom.jpg]

No flows: every column is the mesh-warp renderer at one static coefficient vector, the corpus's expression
prototype of that emotion (``flowvq_cli.data.styles.EXPRESSIONS`` times ``INTENSITY_SCALE``), mouth closed,
the photo's own pose. Rows are the photos (by default the two example photos; the model card's sheet adds
``biden.jpg`` from the ``face_recognition`` 1.3.0 source package), columns the photo itself, then neutral,
angry, happy, sad, surprised. ``--zoom``
also writes the first photo's mouth and brows, zoomed, as it is, made neutral and made angry.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
EMOTIONS = ("neutral", "angry", "happy", "sad", "surprised")
TILE = 200


def expression(emotion: str, intensity: int) -> np.ndarray:
    """(52,) the corpus's static expression of an emotion at an intensity."""
    from flowvq_cli.data.styles import EXPRESSIONS, INTENSITY_SCALE
    from flowvq_cli.face.rig import ARKIT_NAMES, N_EXP

    exp = np.zeros(N_EXP, np.float32)
    for name, weight in EXPRESSIONS[emotion].items():
        exp[ARKIT_NAMES.index(name)] = min(1.0, weight * INTENSITY_SCALE[intensity])
    return exp


def renders(photo: Path, intensity: int) -> list[np.ndarray]:
    """The photo's aligned crop, then its crop rendered at each emotion's expression: (256, 256, 3) RGB each."""
    from flowvq_cli.api import warp_frames
    from flowvq_cli.face.rig import N_EXP
    from flowvq_cli.face.source import prepare_face

    source = prepare_face(photo)
    coeffs = np.repeat(source.coeffs[None], len(EMOTIONS), axis=0)
    coeffs[:, :N_EXP] = np.stack([expression(e, intensity) for e in EMOTIONS])
    return [source.crop, *warp_frames(source, coeffs, paste_back=False)]


def label(tile: np.ndarray, text: str) -> np.ndarray:
    out = cv2.resize(tile, (TILE, TILE), interpolation=cv2.INTER_AREA)
    cv2.putText(out, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 2, cv2.LINE_AA)
    cv2.putText(out, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return out


def zoom_rows(frames: list[np.ndarray]) -> np.ndarray:
    """Mouth and brows of the photo, neutral and angry, each zoomed 2x: one image."""
    regions = {"brows": (slice(48, 112), slice(64, 192)), "mouth": (slice(132, 196), slice(64, 192))}
    picks = {"photo": frames[0], "neutral": frames[1], "angry": frames[2]}
    rows = []
    for rname, (ys, xs) in regions.items():
        tiles = [cv2.resize(img[ys, xs], None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC) for img in picks.values()]
        for tile, name in zip(tiles, picks, strict=True):
            cv2.putText(tile, f"{rname}: {name}", (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 2)
        rows.append(np.hstack(tiles))
    return np.vstack(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "face_model_sheet.jpg")
    ap.add_argument("--zoom", type=Path, default=None)
    ap.add_argument("--intensity", type=int, default=2, choices=(1, 2, 3))
    ap.add_argument("--face", type=Path, action="append")
    args = ap.parse_args()
    faces = args.face or [REPO / "examples" / "face.png", REPO / "examples" / "face2.png"]
    rows, first = [], None
    for photo in faces:
        frames = renders(photo, args.intensity)
        first = first or frames
        rows.append(np.hstack([label(f, t) for f, t in zip(frames, ("photo", *EMOTIONS), strict=True)]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), cv2.cvtColor(np.vstack(rows), cv2.COLOR_RGB2BGR))
    print(f"wrote {args.out}")
    if args.zoom:
        cv2.imwrite(str(args.zoom), cv2.cvtColor(zoom_rows(first), cv2.COLOR_RGB2BGR))
        print(f"wrote {args.zoom}")


if __name__ == "__main__":
    main()
