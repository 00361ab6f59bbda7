#!/usr/bin/env bash
# The overfit check (issue 20): fit the v2 network on three training songs' real Spleeter pairs alone, then score it
# on those songs against the oracle mask (stemclean.train.overfit). Resumable like any fit run: rerun to continue.
# The songs are the first three train songs, in the manifest's id order, that have Spleeter pairs: no choice by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${RUN:-runs/overfit}
STEPS=${STEPS:-1400}
SONGS=${SONGS:-$(ls data/spleeter/train | sort | head -3 | paste -sd, -)}
SDR_WEIGHT=${SDR_WEIGHT:-1.0}  # the standing run's; overfit-sdr0.1.json holds the check at its earlier 0.1
OUT=${OUT:-benchmarks/results/overfit.json}

python -m stemclean.train.fit --run "$RUN" --songs "$SONGS" --plan "joint:$STEPS" \
    --width 48 --blocks 6 --time-stride 2 --evidence --band-mix --segment-seconds 4 --batch-size 4 \
    --real-fraction 1.0 --consistency 0 --bleed-weight 0.02 --sdr-weight "$SDR_WEIGHT" --threads "${THREADS:-1}"
python -m stemclean.train.overfit "$RUN/last.pt" --songs "$SONGS" --out "$OUT"
