"""Lips that close on p, b and m: the phones of the speech shut the sampled mouth there.

ExpFlow learns its mouth from the audio alone, and on voices it never heard it rarely shuts the lips for a
bilabial (issue 22: on ``speech3.wav``, 15 bilabials, the shipped flows close the rig's lips on about one,
even at temperature 0). A viewer sees every p, b and m that stays open. When the phones are known,
pocketsphinx's forced alignment of what the speech says (``generate --text``) or its recogniser
(``generate --phones``, for recorded voices: ``flowvq_cli.audio.phones``), each bilabial phone pulls the
sampled coefficients to the closed-lip viseme over its middle, as ``flowvq synth`` draws its corpus's
bilabials (``flowvq_cli.data.visemes``: ``closure_weight``, ``shut_lips``). The channels that part the
lips (jaw, lower lip down, upper lip up, funnel) go to the viseme's; press and roll rise to at least it;
the rest of the expression (smile, brows, eyes) is the flow's.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from flowvq_cli.audio.phones import BILABIALS, Phone
from flowvq_cli.data import speech, visemes

MIN_FRAMES = 1.0
"""Each bilabial shuts the lips over at least this many frames either side of its centre (two frames at 25
fps: a stop's closure lasts 60–120 ms). Half a frame, as the corpus draws them, often shut them in one frame
only, which FaceMesh read half-open: on lip_sync_phones.py --lips text, face.png's closures went from 25 to
34 of 38 (espeak-ng voices) and 40 to 44 of 60 (flite's), at the cost of vowels squeezed between two
bilabials (openness ρ 0.50 → 0.41 on espeak-ng, 0.48 → 0.50 on flite)."""


def bilabial_closure(phones: Sequence[Phone], n_frames: int, fps: float) -> np.ndarray:
    """How shut the lips must be in each of ``n_frames`` video frames at ``fps`` (T,) float32 in [0, 1]: 1 over
    the middle of every p, b and m of ``phones`` (at least :data:`MIN_FRAMES` either side of its centre),
    falling off over about 30 ms either side."""
    closures = [speech.Phone(p.start, p.end, "p") for p in phones if p.label in BILABIALS and p.end > p.start]
    if not closures or n_frames == 0:
        return np.zeros(n_frames, np.float32)
    return visemes.closure_weight(visemes.frame_times(n_frames, fps), closures, fps,
                                  min_frames=MIN_FRAMES).astype(np.float32)


def close_lips(exp: np.ndarray, closure: np.ndarray) -> np.ndarray:
    """Expression coefficients (T, 52) with the lips shut where ``closure`` (T,) is high (same shape/dtype)."""
    exp = np.asarray(exp)
    if len(closure) != len(exp):
        raise ValueError(f"the closure has {len(closure)} frames, the expression {len(exp)}")
    return visemes.shut_lips(exp.astype(np.float64), closure.astype(np.float64)).astype(exp.dtype)
