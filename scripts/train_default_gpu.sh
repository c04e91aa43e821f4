#!/usr/bin/env bash
# Train the embedded default checkpoint with `mae train` inside a fixed time budget.
#
#   bash scripts/train_default_gpu.sh CORPUS_DIR RUN_DIR [MINUTES]
#
# CORPUS_DIR is what `mae data build-corpus` writes (train/ and heldout/). A short calibration
# run with the same settings (compiled too) measures images/s first, so that the cosine schedule
# ends when the MINUTES of training do; its compiled kernels are cached on disk, so the real run
# compiles again in seconds. MINUTES counts training only, not caching or compiling.
# Defaults: ViT-S/16 encoder (12 x 384-d, 6 heads) with a 256-d, 4-block decoder, 224 px,
# raw-pixel target (no norm-pix) so the app shows the model's own colours, bf16 autocast and
# torch.compile. Why ViT-S and not ViT-B: the fp16 file must come back from the device in
# at most 64 MiB and then live in the repository (ViT-B alone is 172 MB in fp16).
# Every setting can be overridden from the environment (the CPU dry run in
# tests/tools/test_gpu_script.py shrinks them all):
#   MODEL DEC_DIM DEC_DEPTH IMG_SIZE BATCH LR WARMUP_FRAC CALIB_STEPS COMPILE AMP DEVICE
#   WORKERS CACHE_PX EPOCH_SAMPLES PYTHON
set -euo pipefail
corpus=${1:?corpus folder}; run=${2:?run folder}; minutes=${3:-4}
py=${PYTHON:-python3}
workers=${WORKERS:-$(( $(nproc) > 2 ? $(nproc) - 2 : 1 ))}
calib_steps=${CALIB_STEPS:-30}
train_images=$(find "$corpus/train" -type f -name '*.jpg' | wc -l)
samples=${EPOCH_SAMPLES:-20000}  # repeats make epochs of ~this many crops
repeats=$(( (samples + train_images - 1) / train_images ))
compile=(); [ "${COMPILE:-1}" = 1 ] && compile=(--compile)
common=(--data "$corpus/train" --val-data "$corpus/heldout" --model "${MODEL:-mae_vit_small_patch16}"
        --decoder-dim "${DEC_DIM:-256}" --decoder-depth "${DEC_DEPTH:-4}" --img-size "${IMG_SIZE:-224}"
        --no-norm-pix --mask-ratio 0.75 --batch-size "${BATCH:-512}" --lr "${LR:-1.5e-3}"
        --weight-decay 0.05 --amp "${AMP:-bf16}" --device "${DEVICE:-cuda}"
        --num-workers "$workers" --cache-px "${CACHE_PX:-256}" --repeats "$repeats" --no-progress)

calib=$(mktemp -d)
trap 'rm -rf "$calib"' EXIT
"$py" -m mae_cli train "${common[@]}" "${compile[@]}" --epochs 100 --warmup-epochs 1 --max-steps "$calib_steps" \
  --log-every $(( calib_steps >= 6 ? calib_steps / 6 : 1 )) --snapshot-every 0 \
  --output-dir "$calib" >/dev/null
rate=$("$py" -c "import json,sys; r=[json.loads(l) for l in open(sys.argv[1])][-2:]; print(sum(x['images_per_s'] for x in r) / len(r))" "$calib/metrics.jsonl")
epochs=$("$py" -c "print(max(1, int($rate * $minutes * 60 / ($train_images * $repeats))))")
warmup=$("$py" -c "print(max(0.05, round($epochs * ${WARMUP_FRAC:-0.05}, 2)))")
echo "calibration: ${rate} images/s -> ${epochs} epochs of ${train_images}x${repeats} images, warmup ${warmup}"
"$py" -m mae_cli train "${common[@]}" "${compile[@]}" --epochs "$epochs" --warmup-epochs "$warmup" \
  --log-every 25 --snapshot-every 500 --ckpt-every-steps 2000 --output-dir "$run"
