#!/usr/bin/env bash
# Train the embedded default checkpoint with `mae train` on one GPU, inside a fixed time budget.
#
#   bash scripts/train_default_gpu.sh CORPUS_DIR RUN_DIR [MINUTES]
#
# CORPUS_DIR is what `mae data build-corpus` writes (train/ and heldout/). A 40-step calibration
# run measures images/s first, so that the cosine schedule ends when the budget does.
# Architecture: ViT-Tiny encoder (12 x 192-d) and a 256-d, 4-block decoder, 224 px, 16 px
# patches, raw-pixel target (no norm-pix) so the app shows reconstructions without borrowing
# each patch's true statistics.
set -euo pipefail
corpus=${1:?corpus folder}; run=${2:?run folder}; minutes=${3:-6.5}
py=${PYTHON:-python3}
workers=${WORKERS:-$(( $(nproc) > 2 ? $(nproc) - 2 : 1 ))}
train_images=$(find "$corpus/train" -type f | wc -l)
repeats=$(( (20000 + train_images - 1) / train_images ))  # ~20k samples per epoch
common=(--data "$corpus/train" --val-data "$corpus/heldout" --model mae_vit_tiny_patch16
        --decoder-dim 256 --decoder-depth 4 --img-size 224 --no-norm-pix --mask-ratio 0.75
        --batch-size "${BATCH:-256}" --lr "${LR:-1.5e-3}" --weight-decay 0.05
        --num-workers "$workers" --cache-px 256 --repeats "$repeats" --no-progress)

calib=$(mktemp -d)
"$py" -m mae_cli train "${common[@]}" --epochs 100 --warmup-epochs 1 --max-steps "${CALIB_STEPS:-40}" \
  --log-every 5 --snapshot-every 0 --output-dir "$calib" >/dev/null
rate=$("$py" -c "import json,sys; r=[json.loads(l) for l in open(sys.argv[1])]; print(sum(x['images_per_s'] for x in r[-2:]) / 2)" "$calib/metrics.jsonl")
epochs=$("$py" -c "print(max(1, int($rate * $minutes * 60 / ($train_images * $repeats))))")
warmup=$("$py" -c "print(max(0.5, round($epochs * 0.05, 2)))")
echo "calibration: ${rate} images/s -> ${epochs} epochs of ${train_images}x${repeats} images, warmup ${warmup}"
"$py" -m mae_cli train "${common[@]}" --epochs "$epochs" --warmup-epochs "$warmup" \
  --log-every 25 --snapshot-every 500 --ckpt-every-steps 2000 --output-dir "$run"
