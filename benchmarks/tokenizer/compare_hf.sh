#!/usr/bin/env bash
# Full-file parity and speed against Hugging Face tokenizers (npm 0.23) on the shared Wikipedia.
# Usage: benchmarks/tokenizer/compare_hf.sh BUILD_DIR [WIKI_FILE] [VOCAB]
#   needs CRAM_HF_TOKENIZERS (see tests/data/hf_reference/README.md) and the cram_bert_24h app built.
# 1. ids: every document of WIKI_FILE (default wiki-00) through `cram_bert_24h tokenize` and HF: identical?
# 2. training: HF's WordPiece trainer (vocab 30000, its model default) vs `prepare`'s trainer on the same text.
set -euo pipefail
BUILD=${1:?build dir}
WIKI=${2:-$(dirname "$0")/../../../shared/data/wiki/wiki-00.jsonl.zst}
WORK=${CRAM_BENCH_DIR:-/tmp/cram_tok_bench}
APP=$BUILD/examples/cram_bert_24h/cram_bert_24h
HF="node $(dirname "$0")/../../tests/data/hf_reference/hf_reference.js"
mkdir -p "$WORK"
# one document per line (newlines inside a document become spaces: both tokenizers treat them alike)
zstd -dc "$WIKI" | python3 -c '
import json, sys
for l in sys.stdin:
    sys.stdout.write(json.loads(l)["text"].replace("\n", " ").replace("\r", " ") + "\n")' > "$WORK/docs.txt"
VOCAB=${3:-}
if [ -z "$VOCAB" ]; then
  rm -rf "$WORK/ds"
  "$APP" prepare --corpus "$WIKI" --out "$WORK/ds" --vocab-size 30000 --quiet > /dev/null
  VOCAB=$WORK/ds/vocab.txt
fi
echo "== ids on $(wc -l < "$WORK/docs.txt") documents, vocab $VOCAB"
/usr/bin/time -f "cram tokenize: %e s, %M KB" "$APP" tokenize --vocab "$VOCAB" < "$WORK/docs.txt" > "$WORK/cram.ids"
/usr/bin/time -f "hf encode (node, incl. I/O): %e s, %M KB" $HF encode --vocab "$VOCAB" --input "$WORK/docs.txt" > "$WORK/hf.ids"
if cmp -s "$WORK/cram.ids" "$WORK/hf.ids"; then echo "ids: IDENTICAL ($(wc -w < "$WORK/hf.ids") tokens)"; else
  echo "ids: DIFFERENT"; diff <(tr ' ' '\n' < "$WORK/cram.ids" | head -c 0) /dev/null; cmp "$WORK/cram.ids" "$WORK/hf.ids" || true; exit 1; fi
