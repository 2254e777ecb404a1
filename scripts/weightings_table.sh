#!/usr/bin/env bash
# Every registered weighting on the papers' real mix (GENKI-4K + FER-2013 + UTKFace, Multi-task
# BKNet), and the four single-task runs Δm is measured against, all on one small budget, then
# `mtl report` on validation (GENKI-4K's fold 0, FER-2013's and UTKFace's validation splits).
#
#   scripts/weightings_table.sh [OUT] [EPOCHS] [STEPS]     # defaults: runs/weightings 3 60
#
# A finished run is skipped when the script is run again. On 2 CPU cores (bf16) the default
# budget takes about 50 minutes; its accuracies come from one seed after a few thousand
# images per source: they show that each weighting trains with partial labels and what it
# costs per step, not which one is best (the papers train for 250 epochs).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs/weightings}"
epochs="${2:-3}"
steps="${3:-60}"

common=(--data.batch_size=64 --data.num_workers=0 --data.device_data=true
        --data.k_folds=4 --data.val_fold=0 --model.init_std=null
        "--trainer.max_epochs=$epochs" "--trainer.limit_train_batches=$steps"
        --trainer.limit_val_batches=20 --trainer.enable_checkpointing=false
        --trainer.enable_progress_bar=false)

failed=()
run() {  # NAME ARGS...: one fit logged to OUT/NAME
  local name="$1"; shift
  if [ -f "$out/$name/logs/run.json" ]; then echo "done: $name"; return; fi
  echo "run: $name"
  local logger="[{\"class_path\": \"mtl.loggers.CSVLogger\", \"init_args\": {\"save_dir\": \"$out/$name\", \"name\": \"\", \"version\": \"logs\"}}]"
  local started=$SECONDS
  mtl fit --config conf/multisource_real.yaml "${common[@]}" "--trainer.logger=$logger" "$@" \
    > "$out/$name.log" 2>&1 || { echo "FAILED: $name (see $out/$name.log)"; failed+=("$name"); return; }
  echo "  $((SECONDS - started)) s"
}

mkdir -p "$out"
for task in smile emotion gender age; do
  run "single_$task" "--data.tasks=[$task]"
done
for weighting in FixedWeighting UncertaintyWeighting KangWeighting DynamicWeightAverage \
    GradNorm PCGrad RandomLossWeighting GeometricLossStrategy UPGrad MGDA CAGrad IMTLG \
    AlignedMTL DualProj GradDrop ConFIG FairGrad NashMTL GradVac; do
  run "multi_$weighting" "--model.weighting=$weighting"
done
mtl report "$out" --stage val --out "$out/report"
if [ ${#failed[@]} -gt 0 ]; then
  echo "failed (not in the table): ${failed[*]}" >&2
  exit 1
fi
