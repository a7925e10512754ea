#!/usr/bin/env bash
# Sets everything up, then runs every check: lint, type check and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/install_browser_test_deps.sh
.venv/bin/ruff check labtech_nb tests scripts
.venv/bin/ruff format --check labtech_nb tests scripts
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
