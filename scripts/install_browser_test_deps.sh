#!/usr/bin/env bash
# Installs what the browser tests (tests/browser) need: Debian's Chromium, and JupyterLab and Playwright
# in .venv. Safe to re-run: each step is skipped when already done.
#
# Playwright drives the system Chromium (/usr/bin/chromium); never run `playwright install`, which
# downloads a browser build of its own and cannot work on these machines.
set -euo pipefail
cd "$(dirname "$0")/.."

JUPYTERLAB_VERSION=4.6.6
PLAYWRIGHT_VERSION=1.65.2

if [ ! -x /usr/bin/chromium ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "Please install Chromium as /usr/bin/chromium (Debian/Ubuntu package 'chromium')." >&2
    exit 1
  fi
fi

if [ ! -x .venv/bin/python ]; then
  echo "No .venv: run scripts/setup.sh first." >&2
  exit 1
fi

installed_version() {
  .venv/bin/python -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$1" 2>/dev/null || true
}

if [ "$(installed_version jupyterlab)" != "$JUPYTERLAB_VERSION" ] || [ "$(installed_version playwright)" != "$PLAYWRIGHT_VERSION" ]; then
  .venv/bin/python -m pip install -q "jupyterlab==$JUPYTERLAB_VERSION" "playwright==$PLAYWRIGHT_VERSION"
fi
