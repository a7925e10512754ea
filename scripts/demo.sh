#!/usr/bin/env bash
# Sets everything up, then runs the tutorial's full pipeline as a script and prints its evaluation table.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python scripts/tutorial_pipeline.py "$@"
