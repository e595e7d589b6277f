"""Teeth, mouth interior and closing lids of generated videos: crops for a person to judge, and figures.

    python benchmarks/mouth_eyes.py [--weights weights/flowvq-mini] [--face extra.png ...]
        [--speech examples/speech2.wav] [--seconds 8] [--seeds 0 1 2] [--emotion neutral] [--out runs/mouth-eyes]

For ``examples/face.png``, ``examples/face2.png`` and each ``--face``, one video per seed is made with
``generate``'s defaults (``FlowVQ.from_pretrained`` of ``--weights``, its default renderer, pasted back into the
photo; emotion neutral, intensity 2, generated head motion, ``--eyes auto``) from the first ``--seconds`` of
the speech (``speech2.wav`` is 4.5 s: 112 frames a seed). Each video is encoded (H.264, as ``generate``
writes it) and read back by ``analyze`` as a user would read it (``analyze_video`` with the photo's identity:
MediaPipe FaceMesh in tracking mode, the face model's fit, lid-calibrated eyeBlink). Colours are measured on
the frames before the encode.

Per face, ``--out``/``<face>_mouth_eyes.png`` is one sheet: the photo's own mouth, then the mouth in the 3
widest-open frames (the largest inner-lip gap of the frame's landmarks, ``canonical.lip_gap``); the photo's
eyes, then the eyes in the 2 most-closed frames (the generated eyeBlink, left and right averaged); and,
when the emotion widens the eyes (``--emotion surprised``: the generated eyeWide reaches 0.2), the eyes in
the 2 widest-open frames. Each is zoomed to the same tile height (Lanczos).

Measured:

- **teeth against skin** in the ``--open-frames`` widest-open frames: the teeth are the bright pixels
  (Otsu's threshold on Lab L*) inside the inner-lip polygon of the frame's landmarks, shrunk by a pixel;
  the skin is the two cheek patches under the eyes (landmark polygons, the middle 80 % of their L*). The
  figures are the medians' ratios: teeth L* / skin L* (issue target >= 0.9) and teeth b* / skin b*
  (target >= 0.3; b* > 0 is yellow-warm, < 0 blue).
- **closed lids**: among the fully shut frames (the generated eyeBlink >= ``--shut`` in both eyes), the
  share ``analyze`` reads as closed (its eyeBlink, both eyes averaged, > 0.5; target >= 0.8). The raw
  Blendshape V2 reading of the same landmarks (``flowvq_cli.face.reader``, which reads a shut eye at about
  0.45) is printed beside it.

Prints one line per face, then the figure over all faces (pooled over their frames).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, machine, run

FACES = (REPO / "examples" / "face.png", REPO / "examples" / "face2.png")
INNER_UPPER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
INNER_LOWER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
OUTER_LIPS = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146)
EYES = (33, 133, 159, 145, 362, 263, 386, 374, 70, 300, 105, 334)  # eye corners, lids, brows
CHEEKS = ((116, 117, 118, 101, 36, 205, 187, 123), (345, 346, 347, 330, 266, 425, 411, 352))
TILE = 240  # tile height of the sheet, pixels


def lab(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 RGB → float32 CIE Lab (L* 0–100)."""
    return cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)


def polygon_mask(shape: tuple[int, int], points: np.ndarray, erode: int = 0) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.round(points * 16).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=4)
    if erode:
        mask = cv2.erode(mask, np.ones((2 * erode + 1, 2 * erode + 1), np.uint8))
    return mask.astype(bool)


def teeth_and_skin(frame: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, int] | None:
    """(teeth median Lab, skin median Lab, teeth pixel count) of one frame, or None without teeth pixels."""
    lab_img = lab(frame)
    h, w = frame.shape[:2]
    mouth = polygon_mask((h, w), points[list(INNER_UPPER + INNER_LOWER[::-1]), :2], erode=1)
    inside = lab_img[mouth]
    if len(inside) < 12:
        return None
    light = np.clip(inside[:, 0] * 2.55, 0, 255).astype(np.uint8)
    thresh, _ = cv2.threshold(light[:, None], 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    teeth = inside[light > thresh]
    if len(teeth) < 6:
        return None
    skin = []
    for cheek in CHEEKS:
        px = lab_img[polygon_mask((h, w), points[list(cheek), :2])]
        lo, hi = np.quantile(px[:, 0], [0.1, 0.9])
        skin.append(px[(px[:, 0] >= lo) & (px[:, 0] <= hi)])
    return np.median(teeth, axis=0), np.median(np.vstack(skin), axis=0), len(teeth)


def crop_tile(frame: np.ndarray, points: np.ndarray, idx: tuple[int, ...], margin: float, aspect: float,
              label: str) -> np.ndarray:
    """The box around landmarks ``idx`` (plus ``margin`` of its width) at ``aspect`` (w/h), zoomed to TILE high."""
    xy = points[list(idx), :2]
    (x0, y0), (x1, y1) = xy.min(axis=0), xy.max(axis=0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    bw = (x1 - x0) * (1 + 2 * margin)
    bh = max(bw / aspect, (y1 - y0) * (1 + 2 * margin))
    bw = bh * aspect
    m = np.array([[TILE / bh, 0, TILE * aspect / 2 - cx * TILE / bh], [0, TILE / bh, TILE / 2 - cy * TILE / bh]])
    tile = cv2.warpAffine(frame, m, (round(TILE * aspect), TILE), flags=cv2.INTER_LANCZOS4,
                          borderMode=cv2.BORDER_REPLICATE)
    cv2.putText(tile, label, (4, TILE - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(tile, label, (4, TILE - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return tile


def sheet(rows: list[list[np.ndarray]]) -> np.ndarray:
    width = max(sum(t.shape[1] for t in row) + 4 * (len(row) - 1) for row in rows)
    out = []
    for row in rows:
        line = np.full((TILE, width, 3), 255, np.uint8)
        x = 0
        for t in row:
            line[:, x : x + t.shape[1]] = t
            x += t.shape[1] + 4
        out += [line, np.full((4, width, 3), 255, np.uint8)]
    return np.vstack(out[:-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=str(REPO / "weights" / "flowvq-mini"))
    ap.add_argument("--face", type=Path, action="append", default=[], help="a further photo (repeatable)")
    ap.add_argument("--speech", type=Path, default=REPO / "examples" / "speech2.wav")
    ap.add_argument("--seconds", type=float, default=8.0, help="first seconds of the speech (default %(default)s)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                    help="sampling seeds, one video each (default %(default)s)")
    ap.add_argument("--emotion", default="neutral")
    ap.add_argument("--open-frames", type=int, default=10, help="widest-open frames measured (default %(default)s)")
    ap.add_argument("--shut", type=float, default=0.9,
                    help="generated eyeBlink (both eyes) from which a frame counts as fully shut (default %(default)s)")
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "mouth-eyes")
    args = ap.parse_args()

    from flowvq_cli.api import DEFAULT_FPS, FlowVQ
    from flowvq_cli.face import rig
    from flowvq_cli.face.analyze import analyze_video
    from flowvq_cli.face.canonical import lip_gap
    from flowvq_cli.face.detect import landmarks_image
    from flowvq_cli.face.reader import read_blendshapes
    from flowvq_cli.video import VideoWriter

    print(f"machine: {machine()}")
    args.out.mkdir(parents=True, exist_ok=True)
    model = FlowVQ.from_pretrained(args.weights)
    blink = [rig.ARKIT_NAMES.index("eyeBlinkLeft"), rig.ARKIT_NAMES.index("eyeBlinkRight")]
    wide = [rig.ARKIT_NAMES.index("eyeWideLeft"), rig.ARKIT_NAMES.index("eyeWideRight")]
    pooled = {"l": [], "b": [], "shut": 0, "closed": 0}
    for face in [*FACES, *args.face]:
        source = model.prepare_face(face)
        feats, _ = model.audio_features(args.speech, DEFAULT_FPS)
        feats = feats[: round(args.seconds * DEFAULT_FPS)]
        frames, labels, points, read, analysed, gen_blink, gen_wide = [], [], [], [], [], [], []
        for seed in args.seeds:
            coeffs = model.motion(source, feats, emotion=args.emotion, intensity=2, seed=seed)
            clip = list(model.render(source, coeffs))
            with tempfile.TemporaryDirectory() as tmp:  # read as a user would read the video
                video = Path(tmp) / "clip.mp4"
                with VideoWriter(video, fps=DEFAULT_FPS, size=(clip[0].shape[1], clip[0].shape[0])) as writer:
                    for f in clip:
                        writer.write(f)
                analysis = analyze_video(video, identity=source.identity)
            pts = np.where(analysis.valid[:, None, None], analysis.landmarks, np.nan)
            frames += clip
            labels += [f"seed {seed} frame {i}" for i in range(len(clip))]
            points.append(pts)
            read.append(read_blendshapes(pts)[:, blink].mean(axis=1))  # NaN where lost
            analysed.append(np.where(analysis.valid, analysis.coeffs[:, blink].mean(axis=1), np.nan))
            gen_blink.append(coeffs[:, blink])
            gen_wide.append(coeffs[:, wide].mean(axis=1))
        points, read, analysed, gen_blink, gen_wide = (np.concatenate(v) for v in
                                                       (points, read, analysed, gen_blink, gen_wide))
        found = np.isfinite(points[:, 0, 0])
        photo_points = landmarks_image(source.image, source=str(face)).points
        gap = np.where(found, lip_gap(np.nan_to_num(points[:, :468, :2])), -1.0)

        widest = np.argsort(-gap)[: max(args.open_frames, 3)]
        widest = widest[gap[widest] > 0]
        measured = [r for i in widest if (r := teeth_and_skin(frames[i], points[i])) is not None]
        if measured:
            teeth = np.median([m[0] for m in measured], axis=0)
            skin = np.median([m[1] for m in measured], axis=0)
            l_ratio, b_ratio = teeth[0] / skin[0], teeth[2] / skin[2]
            pooled["l"] += [m[0][0] / m[1][0] for m in measured]
            pooled["b"] += [m[0][2] / m[1][2] for m in measured]
            mouth_text = (f"teeth L* {teeth[0]:.1f} / skin {skin[0]:.1f} = {l_ratio:.2f}, "
                          f"b* {teeth[2]:.1f} / {skin[2]:.1f} = {b_ratio:.2f} ({len(measured)} open frames, "
                          f"gap {gap[widest].min():.2f}-{gap[widest].max():.2f} mouth widths)")
        else:
            mouth_text = "no teeth pixels in the open-mouth frames"
        shut = np.flatnonzero((gen_blink >= args.shut).all(axis=1) & found)
        closed = int((analysed[shut] > 0.5).sum())
        pooled["shut"] += len(shut)
        pooled["closed"] += closed
        eye_text = (f"{closed}/{len(shut)} fully shut frames read closed"
                    + (f" ({closed / len(shut):.0%}; analysed eyeBlink {np.mean(analysed[shut]):.2f}, "
                       f"raw reader {np.mean(read[shut]):.2f})" if len(shut) else ""))
        print(f"{Path(face).name}: {mouth_text}; {eye_text}", flush=True)

        most_closed = np.lexsort((-np.nan_to_num(analysed), -gen_blink.mean(axis=1)))[:2]
        rows = [[crop_tile(source.image, photo_points, OUTER_LIPS, 0.35, 1.6, "photo")]
                + [crop_tile(frames[i], points[i], OUTER_LIPS, 0.35, 1.6, f"{labels[i]} gap {gap[i]:.2f}")
                   for i in widest[:3]],
                [crop_tile(source.image, photo_points, EYES, 0.12, 2.6, "photo")]
                + [crop_tile(frames[i], points[i], EYES, 0.12, 2.6,
                             f"{labels[i]} blink {gen_blink[i].mean():.2f} read {analysed[i]:.2f}")
                   for i in most_closed]]
        if gen_wide.max() >= 0.2:  # an emotion that widens the eyes: its widest-open frames
            widest_eyes = np.argsort(-np.where(found, gen_wide, -1.0))[:2]
            rows.append([crop_tile(source.image, photo_points, EYES, 0.12, 2.6, "photo")]
                        + [crop_tile(frames[i], points[i], EYES, 0.12, 2.6, f"{labels[i]} eyeWide {gen_wide[i]:.2f}")
                           for i in widest_eyes])
        out = args.out / f"{Path(face).stem}_mouth_eyes.png"
        cv2.imwrite(str(out), cv2.cvtColor(sheet(rows), cv2.COLOR_RGB2BGR))

    l_all, b_all = np.median(pooled["l"]) if pooled["l"] else float("nan"), \
        np.median(pooled["b"]) if pooled["b"] else float("nan")
    share = pooled["closed"] / pooled["shut"] if pooled["shut"] else float("nan")
    print(f"sheets in {args.out}")
    print(f"all faces: teeth L*/skin {l_all:.2f} (target >= 0.9), teeth b*/skin b* {b_all:.2f} (>= 0.3), "
          f"fully shut frames read closed {share:.0%} of {pooled['shut']} (>= 80%)")


if __name__ == "__main__":
    run(main)
