#!/usr/bin/env bash
# Recreate examples/speech.wav: synthetic English speech from Debian's espeak-ng, 16 kHz mono 16-bit PCM.
# Needs: espeak-ng (apt-get install espeak-ng) and the project's venv (for imageio-ffmpeg's ffmpeg).
# Debian's command-line espeak-ng on purpose, the one optional apt use left: the shipped examples/*.wav
# were made with its 1.51 and this reproduces them byte for byte. FlowVQ itself (flowvq synth, the tests)
# speaks with the espeak-ng 1.52 library of the espeakng-loader dependency, which has no command line and
# speaks some texts differently (flowvq_cli/data/speech.py).
# Usage: scripts/make_example_speech.sh [output.wav [voice [text]]]
#   examples/speech2.wav (a voice the synthetic corpus never uses):
#   scripts/make_example_speech.sh examples/speech2.wav en-gb+m6 "Every morning I walk to the old harbour and watch the boats come in."
#   examples/speech3.wav (p/b/m-rich, for benchmarks/lip_sync_phones.py; a variant the corpus never uses):
#   scripts/make_example_speech.sh examples/speech3.wav en-us+m5 "Bob put the maps by my bike, but Pam bought plum jam."
set -euo pipefail

TEXT="${3:-Hello! This photo can talk, and its lips follow every word.}"
VOICE="${2:-en-us}"
WORDS_PER_MINUTE=150
SAMPLE_RATE=16000

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$repo_root/examples/speech.wav}"
python="${PYTHON:-$repo_root/.venv/bin/python}"

command -v espeak-ng >/dev/null || { echo "espeak-ng not found: apt-get install espeak-ng" >&2; exit 1; }
ffmpeg="$("$python" -c 'import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())')"

tmp="$(mktemp --suffix .wav)"
trap 'rm -f "$tmp"' EXIT
espeak-ng -v "$VOICE" -s "$WORDS_PER_MINUTE" -w "$tmp" "$TEXT"
# -bitexact: no encoder tag in the header, so reruns give identical bytes.
"$ffmpeg" -nostdin -hide_banner -loglevel error -y -i "$tmp" \
    -ac 1 -ar "$SAMPLE_RATE" -c:a pcm_s16le -bitexact -map_metadata -1 "$out"
echo "$out"
