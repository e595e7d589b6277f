#!/usr/bin/env bash
# The exact recipe of the shipped bundle weights/flowvq-mini (flows only; see its README.md).
# Runs on the 2-core CPU machine in about 40 minutes: corpus ~9 min, ExpFlow ~31 min, PoseFlow ~12 min
# (the two trainings run side by side, one thread each). Needs Debian's espeak-ng. The `mini` ExpFlow
# preset is ±6 audio frames through 3 convolutions, consistency loss on the mouth (λ = 2).
#   bash scripts/train_mini.sh [WORK_DIR]
set -euo pipefail
work=${1:-work}
mkdir -p "$work"

flowvq synth "$work/synth-motion" --clips 800 --seed 0 --no-frames --workers 2 -q

OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 flowvq train expflow "$work/synth-motion" --config mini \
  --out "$work/runs/expflow" --steps 6000 --eval-every 1000 --save-every 500 --warmup 300 -q &
exp_pid=$!
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 flowvq train poseflow "$work/synth-motion" --config mini \
  --out "$work/runs/poseflow" --steps 3000 --eval-every 500 --save-every 500 --warmup 200 -q
wait "$exp_pid"

# the bundle folder is rewritten: keep its model card and contact sheet
keep=$(mktemp -d)
cp weights/flowvq-mini/README.md weights/flowvq-mini/contact_sheet.png "$keep"/ 2>/dev/null || true
flowvq train bundle weights/flowvq-mini --expflow "$work/runs/expflow" --poseflow "$work/runs/poseflow" \
  --name flowvq-mini --force
cp "$keep"/* weights/flowvq-mini/ 2>/dev/null || true
flowvq weights verify weights/flowvq-mini
