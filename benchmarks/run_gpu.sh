#!/usr/bin/env bash
# The whole GPU run of cram's CUDA backend, in one call on the device machine (see docs/cuda.md):
#   configure + build (sm_90, -j16) -> cram_tests_cuda (parity suite) -> compute-sanitizer memcheck and
#   racecheck on a small test subset -> bench_cuda_kernels + bench_cuda_train -> the app's own training of
#   crammed_bert in bf16 and in fp16 with loss scaling (when a prepared dataset was carried: gpu-data/) ->
#   the PyTorch peer (benchmarks/pytorch/crammed_bert.py) on the same GPU -> a results log and JSON summary.
# Writes full logs to $OUT (default ./gpu-run-out) and benchmarks/results/<date>-<gpu>.{log,json}.
#
#   usage (device tool, carry [".deps"]):  bash benchmarks/run_gpu.sh
#   env: CRAM_ARCH (default 90), CRAM_JOBS (16), CRAM_SKIP_TORCH=1, CRAM_BENCH_MIN_TIME (seconds, 1),
#        CRAM_STAGES (default "build tests sanitize bench app torch"; a device command is limited to 10 minutes,
#        so split the run over two calls on a warm machine, e.g. "build tests sanitize" then "build bench
#        app torch": the build directory stays on the machine between calls and the second build is a no-op),
#        CRAM_GPU_DATA (default gpu-data: a 32768-token dataset prepared here and carried, see docs/cuda.md),
#        CRAM_APP_BUDGET (each app run's budget, default 60s)
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
OUT=${OUT:-$root/gpu-run-out}
mkdir -p "$OUT"
arch=${CRAM_ARCH:-90}
jobs=${CRAM_JOBS:-16}
build=$root/build-gpu
log=$OUT/run.log
status=0
step() { echo; echo "=== $* ($(date -u +%H:%M:%S))" | tee -a "$log"; }
run() {  # run a step, keep going on failure, remember it
    "$@" 2>&1 | tee -a "$log"
    local rc=${PIPESTATUS[0]}
    [ "$rc" -eq 0 ] || { echo "!!! step failed (rc=$rc): $*" | tee -a "$log"; status=1; }
    return "$rc"
}

# Dependencies staged by ../shared/device/stage-deps.sh (doctest, Google Benchmark, ...)
if [ -d "$root/.deps/usr" ]; then
    export CMAKE_PREFIX_PATH=$root/.deps/usr${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}
    export LD_LIBRARY_PATH=$root/.deps/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi
export PATH=/usr/local/cuda/bin:$PATH

step "machine"
gpu_name=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
driver=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -1)
cuda_version=$(nvcc --version 2>/dev/null | sed -n 's/.*release \([0-9.]*\).*/\1/p')
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git status --porcelain 2>/dev/null | grep -v '^??' | wc -l)
date_utc=$(date -u +%Y-%m-%dT%H:%M:%SZ)
{ nvidia-smi; echo "gpu=$gpu_name driver=$driver cuda=$cuda_version commit=$commit dirty_files=$dirty date=$date_utc"; } \
    2>&1 | tee -a "$log"

stages=" ${CRAM_STAGES:-build tests sanitize bench app torch} "
want() { [[ "$stages" == *" $1 "* ]]; }
build_s=0; tests_rc=-1; tests_s=0

if want build; then
step "configure + build (sm_$arch, -j$jobs)"
t0=$(date +%s)
run cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCRAM_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES="$arch" -DCRAM_BUILD_EXAMPLES=ON -DCRAM_BUILD_TESTS=ON -DCRAM_BUILD_BENCHMARKS=ON
run cmake --build "$build" -j"$jobs" --target cram_tests_cuda bench_cuda_kernels bench_cuda_train
build_s=$(( $(date +%s) - t0 ))
echo "build seconds: $build_s" | tee -a "$log"
fi

if want tests; then
step "parity tests (cram_tests_cuda)"
t0=$(date +%s)
run "$build/tests/cram_tests_cuda" --duration=true
tests_rc=$?
tests_s=$(( $(date +%s) - t0 ))
if [ -x "$build/tests/cram_tests_model" ] || cmake --build "$build" -j"$jobs" --target cram_tests_model >/dev/null 2>&1; then
    step "CPU model tests on the same machine"
    run "$build/tests/cram_tests_model"
fi
fi

if want sanitize; then
step "compute-sanitizer memcheck + racecheck (small subset)"
subset='*layernorm*,*attention*,*elementwise*,*activations*,*masking*,*losses*,*gather*'
if command -v compute-sanitizer >/dev/null; then
    run compute-sanitizer --tool memcheck --error-exitcode 9 "$build/tests/cram_tests_cuda" -tc="$subset" \
        > "$OUT/memcheck.log" 2>&1
    tail -5 "$OUT/memcheck.log" | tee -a "$log"
    run compute-sanitizer --tool racecheck --error-exitcode 9 "$build/tests/cram_tests_cuda" \
        -tc='*layernorm*,*attention*,*losses*' > "$OUT/racecheck.log" 2>&1
    tail -5 "$OUT/racecheck.log" | tee -a "$log"
else
    echo "compute-sanitizer not found" | tee -a "$log"
    status=1
fi
fi

if want bench; then
step "kernel benchmarks"
min_time=${CRAM_BENCH_MIN_TIME:-1}
run "$build/benchmarks/bench_cuda_kernels" --benchmark_min_time="${min_time}s" \
    --benchmark_out="$OUT/bench_kernels.json" --benchmark_out_format=json
step "training-step benchmarks (crammed_bert)"
run "$build/benchmarks/bench_cuda_train" --benchmark_out="$OUT/bench_train.json" --benchmark_out_format=json
fi

if want app; then
step "the app: crammed_bert trained in bf16, then in fp16 with dynamic loss scaling"
data_dir=${CRAM_GPU_DATA:-$root/gpu-data}
if [ -f "$data_dir/summary.json" ]; then
    run cmake --build "$build" -j"$jobs" --target cram_bert_24h
    runs=$root/gpu-app-runs  # checkpoints stay on the machine: $OUT brings back at most 8 files
    rm -rf "$runs"
    for p in bf16 fp16; do
        run "$build/examples/cram_bert_24h/cram_bert_24h" train --data "$data_dir" --out "$runs/$p" \
            --budget "${CRAM_APP_BUDGET:-60s}" --preset crammed_bert --device cuda --precision "$p" \
            --checkpoint-every 0 --val-batches 8
    done
    python3 - "$runs" "$OUT/app.json" <<'PY' 2>&1 | tee -a "$log"
import json, sys
runs, dest = sys.argv[1:]
out = {}
for p in ("bf16", "fp16"):
    try:
        lines = [json.loads(l) for l in open(f"{runs}/{p}/metrics.jsonl")]
    except OSError as e:
        out[p] = {"error": str(e)}
        continue
    steps = [l for l in lines if "event" not in l]
    s = ([l for l in lines if l.get("event") == "summary"] or [{}])[-1]
    out[p] = {k: s.get(k) for k in ("steps", "skipped_steps", "tokens", "tokens_per_s", "mfu", "first_loss",
                                     "final_loss", "val_loss", "loss_scaler")}
    out[p]["overflow_steps"] = sum(1 for l in steps if l.get("overflow"))
json.dump(out, open(dest, "w"), indent=2)
for p, r in out.items():
    print(p, json.dumps(r))
PY
else
    echo "no dataset at $data_dir: prepare one here and carry it (docs/cuda.md, 'The GPU run')" | tee -a "$log"
fi
fi

if want torch && [ "${CRAM_SKIP_TORCH:-0}" != 1 ]; then
    step "PyTorch peer (bf16 autocast, torch.compile, SDPA)"
    python3 "$root/benchmarks/pytorch/crammed_bert.py" --micro-batches 64 128 256 512 --steps 20 \
        > "$OUT/pytorch.json" 2> "$OUT/pytorch.stderr"
    rc=$?
    tail -20 "$OUT/pytorch.stderr" | tee -a "$log"
    cat "$OUT/pytorch.json" | tee -a "$log"
    [ $rc -eq 0 ] || { echo "!!! PyTorch peer failed (rc=$rc)" | tee -a "$log"; status=1; }
fi

step "summary"
slug=$(echo "${gpu_name:-unknown-gpu}" | tr 'A-Z ' 'a-z-' | tr -cd 'a-z0-9-')
stamp=$(date -u +%Y-%m-%d)
result_base="$root/benchmarks/results/$stamp-$slug"
mkdir -p "$root/benchmarks/results"
python3 - "$OUT" "$result_base.json" "$gpu_name" "$driver" "$cuda_version" "$commit" "$date_utc" "$build_s" \
    "$tests_rc" "$tests_s" <<'PY' 2>&1 | tee -a "$log"
import json, os, sys
out, dest, gpu, driver, cuda, commit, date, build_s, tests_rc, tests_s = sys.argv[1:]
def load(name):
    try:
        with open(os.path.join(out, name)) as f:
            return json.load(f)
    except Exception as e:
        return {"error": str(e)}
kern, train, torch_ = load("bench_kernels.json"), load("bench_train.json"), load("pytorch.json")
app = load("app.json")
summary = {"gpu": gpu, "driver": driver, "cuda": cuda, "commit": commit, "date": date,
           "build_seconds": int(build_s), "cuda_tests_exit_code": int(tests_rc), "cuda_tests_seconds": int(tests_s),
           "cram_train": [], "cram_kernels_us": {}, "pytorch": torch_, "app_bf16_vs_fp16": app}
for b in train.get("benchmarks", []):
    if "micro_step" in b.get("name", "") and "tokens/s" in b:
        summary["cram_train"].append({"name": b["name"], "micro_batch": b.get("micro_batch"),
                                      "tokens_per_s": b["tokens/s"], "mfu": b.get("MFU"),
                                      "ms_per_micro_step": b.get("real_time")})
    elif "optimizer" in b.get("name", ""):
        summary["cram_optimizer_step_ms"] = b.get("real_time")
for b in kern.get("benchmarks", []):
    if "real_time" in b:
        summary["cram_kernels_us"][b["name"]] = b["real_time"]
best_cram = max((r["tokens_per_s"] for r in summary["cram_train"]), default=None)
best_torch = max((r.get("tokens_per_s", 0) for r in torch_.get("micro_steps", [])), default=None)
summary["best_cram_tokens_per_s"] = best_cram
summary["best_pytorch_tokens_per_s"] = best_torch
if best_cram and best_torch:
    summary["speedup_vs_pytorch"] = best_cram / best_torch
with open(dest, "w") as f:
    json.dump(summary, f, indent=2)
print(f"{'config':<44}{'tokens/s':>14}{'MFU':>8}")
for r in summary["cram_train"]:
    print(f"{'cram ' + r['name']:<44}{r['tokens_per_s']:>14.0f}{(r['mfu'] or 0) * 100:>7.1f}%")
for r in torch_.get("micro_steps", []):
    if "tokens_per_s" in r:
        print(f"{'pytorch micro-batch ' + str(r['micro_batch']):<44}{r['tokens_per_s']:>14.0f}{r['mfu'] * 100:>7.1f}%")
print("speedup vs pytorch:", summary.get("speedup_vs_pytorch"))
PY
cp "$log" "$result_base.log"
cp "$result_base.json" "$result_base.log" "$OUT/" 2>/dev/null
echo "results: $result_base.{log,json}; overall status $status" | tee -a "$log"
exit $status
