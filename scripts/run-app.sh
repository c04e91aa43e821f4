#!/usr/bin/env bash
# Set everything up on a fresh machine (Python 3.11) and serve the web app on the embedded
# default checkpoint: http://127.0.0.1:8000/ (extra arguments go to `mae serve`).
# TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu installs the CPU-only torch wheels.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
ensure_venv app
# The checkout's shipped training run and benchmark results, for the analysis page (an installed
# `mae serve` reads var/runs and var/bench-results unless told otherwise).
export MAE_RUNS_DIR=${MAE_RUNS_DIR:-$PWD/runs} MAE_BENCH_DIR=${MAE_BENCH_DIR:-$PWD/bench-results}
cat >&2 <<MSG
The mae command is in .venv/bin. In another terminal, from $PWD:
  source .venv/bin/activate          then: mae --help, mae worker --data-dir var/
  (or without activating: .venv/bin/mae worker --data-dir var/)
MSG
exec .venv/bin/mae serve "$@"
