"""How well pocketsphinx finds the phones of speech without its text: the p, b and m that shut the lips, and the
vowels' openness, against the forced alignment of the known text.

    python benchmarks/phone_recognition.py [--data DATA --clips 60] [--speech WAV "ITS TEXT" ...] [--held-out]
        [--lw 1 2 3 6.5] [--out runs/phone-recognition]

Compares the two recognisers of ``flowvq_cli.audio.phones``: the word recogniser with its narrow search
(``recognise_phones(fast=True)``: words, then the phones of its hypothesis aligned) and the phone recogniser
(``loop_phones``: pocketsphinx's ``allphone`` search over en-us's phone bigrams, no words), at each language-model
weight of ``--lw`` (the shipped one is ``PHONE_LOOP``'s). The reference is ``align_phones`` of the known text, the
same aligner ``flowvq evaluate --text`` and ``benchmarks/lip_sync_phones.py`` measure with.

Speech: every ``--speech`` pair; ``--clips`` clips of a ``flowvq synth`` corpus ``--data``, spread evenly over its
manifest (their ``audio.wav`` and the first line of their ``text.txt``);
``--held-out``: the two sentences of ``lip_sync_phones.py`` spoken by the voices no corpus uses (Kokoro's
jf_nezumi with the ``[kokoro]`` extra, flite's awb with Debian's flite; those installed). Default: ``--held-out``.

Per recogniser, over all the speech:

- **p/b/m found**: the share of the reference's P, B and M phones that a recognised P, B or M overlaps (within
  20 ms); **extra**: recognised P, B or M that overlap none (the lips would shut where they should not);
- **vowel openness ρ**: Spearman correlation, over the reference's vowels, of their openness class
  (``flowvq_cli.eval.phone_sync.OPENNESS``) with that of the phone recognised at the vowel's centre (0 for
  a consonant or silence);
- **CPU**: seconds of CPU per second of speech.

The figure, last: the share of p/b/m found by the phone recogniser at the shipped weight.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

os.environ.setdefault("GLOG_minloglevel", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, machine, run

OVERLAP_S = 0.02
"""A recognised phone finds a reference phone when their spans overlap or lie within this of each other."""


def _near(a, b) -> bool:
    return min(a.end, b.end) - max(a.start, b.start) > -OVERLAP_S


def score(speech: list[tuple[Path, list]], recognise: Callable[[Path], list]) -> dict:
    """Bilabials found / extra, vowel openness ρ and CPU s per s of ``recognise`` over ``speech`` ((wav, the
    reference phones) pairs)."""
    from flowvq_cli.audio.load import load_audio
    from flowvq_cli.audio.phones import BILABIALS
    from flowvq_cli.eval.phone_sync import OPENNESS, spearman

    found = total = extra = 0
    cpu = seconds = 0.0
    classes: list[tuple[int, int]] = []
    for wav, reference in speech:
        start = time.process_time()
        heard = recognise(wav)
        cpu += time.process_time() - start
        seconds += load_audio(wav).duration
        said = [p for p in reference if p.label in BILABIALS]
        guessed = [p for p in heard if p.label in BILABIALS]
        total += len(said)
        found += sum(any(_near(p, q) for q in guessed) for p in said)
        extra += sum(not any(_near(q, p) for p in said) for q in guessed)
        for p in reference:
            if p.label in OPENNESS:
                centre = (p.start + p.end) / 2
                at = [q.label for q in heard if q.start <= centre < q.end]
                classes.append((OPENNESS[p.label], OPENNESS.get(at[0], 0) if at else 0))
    pairs = np.asarray(classes, np.float64).reshape(-1, 2)
    return dict(found=found, total=total, extra=extra, rho=spearman(pairs[:, 0], pairs[:, 1]),
                cpu=cpu / max(seconds, 1e-9))


def corpus_speech(data: Path, clips: int) -> list[tuple[Path, str]]:
    """``clips`` clips of a ``flowvq synth`` corpus, evenly spread over its manifest, with their text."""
    rows = [json.loads(line) for line in (data / "manifest.jsonl").read_text().splitlines() if line.strip()]
    step = max(len(rows) // max(clips, 1), 1)
    out = []
    for row in rows[::step][:clips]:
        wav = data / row["paths"]["audio"]
        text_file = wav.parent / "text.txt"
        if text_file.is_file():
            out.append((wav, text_file.read_text(encoding="utf-8").splitlines()[0]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, help="a flowvq synth corpus (clips with text.txt)")
    ap.add_argument("--clips", type=int, default=60, help="how many of --data's clips (default 60)")
    ap.add_argument("--speech", nargs=2, action="append", metavar=("WAV", "TEXT"), help="speech and its text (repeat)")
    ap.add_argument("--held-out", action="store_true", help="the voices no corpus uses (default without other speech)")
    ap.add_argument("--lw", type=float, nargs="+", help="the phone recogniser's language-model weights to compare")
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "phone-recognition", help="held-out voices' audio")
    args = ap.parse_args()

    from lip_sync_phones import SPEECH, held_out_speech

    from flowvq_cli.audio import phones
    from flowvq_cli.errors import FlowVQError

    pairs = [(Path(w), t) for w, t in args.speech or []]
    if args.data is not None:
        pairs += corpus_speech(args.data, args.clips)
    if args.held_out or not pairs:
        pairs += held_out_speech([t for _, t in SPEECH], args.out / "voices")
    print(f"machine: {machine()}")
    speech = []
    for wav, text in pairs:
        try:
            speech.append((wav, phones.align_phones(wav, text)))
        except FlowVQError as error:  # a word the dictionary lacks, or the text does not align: left out, said
            print(f"left out {wav}: {error}")
    if not speech:
        raise SystemExit("error: no speech aligned to its text")
    n_bilabials = sum(p.label in phones.BILABIALS for _, ref in speech for p in ref)
    print(f"{len(speech)} recordings, {n_bilabials} p/b/m")

    def line(name: str, result: dict) -> None:
        print(f"{name}: p/b/m found {result['found'] / max(result['total'], 1):.2f} ({result['found']} of "
              f"{result['total']}), extra {result['extra']}, vowel openness ρ {result['rho']:.2f}, "
              f"CPU {result['cpu']:.3f} s per s", flush=True)

    line("word recogniser, narrow search", score(speech, lambda wav: phones.recognise_phones(wav, fast=True)))
    shipped = phones.PHONE_LOOP["lw"]
    for lw in sorted(set(args.lw or []) - {shipped}):
        phones.PHONE_LOOP["lw"] = lw
        line(f"phone recogniser, lw {lw:g}", score(speech, phones.loop_phones))
    phones.PHONE_LOOP["lw"] = shipped
    result = score(speech, phones.loop_phones)
    line(f"phone recogniser, lw {shipped:g} (shipped)", result)
    print(f"p/b/m found by the phone recogniser: {result['found'] / max(result['total'], 1):.2f}")


if __name__ == "__main__":
    run(main)
