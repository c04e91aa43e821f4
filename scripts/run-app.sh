#!/usr/bin/env bash
# Set everything up on a fresh machine (Python 3.11) and serve the web app on the embedded
# default checkpoint: http://127.0.0.1:8000/ (extra arguments go to `mae serve`).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[app]"
exec .venv/bin/mae serve "$@"
