#!/usr/bin/env bash
# tokenizer.json as exported by `cram_bert_24h export` (left in WORK_DIR/hf by hf_interop.sh), loaded by
# the Rust `tokenizers` library through its npm package, must give exactly `cram_bert_24h tokenize`'s ids on
# real Wikipedia text, and [CLS] A [SEP] B [SEP] with type ids 0/1 for pairs.
# Exits 77 (skipped, loudly) without node, the npm package `tokenizers` (set CRAM_NODE_MODULES to the
# node_modules directory holding it: `npm install tokenizers` in any directory), or the shared data.
#   usage: tokenizer_check.sh APP SHARED_DATA WORK_DIR
set -euo pipefail
app=$1 data=$2 work=$3
wiki=$data/wiki/wiki-01.jsonl.zst
here=$(cd "$(dirname "$0")" && pwd)
if ! command -v node > /dev/null; then echo "SKIPPED: node is not installed: tokenizer.json not checked"; exit 77; fi
export NODE_PATH=${CRAM_NODE_MODULES:-}${NODE_PATH:+:$NODE_PATH}
if ! node -e "require('tokenizers')" > /dev/null 2>&1; then
  echo "SKIPPED: the npm package 'tokenizers' is not found (npm install tokenizers, then CRAM_NODE_MODULES=DIR/node_modules)"
  exit 77
fi
if [ ! -f "$wiki" ] || ! command -v zstd > /dev/null; then echo "SKIPPED: $wiki or zstd missing"; exit 77; fi
if [ ! -f "$work/hf/tokenizer.json" ]; then echo "FAIL: $work/hf/tokenizer.json missing (run hf_interop.sh first)"; exit 1; fi
{ zstd -dc "$wiki" 2>/dev/null || true; } | head -n 400 > "$work/wiki.jsonl"
node "$here/tokenizer_check.js" lines "$work/wiki.jsonl" > "$work/lines.txt"
"$app" tokenize --vocab "$work/hf/vocab.txt" < "$work/lines.txt" > "$work/cram_ids.txt"
node "$here/tokenizer_check.js" encode "$work/hf/tokenizer.json" "$work/lines.txt" > "$work/hf_ids.txt"
if ! cmp -s "$work/cram_ids.txt" "$work/hf_ids.txt"; then
  echo "FAIL: ids differ between cram and tokenizers on $(wc -l < "$work/lines.txt") lines; first difference:"
  diff <(nl -ba "$work/cram_ids.txt") <(nl -ba "$work/hf_ids.txt") | head -6
  exit 1
fi
echo "ok: $(wc -l < "$work/lines.txt") lines, $(wc -w < "$work/cram_ids.txt") tokens: identical ids"
node "$here/tokenizer_check.js" template "$work/hf/tokenizer.json"
echo "PASS"
