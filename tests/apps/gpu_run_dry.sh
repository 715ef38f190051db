#!/usr/bin/env bash
# shellcheck disable=SC2015  # ok() always succeeds: "test && ok || bad" is if-then-else here
# The GPU run script without a GPU (benchmarks/run_gpu.sh, docs/cuda.md "The GPU run"), in seconds:
#   1. no nvidia-smi, and an nvidia-smi that cannot reach a driver: exit 2 at once, naming why, and a
#      summary.json that says so (no_gpu) and nothing else;
#   2. the failure classifier (benchmarks/gpu/classify.sh) on canned outputs: a doctest parity failure, a
#      missing library, a GLIBCXX version, cuBLASLt's NOT_SUPPORTED, sanitizer reports, a timeout, a SKIPPED
#      line, a benchmark error, a crash;
#   3. the whole pipeline against a fake GPU and fake binaries: a skipped GPU test case fails the parity step, a
#      benchmark's error_occurred fails its step, a good training benchmark gives tokens/s and MFU, a step that
#      does not fit the budget is skipped for time, and the run does not claim success.
#   4. summarize.py's old/new kernel table on canned benchmark JSON: each new kernel's time beside its
#      predecessor's, the speedups worked out by hand.
# usage: gpu_run_dry.sh APP SHARED_DATA WORK_DIR (the first two are unused: no binary and no data is needed)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=${3:-$(mktemp -d)}
rm -rf "$work"
mkdir -p "$work"
# shellcheck source=tests/apps/lib.sh
source "$here/lib.sh"
# shellcheck source=benchmarks/gpu/classify.sh
source "$root/benchmarks/gpu/classify.sh"
fails=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }
json_get() {  # json_get FILE PYTHON_EXPR_ON_d: prints the value (needs python3)
    python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}
have_python=0
command -v python3 >/dev/null 2>&1 && have_python=1

step "1. no GPU: exit 2 at once, naming why"
out=$work/nogpu
OUT=$out CRAM_NVIDIA_SMI=$work/no-such-nvidia-smi bash "$root/benchmarks/run_gpu.sh" > "$work/nogpu.txt" 2>&1
rc=$?
cat "$work/nogpu.txt"
[ "$rc" -eq 2 ] && ok "exit 2" || bad "expected exit 2 without nvidia-smi, got $rc"
grep -q 'no GPU found: nvidia-smi not found' "$work/nogpu.txt" && ok "names the missing nvidia-smi" ||
    bad "the output does not say 'no GPU found: nvidia-smi not found'"
[ -s "$out/summary.json" ] && [ -s "$out/run.log" ] && ok "summary.json and run.log written" || bad "no summary.json/run.log in $out"
[ "$(find "$out" -type f | wc -l)" -eq 2 ] && ok "two files in OUT" || bad "expected 2 files in $out: $(ls "$out")"
if [ $have_python = 1 ]; then
    [ "$(json_get "$out/summary.json" 'd["ok"], d["gpu_ran"], d["steps"][0]["failure_kind"], len(d["steps"])')" = \
      "(False, False, 'no_gpu', 1)" ] && ok "summary: ok false, gpu_ran false, one step, no_gpu" ||
        bad "summary.json: $(cat "$out/summary.json")"
    json_get "$out/summary.json" 'd["verdict"]' | grep -q 'no GPU found' && ok "verdict names no GPU" || bad "verdict"
else
    grep -q '"failure_kind": "no_gpu"' "$out/summary.json" && ok "summary: no_gpu" || bad "summary.json lacks no_gpu"
fi

mkdir -p "$work/fake-driverless"
printf '#!/bin/sh\necho "NVIDIA-SMI has failed because it couldn'"'"'t communicate with the NVIDIA driver."\nexit 9\n' \
    > "$work/fake-driverless/nvidia-smi"
chmod +x "$work/fake-driverless/nvidia-smi"
OUT=$work/nodriver CRAM_NVIDIA_SMI=$work/fake-driverless/nvidia-smi bash "$root/benchmarks/run_gpu.sh" \
    > "$work/nodriver.txt" 2>&1
rc=$?
[ "$rc" -eq 2 ] && grep -q "no GPU found: .*couldn't communicate with the NVIDIA driver" "$work/nodriver.txt" &&
    ok "an nvidia-smi without a driver: exit 2, its message quoted" || { cat "$work/nodriver.txt"; bad "driverless rc $rc"; }

step "2. the failure classifier on canned outputs"
expect_class() {  # expect_class RC KIND DETAIL_FRAGMENT <<< output
    local rc=$1 kind=$2 frag=$3 f
    f=$work/canned.txt
    cat > "$f"
    classify_output "$rc" "$f"
    if [ "$CLASS_KIND" = "$kind" ] && grep -qF -- "$frag" <<<"$CLASS_DETAIL"; then
        ok "$kind: $CLASS_DETAIL"
    else
        bad "expected $kind with '$frag', got '$CLASS_KIND': $CLASS_DETAIL"
    fi
}
expect_class 1 parity_failure 'cuda layernorm forward and backward<bf16>' <<'EOF'
[doctest] doctest version is "2.4.9"
===============================================================================
/src/tests/cuda/test_layernorm.cu:14:
TEST CASE:  cuda layernorm forward and backward<bf16>

/src/tests/cuda/cuda_test_support.hpp:146: ERROR: CHECK( r.ok ) is NOT correct!
  values: CHECK( false )
  logged: layernorm y: worst element 17 of 98304: got 1.5 ref 1.25 |diff| 0.25 (atol 0.01, rtol 0.01), |ref| 123

===============================================================================
[doctest] test cases: 40 | 39 passed | 1 failed | 0 skipped
[doctest] assertions: 900 | 899 passed | 1 failed |
[doctest] Status: FAILURE!
EOF
grep -q 'worst element 17 of 98304' <<<"$CLASS_DETAIL" && ok "parity detail carries the logged worst element" ||
    bad "parity detail lacks the worst element: $CLASS_DETAIL"
grep -q 'cuda_test_support.hpp:146' <<<"$CLASS_DETAIL" && ok "parity detail names file:line" || bad "no file:line"
expect_class 127 missing_library 'libbenchmark.so.1debian' <<'EOF'
/root/.gpu-bin/bin/bench_cuda_train: error while loading shared libraries: libbenchmark.so.1debian: cannot open shared object file: No such file or directory
EOF
expect_class 1 load_error 'GLIBCXX_3.4.32' <<'EOF'
./cram_tests_cuda: /lib/x86_64-linux-gnu/libstdc++.so.6: version `GLIBCXX_3.4.32' not found (required by ./cram_tests_cuda)
EOF
expect_class 1 cublaslt_no_algorithm 'CUBLAS_STATUS_NOT_SUPPORTED' <<'EOF'
cram error: include/cram/cuda/gemm.hpp:115: cuBLASLt found no algorithm for a GEMM (column-major m=768 n=16384 k=768): CUBLAS_STATUS_NOT_SUPPORTED; check the leading dimensions
EOF
expect_class 1 cublaslt_no_algorithm 'CUBLAS_STATUS_NOT_SUPPORTED' <<'EOF'
cuBLAS call failed: cublasLtMatmul(...): CUBLAS_STATUS_NOT_SUPPORTED (status 15)
EOF
expect_class 9 sanitizer_errors '3 error(s)' <<'EOF'
========= COMPUTE-SANITIZER
========= Invalid __global__ write of size 2 bytes
=========     at void cram::cuda::layernorm_forward_kernel<...>+0x1a0
========= ERROR SUMMARY: 3 errors
EOF
grep -q 'Invalid __global__ write' <<<"$CLASS_DETAIL" && ok "sanitizer detail quotes the first report" || bad "sanitizer detail: $CLASS_DETAIL"
expect_class 9 sanitizer_errors '2 error(s)' <<'EOF'
========= Error: Race reported between Write access at 0x4c0 in kernel_a and Read access at 0x510 in kernel_a
========= RACECHECK SUMMARY: 3 hazards displayed (2 errors, 1 warning)
EOF
expect_class 0 "" '' <<'EOF'
========= ERROR SUMMARY: 0 errors
[doctest] test cases: 5 | 5 passed | 0 failed | 35 skipped
EOF
expect_class 124 timeout 'cuda attention forward and backward' <<'EOF'
0.512000 s: cuda layernorm forward and backward<bf16>
1.204000 s: cuda attention forward and backward
EOF
CLASS_TIMED_OUT=1 expect_class 137 timeout 'rc 137' <<'EOF'
partial output
EOF
expect_class 0 gpu_skipped 'SKIPPED: no CUDA device' <<'EOF'
SKIPPED: no CUDA device (no CUDA-capable device is detected): run with --device cpu, or check the driver with nvidia-smi
[doctest] test cases: 40 | 40 passed | 0 failed | 0 skipped
EOF
expect_class 1 gpu_skipped 'CRAM_REQUIRE_GPU' <<'EOF'
/src/tests/cuda/cuda_test_support.hpp:60: FATAL ERROR: no usable GPU and CRAM_REQUIRE_GPU=1: no CUDA device
[doctest] test cases: 40 | 0 passed | 40 failed | 0 skipped
EOF
expect_class 1 cuda_error 'cudaErrorIllegalAddress' <<'EOF'
TEST CASE:  cuda attention forward and backward
/src/tests/cuda/test_attention.cu:17: ERROR: test case THREW exception: CUDA call failed: cudaStreamSynchronize(s): cudaErrorIllegalAddress (an illegal memory access was encountered)
EOF
expect_class 1 benchmark_error 'out of memory' <<'EOF'
BM_crammed_bert_micro_step/512/1/min_time:3.000/manual_time ERROR OCCURRED: 'decoder: out of memory'
EOF
expect_class 139 crash 'SIGSEGV' <<'EOF'
starting
EOF
expect_class 132 load_error 'x86-64-v3' <<'EOF'
Illegal instruction (core dumped)
EOF
expect_class 127 load_error 'missing binary' <<'EOF'
missing binary: /tmp/x/bin/bench_cuda_train (stage it here with benchmarks/gpu/prepare_device_call.sh and carry .gpu-bin)
EOF
expect_class 2 failed 'exit code 2' <<'EOF'
something else went wrong
EOF
[ "$(bash "$root/benchmarks/gpu/classify.sh" 127 <(echo 'x: error while loading shared libraries: libzstd.so.1: cannot open shared object file: No such file or directory') | cut -f1)" = missing_library ] &&
    ok "classify.sh as a command" || bad "classify.sh as a command"

step "3. the pipeline against a fake GPU and fake binaries"
fake=$work/fake
mkdir -p "$fake/smi" "$fake/gpu-bin/bin" "$fake/gpu-bin/lib"
cat > "$fake/smi/nvidia-smi" <<'EOF'
#!/bin/sh
case "$*" in
  -L) echo "GPU 0: NVIDIA H200 (UUID: GPU-00000000-fake)" ;;
  *query-gpu*) echo "NVIDIA H200, 580.159.04, 143771 MiB" ;;
  *) echo "fake nvidia-smi" ;;
esac
EOF
# the parity suite "passes" but a case skipped for want of a GPU: must fail as gpu_skipped
cat > "$fake/gpu-bin/bin/cram_tests_cuda" <<'EOF'
#!/bin/sh
echo "SKIPPED: no CUDA device (fake)"
echo "[doctest] test cases: 40 | 40 passed | 0 failed | 0 skipped"
EOF
# the kernel benchmark exits 0 with an error_occurred result (the GEMM ceiling): must fail
cat > "$fake/gpu-bin/bin/bench_cuda_kernels" <<'EOF'
#!/bin/sh
for a in "$@"; do case "$a" in --benchmark_out=*) out=${a#--benchmark_out=} ;; esac; done
cat > "$out" <<'J'
{"benchmarks": [{"name": "BM_gemm_ceiling/8192/manual_time", "run_type": "iteration", "error_occurred": true,
  "error_message": "SKIPPED: no usable CUDA device"}]}
J
EOF
# the training benchmark: good results at the planner's micro-batch (resolved to 256) and at 512
cat > "$fake/gpu-bin/bin/bench_cuda_train" <<'EOF'
#!/bin/sh
for a in "$@"; do case "$a" in --benchmark_out=*) out=${a#--benchmark_out=} ;; esac; done
cat > "$out" <<'J'
{"benchmarks": [
 {"name": "BM_crammed_bert_micro_step/0/0/min_time:3.000/manual_time", "real_time": 100.0, "micro_batch": 256,
  "tokens/s": 400000.0, "MFU": 0.25},
 {"name": "BM_crammed_bert_micro_step/512/1/min_time:3.000/manual_time", "real_time": 150.0, "micro_batch": 512,
  "tokens/s": 500000.0, "MFU": 0.31},
 {"name": "BM_crammed_bert_micro_step_residual32/512/1/min_time:3.000/manual_time", "real_time": 160.0,
  "micro_batch": 512, "tokens/s": 409600.0, "MFU": 0.26}]}
J
EOF
printf '#!/bin/sh\necho "device 0: NVIDIA H200 (fake)"\n' > "$fake/gpu-bin/bin/cram_bert_24h"
chmod +x "$fake/smi/nvidia-smi" "$fake/gpu-bin/bin/"*
echo "commit fake" > "$fake/gpu-bin/manifest.txt"
out=$work/fakegpu
OUT=$out CRAM_NVIDIA_SMI=$fake/smi/nvidia-smi CRAM_GPU_BIN=$fake/gpu-bin CRAM_GPU_STEPS="load parity gemm train peer" \
    CRAM_GPU_BUDGET=70 bash "$root/benchmarks/run_gpu.sh" > "$work/fakegpu.txt" 2>&1
rc=$?
cat "$work/fakegpu.txt"
[ "$rc" -eq 1 ] && ok "exit 1: the run does not claim success" || bad "expected exit 1 from the fake-GPU run, got $rc"
grep -q 'GPU RUN NOT OK' "$work/fakegpu.txt" && ok "says NOT OK" || bad "no 'GPU RUN NOT OK' line"
if [ $have_python = 1 ]; then
    s=$out/summary.json
    kinds=$(json_get "$s" '" ".join(x["name"] + "=" + x["status"] + ":" + x["failure_kind"] for x in d["steps"])')
    echo "steps: $kinds"
    [[ "$kinds" == *"load=pass:"* ]] && ok "load passes" || bad "load: $kinds"
    [[ "$kinds" == *"parity=fail:gpu_skipped"* ]] && ok "a SKIPPED GPU case fails the parity step" || bad "parity: $kinds"
    [[ "$kinds" == *"gemm=fail:gpu_skipped"* ]] && ok "error_occurred fails the benchmark step" || bad "gemm: $kinds"
    [[ "$kinds" == *"train=pass:"* ]] && ok "a good training benchmark passes" || bad "train: $kinds"
    [[ "$kinds" == *"peer=skipped:skipped_for_time"* ]] && ok "the peer is skipped for time (budget 70 s)" ||
        bad "peer: $kinds"
    [ "$(json_get "$s" 'd["ok"]')" = False ] && ok "summary ok: false" || bad "summary ok is not false"
    [ "$(json_get "$s" 'round(d["results"]["cram_train"][0]["mfu_vs_peak"], 4)')" = "$(python3 -c 'print(round(400000 * 0.623e9 / 989e12, 4))')" ] &&
        ok "MFU against the 989 TFLOP/s peak from tokens/s" || bad "MFU: $(json_get "$s" 'd["results"]["cram_train"]')"
    [ "$(json_get "$s" 'd["results"]["cram_train"][1]["attention"]')" = flash ] && ok "arg 1 = flash" || bad "attention"
    [ "$(json_get "$s" '[r["residual"] for r in d["results"]["cram_train"]]')" = "['bf16', 'bf16', 'fp32']" ] &&
        ok "the fp32-residual micro-step is told apart" || bad "residual: $(json_get "$s" 'd["results"]["cram_train"]')"
    [ "$(json_get "$s" 'd["carried"]')" = "commit fake" ] && ok "the manifest is in the summary" || bad "manifest"
fi
[ "$(find "$out" -type f | wc -l)" -le 8 ] && ok "at most 8 files in OUT" || bad "too many files"

step "4. summarize.py: each new kernel beside its predecessor"
if [ $have_python = 1 ]; then
    kout=$work/kernels
    mkdir -p "$kout"
    # microsecond times, as bench_cuda_kernels reports them; the speedups below are worked out by hand
    cat > "$kout/bench_kernels.json" <<'EOF'
{"benchmarks": [
 {"name": "BM_layernorm_backward/512/0/min_time:0.200/manual_time", "run_type": "iteration", "real_time": 200.0, "time_unit": "us"},
 {"name": "BM_layernorm_backward/512/1/min_time:0.200/manual_time", "run_type": "iteration", "real_time": 125.0, "time_unit": "us"},
 {"name": "BM_add_layernorm_forward/512/0/0/min_time:0.200/manual_time", "run_type": "iteration", "real_time": 300.0, "time_unit": "us"},
 {"name": "BM_add_layernorm_forward/512/1/0/min_time:0.200/manual_time", "run_type": "iteration", "real_time": 250.0, "time_unit": "us"},
 {"name": "BM_add_layernorm_forward/512/1/1/min_time:0.200/manual_time", "run_type": "iteration", "real_time": 150.0, "time_unit": "us"},
 {"name": "BM_decoder_cross_entropy/512/0/min_time:0.200/manual_time", "run_type": "iteration", "real_time": 6000.0, "time_unit": "us"},
 {"name": "BM_decoder_cross_entropy/512/1/min_time:0.200/manual_time", "run_type": "iteration", "real_time": 4800.0, "time_unit": "us"},
 {"name": "BM_stream_layernorm/512/0/min_time:0.200/manual_time", "run_type": "iteration", "real_time": 160.0, "time_unit": "us"},
 {"name": "BM_stream_layernorm/512/1/min_time:0.200/manual_time", "run_type": "iteration", "real_time": 250.0, "time_unit": "us"},
 {"name": "BM_attention_forward/512/1/min_time:0.200/manual_time", "run_type": "iteration", "error_occurred": true, "error_message": "x"},
 {"name": "BM_glu_forward_backward/128/min_time:0.200/manual_time", "run_type": "iteration", "real_time": 90.0, "time_unit": "us"}]}
EOF
    python3 "$root/benchmarks/gpu/summarize.py" "$kout" "$kout" > "$kout/results.json" 2> "$kout/table.txt"
    r=$kout/results.json
    [ "$(json_get "$r" 'len(d["kernels_old_new"])')" = 4 ] && ok "four old/new pairs (errors and unpaired kernels left out)" ||
        bad "pairs: $(json_get "$r" 'd["kernels_old_new"]')"
    [ "$(json_get "$r" '[(k["kernel"], k["batch"], round(k["ms"]["old"], 3), round(k["speedup"]["new"], 2)) for k in d["kernels_old_new"] if k["kernel"] == "layernorm_backward"]')" = \
      "[('layernorm_backward', 512, 0.2, 1.6)]" ] && ok "layernorm backward: 0.2 ms old, 1.6x" || bad "layernorm pair: $(cat "$r")"
    [ "$(json_get "$r" '[round(v, 2) for k in d["kernels_old_new"] if k["kernel"] == "add_layernorm_forward" for v in (k["speedup"]["new kernels, unfused"], k["speedup"]["new kernels, fused"])]')" = \
      "[1.2, 2.0]" ] && ok "add + layernorm: 1.2x unfused, 2.0x fused" || bad "add_layernorm: $(cat "$r")"
    [ "$(json_get "$r" '[round(k["speedup"]["new"], 2) for k in d["kernels_old_new"] if k["kernel"] == "decoder_cross_entropy"]')" = \
      "[1.25]" ] && ok "decoder: chunked 6 ms, fused 4.8 ms: 1.25x" || bad "decoder pair: $(cat "$r")"
    [ "$(json_get "$r" '[round(k["speedup"]["fp32 stream"], 2) for k in d["kernels_old_new"] if k["kernel"] == "stream_layernorm"]')" = \
      "[0.64]" ] && ok "stream norm: bf16 0.16 ms, fp32 0.25 ms: 0.64x" || bad "stream pair: $(cat "$r")"
    grep -q 'kernel layernorm_backward batch 512: old 0.200 ms, new 0.125 ms (1.60x)' "$kout/table.txt" &&
        ok "the table line" || bad "table: $(cat "$kout/table.txt")"
fi

echo
[ "$fails" -eq 0 ] && { echo "gpu_run_dry: all checks passed"; exit 0; }
echo "gpu_run_dry: $fails check(s) failed"
exit 1
