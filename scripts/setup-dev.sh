#!/usr/bin/env bash
# Developer set-up in one command, into the active virtual environment: the Debian packages that the training corpus
# and its tests render with, then stemclean in editable mode with the [dev] extra (tests, training, benchmarks).
# README.md "Set up" names this script and .ci/run calls it, so the two cannot drift apart.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! python -c 'import sys; sys.exit(sys.prefix == sys.base_prefix)' 2>/dev/null; then
    echo "error: activate a virtual environment first: python3 -m venv .venv && . .venv/bin/activate" >&2
    exit 2
fi

# Renderers, soundfonts, drum kits and voices for the corpus and its tests; sox for its tests; GNU time for
# benchmarks.speed and benchmarks.jobs; the real speech and soundtracks that the real-recordings tests decode and mix
# (docs/TRAINING.md lists the packages of the whole real-recordings corpus).
PACKAGES=(fluidsynth fluid-soundfont-gm timgm6mb-soundfont openttd-openmsx hydrogen-drumkits festival
    festvox-kallpc16k espeak-ng sox time
    klettres-data ktuberling-data fillets-ng-data-nl drascula drascula-music singularity-music nexuiz-music)
SUDO=$([ "$(id -u)" -eq 0 ] || echo sudo)
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "${PACKAGES[@]}" > /dev/null

# torch==2.13.0 (pinned in pyproject.toml's train extra) comes from PyPI as the CPU wheel on these machines; no other
# index is reachable here, and nothing else is needed.
python -m pip install -e ".[dev]"
