#!/usr/bin/env bash
# The Hugging Face round trip through the real binary on real data: prepare Wikipedia text, train
# crammed_tiny for a few seconds, export (crammedBERT layout + tokenizer + card), import into a new run,
# export that again (identical files), fine-tune the imported run on RTE, and the refusals a user meets.
# Leaves WORK_DIR/hf for tests/interop/tokenizer_check.sh. Exits 77 (skipped) without the shared data.
#   usage: hf_interop.sh APP SHARED_DATA WORK_DIR
set -euo pipefail
app=$1 data=$2 work=$3
wiki=$data/wiki/wiki-00.jsonl.zst
source "$(dirname "$0")/../apps/lib.sh"
need_shared_data "$wiki" "$data/glue/RTE"
rm -rf "$work" && mkdir -p "$work"

step "prepare + a short crammed_tiny run"
"$app" prepare --corpus "$wiki" --out "$work/data" --max-docs 300 --vocab-size 8192 --quiet
"$app" train --data "$work/data" --out "$work/run" --budget 8s --preset crammed_tiny --device cpu \
  --micro-batch 4 --batch-target 8 --quiet

step "export: the crammedBERT layout, tokenizer files and model card"
"$app" export --checkpoint "$work/run" --out "$work/hf"
for f in config.json model.safetensors vocab.txt tokenizer.json tokenizer_config.json special_tokens_map.json README.md; do
  test -s "$work/hf/$f" || { echo "FAIL: export wrote no $f"; exit 1; }
done
grep -q '"model_type": "crammedBERT"' "$work/hf/config.json"
grep -q "crammed_tiny" "$work/hf/README.md"
cmp "$work/hf/vocab.txt" "$work/data/vocab.txt"
expect_fail "not an empty directory" "$app" export --checkpoint "$work/run" --out "$work/hf"

step "import into a new run, export again: identical files"
"$app" import --from "$work/hf" --out "$work/imported"
test -s "$work/imported/vocab.txt"
"$app" export --checkpoint "$work/imported" --out "$work/hf2"
for f in config.json model.safetensors vocab.txt tokenizer.json tokenizer_config.json special_tokens_map.json; do
  cmp "$work/hf/$f" "$work/hf2/$f" || { echo "FAIL: $f differs after export -> import -> export"; exit 1; }
done
echo "ok: every model and tokenizer file is byte-identical"
expect_fail "already holds checkpoints" "$app" import --from "$work/hf" --out "$work/imported"

step "refusals: a directory without config.json, a config that matches no preset"
mkdir -p "$work/empty"
expect_fail "has no config.json" "$app" import --from "$work/empty" --out "$work/x"
cp -r "$work/hf" "$work/bad"
sed -i 's/"num_transformer_layers": 2/"num_transformer_layers": 3/' "$work/bad/config.json"
expect_fail "matches no preset" "$app" import --from "$work/bad" --out "$work/x"

step "glue fine-tunes the imported run (RTE, one seed, one epoch, 64 examples)"
"$app" glue --checkpoint "$work/imported" --glue-dir "$data/glue" --out "$work/glue" --tasks RTE --seeds 1 \
  --epochs 1 --max-train 64 --device cpu --quiet
test -s "$work/glue/report.md"

step "the model card names the GLUE report when given one"
"$app" export --checkpoint "$work/run" --out "$work/hf3" --glue-report "$work/glue"
grep -q "RTE" "$work/hf3/README.md"
echo "PASS"
