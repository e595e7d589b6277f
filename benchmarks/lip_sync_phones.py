"""Phoneme-level lip sync: do the lips close on p/b/m, open with the vowel, and follow the loudness?

    python benchmarks/lip_sync_phones.py [--weights weights/flowvq-mini] [--seeds 0 1]
        [--face examples/face.png --face examples/face2.png] [--speech WAV "ITS TEXT" ...]
        [--emotion neutral] [--out runs/lip-sync-phones]

One video per face, speech and seed is made with `generate`'s defaults (``FlowVQ.from_pretrained`` and
``generate``, emotion neutral unless ``--emotion``) and re-analysed (``flowvq_cli.face.analyze``: MediaPipe's
FaceMesh landmarks per frame). The phones of the speech come from **pocketsphinx** 5.1.1 (PyPI, BSD; its
en-us acoustic model and CMU dictionary ship in the wheel; ``pip install -e ".[eval]"``): forced alignment of
the known text, ARPAbet phones at 10 ms. One aligner for every voice, synthetic or recorded.

Default speech, both voices the training never heard (``flowvq_cli.data.speech`` draws the corpus's voices
from ``LANGUAGE_VOICES`` × ``VOICE_VARIANTS``; the variants m5 and m6 are in neither), made by
``scripts/make_example_speech.sh``:

- ``examples/speech2.wav``, espeak-ng ``en-gb+m6``: "Every morning I walk to the old harbour and watch the boats
  come in." (3 bilabials);
- ``examples/speech3.wav``, espeak-ng ``en-us+m5``: "Bob put the maps by my bike, but Pam bought plum jam."
  (15 bilabials).

Measured on each video:

- **p/b/m closure**: the share of bilabial phones (P, B, M) in which the inner lips meet, i.e. the lip gap is
  below :data:`CLOSED` (0.05 mouth widths) in at least one frame within the phone's span ± half a frame. The
  gap is ``flowvq_cli.face.canonical.lip_gap``: the largest distance between the paired inner upper and lower
  lip contour points, over the distance of the mouth corners 61–291. A stop's closure is silent, and the
  aligner may label it as a pause: a P or B right after an aligned silence takes the last
  :data:`STOP_CLOSURE_S` of it as its own.
- **vowel opening vs openness**: the Spearman correlation between the largest lip gap within each vowel and
  the vowel's openness (:data:`OPENNESS`, 1 close … 7 open).
- **jawOpen / energy**: ``flowvq evaluate``'s energy lip-sync figure (``flowvq_cli.eval.run.sync_results`` on
  the video's jawOpen and ``clip_energy`` of the speech): the correlation at the best offset, and that offset.

Prints one line per video, then the openness and energy figures over all videos, and last the figure: the
p/b/m closure rate over all bilabial phones of all videos.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

os.environ.setdefault("GLOG_minloglevel", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, machine, run

SPEECH = (
    (REPO / "examples" / "speech2.wav", "Every morning I walk to the old harbour and watch the boats come in."),
    (REPO / "examples" / "speech3.wav", "Bob put the maps by my bike, but Pam bought plum jam."),
)
"""Default speech and its text: espeak-ng voices the corpus never uses (``scripts/make_example_speech.sh``)."""
BILABIALS = ("P", "B", "M")
STOPS = ("P", "B")
CLOSED = 0.05
"""Lip gap (mouth widths) below which the inner lips meet (``canonical.lip_gap``)."""
STOP_CLOSURE_S = 0.10
"""How much of an aligned silence right before a P or B counts as the stop's closure (seconds): the lips
close for 50–100 ms before the burst, and that closure is silent."""
SILENCE = "SIL"
OPENNESS = {
    "IY": 1, "UW": 1,  # close: i, u
    "IH": 2, "UH": 2,  # near-close: ɪ, ʊ
    "EY": 3, "OW": 3,  # close-mid: e(ɪ), o(ʊ)
    "ER": 4,  # mid: ɝ
    "EH": 5, "AO": 5, "AH": 5, "OY": 5,  # open-mid: ɛ, ɔ, ʌ, ɔ(ɪ)
    "AE": 6,  # near-open: æ
    "AA": 7, "AY": 7, "AW": 7,  # open: ɑ, a(ɪ), a(ʊ)
}
"""ARPAbet vowel → openness (vowel height, 1 close … 7 open): the height of the vowel's IPA symbol on the IPA
vowel chart (International Phonetic Association, *Handbook of the IPA*, Cambridge University Press 1999,
p. 41 for American English), ARPAbet ↔ IPA as in the CMU Pronouncing Dictionary's phone set. A diphthong
takes the height of its first, most open element, since the measure is the largest opening within it."""


class Phone(NamedTuple):
    """One aligned phone: [start, end) in seconds and its ARPAbet label (``SIL`` for silence)."""

    start: float
    end: float
    label: str


class AlignmentError(RuntimeError):
    """pocketsphinx could not align the text to the audio."""


def words_of(text: str) -> list[str]:
    """The words to align: lower case, letters and apostrophes (punctuation dropped)."""
    return re.findall(r"[a-z']+", text.lower())


_SEARCHES = (  # tried in turn; the lattice's best path (bestpath) loses the end of espeak-ng sentences
    dict(bestpath=False, beam=1e-80, wbeam=1e-60, pbeam=1e-80),
    dict(bestpath=False),
    dict(bestpath=False, beam=1e-80, wbeam=1e-60, pbeam=1e-80, fsgusefiller=False),
)


def align_phones(audio: str | Path, text: str) -> list[Phone]:
    """Forced alignment of ``text`` to the speech in ``audio`` by pocketsphinx: its phones, in order.

    Words are aligned first (pauses between them allowed), then phones within them. A search that does not
    reach the text's last word is rejected and the next of :data:`_SEARCHES` tried.

    Raises:
        ImportError: pocketsphinx is not installed.
        AlignmentError: a word is not in pocketsphinx's dictionary, or no search aligned the whole text.
    """
    from pocketsphinx import Decoder

    from flowvq_cli.audio.load import load_audio

    samples = load_audio(audio, sr=16_000).samples
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()
    words = words_of(text)
    for search in _SEARCHES:
        decoder = Decoder(samprate=16_000, lm=None, loglevel="FATAL", **search)
        missing = [w for w in words if decoder.lookup_word(w) is None]
        if missing:
            raise AlignmentError(f"not in pocketsphinx's dictionary: {', '.join(missing)}")
        decoder.set_align_text(" ".join(words))
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        segments = decoder.seg()
        got = [re.sub(r"\(\d+\)$", "", s.word) for s in segments or [] if not s.word.startswith(("<", "["))]
        if got != words:
            continue
        decoder.set_alignment()
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        return [Phone(p.start / 100.0, (p.start + p.duration) / 100.0, p.name)
                for word in decoder.get_alignment() for p in word]
    raise AlignmentError(f"pocketsphinx could not align {text!r} to {audio}")


def bilabial_spans(phones: list[Phone]) -> list[Phone]:
    """The P, B and M phones; a P or B right after a silence starts up to :data:`STOP_CLOSURE_S` earlier."""
    spans = []
    for i, phone in enumerate(phones):
        if phone.label not in BILABIALS:
            continue
        start = phone.start
        if phone.label in STOPS and i > 0 and phones[i - 1].label == SILENCE:
            start = max(phones[i - 1].start, phone.start - STOP_CLOSURE_S)
        spans.append(Phone(start, phone.end, phone.label))
    return spans


def frames_of(phone: Phone, fps: float, n_frames: int) -> np.ndarray:
    """Frames within the phone's span ± half a frame: frame t shows [t/fps, (t+1)/fps), its centre
    (t + 0.5)/fps lies in [start − 0.5/fps, end + 0.5/fps]."""
    first = max(int(np.ceil(phone.start * fps - 1.0)), 0)
    last = min(int(np.floor(phone.end * fps)), n_frames - 1)
    return np.arange(first, last + 1)


def closures(gap: np.ndarray, phones: list[Phone], fps: float) -> np.ndarray:
    """Per bilabial phone, the smallest lip gap within it (NaN where no frame of it has a face)."""
    out = []
    for span in bilabial_spans(phones):
        values = gap[frames_of(span, fps, gap.size)]
        out.append(np.nanmin(values) if np.isfinite(values).any() else np.nan)
    return np.asarray(out, np.float64)


def vowel_openings(gap: np.ndarray, phones: list[Phone], fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Per vowel phone with a tracked frame: (its openness, the largest lip gap within it)."""
    openness, opening = [], []
    for phone in phones:
        if phone.label in OPENNESS:
            values = gap[frames_of(phone, fps, gap.size)]
            if np.isfinite(values).any():
                openness.append(OPENNESS[phone.label])
                opening.append(np.nanmax(values))
    return np.asarray(openness, np.float64), np.asarray(opening, np.float64)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation (NaN with fewer than 3 pairs or a constant side)."""
    from scipy.stats import spearmanr

    if a.size < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def lip_gaps(landmarks: np.ndarray) -> np.ndarray:
    """(T,) lip gap per frame of (T, 478, 3) landmarks (NaN where the face was lost)."""
    from flowvq_cli.face.canonical import lip_gap

    return lip_gap(landmarks[:, :468, :2])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", type=Path, default=REPO / "weights" / "flowvq-mini")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--face", type=Path, action="append", help="photo (repeat; default examples/face.png)")
    ap.add_argument("--speech", nargs=2, action="append", metavar=("WAV", "TEXT"),
                    help="speech and the text it says (repeat; default speech2.wav and speech3.wav)")
    ap.add_argument("--emotion", default="neutral")
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "lip-sync-phones")
    args = ap.parse_args()
    try:
        import pocketsphinx  # noqa: F401
    except ImportError:
        raise SystemExit('error: needs pocketsphinx (pip install -e ".[eval]")') from None

    from flowvq_cli.api import FlowVQ
    from flowvq_cli.eval.run import JAW_OPEN, clip_energy, sync_results
    from flowvq_cli.face.analyze import analyze

    speech = [(Path(w), t) for w, t in args.speech] if args.speech else list(SPEECH)
    faces = args.face or [REPO / "examples" / "face.png"]
    print(f"machine: {machine()}")
    model = FlowVQ.from_pretrained(args.weights)
    print(f"weights: {args.weights}  renderer: {model.renderer}  emotion: {args.emotion}  seeds: {args.seeds}")
    phones = {}
    for wav, text in speech:
        start = time.perf_counter()
        try:
            phones[wav] = align_phones(wav, text)
        except AlignmentError as error:
            raise SystemExit(f"error: {error}") from None
        labels = [p.label for p in phones[wav]]
        print(f"{wav.name}: {len(labels)} phones aligned in {time.perf_counter() - start:.1f} s, "
              f"{sum(x in BILABIALS for x in labels)} p/b/m, {sum(x in OPENNESS for x in labels)} vowels")
    mins, rhos, syncs = [], [], []
    for photo in faces:
        for wav, _ in speech:
            for seed in args.seeds:
                video = args.out / photo.stem / f"{photo.stem}_{wav.stem}_{args.emotion}_s{seed}.mp4"
                video.parent.mkdir(parents=True, exist_ok=True)
                model.generate(photo, wav, emotion=args.emotion, seed=seed, out=video, force=True)
                analysis = analyze(video)
                gap = lip_gaps(analysis.landmarks)
                closed = closures(gap, phones[wav], analysis.fps)
                openness, opening = vowel_openings(gap, phones[wav], analysis.fps)
                rho = spearman(openness, opening)
                energy, reason = clip_energy(wav, len(gap), analysis.fps)
                sync = sync_results(analysis.coeffs[:, JAW_OPEN].astype(np.float64), energy, reason=reason)
                corr, offset = sync[1], sync[2]
                measured = closed[np.isfinite(closed)]
                mins.append(measured)
                rhos.append(rho)
                syncs.append(corr.value if corr.available else np.nan)
                print(f"{photo.name} + {wav.name} s{seed}: p/b/m closed {np.sum(measured < CLOSED)}/{measured.size} "
                      f"(smallest gap per phone: median {np.median(measured) if measured.size else np.nan:.3f}), "
                      f"vowel opening vs openness ρ {rho:.2f} ({openness.size} vowels), jawOpen/energy "
                      + (f"{corr.value:.2f} at offset {offset.value:+.0f}" if corr.available else corr.reason),
                      flush=True)
    every = np.concatenate(mins)
    print(f"vowel opening vs openness (Spearman, mean over {len(rhos)} videos): {np.nanmean(rhos):.2f}")
    print(f"jawOpen / energy (evaluate's sync correlation at the best offset, mean): {np.nanmean(syncs):.2f}")
    print(f"p/b/m lip closure (gap < {CLOSED} mouth widths): {np.mean(every < CLOSED):.2f} "
          f"({np.sum(every < CLOSED)} of {every.size} phones; median smallest gap {np.median(every):.3f})")


if __name__ == "__main__":
    run(main)
