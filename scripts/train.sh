#!/usr/bin/env bash
# The standing training run of the v2 denoiser (issue 20), then its export. Rerun it to resume: fit continues from
# runs/v2/last.pt, or, on a machine without runs/, from the committed weights-only snapshot stemclean-v2.pt.
#   ControlNet phases: trunk (stem only), control (trunk frozen), then a long joint phase, with the val set scored
#   every VAL_EVERY steps into runs/v2/log.jsonl (python -m stemclean.train.curves plots it).
# The data come from scripts/make_data.sh. See docs/TRAINING.md for what each flag does and why.
# THREADS=2: on a quiet machine two threads ran a step clearly faster than one, and bf16 autocast was no faster
# (python -m stemclean.train.throughput -> benchmarks/results/throughput.json); rerun it on a new machine.
# The v1 recipe that made the shipped stemclean-v1 is this script as of commit bf13c04.
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
RUN=${RUN:-runs/v2}
SNAPSHOT=stemclean/models/stemclean-v2.pt

init=()
if [ ! -e "$RUN/last.pt" ] && [ -e "$SNAPSHOT" ]; then
    init=(--resume-weights "$SNAPSHOT")
fi
python -m stemclean.train.fit --run "$RUN" "${init[@]}" --plan trunk:150,control:150,joint:30000 \
    --width 48 --blocks 6 --time-stride 2 --evidence --band-mix --segment-seconds 4 --batch-size 4 \
    --real-fraction 0.5 --bleed-fraction 0.3 --recordings-fraction 0.3 --consistency 0.2 --bleed-weight 0.02 \
    --sdr-weight 0.1 --val-every "${VAL_EVERY:-100}" --save-every 25 --snapshot "$SNAPSHOT" --threads "$THREADS"
python -m stemclean.train.export "$RUN/last.pt" stemclean/models/stemclean-v2.onnx --weights "$SNAPSHOT"
