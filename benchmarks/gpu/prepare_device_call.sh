#!/usr/bin/env bash
# Everything the GPU run needs, prepared here, then the one device call to make (docs/cuda.md, "The GPU run").
#
#   usage: benchmarks/gpu/prepare_device_call.sh [--build-dir DIR] [--skip-build] [--app PATH] [--shared DIR]
#                                                [--budget SECONDS]
#     --build-dir DIR  the gpu-portable build (default build-gpu-portable)
#     --skip-build     keep the staged .gpu-bin/ as it is (it must exist)
#     --app PATH       the cram_bert_24h that prepares the dataset (default: the build's; any build works)
#     --shared DIR     the shared data (default ../shared)
#     --budget S       the run's time budget (default 540 s, under the device's 600 s per command)
#   env: CRAM_BUILD_JOBS (build_portable.sh's jobs)
#
# 1. builds the four binaries with the preset gpu-portable and stages them, packed, with the libraries the
#    device lacks, into .gpu-bin/ (benchmarks/gpu/build_portable.sh; its manifest.txt lists each file's size);
# 2. prepares gpu-data/: the crammed_bert dataset (32768-token vocabulary, 3000 Wikipedia documents) and a copy
#    of GLUE RTE (gpu-data/glue/RTE), since ../shared does not travel;
# 3. measures what the call sends: the tracked and untracked-not-ignored files of the working tree plus the
#    carried folders, against the device's 64 MiB;
# 4. prints the device call: command, carry, timeout_s.
# The Debian packages the build needs are installed here (scripts/install_deps.sh); nothing is staged with
# ../shared/device/stage-deps.sh, because nothing is built on the device: .deps/ is not carried.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root" || exit 1
die() { echo "prepare_device_call.sh: $*" >&2; exit 1; }

bdir=$root/build-gpu-portable skip_build=0 app="" shared=$root/../shared budget=540 allow_cpu=0
while [ $# -gt 0 ]; do
    case $1 in
        --build-dir) bdir=$2; shift ;;
        --skip-build) skip_build=1 ;;
        --app) app=$2; shift ;;
        --shared) shared=$2; shift ;;
        --budget) budget=$2; shift ;;
        --allow-cpu-build) allow_cpu=1 ;;  # with --skip-build: a test .gpu-bin staged from a CPU build
        -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
    shift
done
if ! [[ "$budget" =~ ^[0-9]+$ ]] || [ "$budget" -gt 585 ]; then
    die "--budget must be whole seconds, at most 585 (the call's timeout is 600)"
fi
limit=$((64 * 1024 * 1024))

# ---- 1. binaries --------------------------------------------------------------------------------------------
if [ $skip_build = 0 ]; then
    missing=""
    for p in doctest-dev libbenchmark-dev nlohmann-json3-dev libutf8proc-dev libzstd-dev libcli11-dev; do
        dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
    done
    [ -z "$missing" ] || die "packages missing here:$missing (bash scripts/install_deps.sh)"
    command -v /usr/local/cuda/bin/nvcc >/dev/null || command -v nvcc >/dev/null || die "no nvcc here (/usr/local/cuda/bin)"
    bash "$root/benchmarks/gpu/build_portable.sh" --pack "$bdir" "$root/.gpu-bin" || die "build or staging failed"
else
    [ -f "$root/.gpu-bin/manifest.txt" ] || die "--skip-build: no .gpu-bin/manifest.txt (run without --skip-build)"
    echo "== keeping .gpu-bin/ (--skip-build):"
    head -2 "$root/.gpu-bin/manifest.txt"
    if grep -q 'NOT PORTABLE' "$root/.gpu-bin/manifest.txt" && [ $allow_cpu = 0 ]; then
        die ".gpu-bin/ was not staged from a gpu-portable build (its manifest says NOT PORTABLE): rebuild without --skip-build"
    fi
fi

# ---- 2. data ------------------------------------------------------------------------------------------------
data=$root/gpu-data
corpus=$shared/data/wiki/wiki-00.jsonl.zst
if [ -f "$data/summary.json" ] && grep -q '"vocab_size": *32768' "$data/summary.json"; then
    echo "== gpu-data/: kept (a 32768-token dataset is there; delete it to prepare it again)"
else
    [ -n "$app" ] || app=$bdir/examples/cram_bert_24h/cram_bert_24h
    [ -x "$app" ] || die "no cram_bert_24h at $app to prepare the dataset (--app PATH: any build of it works)"
    [ -f "$corpus" ] || die "no corpus at $corpus (--shared DIR)"
    rm -rf "$data"
    echo "== preparing gpu-data/ from $corpus"
    "$app" prepare --corpus "$corpus" --out "$data" --vocab-size 32768 --max-docs 3000 --quiet > /dev/null ||
        die "prepare failed"
fi
rte=$shared/data/glue/RTE
if [ ! -f "$data/glue/RTE/dev.tsv" ]; then
    if [ ! -f "$rte/train.tsv" ] || [ ! -f "$rte/dev.tsv" ]; then die "no GLUE RTE at $rte (train.tsv, dev.tsv)"; fi
    mkdir -p "$data/glue/RTE"
    cp "$rte/train.tsv" "$rte/dev.tsv" "$data/glue/RTE/" || die "cannot copy $rte"
fi
rm -f "$data/.cram-lock"

# ---- 3. what travels -------------------------------------------------------------------------------------------
for p in .gpu-bin gpu-data; do
    git check-ignore -q "$p" || die "$p is not ignored by git: it would travel twice (.gitignore)"
done
tree=$(git ls-files -z --cached --others --exclude-standard | xargs -0 stat -c %s 2>/dev/null | awk '{s += $1} END {print s + 0}')
bin_b=$(du -sb --apparent-size .gpu-bin | cut -f1)
data_b=$(du -sb --apparent-size gpu-data | cut -f1)
total=$((tree + bin_b + data_b))
mib() { awk -v b="$1" 'BEGIN {printf "%.1f MiB", b / 1048576}'; }
echo
echo "== what the call sends (limit 64 MiB):"
printf '  %-44s %12d bytes  %s\n' "working tree (tracked + untracked, not ignored)" "$tree" "$(mib "$tree")"
printf '  %-44s %12d bytes  %s\n' ".gpu-bin/ (binaries and libraries, packed)" "$bin_b" "$(mib "$bin_b")"
printf '  %-44s %12d bytes  %s\n' "gpu-data/ (dataset + glue/RTE)" "$data_b" "$(mib "$data_b")"
printf '  %-44s %12d bytes  %s\n' "total" "$total" "$(mib "$total")"
[ "$total" -le "$limit" ] || die "$(mib "$total") is over the 64 MiB a call may send: trim gpu-data (--max-docs) or the binaries"

# ---- 4. the call ------------------------------------------------------------------------------------------------
cmd="CRAM_GPU_BUDGET=$budget bash benchmarks/run_gpu.sh"
[ ${#cmd} -le 2000 ] || die "the command is over 2000 characters"
echo
echo "== the device call (one call; the run ends by itself inside ${budget}s):"
echo "  run(command=\"$cmd\", carry=[\".gpu-bin\", \"gpu-data\"], timeout_s=600)"
echo "Then give_back. What comes back (files_at): run.log, summary.json, bench_train.json, bench_kernels.json,"
echo "peer.jsonl, app_metrics.jsonl, glue_report.json (docs/cuda.md, 'The GPU run')."
