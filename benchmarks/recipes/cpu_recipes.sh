#!/usr/bin/env bash
# The paper's comparison in miniature, on this machine's CPU (docs/training.md "Recipes"): the three recipes
# (crammed, bert-original, izsak), each with its own values (batch target, schedule, optimizer, masking, dropout)
# on its small preset (crammed_tiny, bert_tiny, izsak_tiny: the same width, depth and vocabulary) for the same
# wall-clock budget on the same Wikipedia dataset, one after the other; then GLUE on the shared data's tasks
# (a capped training set, fewer epochs and one seed: deviations the reports list) and `compare` over the three.
# Writes RESULTS/compare.md, RESULTS/compare.json and each run's summary.
#   usage: cpu_recipes.sh BUILD_DIR SHARED_DATA RESULTS_DIR [budget=4m] [glue_max_train=1000] [glue_epochs=2]
set -euo pipefail
build=$1 data=$2 results=$3 budget=${4:-4m} max_train=${5:-1000} epochs=${6:-2}
app=$build/examples/cram_bert_24h/cram_bert_24h
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$results"
"$app" prepare --corpus "$data/wiki/wiki-00.jsonl.zst" --out "$work/data" --max-docs 2000 --vocab-size 8192 --quiet > /dev/null
tasks=$(cd "$data/glue" && ls -d */ | tr -d / | paste -sd, -)
args=()
for r in "crammed crammed_tiny" "bert-original bert_tiny" "izsak izsak_tiny"; do
  set -- $r
  echo "== $1 ($2), $budget"
  "$app" train --recipe "$1" --preset "$2" --data "$work/data" --out "$work/run-$1" --budget "$budget" --device cpu \
    --checkpoint-every 0 --quiet
  grep '"event":"summary"' "$work/run-$1/metrics.jsonl" | tail -1 > "$results/summary-$1.json"
  "$app" glue --checkpoint "$work/run-$1" --glue-dir "$data/glue" --out "$work/glue-$1" --tasks "$tasks" --seeds 1 \
    --epochs "$epochs" --max-train "$max_train" --device cpu --quiet > /dev/null
  args+=("$1=$work/run-$1:$work/glue-$1")
done
"$app" compare --out "$results" "${args[@]}"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" | tee "$results/machine.txt"
