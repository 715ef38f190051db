#!/usr/bin/env bash
# Which BLAS for the CPU backend's fp32 GEMMs: OpenBLAS against BLIS, one thread each (how cram calls them),
# on the shapes cram's models multiply. Installs both from Debian, builds sgemm_shapes.cpp against each,
# runs them one after the other and prints both tables. docs/dependencies.md has the numbers and the choice.
#   usage: bash benchmarks/blas/compare_blas.sh [out-dir, default /tmp/cram-blas]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out=${1:-/tmp/cram-blas}
mkdir -p "$out"
sudo_cmd=""
if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
for p in libopenblas-dev libblis-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "$p"
done
arch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)
openblas_dir=$(dirname "$(find /usr/lib/"$arch" -path '*openblas*' -name 'libopenblas.so.0' | head -1)")
blis_dir=$(dirname "$(find /usr/lib/"$arch" -path '*blis*' -name 'libblis.so.4' | head -1)")
blis_inc=$(dirname "$(find /usr/include -name blis.h | head -1)")
g++ -O2 -std=c++20 -I/usr/include/"$arch"/openblas-pthread "$here/sgemm_shapes.cpp" -o "$out/sgemm_openblas" \
  "$openblas_dir/libopenblas.so.0"
g++ -O2 -std=c++20 -I"$blis_inc" "$here/sgemm_shapes.cpp" -o "$out/sgemm_blis" "$blis_dir/libblis.so.4"
echo "OpenBLAS ($openblas_dir), one thread:"
OPENBLAS_NUM_THREADS=1 "$out/sgemm_openblas" | tee "$out/openblas.json"
echo "BLIS ($blis_dir), one thread:"
BLIS_NUM_THREADS=1 OMP_NUM_THREADS=1 "$out/sgemm_blis" | tee "$out/blis.json"
