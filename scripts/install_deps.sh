#!/usr/bin/env bash
# Installs the Debian packages cram builds and tests with (docs/dependencies.md says why each one).
# Needs root (or sudo). Safe to run again: apt skips what is installed.
set -euo pipefail
packages=(
  g++ cmake ninja-build pkg-config zstd        # toolchain; zstd to read the shared corpus by hand
  nlohmann-json3-dev                            # JSON: safetensors headers, training state, metrics
  libutf8proc-dev                               # Unicode properties for BERT normalisation
  libzstd-dev                                   # streaming .jsonl.zst corpora
  libcli11-dev                                  # the app's command line
  libopenblas-dev                               # the CPU backend's fp32 GEMMs (cram::blas)
  libopenmpi-dev openmpi-bin                    # data-parallel training under mpirun (cram::mpi)
  doctest-dev                                   # tests
  libbenchmark-dev                              # benchmarks
  libboost-context-dev                          # the emulated CUDA device: its threads are fibers
  python3                                       # the end-to-end test reads metrics.jsonl and state.json
  xxhash                                        # tests: xxhsum, the reference for cram's XXH64 checksums
)
sudo_cmd=""
if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
