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
# The notebooks, executed and compared with their stored outputs (times, paths and ids sanitized).
.venv/bin/python -m pytest --nbval notebooks/ --nbval-current-env --nbval-sanitize-with notebooks/nbval_sanitize.cfg -q -p no:cacheprovider
# The documentation site, built strictly (a warning fails the build).
NO_MKDOCS_2_WARNING=1 .venv/bin/python -m mkdocs build --strict --clean --site-dir site
