#!/usr/bin/env bash
# CPU parity of the PyTorch peer (crammed_bert.py) with cram: the same checkpoint, the same masked batch, the same
# loss and gradients. Steps: prepare a small Wikipedia dataset (vocabulary 8192), train crammed_tiny for a few
# seconds (a checkpoint with non-initial weights), then, in float64 and in float32:
#   crammed_bert.py parity  -> masks one val batch (its port of cram's Philox masking), writes it as JSON
#   peer_parity             -> cram's CPU model on that batch: loss, gradients (safetensors), and whether
#                              cram's own masking gives the same batch
#   crammed_bert.py parity  -> compares the loss and every gradient element with cram's
# Skips (exit 0, with a message) when no python3 with torch and numpy is found.
#
#   usage: benchmarks/pytorch/check_parity.sh [BUILD_DIR (default build-peer)] [WORK_DIR (default /tmp/cram-peer-parity)]
#   env:   CRAM_CORPUS (default ../shared/data/wiki/wiki-00.jsonl.zst), PRESET (crammed_tiny), BATCH (4)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build-peer}
work=${2:-/tmp/cram-peer-parity}
corpus=${CRAM_CORPUS:-$root/../shared/data/wiki/wiki-00.jsonl.zst}
preset=${PRESET:-crammed_tiny}
batch=${BATCH:-4}
peer=$root/benchmarks/pytorch/crammed_bert.py

py=""
for cand in python3 /usr/bin/python3; do
    if command -v "$cand" >/dev/null && "$cand" -c "import torch, numpy" 2>/dev/null; then py=$cand; break; fi
done
if [ -z "$py" ]; then
    echo "check_parity: SKIPPED: no python3 with torch and numpy (Debian: apt-get install python3-torch)"
    exit 0
fi
[ -f "$corpus" ] || { echo "check_parity: SKIPPED: corpus $corpus not found (set CRAM_CORPUS)"; exit 0; }

echo "check_parity: building cram_bert_24h and peer_parity in $build"
if [ ! -f "$build/build.ninja" ] && [ ! -f "$build/Makefile" ]; then
    cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCRAM_CUDA=OFF -DCRAM_BUILD_TESTS=OFF >/dev/null
fi
cmake --build "$build" -j2 --target cram_bert_24h peer_parity >/dev/null
app=$build/examples/cram_bert_24h/cram_bert_24h
parity=$build/benchmarks/peer_parity

vocab=$("$py" -c "import sys; sys.path.insert(0, '$root/benchmarks/pytorch'); import crammed_bert as c; print(c.PRESETS['$preset']['vocab'])")
mkdir -p "$work"
if [ ! -f "$work/data/summary.json" ]; then
    "$app" prepare --corpus "$corpus" --out "$work/data" --max-docs 1000 --vocab-size "$vocab" --val-fraction 0.05 \
        --quiet >/dev/null
fi
ckpt=$(ls -d "$work"/run/checkpoints/step-* 2>/dev/null | tail -1 || true)
if [ -z "$ckpt" ]; then
    rm -rf "$work/run"
    "$app" train --data "$work/data" --out "$work/run" --budget 20s --preset "$preset" --device cpu --micro-batch 8 \
        --batch-target 16 --quiet >/dev/null
    ckpt=$(ls -d "$work"/run/checkpoints/step-* | tail -1)
fi
echo "check_parity: checkpoint $ckpt"

status=0
for pair in "float64 double 1e-12" "float32 float 1e-5"; do
    set -- $pair
    tdtype=$1 cdtype=$2 tol=$3
    "$py" "$peer" parity --checkpoint "$ckpt/model.safetensors" --data "$work/data" --preset "$preset" --batch "$batch" \
        --dtype "$tdtype" --write-batch "$work/batch.json" >/dev/null
    "$parity" --preset "$preset" --checkpoint "$ckpt" --batch "$work/batch.json" --dtype "$cdtype" \
        --grads-out "$work/grads-$cdtype.safetensors" > "$work/cram-$cdtype.json"
    if "$py" "$peer" parity --checkpoint "$ckpt/model.safetensors" --data "$work/data" --preset "$preset" \
        --batch "$batch" --dtype "$tdtype" --cram-json "$work/cram-$cdtype.json" \
        --cram-grads "$work/grads-$cdtype.safetensors" --tolerance "$tol" > "$work/peer-$tdtype.json"; then
        verdict=ok
    else
        verdict=FAILED; status=1
    fi
    "$py" - "$work/peer-$tdtype.json" "$tdtype" "$tol" "$verdict" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print(f"check_parity: {sys.argv[2]:8} loss peer {d['loss']:.15g} cram {d['cram_loss']:.15g} rel diff "
      f"{d['loss_rel_diff']:.2e}; worst gradient rel diff {d['grad_max_rel_diff_worst']:.2e} over "
      f"{len(d['grad_max_rel_diff'])} tensors; masking identical: {all(d['masking_matches_cram'].values())} "
      f"(tolerance {sys.argv[3]}): {sys.argv[4]}")
PY
done
exit $status
