# Sourced by scripts/run-app.sh and scripts/test.sh: `ensure_venv EXTRAS` makes .venv hold this
# checkout (editable) with EXTRAS, installed from constraints.txt (the versions the suite passed
# on). pip runs only when pyproject.toml, constraints.txt, EXTRAS or TORCH_INDEX_URL changed since
# the last install (a stamp in .venv), so a second start answers in seconds.
#   TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu   CPU-only torch wheels (~200 MB instead
#                                                          of ~5 GB of CUDA libraries)
ensure_venv() {
  local extras=$1 stamp=.venv/.mae-install-stamp want
  [ -x .venv/bin/python ] || python3 -m venv .venv
  want=$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)" $extras ${TORCH_INDEX_URL:-}"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return 0
  fi
  echo "Installing MAE Lab ($extras) into .venv from constraints.txt; the first time takes a few minutes (PyTorch)." >&2
  .venv/bin/python -m pip install -q --upgrade pip
  if [ -n "${TORCH_INDEX_URL:-}" ]; then
    .venv/bin/python -m pip install --progress-bar on -c constraints.txt --index-url "$TORCH_INDEX_URL" torch torchvision
  fi
  .venv/bin/python -m pip install --progress-bar on -c constraints.txt -e ".[$extras]"
  echo "$want" > "$stamp"
}
