#!/usr/bin/env bash
# The GPU figures of docs/guide/speed.md: `mtl bench train` and `mtl bench infer` on one GPU, from
# prepared face caches only (no raw data on the GPU machine). Usage:
#   CACHES='{genki4k: DIR, fer2013: DIR, utkface: DIR}' PHOTOS=DIR OUT=results scripts/bench_gpu.sh
set -u
OUT=${OUT:-runs/bench-gpu}
LOGS=${LOGS:-$OUT}
mkdir -p "$OUT" "$LOGS"
MTL="python3 -m mtl"
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv
python3 -c "import torch, lightning; print('torch', torch.__version__, 'lightning', lightning.__version__)"

run() {  # run NAME COMMAND...: keep going if one benchmark fails, log each
  local name=$1; shift
  echo "== $name: $*"
  timeout "${LIMIT:-300}" "$@" > "$LOGS/$name.log" 2>&1
  echo "exit $?"
  grep -v -i "warn" "$LOGS/$name.log" | tail -${TAIL:-14}
}

run train_b1024 $MTL bench train --caches "$CACHES" --data_root /nonexistent --batch_size 1024 \
  --steps 200 --warmup 30 --variants '[eager, channels_last, channels_last+bf16]' \
  --json "$OUT/train_b1024.json"
run train_b256 $MTL bench train --caches "$CACHES" --data_root /nonexistent --batch_size 256 \
  --steps 300 --warmup 30 --variants '[eager, channels_last+bf16]' --json "$OUT/train_b256.json"
LIMIT=400 run train_compile $MTL bench train --caches "$CACHES" --data_root /nonexistent \
  --batch_size 1024 --steps 200 --warmup 40 --variants '[channels_last+bf16+compile]' \
  --json "$OUT/train_compile.json"
if [ -z "${SKIP_INFER:-}" ]; then
run infer_bf16 $MTL bench infer --device cuda --batch_size 4096 --repeats 50 \
  --precision bf16-mixed --channels_last true --photos "$PHOTOS" --json "$OUT/infer_bf16.json"
run infer_fp32 $MTL bench infer --device cuda --batch_size 4096 --repeats 50 --onnx false \
  --photos null --json "$OUT/infer_fp32.json"
fi
run train_workers $MTL bench train --caches "$CACHES" --data_root /nonexistent --batch_size 1024 \
  --steps 60 --warmup 10 --device_data false --workers 12 --variants '[channels_last]' \
  --json "$OUT/train_workers.json"
