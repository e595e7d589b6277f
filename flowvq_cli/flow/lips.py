"""Lips that follow the phones: when the phones of the speech are known, its visemes lead the mouth.

ExpFlow learns its mouth from the audio alone, and on voices it never heard it rarely shuts the lips for a
bilabial and opens them with little regard to the vowel (issue 22: on the held-out real-speaker voices, 15 %
of p, b and m closed, vowel opening against openness ρ 0.38). When the phones are known, from pocketsphinx's
forced alignment of what the speech says (``generate --text``) or its phone recogniser (``generate
--phones``, for recorded voices: :func:`flowvq_cli.audio.phones.loop_phones`), they lead the mouth:

- **Articulation.** The channels that shape the opening (:data:`LED`: jaw, lip openers, rounding, press and
  roll) take the mouth ``flowvq synth`` draws its corpus with for these phones (``flowvq_cli.data.visemes``:
  coarticulated viseme targets, the jaw scaled by the speech's loudness; the emotion's mouth style,
  ``styles.modulate_mouth``), plus the flow's own level: the median over the clip of what the flow sampled
  minus that mouth, so an emotion that holds the jaw open or the lips pressed keeps doing so. Each channel
  goes :data:`LEAD` of the way from the flow's sample to that.
- **Closure.** Each bilabial then pulls the lips to the closed-lip viseme over its middle (:data:`MIN_FRAMES`;
  ``visemes.closure_weight``, ``shut_lips``): press and roll rise to at least it.
- **The rest** of the expression (smile, stretch, brows, eyes) and the head pose are the flow's sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from flowvq_cli.audio.phones import BILABIALS, Phone
from flowvq_cli.data import speech, styles, visemes

MIN_FRAMES = 1.0
"""Each bilabial shuts the lips over at least this many frames either side of its centre (two frames at 25
fps: a stop's closure lasts 60–120 ms). Half a frame, as the corpus draws them, often shut them in one frame
only, which FaceMesh read half-open: on lip_sync_phones.py --lips text, face.png's closures went from 25 to
34 of 38 (espeak-ng voices) and 40 to 44 of 60 (flite's), at the cost of vowels squeezed between two
bilabials (openness ρ 0.50 → 0.41 on espeak-ng, 0.48 → 0.50 on flite)."""

LED = styles.MOUTH_GROUPS["jaw"] + styles.MOUTH_GROUPS["rounding"] + styles.MOUTH_GROUPS["press"]
"""The channels the phones lead: jawOpen, the lip openers (mouthLowerDown, mouthUpperUp), rounding
(mouthFunnel, mouthPucker), press, roll and mouthClose. Smile and stretch carry the emotion and stay the
flow's."""

LEAD = 0.7
"""How far the led channels go from the flow's sample to the phones' mouth (0: the flow's, 1: the phones').
On the held-out voices with recognised phones (``benchmarks/lip_sync_phones.py --held-out --lips phones
--lead L``), 1.0 gave p/b/m closure 0.80, vowel openness ρ 0.59 and jawOpen/energy 0.49; 0.7 gave 0.84, 0.51
and 0.51: the flow's jaw, learned from the sound, follows its loudness better than the visemes do."""


@dataclass(frozen=True)
class SpokenLips:
    """What the phones of a speech say the lips do, per video frame.

    Attributes:
        mouth: ``(T, 52)`` float32 the corpus's mouth for these phones (only :data:`LED` is used).
        closure: ``(T,)`` float32 in [0, 1]: 1 where a p, b or m shuts the lips.
        bilabials: how many p, b and m phones.
    """

    mouth: np.ndarray
    closure: np.ndarray
    bilabials: int


def bilabial_closure(phones: Sequence[Phone], n_frames: int, fps: float) -> np.ndarray:
    """How shut the lips must be in each of ``n_frames`` video frames at ``fps`` (T,) float32 in [0, 1]: 1 over
    the middle of every p, b and m of ``phones`` (at least :data:`MIN_FRAMES` either side of its centre),
    falling off over about 30 ms either side."""
    closures = [speech.Phone(p.start, p.end, "p") for p in phones if p.label in BILABIALS and p.end > p.start]
    if not closures or n_frames == 0:
        return np.zeros(n_frames, np.float32)
    return visemes.closure_weight(visemes.frame_times(n_frames, fps), closures, fps,
                                  min_frames=MIN_FRAMES).astype(np.float32)


def spoken_lips(phones: Sequence[Phone], energy_db: np.ndarray, fps: float, emotion: str,
                intensity: int) -> SpokenLips:
    """The lips of ``phones`` (ARPAbet, pocketsphinx's) over ``len(energy_db)`` video frames at ``fps``.

    Args:
        energy_db: ``(T,)`` the speech's energy envelope per frame
            (:func:`flowvq_cli.audio.energy.energy_envelope`): the jaw opens wider on loud syllables.
        emotion, intensity: the mouth style (``styles.modulate_mouth``), as the corpus draws it.
    """
    from flowvq_cli.data.aligned import to_espeak

    n_frames = len(energy_db)
    track = visemes.mouth_track(to_espeak(phones), n_frames, fps, np.asarray(energy_db, np.float64))
    mouth, _ = styles.modulate_mouth(track.weights, emotion, intensity)
    return SpokenLips(mouth.astype(np.float32), bilabial_closure(phones, n_frames, fps),
                      sum(p.label in BILABIALS for p in phones))


def follow_phones(exp: np.ndarray, lips: SpokenLips, lead: float | None = None) -> np.ndarray:
    """Expression coefficients (T, 52) whose :data:`LED` channels follow ``lips``' mouth (``lead`` of the way,
    default :data:`LEAD`, keeping the flow's level), then shut on every bilabial (same shape/dtype)."""
    lead = LEAD if lead is None else lead
    exp = np.asarray(exp)
    if len(lips.mouth) != len(exp):
        raise ValueError(f"the phones' mouth has {len(lips.mouth)} frames, the expression {len(exp)}")
    led = [visemes.arkit_index()[name] for name in LED]
    flow = exp[:, led].astype(np.float64)
    mouth = lips.mouth[:, led].astype(np.float64)
    level = np.median(flow - mouth, axis=0) if len(exp) else np.zeros(len(led))  # the flow's own level
    out = exp.astype(np.float64)
    out[:, led] = flow + lead * (np.clip(mouth + level, 0.0, 1.0) - flow)
    return close_lips(out.astype(exp.dtype), lips.closure)


def close_lips(exp: np.ndarray, closure: np.ndarray) -> np.ndarray:
    """Expression coefficients (T, 52) with the lips shut where ``closure`` (T,) is high (same shape/dtype)."""
    exp = np.asarray(exp)
    if len(closure) != len(exp):
        raise ValueError(f"the closure has {len(closure)} frames, the expression {len(exp)}")
    return visemes.shut_lips(exp.astype(np.float64), closure.astype(np.float64)).astype(exp.dtype)
