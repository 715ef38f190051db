#!/usr/bin/env bash
# shellcheck disable=SC2317  # the check_* and step functions are called indirectly (run_step, bash -c)
# The GPU run of cram's CUDA backend: ONE device call that runs binaries built and staged here
# (benchmarks/gpu/prepare_device_call.sh prints the call; docs/cuda.md, "The GPU run"). It builds nothing.
#
# Steps, in order of value, each under its own timeout inside one time budget; a step that no longer fits
# is skipped and says so:
#   gpu         nvidia-smi lists a GPU; else exit 2 at once, naming why (also the no-GPU dry run here)
#   load        the carried binaries start: ldd (missing libraries named), `cram_bert_24h device`
#   parity      cram_tests_cuda, CUDA_LAUNCH_BLOCKING=1, CRAM_REQUIRE_GPU=1 (a GPU case that would skip fails)
#   gemm        the cuBLASLt bf16 GEMM ceiling (BM_gemm_ceiling, 8192^3)
#   train       bench_cuda_train, crammed_bert micro-step at the planner's micro-batch (arg 0) and 512,
#               GEMM (/0) and flash (/1) attention, and at 512 with flash and the fp32 residual stream
#               (micro_step_residual32): tokens/s, MFU against 989 TFLOP/s and the ceiling; then the per-op
#               time table at 512 with flash, bf16 and fp32 residual (BM_crammed_bert_phases: ms per op, GEMM TFLOP/s)
#   peer        the PyTorch peer (torch.compile with static shapes, bf16 autocast, SDPA) at the planner's
#               micro-batch, one process
#   kernels     bench_cuda_kernels
#   memcheck    compute-sanitizer memcheck on small test cases
#   racecheck   compute-sanitizer racecheck on small test cases
#   app_train   cram_bert_24h train --device cuda for 2 minutes on the carried gpu-data/
#   app_glue    cram_bert_24h glue --device cuda on the carried gpu-data/glue/RTE
#   peer_512    the peer at micro-batch 512 (when the planner picked another size)
# Writes to $OUT (default ./gpu-run-out) at most 7 files: run.log (everything), summary.json (one record
# per step with status pass|fail|skipped and failure_kind, plus the numbers), bench_train.json,
# bench_kernels.json, peer.jsonl, app_metrics.jsonl, glue_report.json. Exit 0 only when every step passed on
# a GPU; 1 when a step failed or was skipped; 2 when there is no GPU.
#
#   env: CRAM_GPU_BUDGET   seconds for the whole run (default 540; the device tool's limit is 600)
#        CRAM_GPU_BIN      the staged binaries (default .gpu-bin: bin/, lib/ or payload.tar.xz, manifest.txt)
#        CRAM_GPU_DATA     the carried dataset (default gpu-data, with glue/RTE inside)
#        CRAM_GPU_STEPS    run only these steps (space-separated names; default all)
#        CRAM_APP_BUDGET   the app's training budget in seconds (default 120)
#        CRAM_NVIDIA_SMI   nvidia-smi to ask (default: the one on PATH)
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 2
# shellcheck source=benchmarks/gpu/classify.sh
source "$root/benchmarks/gpu/classify.sh"

OUT=${OUT:-$root/gpu-run-out}
mkdir -p "$OUT" || { echo "run_gpu.sh: cannot create OUT=$OUT" >&2; exit 2; }
log=$OUT/run.log
summary=$OUT/summary.json
: > "$log"
SECONDS=0
budget=${CRAM_GPU_BUDGET:-540}
[[ "$budget" =~ ^[0-9]+$ ]] || { echo "run_gpu.sh: CRAM_GPU_BUDGET must be whole seconds, got '$budget'" >&2; exit 2; }
reserve=15  # kept back for the summary
app_budget=${CRAM_APP_BUDGET:-120}
want_steps=" ${CRAM_GPU_STEPS:-} "
work=$(mktemp -d "${TMPDIR:-/tmp}/cram-gpu-run.XXXXXX") || { echo "run_gpu.sh: mktemp failed" >&2; exit 2; }
date_utc=$(date -u +%Y-%m-%dT%H:%M:%SZ)
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null | wc -l | tr -d ' ')

say() { echo "$*" | tee -a "$log"; }

# ---- JSON -------------------------------------------------------------------------------------------------
json_str() {  # a JSON string literal of $1 (control characters dropped)
    local s=${1//\\/\\\\}
    s=${s//\"/\\\"}
    s=${s//$'\t'/ }
    s=${s//$'\n'/ | }
    s=${s//$'\r'/}
    printf '"%s"' "$(printf '%s' "$s" | tr -d '\000-\037')"
}
names=(); statuses=(); kinds=(); details=(); rcs=(); secs=(); limits=(); cmds=()
record() {  # record NAME STATUS KIND DETAIL RC SECONDS TIMEOUT COMMAND
    names+=("$1"); statuses+=("$2"); kinds+=("$3"); details+=("$4"); rcs+=("$5"); secs+=("$6"); limits+=("$7")
    cmds+=("$8")
}
gpu_name=""; gpu_driver=""; gpu_mem=""; gpu_list=""; carried=""
write_summary() {  # write_summary [RESULTS_JSON_FILE]
    local i n_fail=0 n_skip=0 n_pass=0 ok=false ran=false verdict results=null
    for i in "${!names[@]}"; do
        case ${statuses[$i]} in pass) n_pass=$((n_pass + 1)) ;; fail) n_fail=$((n_fail + 1)) ;; *) n_skip=$((n_skip + 1)) ;; esac
        [ "${statuses[$i]}" = pass ] && [ "${names[$i]}" != gpu ] && [ "${names[$i]}" != load ] && ran=true
    done
    [ "$n_fail" -eq 0 ] && [ "$n_skip" -eq 0 ] && [ "$ran" = true ] && ok=true
    if [ "$ok" = true ]; then verdict="all $n_pass steps passed on the GPU"
    elif [ "${kinds[0]:-}" = no_gpu ]; then verdict="${details[0]}"
    else verdict="$n_pass passed, $n_fail failed, $n_skip skipped"; fi
    [ "$want_steps" = "  " ] || verdict="$verdict (only the steps in CRAM_GPU_STEPS:$want_steps)"
    [ -n "${1:-}" ] && [ -s "$1" ] && results=$(cat "$1")
    {
        printf '{\n "schema": "cram-gpu-run/1",\n "ok": %s,\n "gpu_ran": %s,\n "verdict": %s,\n' \
            "$ok" "$ran" "$(json_str "$verdict")"
        printf ' "date": %s,\n "commit": %s,\n "dirty_tracked_files": %s,\n "budget_s": %s,\n "elapsed_s": %s,\n' \
            "$(json_str "$date_utc")" "$(json_str "$commit")" "${dirty:-0}" "$budget" "$SECONDS"
        printf ' "gpu": {"name": %s, "driver": %s, "memory": %s, "list": %s},\n' "$(json_str "$gpu_name")" \
            "$(json_str "$gpu_driver")" "$(json_str "$gpu_mem")" "$(json_str "$gpu_list")"
        printf ' "carried": %s,\n "steps": [' "$(json_str "$carried")"
        for i in "${!names[@]}"; do
            [ "$i" -gt 0 ] && printf ','
            printf '\n  {"name": %s, "status": %s, "failure_kind": %s, "detail": %s, "rc": %s, "seconds": %s, "timeout_s": %s, "command": %s}' \
                "$(json_str "${names[$i]}")" "$(json_str "${statuses[$i]}")" "$(json_str "${kinds[$i]}")" \
                "$(json_str "${details[$i]}")" "${rcs[$i]:-null}" "${secs[$i]:-0}" "${limits[$i]:-0}" \
                "$(json_str "${cmds[$i]}")"
        done
        printf '\n ],\n "results": %s\n}\n' "$results"
    } > "$summary.tmp" && mv "$summary.tmp" "$summary"
}

# ---- the GPU, first of all --------------------------------------------------------------------------------
say "=== cram GPU run: commit $commit, $date_utc, budget ${budget}s, OUT=$OUT"
smi=${CRAM_NVIDIA_SMI:-nvidia-smi}
no_gpu=""
if ! command -v "$smi" >/dev/null 2>&1; then
    no_gpu="nvidia-smi not found ('$smi' is not on PATH): this machine has no NVIDIA driver"
elif ! gpu_list=$(timeout 30 "$smi" -L 2>&1); then
    no_gpu="'$smi -L' failed: $(head -3 <<<"$gpu_list" | tr '\n' ' ')"
elif ! grep -q '^GPU [0-9]' <<<"$gpu_list"; then
    no_gpu="'$smi -L' lists no GPU: $(head -3 <<<"$gpu_list" | tr '\n' ' ')"
fi
if [ -n "$no_gpu" ]; then
    say "FAIL: no GPU found: $no_gpu"
    say "Nothing was run. This script runs on the lent GPU machine (docs/cuda.md, 'The GPU run')."
    record gpu fail no_gpu "no GPU found: $no_gpu" 2 "$SECONDS" 30 "$smi -L"
    write_summary
    rm -rf "$work"
    exit 2
fi
IFS=, read -r gpu_name gpu_driver gpu_mem < <("$smi" --query-gpu=name,driver_version,memory.total \
    --format=csv,noheader 2>/dev/null | head -1 | sed 's/, /,/g')
say "$gpu_list"
"$smi" >> "$log" 2>&1
record gpu pass "" "$gpu_name, driver $gpu_driver, $gpu_mem" 0 "$SECONDS" 30 "$smi -L"
write_summary

# ---- the carried binaries -----------------------------------------------------------------------------------
export PATH=/usr/local/cuda/bin:$PATH
BIN=${CRAM_GPU_BIN:-$root/.gpu-bin}
DATA=${CRAM_GPU_DATA:-$root/gpu-data}
bindir=$BIN/bin
libdir=$BIN/lib
if [ -f "$BIN/manifest.txt" ]; then
    carried=$(cat "$BIN/manifest.txt")
    { echo "--- $BIN/manifest.txt"; cat "$BIN/manifest.txt"; } >> "$log"
    grep -q 'NOT PORTABLE' "$BIN/manifest.txt" && say "warning: $BIN was staged from a build that is not gpu-portable (manifest.txt)"
fi
if [ -f "$BIN/payload.tar.xz" ]; then  # packed to fit the 64 MiB carried: unpack here
    mkdir -p "$work/bin"
    if command -v xz >/dev/null 2>&1; then
        tar -xJf "$BIN/payload.tar.xz" -C "$work/bin" >> "$log" 2>&1
    else
        python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' \
            "$BIN/payload.tar.xz" "$work/bin" >> "$log" 2>&1
    fi || say "unpacking $BIN/payload.tar.xz failed"
    bindir=$work/bin/bin
    libdir=$work/bin/lib
fi
ld_path=$libdir
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda/lib; do
    [ -d "$d" ] && ld_path=$ld_path:$d
done
export LD_LIBRARY_PATH=$ld_path${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
tests_bin=$bindir/cram_tests_cuda
kernels_bin=$bindir/bench_cuda_kernels
train_bin=$bindir/bench_cuda_train
app_bin=$bindir/cram_bert_24h

# ---- running one step ---------------------------------------------------------------------------------------
time_left() { echo $(( budget - reserve - SECONDS )); }
selected() { [ "$want_steps" = "  " ] || [[ "$want_steps" == *" $1 "* ]]; }
step_out=""  # the current step's output (a file under $work)
# run_step NAME MIN_S MAX_S COMMAND...: runs COMMAND under timeout(1) for min(MAX_S, time left), its output
# appended to run.log; classifies a failure; then check_NAME (if defined) may add one. Returns 0 on pass.
run_step() {
    local name=$1 min=$2 max=$3 left limit t0 off rc dt status
    shift 3
    step_out=$work/$name.out
    : > "$step_out"
    if ! selected "$name"; then
        return 3
    fi
    left=$(time_left)
    if [ "$left" -lt "$min" ]; then
        say "--- $name: SKIPPED for time: needs at least ${min}s, ${left}s left of the ${budget}s budget"
        record "$name" skipped skipped_for_time "needs at least ${min}s, ${left}s left of the ${budget}s budget" \
            null 0 0 "$*"
        write_summary
        return 2
    fi
    limit=$(( max < left ? max : left ))
    say ""
    say "=== $name (limit ${limit}s, ${left}s left; $(date -u +%H:%M:%S)): $*"
    off=$(stat -c %s "$log")
    t0=$SECONDS
    if declare -F "$1" >/dev/null; then  # a function of this script: timeout(1) runs it in a child bash
        timeout -k 10 "$limit" bash -c '"$@"' run_step "$@" >> "$log" 2>&1
    else
        timeout -k 10 "$limit" "$@" >> "$log" 2>&1
    fi
    rc=$?
    dt=$(( SECONDS - t0 ))
    tail -c +"$(( off + 1 ))" "$log" > "$step_out"
    CLASS_TIMED_OUT=0
    [ "$dt" -ge "$limit" ] && CLASS_TIMED_OUT=1
    classify_output "$rc" "$step_out"
    if [ -z "$CLASS_KIND" ] && declare -F "check_$name" >/dev/null; then
        "check_$name"
    fi
    if [ -z "$CLASS_KIND" ]; then
        status=pass
        say "--- $name: pass (${dt}s)"
    else
        status=fail
        say "--- $name: FAIL [$CLASS_KIND] (rc $rc, ${dt}s): $CLASS_DETAIL"
    fi
    record "$name" "$status" "$CLASS_KIND" "$CLASS_DETAIL" "$rc" "$dt" "$limit" "$*"
    write_summary
    [ "$status" = pass ]
}

# Step-specific checks on a zero exit (set CLASS_KIND/CLASS_DETAIL to fail the step).
check_doctest_ran() {  # a doctest run that ran no test case proves nothing
    local passed
    passed=$(grep -E -o 'test cases: *[0-9]+ \| *[0-9]+ passed' "$step_out" | tail -1 | sed -E 's/.*\| *([0-9]+) passed/\1/')
    if [ -z "$passed" ]; then
        CLASS_KIND=failed; CLASS_DETAIL="no doctest summary line in the output"
    elif [ "$passed" -eq 0 ]; then
        CLASS_KIND=nothing_ran; CLASS_DETAIL="doctest ran no test case (filter matched nothing?)"
    fi
}
check_bench_json() {  # check_bench_json FILE PATTERN: every result ok, at least one matched PATTERN
    local f=$1 pat=$2 err
    if [ ! -s "$f" ]; then
        CLASS_KIND=failed; CLASS_DETAIL="no benchmark JSON written ($f)"; return
    fi
    err=$(grep -A3 '"error_occurred": true' "$f" | grep -m1 -o '"error_message": *"[^"]*"' | sed -E 's/^"error_message": *//')
    if grep -q '"error_occurred": true' "$f"; then
        if grep -q 'SKIPPED' <<<"$err"; then CLASS_KIND=gpu_skipped; else CLASS_KIND=benchmark_error; fi
        CLASS_DETAIL="$(grep -c '"error_occurred": true' "$f") benchmark(s) reported error_occurred in $(basename "$f"): $err"
    elif ! grep -q "\"name\": \"$pat" "$f"; then
        CLASS_KIND=nothing_ran; CLASS_DETAIL="no benchmark named $pat* in $(basename "$f")"
    fi
}
check_parity() {
    if grep -q 'SKIPPED' "$step_out"; then
        CLASS_KIND=gpu_skipped; CLASS_DETAIL="a GPU test case skipped: $(grep -m1 SKIPPED "$step_out" | cut -c1-200)"
        return
    fi
    check_doctest_ran
}
check_memcheck() { check_parity; }
check_racecheck() { check_parity; }
check_gemm() { check_bench_json "$work/bench_gemm.json" BM_gemm_ceiling; }
check_train() { check_bench_json "$OUT/bench_train.json" BM_crammed_bert_micro_step; }
check_kernels() { check_bench_json "$OUT/bench_kernels.json" BM_; }
check_peer_json() {  # the peer's one JSON line on stdout: appended to peer.jsonl; ran on CUDA, no error
    local line
    line=$(grep -E '^\{"impl": "pytorch"|^\{"skipped"' "$step_out" | tail -1)
    if [ -z "$line" ]; then
        CLASS_KIND=failed; CLASS_DETAIL="the peer printed no JSON result"; return
    fi
    echo "$line" >> "$OUT/peer.jsonl"
    if grep -q '^{"skipped"' <<<"$line"; then
        CLASS_KIND=gpu_skipped; CLASS_DETAIL="peer: $line"
    elif ! grep -q '"device": "cuda"' <<<"$line"; then
        CLASS_KIND=gpu_skipped; CLASS_DETAIL="the peer did not run on CUDA"
    elif grep -q '"error":' <<<"$line"; then
        CLASS_KIND=failed; CLASS_DETAIL="peer: $(grep -o '"error": "[^"]*"' <<<"$line" | head -1)"
    elif grep -q '"compiled": false' <<<"$line"; then
        say "note: the peer ran eagerly (torch.compile failed; see its stderr above): its numbers are not the compiled peer's"
    fi
}
check_peer() { check_peer_json; }
check_peer_512() { check_peer_json; }
check_app_train() {
    if [ -f "$work/app-run/metrics.jsonl" ]; then
        cp "$work/app-run/metrics.jsonl" "$OUT/app_metrics.jsonl"
    fi
    if ! grep -q '"event":"summary"\|"event": "summary"' "$work/app-run/metrics.jsonl" 2>/dev/null; then
        CLASS_KIND=failed; CLASS_DETAIL="no summary line in $work/app-run/metrics.jsonl"
    fi
}
check_app_glue() {
    [ -f "$work/glue/report.json" ] && cp "$work/glue/report.json" "$OUT/glue_report.json"
    [ -f "$work/glue/report.json" ] || { CLASS_KIND=failed; CLASS_DETAIL="no report.json in $work/glue"; }
}
check_load() {
    if grep -q 'not found' "$step_out"; then
        CLASS_KIND=missing_library
        CLASS_DETAIL="ldd: $(grep 'not found' "$step_out" | sed -E 's/^[[:space:]]+//' | sort -u | head -5 | tr '\n' ' ')"
    fi
}

# ---- load: do the binaries start? ---------------------------------------------------------------------------
load_check() {  # ldd of every binary (libraries the loader cannot find are named), then the app's device report
    local b rc=0
    for b in "$tests_bin" "$kernels_bin" "$train_bin" "$app_bin"; do
        if [ ! -x "$b" ]; then
            echo "missing binary: $b (stage it here with benchmarks/gpu/prepare_device_call.sh and carry .gpu-bin)"
            rc=127
            continue
        fi
        echo "--- ldd $b"
        ldd "$b" | grep -v -E 'linux-vdso|ld-linux'
    done
    if ! grep -q -w -m1 avx2 /proc/cpuinfo || ! grep -q -w -m1 fma /proc/cpuinfo; then
        echo "Illegal instruction ahead: this CPU lacks AVX2/FMA (x86-64-v3, the gpu-portable preset's host target)"
        rc=132
    fi
    if [ -x "$app_bin" ] && ! "$app_bin" device && [ "$rc" -eq 0 ]; then rc=1; fi
    return "$rc"
}
peer() {  # one size per process: torch.compile's shapes stay static
    PYTHONUNBUFFERED=1 python3 "$root/benchmarks/pytorch/crammed_bert.py" bench --micro-batches "$1" --steps 20 \
        --device cuda --static-shapes
}
sanitize() {  # sanitize TOOL TEST_CASES
    [ -n "$sanitizer" ] || { echo "compute-sanitizer not found (PATH, /usr/local/cuda*/bin)"; return 127; }
    CRAM_REQUIRE_GPU=1 "$sanitizer" --tool "$1" --error-exitcode 9 --print-limit 20 "$tests_bin" -tc="$2"
}
# A library the device lacks in the usual places: look for it once (the CUDA toolkit, PyTorch's wheels) and add
# its folder; a libstdc++ older than the build's: use the carried one (lib/fallback).
fix_library_path() {
    local missing lib found
    missing=$(for b in "$tests_bin" "$kernels_bin" "$train_bin" "$app_bin"; do
                  [ -x "$b" ] && ldd "$b" 2>/dev/null | awk '/not found/ {print $1}'
              done | sort -u)
    for lib in $missing; do
        found=$(timeout 20 find /usr/local /usr/lib /opt -name "$lib" -print -quit 2>/dev/null)
        if [ -n "$found" ]; then
            say "note: $lib was not on the library path; using $found"
            LD_LIBRARY_PATH=$(dirname "$found"):$LD_LIBRARY_PATH
            export LD_LIBRARY_PATH
        fi
    done
    if [ -d "$libdir/fallback" ] && [ -x "$app_bin" ] && ldd "$app_bin" 2>&1 | grep -q "version .GLIBCXX_\|version .GCC_\|version .CXXABI_"; then
        say "note: this machine's libstdc++ is older than the build's; using the carried $libdir/fallback"
        export LD_LIBRARY_PATH=$libdir/fallback:$LD_LIBRARY_PATH
    fi
}
fix_library_path
# the step functions run in a child bash (under timeout): they and what they read are exported
sanitizer=$(command -v compute-sanitizer || find /usr/local/cuda*/bin -name compute-sanitizer 2>/dev/null | head -1)
export root tests_bin kernels_bin train_bin app_bin sanitizer
export -f load_check peer sanitize
run_step load 5 60 load_check

# ---- 1: parity -----------------------------------------------------------------------------------------------
run_step parity 30 180 env CUDA_LAUNCH_BLOCKING=1 CRAM_REQUIRE_GPU=1 "$tests_bin" --duration=true

# ---- 2: the GEMM ceiling and the training step -------------------------------------------------------------
run_step gemm 10 60 "$kernels_bin" --benchmark_filter='^BM_gemm_ceiling' --benchmark_min_time=1 \
    --benchmark_out="$work/bench_gemm.json" --benchmark_out_format=json
run_step train 30 170 "$train_bin" \
    --benchmark_filter='^BM_crammed_bert_(micro_step/(0|512)/[01]|micro_step_residual32/512/1|phases/512/1)/' \
    --benchmark_out="$OUT/bench_train.json" --benchmark_out_format=json
planner_micro=$(grep -A30 '"name": "BM_crammed_bert_micro_step/0/0' "$OUT/bench_train.json" 2>/dev/null |
                grep -m1 '"micro_batch"' | grep -E -o '[0-9]+' | head -1)
if [ -z "$planner_micro" ] && selected peer; then
    planner_micro=512
    say "note: no planner micro-batch from bench_train.json; the peer runs at 512"
fi

# ---- 3: the PyTorch peer at the same micro-batch -------------------------------------------------------------
run_step peer 60 200 peer "${planner_micro:-512}"

# ---- 4: the kernels -----------------------------------------------------------------------------------------
run_step kernels 15 90 "$kernels_bin" --benchmark_min_time=0.2 \
    --benchmark_out="$OUT/bench_kernels.json" --benchmark_out_format=json

# ---- 5: compute-sanitizer on small cases --------------------------------------------------------------------
run_step memcheck 20 60 sanitize memcheck \
    'cuda layernorm*,cuda add_layernorm*,cuda elementwise*,cuda masking*,cuda dropout*,cuda flash attention: keys past*,cuda MLM decoder sanitizer*,cuda training step parity: crammed_tiny (2 layers*'
run_step racecheck 20 60 sanitize racecheck \
    'cuda layernorm*,cuda add_layernorm*,cuda losses*,cuda MLM decoder sanitizer*,cuda flash attention: keys past*'

# ---- 6: the product path: train for two minutes, then GLUE RTE ----------------------------------------------
if selected app_train; then
    left=$(time_left)
    if [ ! -f "$DATA/summary.json" ]; then
        say "--- app_train: FAIL: no dataset at $DATA (prepare it here: benchmarks/gpu/prepare_device_call.sh)"
        record app_train fail missing_data "no dataset at $DATA/summary.json" null 0 0 "cram_bert_24h train"
    else
        # the budget shrinks to fit what is left (start-up and the final checkpoint need ~40 s more)
        b=$app_budget
        [ $(( left - 45 )) -lt "$b" ] && b=$(( left - 45 ))
        [ "$b" -lt "$app_budget" ] && [ "$b" -ge 45 ] && say "note: app training budget cut to ${b}s to fit"
        [ "$b" -lt 45 ] && b=$app_budget  # run_step will skip it for time
        run_step app_train $(( b + 30 )) $(( b + 90 )) "$app_bin" train --data "$DATA" --out "$work/app-run" \
            --budget "${b}s" --device cuda --checkpoint-every 0 --val-batches 8
    fi
fi
if [ -d "$DATA/glue/RTE" ] || ! selected app_glue; then
    run_step app_glue 40 150 "$app_bin" glue --checkpoint "$work/app-run" --glue-dir "$DATA/glue" --tasks RTE \
        --seeds 1 --device cuda --out "$work/glue"
else
    say "--- app_glue: FAIL: no GLUE data at $DATA/glue/RTE (prepare it here: benchmarks/gpu/prepare_device_call.sh)"
    record app_glue fail missing_data "no GLUE data at $DATA/glue/RTE" null 0 0 "cram_bert_24h glue"
fi

# ---- 7: extra: the peer at 512 ------------------------------------------------------------------------------
if [ "${planner_micro:-512}" != 512 ]; then
    run_step peer_512 60 200 peer 512
fi

# ---- summary --------------------------------------------------------------------------------------------------
say ""
say "=== summary"
if command -v python3 >/dev/null 2>&1; then
    python3 "$root/benchmarks/gpu/summarize.py" "$OUT" "$work" > "$work/results.json" 2> "$work/table.txt"
    tee -a "$log" < "$work/table.txt"
else
    say "python3 not found: summary.json has the steps but no numbers"
fi
write_summary "$work/results.json"
for i in "${!names[@]}"; do
    printf '%-10s %-8s %-22s %s\n' "${names[$i]}" "${statuses[$i]}" "${kinds[$i]:--}" \
        "$(cut -c1-110 <<<"${details[$i]}")" | tee -a "$log"
done
nfiles=$(find "$OUT" -type f | wc -l)
[ "$nfiles" -le 8 ] || say "warning: $nfiles files in $OUT; the device tool brings back 8"
ok=$(grep -m1 '"ok":' "$summary" | grep -c true)
rm -rf "$work"
if [ "$ok" = 1 ]; then
    say "GPU RUN OK: every step passed on $gpu_name (summary: $summary)"
    exit 0
fi
say "GPU RUN NOT OK: $(grep -m1 '"verdict"' "$summary" | sed -E 's/.*"verdict": "(.*)",/\1/') (summary: $summary)"
exit 1
