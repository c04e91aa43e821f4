#!/usr/bin/env bash
# Everything a lent GPU machine should do in one prepared run (see .library device notes):
# train the default checkpoint, then the GPU tests and benchmarks. Results go to $OUT as soon
# as each part finishes, so a run cut short still returns what it made.
#   bash scripts/gpu_session.sh CORPUS_DIR [TRAIN_MINUTES]
set -uo pipefail
corpus=${1:?corpus}; minutes=${2:-6}
out=${OUT:-/tmp/out}; mkdir -p "$out"; export PYTHONPATH=$PWD
exec > >(tee -a "$out/session.log") 2>&1  # the whole log comes back even if the run is cut short
run=/tmp/default-run
nvidia-smi -L; python3 -c "import torch, timm; print('torch', torch.__version__, 'timm', timm.__version__)"
CALIB_STEPS=${CALIB_STEPS:-20} bash scripts/train_default_gpu.sh "$corpus" "$run" "$minutes" > "$out/train.log" 2>&1
tail -12 "$out/train.log"
# the exported model travels back in pieces (the file limit is 16 MiB)
[ -f "$run/model.safetensors" ] && split -b 15M "$run/model.safetensors" "$out/model.safetensors.part-"
tar czf "$out/run.tgz" -C "$run" --exclude checkpoints --exclude model.safetensors .
timeout 40 python3 -m pytest -q -p no:cacheprovider tests/test_masking.py -k gpu 2>&1 | tail -3
timeout 60 python3 -m mae_cli bench infer --device cuda --batch-sizes 1 16 64 --output "$out/bench_infer_gpu.json" 2>&1 | tail -8
timeout 90 python3 -m mae_cli bench train --device cuda --model mae_vit_large_patch16 --batch-size 64 --steps 5 --output "$out/bench_train_gpu.json" 2>&1 | tail -8
ls -la "$out"
