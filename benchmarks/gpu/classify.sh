#!/usr/bin/env bash
# What kind of failure one step of the GPU run had, from its exit code and its output (benchmarks/run_gpu.sh
# sources this; tests/apps/gpu_run_dry.sh feeds it canned outputs).
#
#   source benchmarks/gpu/classify.sh; classify_output RC FILE   # sets CLASS_KIND and CLASS_DETAIL
#   bash benchmarks/gpu/classify.sh RC FILE                      # prints "KIND<TAB>DETAIL"
#
# Kinds, the first that fits (an empty kind: nothing wrong was found and rc was 0):
#   timeout               rc 124 (timeout(1) stopped it) or 137 after a timeout's kill
#   missing_library       the loader could not find a shared library (named)
#   load_error            the binary did not start: a symbol version (GLIBC_/GLIBCXX_) the system lacks, not
#                         executable, not found, an illegal instruction (host code for a newer CPU), or no
#                         kernel image for this GPU
#   sanitizer_errors      compute-sanitizer reported errors (count and the first report)
#   missing_tool          compute-sanitizer, python3 or torch is not on this machine
#   cublaslt_no_algorithm cuBLASLt found no algorithm / CUBLAS_STATUS_NOT_SUPPORTED
#   cublas_error          another CUBLAS_STATUS_* failure
#   cuda_error            a CUDA call failed (cudaError name), e.g. an illegal address or out of memory
#   gpu_skipped           a test or benchmark skipped for want of a GPU (a "SKIPPED" line, or the
#                         CRAM_REQUIRE_GPU failure): nothing ran on a GPU
#   parity_failure        doctest assertions failed: the failing test cases, the first assertion and its
#                         logged worst element
#   benchmark_error       a Google Benchmark case stopped with an error ("ERROR OCCURRED")
#   crash                 killed by a signal (rc > 128)
#   failed                a non-zero exit with none of the above (the last line of output)
set -uo pipefail

# first_match FILE ERE: the first line of FILE matching ERE, trimmed to 300 characters
_cls_first() { grep -m1 -E -- "$2" "$1" 2>/dev/null | cut -c1-300; }

# _cls_rule FILE KIND ERE [PREFIX]: when a line of FILE matches ERE, the output is KIND, detailed by PREFIX and
# that line (the caller returns); else false
_cls_rule() {
    local line
    line=$(_cls_first "$1" "$3")
    [ -n "$line" ] || return 1
    CLASS_KIND=$2
    CLASS_DETAIL="${4:-}$line"
}

# signal_name N: the signal's name of an exit status 128+N
_cls_signal() {
    local n=$(( $1 - 128 )) name
    name=$(kill -l "$n" 2>/dev/null) || name="signal $n"
    echo "SIG${name#SIG}"
}

classify_output() {
    local rc=$1 f=$2 line n e w
    CLASS_KIND=""
    CLASS_DETAIL=""
    [ -r "$f" ] || f=/dev/null

    if [ "$rc" -eq 124 ] || { [ "$rc" -eq 137 ] && [ "${CLASS_TIMED_OUT:-0}" = 1 ]; }; then
        CLASS_KIND=timeout
        line=$(grep -E '^ *[0-9.]+ s: ' "$f" 2>/dev/null | tail -1 | sed -E 's/^ *[0-9.]+ s: //' | cut -c1-200)
        CLASS_DETAIL="stopped by its time limit (rc $rc)${line:+; last test case finished: $line}"
        return 0
    fi

    line=$(_cls_first "$f" 'error while loading shared libraries')
    if [ -n "$line" ]; then
        local lib
        lib=$(sed -E 's/.*error while loading shared libraries: ([^:]+):.*/\1/' <<<"$line")
        if grep -q 'cannot open shared object file' <<<"$line"; then
            CLASS_KIND=missing_library
            CLASS_DETAIL="$lib not found by the loader: $line"
        else
            CLASS_KIND=load_error
            CLASS_DETAIL="$line"
        fi
        return 0
    fi
    _cls_rule "$f" load_error "version .(GLIBC|GLIBCXX|CXXABI|GCC)_[0-9.]+. not found" \
        "the system's libraries are older than the build's: " && return 0
    _cls_rule "$f" load_error 'missing binary: ' && return 0
    line=$(_cls_first "$f" 'cannot execute binary file|Exec format error|Permission denied|: No such file or directory$|command not found')
    if [ -n "$line" ] && { [ "$rc" -eq 126 ] || [ "$rc" -eq 127 ]; }; then
        CLASS_KIND=load_error
        CLASS_DETAIL="could not start (rc $rc): $line"
        return 0
    fi
    if [ "$rc" -eq 132 ] || grep -q -m1 'Illegal instruction' "$f" 2>/dev/null; then
        CLASS_KIND=load_error
        CLASS_DETAIL="illegal instruction (rc $rc): the host code needs a CPU feature this machine lacks (the gpu-portable preset builds for x86-64-v3: AVX2, FMA)"
        return 0
    fi
    _cls_rule "$f" load_error 'no kernel image is available|cudaErrorNoKernelImageForDevice|CUDA driver version is insufficient|cudaErrorInsufficientDriver|cudaErrorUnsupportedPtxVersion' \
        "the binary's GPU code does not load on this GPU/driver: " && return 0

    # compute-sanitizer: "========= ERROR SUMMARY: 3 errors"; racecheck: "RACECHECK SUMMARY: 2 hazards displayed (1 error, 1 warning)"
    n=$(grep -E -o 'ERROR SUMMARY: [0-9]+ error' "$f" 2>/dev/null | grep -E -o '[0-9]+' | awk '{s += $1} END {print s + 0}')
    e=$(grep -E -o 'RACECHECK SUMMARY: [0-9]+ hazards? displayed \([0-9]+ errors?' "$f" 2>/dev/null |
        sed -E 's/.*\(([0-9]+) error.*/\1/' | awk '{s += $1} END {print s + 0}')
    w=$(grep -E -o 'RACECHECK SUMMARY: [0-9]+ hazards? displayed \([0-9]+ errors?, [0-9]+ warning' "$f" 2>/dev/null |
        sed -E 's/.*, ([0-9]+) warning.*/\1/' | awk '{s += $1} END {print s + 0}')
    if [ "$n" -gt 0 ] || [ "$e" -gt 0 ]; then
        CLASS_KIND=sanitizer_errors
        line=$(grep -m1 -E '^========= +(Invalid|Error|Race|Program hit|Uninitialized|Barrier|Leaked|Malformed|Misaligned|Out-of-range|Warning)' "$f" | cut -c1-240)
        [ "$w" -gt 0 ] && w=" ($w racecheck warning(s))" || w=""
        line=$(sed -E 's/^=+ +//' <<<"$line")
        CLASS_DETAIL="compute-sanitizer: $(( n > e ? n : e )) error(s)$w${line:+; first: $line}"
        return 0
    fi

    _cls_rule "$f" missing_tool 'compute-sanitizer not found|python3: (command )?not found|No module named .?torch' && return 0

    _cls_rule "$f" cublaslt_no_algorithm 'cuBLASLt found no algorithm|CUBLAS_STATUS_NOT_SUPPORTED' && return 0
    # any other cuBLAS status but CUBLAS_STATUS_SUCCESS (the only one starting with S)
    _cls_rule "$f" cublas_error 'CUBLAS_STATUS_[A-RT-Z][A-Z_]*' && return 0
    _cls_rule "$f" cuda_error 'CUDA call failed|cudaError[A-Za-z]+|CUDA error|an illegal memory access' && return 0

    _cls_rule "$f" gpu_skipped 'SKIPPED|CRAM_REQUIRE_GPU|no usable CUDA device|no CUDA device' \
        'nothing ran on a GPU: ' && return 0

    # doctest: "[doctest] test cases: 40 | 38 passed | 2 failed | 0 skipped" and, per failure,
    #   ====...
    #   path/test_x.cu:45:
    #   TEST CASE:  name
    #   path/file:140: ERROR: CHECK( r.ok ) is NOT correct!
    #     logged: what: worst element ...
    local failed_cases
    failed_cases=$(grep -E -o 'test cases: *[0-9]+ \| *[0-9]+ passed \| *[0-9]+ failed' "$f" 2>/dev/null | tail -1 |
                   sed -E 's/.*\| *([0-9]+) failed/\1/')
    if { [ -n "$failed_cases" ] && [ "$failed_cases" -gt 0 ]; } || grep -q -E ': ERROR: |: FATAL ERROR: ' "$f" 2>/dev/null; then
        local names first logged
        names=$(awk '/^TEST CASE: /{tc=$0; sub(/^TEST CASE: +/, "", tc)} / (FATAL )?ERROR: /{if (tc != "" && !(tc in seen)) {seen[tc]=1; printf "%s%s", (n++ ? "; " : ""), tc}}' "$f" | cut -c1-600)
        first=$(grep -m1 -E ': (FATAL )?ERROR: ' "$f" | sed -E 's#^.*/##' | cut -c1-240)
        logged=$(grep -m1 -E '^ +logged: ' "$f" | sed -E 's/^ +logged: +//' | cut -c1-300)
        CLASS_KIND=parity_failure
        CLASS_DETAIL="${failed_cases:-some} test case(s) failed: ${names:-?}; first: ${first:-?}${logged:+; logged: $logged}"
        return 0
    fi

    _cls_rule "$f" benchmark_error 'ERROR OCCURRED|"error_occurred": *true' && return 0

    if [ "$rc" -gt 128 ]; then
        CLASS_KIND=crash
        CLASS_DETAIL="killed by $(_cls_signal "$rc") (rc $rc); last line: $(grep -v '^[[:space:]]*$' "$f" | tail -1 | cut -c1-240)"
        return 0
    fi
    if [ "$rc" -ne 0 ]; then
        CLASS_KIND=failed
        CLASS_DETAIL="exit code $rc; last line: $(grep -v '^[[:space:]]*$' "$f" | tail -1 | cut -c1-240)"
    fi
    return 0
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    [ $# -eq 2 ] || { echo "usage: $0 RC OUTPUT_FILE" >&2; exit 2; }
    classify_output "$1" "$2"
    printf '%s\t%s\n' "${CLASS_KIND:-none}" "$CLASS_DETAIL"
fi
