"""Speech from flite's voices built from real speakers, with phone timings from pocketsphinx (``flowvq synth
--voices flite|all``).

espeak-ng's formant voices are far from real speech (pocketsphinx, trained on real speech, recognises
them at a word error rate of about 0.9; flite's CMU ARCTIC voices at 0–0.2). flite is Debian's
``flite`` package (``apt-get install flite``; BSD-style licence; the ``flite`` program with its voices
built in), not on PyPI, so these voices are an optional extra for building a corpus (docs/training.md):
without the program, :func:`check_flite` says how to get it. Nothing at generation time needs it.

- **Voices**: the CMU ARCTIC statistical voices ``slt`` (female, US), ``rms`` (male, US) and ``awb``
  (male, Scottish), and the diphone voice ``kal16``. :data:`TEST_VOICES` (``awb``) never speaks in a
  corpus: it is the held-out voice the lip-sync benchmarks use.
- **Speakers**: each voice becomes several by its pitch and tempo (:data:`SPEAKER_SHIFTS`); a speaker is
  ``flite:<voice><shift>``, e.g. ``flite:slt-lo``. Per clip, the emotion's rate, pitch, range and
  loudness (``styles.voice_params``, in espeak's units) move it further: rate → flite's
  ``duration_stretch``, pitch → ``int_f0_target_mean`` (±half an octave around the speaker's), range →
  ``int_f0_target_stddev``, loudness → a gain.
- **Phones**: one aligner for every voice. pocketsphinx's forced alignment of the text
  (:func:`flowvq_cli.audio.phones.align_phones`) gives ARPAbet phones at 10 ms, mapped to the espeak
  mnemonics the visemes are defined on (:mod:`flowvq_cli.data.aligned`); a text it cannot align is
  drawn again by :func:`flowvq_cli.data.speech.random_utterance`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from flowvq_cli.data import aligned, speech
from flowvq_cli.errors import FlowVQError

PREFIX = "flite:"
FLITE_ENV = "FLOWVQ_FLITE"
"""The ``flite`` program to run, when it is not on PATH."""
INSTALL_HINT = "apt-get install flite (Debian/Ubuntu), or set FLOWVQ_FLITE to the flite program"
VOICES = ("slt", "rms", "awb", "kal16")
TEST_VOICES = ("awb",)
"""Never in a corpus: the voices the benchmarks test on."""
BASE_F0_HZ = {"slt": 170.0, "rms": 105.0, "awb": 110.0, "kal16": 105.0}
"""Each voice's own mean pitch (flite's ``int_f0_target_mean`` for it)."""
BASE_F0_STDDEV_HZ = {"slt": 20.0, "rms": 12.0, "awb": 14.0, "kal16": 12.0}
SPEAKER_SHIFTS = {"-lo": (-3.0, 1.08), "": (0.0, 1.0), "-hi": (3.0, 0.93)}
"""Speaker suffix → (pitch shift in semitones, duration stretch): three speakers per voice."""
TIMEOUT_S = 60

class FliteMissingError(FlowVQError):
    """The flite program is not installed."""


def flite_exe() -> str | None:
    """The flite program: ``$FLOWVQ_FLITE``, else ``flite`` on PATH; None when neither exists."""
    given = os.environ.get(FLITE_ENV)
    if given:
        return given if Path(given).is_file() else None
    return shutil.which("flite")


def check_flite() -> str:
    """The flite program, or :class:`FliteMissingError` saying how to install it."""
    exe = flite_exe()
    if exe is None:
        raise FliteMissingError(f"flite's voices need the flite program, which is not installed: {INSTALL_HINT}")
    return exe


def speakers(*, held_out: bool = False) -> list[str]:
    """Speaker names (``flite:slt-lo`` …): every voice × shift but :data:`TEST_VOICES` (only those with
    ``held_out``)."""
    return aligned.speaker_names(PREFIX, VOICES, TEST_VOICES, SPEAKER_SHIFTS, held_out=held_out)


def parse_speaker(name: str) -> tuple[str, float, float]:
    """``flite:slt-lo`` → (voice, pitch shift in semitones, duration stretch)."""
    rest = name.removeprefix(PREFIX)
    for suffix, (semitones, stretch) in SPEAKER_SHIFTS.items():
        voice = rest[: len(rest) - len(suffix)] if suffix and rest.endswith(suffix) else rest
        if (rest.endswith(suffix) if suffix else True) and voice in VOICES:
            return voice, semitones, stretch
    raise speech.SpeechSynthesisError(f"unknown flite speaker {name!r}; known: {', '.join(speakers())}")


def arguments(name: str, rate: int, pitch: int, pitch_range: int) -> list[str]:
    """flite's options for a speaker at espeak-unit rate (words per minute), pitch and range (0–100)."""
    voice, semitones, stretch = parse_speaker(name)
    f0 = BASE_F0_HZ[voice] * 2.0 ** (semitones / 12.0 + (pitch - speech.DEFAULT_PITCH) / 100.0)
    spread = BASE_F0_STDDEV_HZ[voice] * (0.5 + pitch_range / 100.0)
    duration = stretch * speech.DEFAULT_RATE_WPM / max(rate, 1)
    return ["-voice", voice, "--setf", f"duration_stretch={duration:.3f}", "--setf", f"int_f0_target_mean={f0:.1f}",
            "--setf", f"int_f0_target_stddev={spread:.1f}"]


def synthesize(text: str, voice: str = "flite:slt", rate: int = speech.DEFAULT_RATE_WPM,
               pitch: int = speech.DEFAULT_PITCH, volume: int = speech.DEFAULT_VOLUME,
               pitch_range: int = speech.DEFAULT_PITCH_RANGE) -> speech.Utterance:
    """Speak ``text`` with a flite speaker (:func:`speakers`) → 16 kHz audio with phone and word timings, as
    :func:`flowvq_cli.data.speech.synthesize` (same arguments, espeak's units).

    Raises:
        FliteMissingError: no flite program.
        SpeechSynthesisError: flite failed (:class:`~flowvq_cli.data.aligned.UnalignedSpeechError`:
            pocketsphinx could not align the text to what it said).
    """
    from flowvq_cli.audio.load import load_audio
    from flowvq_cli.audio.phones import words_of

    exe = check_flite()
    if not words_of(text):
        raise speech.SpeechSynthesisError("nothing to say: the text has no words")
    rate = int(np.clip(rate, *speech.RATE_RANGE_WPM))
    with tempfile.TemporaryDirectory(prefix="flowvq-flite-") as tmp:
        wav = Path(tmp) / "speech.wav"
        cmd = [exe, *arguments(voice, rate, pitch, pitch_range), "-t", text, "-o", str(wav)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
        if done.returncode != 0 or not wav.is_file():
            raise speech.SpeechSynthesisError(f"flite failed ({done.returncode}): {done.stderr.strip()[-200:]}")
        samples = load_audio(wav).samples * np.float32(volume / speech.DEFAULT_VOLUME)
    return aligned.utterance(samples, text, voice, rate, pitch)
