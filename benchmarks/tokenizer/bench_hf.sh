#!/usr/bin/env bash
# Speed of cram's WordPiece against Hugging Face tokenizers (npm 0.23) on the same machine, cores and text:
# all of ../shared/data/wiki as one document per line. Prints JSON lines; results go in docs/data.md.
# Usage: benchmarks/tokenizer/bench_hf.sh BUILD_DIR   (needs CRAM_HF_TOKENIZERS, see tests/data/hf_reference)
set -euo pipefail
BUILD=${1:?build dir with bench_tokenizer}
HERE=$(cd "$(dirname "$0")" && pwd)
WIKI=${CRAM_WIKI:-$HERE/../../../shared/data/wiki}
WORK=${CRAM_BENCH_DIR:-/tmp/cram_tok_bench}
HF="node $HERE/../../tests/data/hf_reference/hf_reference.js"
mkdir -p "$WORK/hf" "$WORK/cram"
if [ ! -s "$WORK/wiki-all.txt" ]; then
  for f in "$WIKI"/wiki-0*.jsonl.zst; do zstd -dc "$f"; done | python3 -c '
import json, sys
for l in sys.stdin:
    sys.stdout.write(json.loads(l)["text"].replace("\n", " ").replace("\r", " ") + "\n")' > "$WORK/wiki-all.txt"
fi
echo "== training, vocab 30000"
/usr/bin/time -f "hf: wall %e s, peak %M KB, cpu %P" $HF train --out "$WORK/hf/vocab.txt" "$WORK/wiki-all.txt"
/usr/bin/time -f "cram: wall %e s, peak %M KB, cpu %P" "$BUILD/benchmarks/bench_tokenizer" --train "$WORK/wiki-all.txt" \
  --vocab-size 30000 --out "$WORK/cram/vocab.txt"
echo "== encoding (in memory, all cores), HF's vocabulary + the BERT specials"
(printf '[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n'; cat "$WORK/hf/vocab.txt") > "$WORK/vocab-sp.txt"
$HF time-encode --vocab "$WORK/vocab-sp.txt" --input "$WORK/wiki-all.txt"
"$BUILD/benchmarks/bench_tokenizer" --encode "$WORK/wiki-all.txt" --vocab "$WORK/vocab-sp.txt"
