#!/usr/bin/env bash
# Builds the binaries of the GPU run with the CMake preset gpu-portable (sm_90 SASS + PTX, x86-64-v3 host code,
# no OpenBLAS or MPI) and stages them, with the shared libraries they need that the GPU machine lacks, into one
# folder to carry (docs/cuda.md, "The GPU run").
#
#   usage: benchmarks/gpu/build_portable.sh [options] BUILD_DIR STAGE_DIR
#     --no-build         stage from BUILD_DIR as it is (no configure, no build)
#     --allow-cpu-build  accept a BUILD_DIR that is not a gpu-portable CUDA build (to test the staging here)
#     --targets "A B"    binaries to stage, paths relative to BUILD_DIR (default: the four of the GPU run)
#     --pack             pack bin/ and lib/ into STAGE_DIR/payload.tar.xz (run_gpu.sh unpacks it there)
#   env: CRAM_BUILD_JOBS (default: the number of cores; use 1 on a shared machine)
#
# STAGE_DIR gets bin/ (stripped copies), lib/ (libraries from ldd that the device lacks: not libc, libm, libgcc_s,
# libstdc++, the loader, nor the CUDA driver, runtime or cuBLAS/cuBLASLt, which the device has), lib/fallback/
# (this machine's libstdc++ and libgcc_s, used there only if the device's are older) and manifest.txt: the
# commit, the build settings, each file's size and sha256, and the newest GLIBC/GLIBCXX versions the binaries
# need. STAGE_DIR is replaced.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
die() { echo "build_portable.sh: $*" >&2; exit 1; }

build=1 allow_cpu=0 pack=0
targets="tests/cram_tests_cuda benchmarks/bench_cuda_kernels benchmarks/bench_cuda_train examples/cram_bert_24h/cram_bert_24h"
while [ $# -gt 0 ]; do
    case $1 in
        --no-build) build=0 ;;
        --allow-cpu-build) allow_cpu=1 ;;
        --pack) pack=1 ;;
        --targets) [ $# -ge 2 ] || die "--targets needs a value"; targets=$2; shift ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        -*) die "unknown option $1 (see --help)" ;;
        *) break ;;
    esac
    shift
done
[ $# -eq 2 ] || die "usage: build_portable.sh [options] BUILD_DIR STAGE_DIR (see --help)"
bdir=$(mkdir -p "$1" && cd "$1" && pwd) || die "cannot create BUILD_DIR $1"
stage=$2
case $stage in /*) ;; *) stage=$PWD/$stage ;; esac
if [ "$stage" = / ] || [ "$stage" = "$root" ]; then die "refusing STAGE_DIR $stage"; fi

# ---- build -------------------------------------------------------------------------------------------------
if [ $build = 1 ]; then
    jobs=${CRAM_BUILD_JOBS:-$(nproc)}
    echo "== configure: cmake --preset gpu-portable -B $bdir"
    (cd "$root" && cmake --preset gpu-portable -B "$bdir") || die "configure failed (missing packages: scripts/install_deps.sh)"
    names=""
    for t in $targets; do names="$names $(basename "$t")"; done
    echo "== build ($jobs jobs):$names"
    # shellcheck disable=SC2086  # one word per target
    cmake --build "$bdir" -j "$jobs" --target $names || die "build failed in $bdir"
fi

# ---- is it the portable CUDA build? --------------------------------------------------------------------------
cache=$bdir/CMakeCache.txt
[ -f "$cache" ] || die "no $cache: not a CMake build directory"
cache_get() { sed -n "s/^$1:[A-Z]*=//p" "$cache" | head -1; }
arch=$(cache_get CMAKE_CUDA_ARCHITECTURES)
problems=""
[ "$(cache_get CRAM_CUDA)" = ON ] || problems="$problems CRAM_CUDA is '$(cache_get CRAM_CUDA)', not ON;"
[[ "$arch" == *90-real* && "$arch" == *90-virtual* ]] || problems="$problems CMAKE_CUDA_ARCHITECTURES is '$arch', not 90-real;90-virtual;"
[ "$(cache_get CRAM_NATIVE)" = OFF ] || problems="$problems CRAM_NATIVE is not OFF (-march=native);"
grep -q -- '-march=native' "$bdir/build.ninja" 2>/dev/null && problems="$problems build.ninja has -march=native;"
if [ -n "$problems" ]; then
    [ $allow_cpu = 1 ] || die "$bdir is not a gpu-portable build:$problems (configure it with --preset gpu-portable)"
    echo "warning: not a gpu-portable build (--allow-cpu-build):$problems"
fi

# ---- stage ----------------------------------------------------------------------------------------------------
# Libraries the device has: glibc's, the compiler runtime (newer there; lib/fallback otherwise), the CUDA driver,
# runtime and math libraries (the device's CUDA toolkit and driver).
on_device() {
    case $1 in
        linux-vdso.so*|ld-linux*|libc.so*|libm.so*|libpthread.so*|libdl.so*|librt.so*|libresolv.so*) return 0 ;;
        libstdc++.so*|libgcc_s.so*) return 0 ;;
        libcuda.so*|libcudart.so*|libcublas.so*|libcublasLt.so*|libnvidia-*|libnvrtc*|libnvJitLink*) return 0 ;;
    esac
    return 1
}
rm -rf "$stage"
mkdir -p "$stage/bin" "$stage/lib/fallback" || die "cannot create $stage"
missing=""
for t in $targets; do
    src=$bdir/$t
    [ -x "$src" ] || die "not built: $src"
    cp "$src" "$stage/bin/" || die "cannot copy $src"
    strip --strip-unneeded "$stage/bin/$(basename "$t")" 2>/dev/null || echo "warning: strip failed on $t (kept unstripped)"
    while read -r name _ path _; do
        [ -n "$name" ] || continue
        if [ "$path" = "not" ]; then missing="$missing $name (needed by $t)"; continue; fi
        on_device "$name" && continue
        [ -f "$stage/lib/$name" ] || cp -L "$path" "$stage/lib/$name" || die "cannot copy $path"
    done < <(ldd "$src" | awk '/=>/ {print $1, $2, $3}')
done
[ -z "$missing" ] || die "ldd cannot resolve, here:$missing"
# staged libraries may need others (e.g. libgfortran behind OpenBLAS): one more pass over lib/
for l in "$stage"/lib/*.so*; do
    [ -f "$l" ] || continue
    while read -r name _ path _; do
        on_device "$name" && continue
        [ -f "$stage/lib/$name" ] || cp -L "$path" "$stage/lib/$name"
    done < <(ldd "$l" 2>/dev/null | awk '/=>/ && $3 != "not" {print $1, $2, $3}')
done
for n in libstdc++.so.6 libgcc_s.so.1; do
    p=$(ldconfig -p | awk -v n="$n" '$1 == n && /x86-64/ {print $NF; exit}')
    [ -n "$p" ] && cp -L "$p" "$stage/lib/fallback/$n"
done

# ---- manifest: what is carried, how large, what it needs -----------------------------------------------------
max_version() {  # max_version PREFIX FILES...: the newest PREFIX_x.y.z symbol version the files need
    local pfx=$1; shift
    objdump -T "$@" 2>/dev/null | grep -E -o "\b${pfx}_[0-9]+(\.[0-9]+)*\b" | sed "s/^${pfx}_//" | sort -u -V | tail -1
}
{
    echo "cram GPU binaries: commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)$( [ -n "$(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null)" ] && echo ' (+ uncommitted changes)'), built $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(sed -n 's/^PRETTY_NAME=//p' /etc/os-release 2>/dev/null | tr -d '"') in $bdir"
    echo "settings: CRAM_CUDA=$(cache_get CRAM_CUDA) CMAKE_CUDA_ARCHITECTURES=$arch CRAM_NATIVE=$(cache_get CRAM_NATIVE) CMAKE_CXX_FLAGS=$(cache_get CMAKE_CXX_FLAGS) CRAM_BLAS=$(cache_get CRAM_BLAS) CRAM_MPI=$(cache_get CRAM_MPI)${problems:+ NOT PORTABLE:$problems}"
    echo "needs: GLIBC >= $(max_version GLIBC "$stage"/bin/* "$stage"/lib/*.so*), GLIBCXX >= $(max_version GLIBCXX "$stage"/bin/* "$stage"/lib/*.so*) (this machine: glibc $(ldd --version | head -1 | awk '{print $NF}'))"
    cuda_ver=$(sed -n 's/^set(CMAKE_CUDA_COMPILER_VERSION "\(.*\)")/\1/p' "$bdir"/CMakeFiles/*/CMakeCUDACompiler.cmake 2>/dev/null | head -1)
    echo "from the device: libcudart, libcublas, libcublasLt (built with CUDA ${cuda_ver:-?}), the driver"
    echo "files (bytes, sha256):"
    (cd "$stage" && find bin lib -type f | sort | while read -r f; do
        printf '  %10d  %s  %s\n' "$(stat -c %s "$f")" "$(sha256sum "$f" | cut -c1-16)" "$f"
    done)
    echo "total: $(du -sb --apparent-size "$stage"/bin "$stage"/lib | awk '{s += $1} END {print s}') bytes"
} > "$stage/manifest.txt"

if [ $pack = 1 ]; then
    echo "== packing bin/ and lib/ into $stage/payload.tar.xz"
    (cd "$stage" && XZ_OPT=-6 tar -cJf payload.tar.xz bin lib) || die "packing failed"
    rm -rf "${stage:?}/bin" "${stage:?}/lib"
    echo "packed: $(stat -c %s "$stage/payload.tar.xz") bytes (payload.tar.xz; run_gpu.sh unpacks it on the device)" >> "$stage/manifest.txt"
fi
cat "$stage/manifest.txt"
echo "staged: $stage ($(du -sb "$stage" | cut -f1) bytes on disk)"
