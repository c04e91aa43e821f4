#!/usr/bin/env bash
# Everything a lent GPU machine does for the default checkpoint, in one call that ends inside
# the 10-minute command limit (BUDGET_S, default 570 s; the benchmarks stop when it is spent):
#   1. train the new default (scripts/train_default_gpu.sh: TRAIN_MINUTES, default 3.5, of
#      training after a ~20 s calibration and the ~1 min of caching and compiling);
#   2. convert it to fp16 safetensors + JSON card (`mae checkpoints convert --fp16`);
#   3. `mae bench quality` of the new and the old (embedded) checkpoint on the same held-out
#      photos, recorded in the new card, plus a per-cell comparison (compare.json);
#   4. training images/s and MFU of ViT-Ti/S/B/L MAE steps at 224 px, eager vs compiled
#      (`mae bench train --mfu`), one model at a time while the budget lasts.
# The whole log is tee'd into $OUT/session.log as it is written, and each stage leaves its
# results in $OUT at once, so a run cut short still returns what it made. What comes back:
#   session.log, mae-lab-default.safetensors.part-* (cat them together), mae-lab-default.json,
#   bench_train_mfu.json, results.tgz (quality JSONs, compare.json, metrics, snapshots).
#
#   bash scripts/gpu_session.sh CORPUS_DIR
#
# Environment (defaults for the H200; the CPU dry run in tests/tools/test_gpu_script.py
# shrinks them): TRAIN_MINUTES BUDGET_S QUALITY_LIMIT OLD_CHECKPOINT BENCH_MODELS BENCH_BATCH
# BENCH_STEPS BENCH_MODES BENCH_IMG_SIZE PYTHON DEVICE, and those of train_default_gpu.sh.
set -uo pipefail
corpus=${1:?corpus folder}
out=${OUT:-/tmp/out}; mkdir -p "$out"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
exec > >(tee -a "$out/session.log") 2>&1  # the whole log comes back even if the run is cut short
py=${PYTHON:-python3}; device=${DEVICE:-cuda}; budget=${BUDGET_S:-570}
work=${WORK_DIR:-$(mktemp -d)}; res=$work/results; mkdir -p "$res"
run=$work/mae-lab-default  # the run folder's name becomes the card's name
new=$work/mae-lab-default.safetensors
old=${OLD_CHECKPOINT:-checkpoints/mae-lab-default.safetensors}
stage() { echo "=== [$SECONDS s] $*"; }
left() { echo $(( budget - SECONDS )); }
pack() { tar czf "$out/results.tgz.tmp" -C "$res" . && mv "$out/results.tgz.tmp" "$out/results.tgz"; }

stage "machine"
nvidia-smi -L 2>/dev/null || echo "no nvidia-smi (device $device)"
"$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
echo "corpus: $(find "$corpus/train" -name '*.jpg' | wc -l) train, $(find "$corpus/heldout" -name '*.jpg' | wc -l) held out"

stage "train ${TRAIN_MINUTES:-3.5} min"
DEVICE=$device PYTHON=$py bash scripts/train_default_gpu.sh "$corpus" "$run" "${TRAIN_MINUTES:-3.5}" \
  2>&1 | tee "$res/train.log" | grep -v "^\s*$" | grep -E "calibration|resolved|run_dir|Error|error|Traceback" || true
cp "$run"/{metrics.jsonl,config.json,summary.json} "$res/" 2>/dev/null
[ -d "$run/snapshots" ] && cp -r "$run/snapshots" "$res/"
pack
if [ ! -f "$run/model.safetensors" ]; then
  stage "training did not export a model; see train.log in results.tgz"; tail -30 "$res/train.log"; exit 1
fi
"$py" -c "import json,sys; s=json.load(open(sys.argv[1])); print({k: s[k] for k in ('status','step','images_seen','wall_time_s','final_loss')})" "$run/summary.json"

stage "convert to fp16"
"$py" -m mae_cli checkpoints convert "$run/model.safetensors" "$new" --fp16

# Like-for-like set: held-out photos of the packages the old default trained on (the split is a
# function of each photo's content, so none of them was in its training set).
legacy=$work/heldout-legacy
"$py" - "$corpus" "$old" "$legacy" <<'EOF'
import json, os, sys
from pathlib import Path
corpus, old, dest = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
card = old.with_suffix(".json")
sources = {s["package"] for s in json.loads(card.read_text()).get("data", {}).get("corpus", {}).get("sources", [])} if card.is_file() else set()
manifest = json.loads((corpus / "manifest.json").read_text())
dest.mkdir(parents=True, exist_ok=True)
picked = [e for e in manifest["entries"] if e["split"] == "heldout" and e["kind"] == "photo" and e["package"] in sources]
for e in picked:
    os.symlink((corpus / e["path"]).resolve(), dest / Path(e["path"]).name)
print(f"legacy held-out set: {len(picked)} photos of the old default's {len(sources)} packages")
EOF

limit=(); [ -n "${QUALITY_LIMIT:-}" ] && limit=(--limit "$QUALITY_LIMIT")
stage "quality: new checkpoint, all held-out images (recorded in its card)"
"$py" -m mae_cli bench quality "$corpus/heldout" --checkpoint "$new" --device "$device" "${limit[@]}" \
  --write-card --output "$res/quality_new.json"
cp "${new%.safetensors}.json" "$out/mae-lab-default.json"
split -b 15M -d "$new" "$out/mae-lab-default.safetensors.part-"
pack
stage "quality: old checkpoint, same images"
"$py" -m mae_cli bench quality "$corpus/heldout" --checkpoint "$old" --device "$device" "${limit[@]}" \
  --output "$res/quality_old.json"
if [ -n "$(ls -A "$legacy")" ]; then
  for which in new old; do
    ckpt=$new; [ $which = old ] && ckpt=$old
    stage "quality: $which checkpoint, legacy held-out photos"
    "$py" -m mae_cli bench quality "$legacy" --checkpoint "$ckpt" --device "$device" "${limit[@]}" \
      --output "$res/quality_legacy_$which.json" | tail -9
  done
fi
"$py" - "$res" "${new%.safetensors}.json" "$old" <<'EOF'
import json, sys
from pathlib import Path
from mae_core.io_utils import write_json_atomic
res, card_path, old_ckpt = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]); report = {}
for subset in ("", "legacy_"):
    paths = [res / f"quality_{subset}{w}.json" for w in ("new", "old")]
    if not all(p.is_file() for p in paths):
        continue
    new, old = ({(r["ratio"], r["strategy"]): r for r in json.loads(p.read_text())["rows"]} for p in paths)
    cells = []
    for key in sorted(new):
        if key in old:
            a, b = (q[key]["methods"]["mae"]["psnr_mean"] for q in (new, old))
            telea = new[key]["methods"]["telea"]["psnr_mean"]
            cells.append({"ratio": key[0], "strategy": key[1], "n_images": new[key]["n_images"],
                          "new_db": a, "old_db": b, "telea_db": telea, "gain_db": a - b})
            print(f"{subset or 'all_'}heldout {key[0]:.2f} {key[1]:<6} new {a:6.2f}  old {b:6.2f}  "
                  f"telea {telea:6.2f}  new-old {a - b:+.2f} dB")
    report[(subset or "all_").rstrip("_")] = {"cells": cells, "beats_everywhere": all(c["gain_db"] > 0 for c in cells)}
(res / "compare.json").write_text(json.dumps(report, indent=2))
print("beats the old default in every cell:", {k: v["beats_everywhere"] for k, v in report.items()})
card = json.loads(card_path.read_text())
card.setdefault("quality", {})["compared_with"] = {"checkpoint": old_ckpt.name, "subsets": report}
write_json_atomic(card_path, card)
EOF
cp "${new%.safetensors}.json" "$out/mae-lab-default.json"
pack

stage "training throughput and MFU"
mkdir -p "$res/bench"
# Every model eager first (seconds each), then compiled (compiling takes ~0.5-1.5 min a model).
for mode in ${BENCH_MODES:-eager compiled}; do
  for model in ${BENCH_MODELS:-mae_vit_tiny_patch16 mae_vit_small_patch16 mae_vit_base_patch16 mae_vit_large_patch16}; do
    t=$(( $(left) - 5 ))
    if [ "$t" -lt 20 ]; then echo "skipping $model $mode: ${t}s of budget left"; continue; fi
    timeout "$t" "$py" -m mae_cli bench train --mfu "$model" --mfu-modes "$mode" --device "$device" \
      --img-size "${BENCH_IMG_SIZE:-224}" --batch-size "${BENCH_BATCH:-256}" --steps "${BENCH_STEPS:-5}" \
      --output "$res/bench/${model}_${mode}.json" | tail -3
    "$py" - "$res/bench" "$out/bench_train_mfu.json" <<'EOF'
import json, sys
from pathlib import Path
parts = [json.loads(p.read_text()) for p in sorted(Path(sys.argv[1]).glob("*.json"))]
if parts:
    merged = {"meta": parts[0]["meta"], "rows": [r for p in parts for r in p["rows"]]}
    Path(sys.argv[2]).write_text(json.dumps(merged, indent=2))
EOF
  done
done
pack
stage "done"; ls -la "$out"
