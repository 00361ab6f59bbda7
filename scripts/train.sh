#!/usr/bin/env bash
# Reproduce the shipped denoiser from the corpus and Spleeter pairs (scripts/make_data.sh makes them):
#   1. ControlNet phases from scratch              -> runs/main      (trunk, then control branch, then joint)
#   2. joint fine-tune on more real separator pairs -> runs/finetune  (runtime-estimated levels, bleed loss)
#   3. the same fine-tune with half-rate blocks     -> runs/halfrate  (less model time per step)
#   4. the same again with the SI-SDR loss weighted -> runs/sdr       (more SI-SDR and SAR, less SIR)
#   5. export to ONNX with the parity check        -> the shipped model (engine.DEFAULT_MODEL, in stemclean/models/)
# Both training stages resume from RUN/last.pt when rerun, so an interrupted run is continued by running this again.
# See docs/TRAINING.md for what each flag does and why.
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-1}

python -m stemclean.train.fit --run runs/main --plan trunk:800,control:1200,joint:600 --threads "$THREADS"
python -m stemclean.train.fit --run runs/finetune --init runs/main/last.pt --plan joint:800 --lr 3e-4 \
    --real-fraction 0.6 --consistency 0.2 --bleed-weight "${BLEED_WEIGHT:-0.03}" --threads "$THREADS"
python -m stemclean.train.fit --run runs/halfrate --init runs/finetune/last.pt --time-stride 2 --plan joint:1200 \
    --lr 3e-4 --real-fraction 0.6 --consistency 0.2 --bleed-weight "${BLEED_WEIGHT:-0.03}" --threads "$THREADS"
python -m stemclean.train.fit --run runs/sdr --init runs/halfrate/last.pt --plan joint:800 \
    --lr 3e-4 --real-fraction 0.6 --consistency 0.2 --bleed-weight 0.02 --sdr-weight 0.1 --threads "$THREADS"
# The shipped model's path is named once, in stemclean/engine.py; its torch weights go beside it.
MODEL=$(python -c "from stemclean.engine import DEFAULT_MODEL; print(DEFAULT_MODEL)")
python -m stemclean.train.export runs/sdr/last.pt "$MODEL" --weights "${MODEL%.onnx}.pt"
