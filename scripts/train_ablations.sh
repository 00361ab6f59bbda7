#!/usr/bin/env bash
# Equal-budget ablations for docs/BENCHMARKS.md: trunk only, ControlNet phases, plain joint training.
# Each run gets the same number of optimizer steps (BUDGET, default 300); results land in runs/ablation-*.
set -euo pipefail
BUDGET=${BUDGET:-300}
THIRD=$((BUDGET / 3))
run() { python -m stemclean.train.fit --run "runs/ablation-$1" --plan "$2" --threads 1 --save-every 50; }
run trunk-only "trunk:${BUDGET}"
run phased "trunk:${THIRD},control:${THIRD},joint:$((BUDGET - 2 * THIRD))"
run joint "joint:${BUDGET}"
for name in trunk-only phased joint; do
  python -m stemclean.train.export "runs/ablation-${name}/last.pt" "runs/ablation-${name}/model.onnx"
done
