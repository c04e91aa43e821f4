#!/usr/bin/env bash
# Set everything up on a fresh machine (Python 3.11) and run the whole test suite: the linter
# (ruff), the type checker (mypy on mae_core), then pytest (arguments go to pytest).
# TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu installs the CPU-only torch wheels.
set -euo pipefail
cd "$(dirname "$0")/.."
# Browser tests drive Debian's Chromium through Playwright (no browser download); the job-store
# tests start their own PostgreSQL server from Debian's `postgresql` package.
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null || missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
source scripts/venv.sh
ensure_venv dev
echo "ruff check ." >&2
.venv/bin/ruff check .
echo "mypy (mae_core; config in pyproject.toml)" >&2
.venv/bin/mypy
echo "The mae command is in .venv/bin: source .venv/bin/activate (or run .venv/bin/mae ...)" >&2
exec .venv/bin/python -m pytest "$@"
