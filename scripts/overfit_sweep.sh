#!/usr/bin/env bash
# The overfit sweep (issue 20): how many real mixes can the network fit? Stages 4 to 6 ended with their real rows flat
# at about +0.15 to +0.18 dB, on the real pairs they trained on as on val's, while the overfit check fitted three
# rendered songs to 63% of the oracle's gain. This fine-tunes stage 5's weights on the real Spleeter pairs of the first
# N train mixes (by id) alone, then scores the first 8 train mixes (all among the N when N >= 8) and val's 8 with
# `validate --real-split`. Train far above val: the network memorises per-mix fixes, and more real mixes are the way
# on. Train near val: it cannot fit even N mixes, and the network, features or loss must change first.
#   scripts/overfit_sweep.sh N    (resumable like any fit run; results in benchmarks/results/overfit-realN-*.json)
# PARENT=scratch starts a new network of stage 5's shape instead (as scripts/overfit_check.sh does), LR sets the peak
# learning rate and TAG names the run and results, to tell whether the parent's weights or the rate hold the fit back.
# WIDTH (scratch only, default stage 5's 48) asks whether the features per band hold the fit back.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:?usage: scripts/overfit_sweep.sh N, the number of real train mixes to fit (at least 8)}
STEPS=${STEPS:-600}
TAG=${TAG:-real$N}
RUN=${RUN:-runs/overfit-$TAG}
PARENT=${PARENT:-stemclean/models/stemclean-v2-stage5.pt}
if [ "$PARENT" = scratch ]; then
    init=(--width "${WIDTH:-48}" --blocks 6 --time-stride 2 --evidence --band-mix)
else
    init=(--init "$PARENT")
fi

python -m stemclean.train.fit --run "$RUN" "${init[@]}" --real-mixes "$N" --plan "joint:$STEPS" --lr "${LR:-3e-4}" \
    --segment-seconds 4 --batch-size 4 --recordings-fraction 1.0 --real-fraction 1.0 --consistency 0 \
    --bleed-weight 0.02 --sdr-weight 1.0 --val-every "${VAL_EVERY:-100}" --save-every 25 --threads "${THREADS:-1}"
for split in train val; do
    python -m stemclean.train.validate "$RUN/last.pt" --real-split "$split" \
        --out "benchmarks/results/overfit-$TAG-$split.json"
done
