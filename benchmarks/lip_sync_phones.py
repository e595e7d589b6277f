"""Phoneme-level lip sync: do the lips close on p/b/m, open with the vowel, round on uw/ow/w, follow the loudness?

    python benchmarks/lip_sync_phones.py [--weights weights/flowvq-mini] [--seeds 0 1]
        [--face examples/face.png --face examples/face2.png] [--speech WAV "ITS TEXT" ...]
        [--emotion neutral] [--lips flow|text|phones] [--lead 0.7] [--held-out] [--out runs/lip-sync-phones]

One video per face, speech and seed is made with `generate`'s defaults (``FlowVQ.from_pretrained`` and ``generate``,
emotion neutral unless ``--emotion``; with ``--lips text`` also ``generate --text`` with the speech's text, with
``--lips phones`` ``generate --phones``: the speech's phones lead the mouth and its p/b/m shut the lips,
``flowvq_cli.flow.lips``, ``--lead`` of the way) and re-analysed (``flowvq_cli.face.analyze``: MediaPipe's FaceMesh
landmarks per frame). The phones of the speech come from **pocketsphinx** 5.1.1 (PyPI, BSD; its en-us acoustic model
and CMU dictionary ship in the wheel; ``pip install -e ".[eval]"``): forced alignment of the known text
(``flowvq_cli.audio.phones.align_phones``), ARPAbet phones at 10 ms. One aligner for every voice, synthetic or
recorded.

Default speech, both voices the training never heard (``flowvq_cli.data.speech`` draws the corpus's voices
from ``LANGUAGE_VOICES`` × ``VOICE_VARIANTS``; the variants m5 and m6 are in neither), made by
``scripts/make_example_speech.sh``:

- ``examples/speech2.wav``, espeak-ng ``en-gb+m6``: "Every morning I walk to the old harbour and watch the boats
  come in." (4 bilabials, 4 of uw/ow/w);
- ``examples/speech3.wav``, espeak-ng ``en-us+m5``: "Bob put the maps by my bike, but Pam bought plum jam."
  (15 bilabials).

``--held-out`` speaks the same two sentences with the voices no corpus ever uses instead (issue 22's test
voices: Kokoro's ``jf_nezumi`` with the ``[kokoro]`` extra, flite's ``awb`` with Debian's flite; those
installed), phones aligned the same way.

Measured on each video, by the code of ``flowvq evaluate``'s phone metrics (``flowvq_cli.eval.phone_sync``, whose
docstring defines them; the mouth from ``flowvq_cli.eval.run.mouth_tracks``: FaceMesh's lip gap and the expression
reader's mouthFunnel / mouthPucker):

- **p/b/m closure**: the share of bilabial phones in which the inner lips meet (lip gap below
  ``phone_sync.CLOSED``, 0.05 mouth widths, in a frame of the phone ± half a frame);
- **vowel opening vs openness**: the Spearman correlation between the largest lip gap within each vowel and the
  vowel's openness class (``phone_sync.OPENNESS``, 1 close … 7 open);
- **rounding**: the share of uw / ow / w phones in which mouthFunnel or mouthPucker rises at least
  ``phone_sync.RAISED`` above its median over the clip;
- **jawOpen / energy**: ``flowvq evaluate``'s energy lip-sync figure (``flowvq_cli.eval.run.sync_results`` on
  the video's jawOpen and ``clip_energy`` of the speech): the correlation at the best offset, and that offset.

Prints one line per video, then the openness, rounding and energy figures over all videos, and last the figure:
the p/b/m closure rate over all bilabial phones of all videos.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("GLOG_minloglevel", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, machine, run

SPEECH = (
    (REPO / "examples" / "speech2.wav", "Every morning I walk to the old harbour and watch the boats come in."),
    (REPO / "examples" / "speech3.wav", "Bob put the maps by my bike, but Pam bought plum jam."),
)
"""Default speech and its text: espeak-ng voices the corpus never uses (``scripts/make_example_speech.sh``)."""


def measure(video: Path, wav: Path, phones: list) -> tuple:
    """(phone_sync.PhoneSync, the energy sync results) of one generated video, as ``flowvq evaluate`` measures."""
    from flowvq_cli.eval.phone_sync import phone_sync
    from flowvq_cli.eval.run import JAW_OPEN, clip_energy, mouth_tracks, sync_results
    from flowvq_cli.face.analyze import analyze

    analysis = analyze(video)
    sync = phone_sync(*mouth_tracks(analysis.landmarks), phones, analysis.fps)
    energy, reason = clip_energy(wav, len(analysis.coeffs), analysis.fps)
    return sync, sync_results(analysis.coeffs[:, JAW_OPEN].astype(np.float64), energy, reason=reason)


def held_out_speech(texts: list[str], folder: Path) -> list[tuple[Path, str]]:
    """Each text spoken by each installed held-out voice (``flite.TEST_VOICES``, ``kokoro.TEST_VOICES``, at
    their own pitch), written to ``folder``."""
    from flowvq_cli.audio.load import save_wav
    from flowvq_cli.data import flite, kokoro

    voices = []
    if flite.flite_exe() is not None:
        voices += [(f"{flite.PREFIX}{v}", flite.synthesize) for v in flite.TEST_VOICES]
    try:
        kokoro.check_kokoro()
        voices += [(f"{kokoro.PREFIX}{v}", kokoro.synthesize) for v in kokoro.TEST_VOICES]
    except kokoro.KokoroMissingError as error:
        print(f"no Kokoro voice: {error}")
    if not voices:
        raise SystemExit("error: no held-out voice installed (pip install -e \".[kokoro]\", or Debian's flite)")
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name, speak in voices:
        for k, text in enumerate(texts):
            wav = folder / f"{name.replace(':', '_')}_{k}.wav"
            save_wav(wav, speak(text, name).samples)
            out.append((wav, text))
    print("held-out voices: " + ", ".join(name for name, _ in voices))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", type=Path, default=REPO / "weights" / "flowvq-mini")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--face", type=Path, action="append", help="photo (repeat; default examples/face.png)")
    ap.add_argument("--speech", nargs=2, action="append", metavar=("WAV", "TEXT"),
                    help="speech and the text it says (repeat; default speech2.wav and speech3.wav)")
    ap.add_argument("--emotion", default="neutral")
    ap.add_argument("--lips", choices=("flow", "text", "phones"), default="flow",
                    help="flow: generate's defaults (the lips as ExpFlow samples them); text: generate --text "
                         "(the speech's p/b/m shut the lips); phones: generate --phones (recognised, no text)")
    ap.add_argument("--lead", type=float, default=None,
                    help="with --lips text/phones: how far the phones lead the mouth, 0 (the flow's) to 1 "
                         "(default: flowvq_cli.flow.lips.LEAD)")
    ap.add_argument("--held-out", action="store_true",
                    help="instead of the example speech, the default sentences spoken by the voices no corpus uses: "
                         "Kokoro's jf_nezumi ([kokoro] extra) and flite's awb (Debian's flite), those installed")
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "lip-sync-phones")
    args = ap.parse_args()

    from flowvq_cli.api import FlowVQ
    from flowvq_cli.audio.phones import align_phones
    from flowvq_cli.errors import FlowVQError
    from flowvq_cli.eval.phone_sync import BILABIALS, CLOSED, OPENNESS, ROUNDED

    speech = [(Path(w), t) for w, t in args.speech] if args.speech else list(SPEECH)
    faces = args.face or [REPO / "examples" / "face.png"]
    print(f"machine: {machine()}")
    if args.held_out:
        speech = held_out_speech([t for _, t in speech], args.out / "voices")
    phones = {}
    for wav, text in speech:
        start = time.perf_counter()
        try:
            phones[wav] = align_phones(wav, text)
        except FlowVQError as error:  # pocketsphinx missing, or the text does not align
            raise SystemExit(f"error: {error}") from None
        labels = [p.label for p in phones[wav]]
        print(f"{wav.name}: {len(labels)} phones aligned in {time.perf_counter() - start:.1f} s, "
              f"{sum(x in BILABIALS for x in labels)} p/b/m, {sum(x in OPENNESS for x in labels)} vowels, "
              f"{sum(x in ROUNDED for x in labels)} uw/ow/w")
    if args.lead is not None:
        from flowvq_cli.flow import lips

        lips.LEAD = args.lead  # what generate's follow_phones uses
    model = FlowVQ.from_pretrained(args.weights)
    print(f"weights: {args.weights}  renderer: {model.renderer}  emotion: {args.emotion}  seeds: {args.seeds}  "
          f"lips: {args.lips}" + (f" (lead {args.lead})" if args.lead is not None else ""))
    gaps, rhos, rounded, syncs = [], [], [], []
    for photo in faces:
        for wav, text in speech:
            for seed in args.seeds:
                video = args.out / photo.stem / f"{photo.stem}_{wav.stem}_{args.emotion}_{args.lips}_s{seed}.mp4"
                video.parent.mkdir(parents=True, exist_ok=True)
                model.generate(photo, wav, emotion=args.emotion, seed=seed, out=video, force=True,
                               text=text if args.lips == "text" else None, phones=args.lips == "phones")
                sync, (_, corr, offset) = measure(video, wav, phones[wav])
                gaps.append(sync.closure_gaps)
                rhos.append(sync.openness_correlation)
                rounded.append(sync.rounded)
                syncs.append(corr.value if corr.available else np.nan)
                median = np.median(sync.closure_gaps) if sync.closure_gaps.size else np.nan
                print(f"{photo.name} + {wav.name} s{seed}: p/b/m closed {sync.closed.sum()}/{sync.closed.size} "
                      f"(smallest gap per phone: median {median:.3f}), vowel opening vs openness ρ "
                      f"{rhos[-1]:.2f} ({sync.openness.size} vowels), rounded {sync.rounded.sum()}/"
                      f"{sync.rounded.size}, jawOpen/energy "
                      + (f"{corr.value:.2f} at offset {offset.value:+.0f}" if corr.available else corr.reason),
                      flush=True)
    every, shaped = np.concatenate(gaps), np.concatenate(rounded)
    rho = np.nanmean(rhos) if np.isfinite(rhos).any() else np.nan  # NaN: under 3 vowels in every video
    print(f"vowel opening vs openness (Spearman, mean over {np.isfinite(rhos).sum()} videos): {rho:.2f}")
    print("uw/ow/w with mouthFunnel or mouthPucker raised: "
          + (f"{shaped.mean():.2f} ({shaped.sum()} of {shaped.size} phones)" if shaped.size else "no such phone"))
    print(f"jawOpen / energy (evaluate's sync correlation at the best offset, mean): {np.nanmean(syncs):.2f}")
    if not every.size:  # e.g. the ALSA recordings' "Front left" …
        print(f"p/b/m lip closure (gap < {CLOSED} mouth widths): no p/b/m phone in the speech")
        return
    print(f"p/b/m lip closure (gap < {CLOSED} mouth widths): {np.mean(every < CLOSED):.2f} "
          f"({np.sum(every < CLOSED)} of {every.size} phones; median smallest gap {np.median(every):.3f})")


if __name__ == "__main__":
    run(main)
