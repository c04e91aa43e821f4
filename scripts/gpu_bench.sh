#!/usr/bin/env bash
# The GPU checks and benchmarks in one prepared run on a lent GPU machine (no training):
# CUDA-only tests, inference and peer benchmarks, and paper Table 2 (ViT-L) at several batch
# sizes. Each part writes to $OUT as soon as it finishes, so a run cut short keeps what it made.
#   bash scripts/gpu_bench.sh
set -uo pipefail
out=${OUT:-/tmp/out}; mkdir -p "$out"; export PYTHONPATH=$PWD
exec > >(tee -a "$out/session.log") 2>&1  # the whole log comes back even if the run is cut short
nvidia-smi -L; python3 -c "import torch, timm, transformers; print('torch', torch.__version__, 'timm', timm.__version__, 'transformers', transformers.__version__)"
timeout 60 python3 -m pytest -q -p no:cacheprovider tests/core/test_masking.py -k gpu 2>&1 | tail -3
timeout 90 python3 -m mae_cli bench infer --device cuda --batch-sizes 1 16 64 --output "$out/bench_infer_gpu.json" 2>&1 | tail -8
timeout 120 python3 -m mae_cli bench peer --device cuda --output "$out/bench_peer_gpu.json" 2>&1 | tail -9
for bs in ${TABLE2_BATCHES:-16 64 128 256}; do
  timeout 100 python3 -m mae_cli bench train --device cuda --model mae_vit_large_patch16 \
    --batch-size "$bs" --steps 5 --output "$out/bench_train_gpu_b$bs.json" 2>&1 | tail -5
done
ls -la "$out"
