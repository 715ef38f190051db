#!/usr/bin/env bash
# The test command (README and CI): installs dependencies, configures (CUDA targets too when nvcc is
# present: architectures 75 and 90, since there is no GPU to detect; 80 gave its build time to the emulated device's
# suites, docs/cuda.md), builds everything and runs ctest.
#   usage: bash scripts/test.sh [build-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
bash scripts/install_deps.sh
cuda_args=()
if command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ]; then
  cuda_args=(-DCRAM_CUDA=ON "-DCMAKE_CUDA_ARCHITECTURES=75;90")
else
  echo "no nvcc found: building the CPU backend only"
  cuda_args=(-DCRAM_CUDA=OFF)
fi
jobs=$(nproc)
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release "${cuda_args[@]}"
time cmake --build "$build" -j "$jobs"
# the exported tokenizer.json is checked by the npm package `tokenizers` (the Rust library): fetched from npm
# when npm is there (CI allows npm), else that one test is skipped, saying so
if [ -z "${CRAM_NODE_MODULES:-}" ] && command -v npm > /dev/null 2>&1; then
  if timeout 300 npm install --silent --no-audit --no-fund --prefix "$build/npm" tokenizers@0.23.2 > /dev/null 2>&1; then
    CRAM_NODE_MODULES="$(cd "$build/npm/node_modules" && pwd)"
    export CRAM_NODE_MODULES
  else
    echo "note: npm could not install 'tokenizers': app_hf_tokenizer will be skipped"
  fi
fi
# a hung test fails after 10 minutes instead of holding CI to its limit (the slowest suite takes ~1 minute)
ctest --test-dir "$build" --output-on-failure --timeout 600 -j "$jobs"
