#!/usr/bin/env bash
# The README's main job: on a fresh Debian machine with no GPU, build cram_bert_24h and run the whole
# pipeline (prepare -> budgeted training -> summary) on real English prose that Debian ships:
#   - jargon-text:         the Jargon File 4.4.7 (1.7 MB of text; public domain)
#   - debian-reference-en: the Debian Reference, English plain text (0.9 MB; GPL-2+)
# with the crammed_tiny preset (vocabulary 8192) on the CPU.
#   usage: bash scripts/demo.sh [budget, default 5m]      (env: BUILD=build-demo OUT=demo-run THREADS=0)
set -euo pipefail
cd "$(dirname "$0")/.."
budget=${1:-5m}
build=${BUILD:-build-demo}
out=${OUT:-demo-run}
threads=${THREADS:-0}

# 1. packages: the build dependencies and the two text packages
bash scripts/install_deps.sh
sudo_cmd=""
if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
for p in jargon-text debian-reference-en; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    export DEBIAN_FRONTEND=noninteractive
    $sudo_cmd apt-get update -qq
    $sudo_cmd apt-get install -y -qq --no-install-recommends jargon-text debian-reference-en
    break
  fi
done

# 2. build the app only (Release, CPU backend)
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCRAM_CUDA=OFF \
  -DCRAM_BUILD_TESTS=OFF -DCRAM_BUILD_BENCHMARKS=OFF
cmake --build "$build" -j "$(nproc)" --target cram_bert_24h
app="$build/examples/cram_bert_24h/cram_bert_24h"

# 3. the corpus: blank-line separated paragraphs become documents
if [ -e "$out" ]; then
  echo "demo: $out exists; remove it (or set OUT=another-dir) to run the demo again" >&2
  exit 1
fi
mkdir -p "$out/corpus"
zcat /usr/share/doc/jargon-text/jargon.txt.gz > "$out/corpus/jargon.txt"
zcat /usr/share/debian-reference/debian-reference.en.txt.gz > "$out/corpus/debian-reference.txt"

# 4. prepare + train in one command; the budget counts training only (preparation is preprocessing). The
#    batch target and learning rate follow the budget (docs/training.md, "The budget-scaled recipe").
"$app" run --corpus "$out/corpus/jargon.txt" "$out/corpus/debian-reference.txt" --format text-blocks \
  --out "$out" --budget "$budget" --preset crammed_tiny --device cpu --checkpoint-every 2m --threads "$threads"
echo "demo: metrics in $out/run/metrics.jsonl, loss plot in $out/run/loss.svg"
