#!/usr/bin/env bash
# What the app survives, through the real binary (docs/reliability.md): SIGINT, SIGTERM and SIGHUP at
# random points end `train` with a checkpoint and exit 128 + signal, and --resume then ends bit for bit
# where an uninterrupted run does; a bounded SIGKILL soak (kill at random, resume, until done) does too;
# two processes on one run directory, or `prepare` onto a dataset in use, are refused naming the holder;
# a damaged newest checkpoint is passed over by `glue` and `train --resume`; a vocabulary of the right
# size but other content is refused; the command line's mistakes get plain messages.
# The bit-for-bit comparisons use the test clock (CRAM_TEST_SECONDS_PER_MICRO_STEP): budget time is
# micro-steps, so a resumed run replays exactly. Needs ../shared/data (wiki/); exits 77 (skipped) without.
#   usage: reliability.sh APP SHARED_DATA WORK_DIR
set -euo pipefail
app=$1 data=$2 work=$3
wiki=$data/wiki/wiki-00.jsonl.zst
if [ ! -f "$wiki" ]; then
  echo "SKIPPED: shared data missing ($wiki)"
  exit 77
fi
rm -rf "$work" && mkdir -p "$work"
started=$SECONDS
step() { echo; echo "=== $* ($((SECONDS - started)) s)"; }
fail() { echo "FAIL: $*"; exit 1; }
expect_fail() {  # expect_fail "message fragment" command...: must exit non-zero and say the fragment
  local want=$1; shift
  if "$@" > "$work/out.txt" 2>&1; then echo "FAIL: expected an error from: $*"; cat "$work/out.txt"; exit 1; fi
  grep -qF -- "$want" "$work/out.txt" || { echo "FAIL: error from '$*' lacks '$want':"; cat "$work/out.txt"; exit 1; }
  ! grep -qE "check failed|\[/[^]]*:[0-9]+\]" "$work/out.txt" || { echo "FAIL: internal text in a user error:"; cat "$work/out.txt"; exit 1; }
  echo "ok: $(head -c 240 "$work/out.txt" | tr '\n' ' ')"
}
# the final model's bytes of a run directory (the newest checkpoint)
final_model() { ls -d "$1"/checkpoints/step-* | grep -E 'step-[0-9]+$' | sort | tail -1 | sed 's|$|/model.safetensors|'; }
same_model() {  # same_model RUN_A RUN_B: byte-identical final parameters
  cmp -s "$(final_model "$1")" "$(final_model "$2")" || fail "final parameters of $1 and $2 differ"
  echo "ok: $2 ends bit for bit as $1 ($(final_model "$2" | xargs basename "$(dirname "$(final_model "$2")")"))"
}
# wait_steps RUN N PID: until RUN/metrics.jsonl holds N optimizer steps (or the process is gone)
wait_steps() {
  for _ in $(seq 1 600); do
    local n
    n=$(grep -c '"lr"' "$1/metrics.jsonl" 2> /dev/null) || n=0
    [ "$n" -ge "$2" ] && return 0
    kill -0 "$3" 2> /dev/null || return 0
    sleep 0.05
  done
}

step "prepare a small dataset"
"$app" prepare --corpus "$wiki" --out "$work/data" --max-docs 150 --vocab-size 8192 --quiet > /dev/null
export CRAM_TEST_SECONDS_PER_MICRO_STEP=1
common=("$app" train --data "$work/data" --preset crammed_tiny --device cpu --micro-batch 4 --batch-target 8
        --ramp-end 0.5 --keep 2 --val-batches 1 --quiet)
train=("${common[@]}" --threads 2 --budget 60s --checkpoint-every 10s)

step "reference: one uninterrupted run (60 micro-steps of the test clock)"
"${train[@]}" --out "$work/ref"
ref_steps=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['step'])" "$(dirname "$(final_model "$work/ref")")/state.json")
echo "reference: $ref_steps optimizer steps"

step "SIGINT, SIGTERM, SIGHUP at random steps: checkpoint, exit 128 + signal, resume to the same end"
for sig in INT TERM HUP; do
  run=$work/sig-$sig
  at=$((RANDOM % 30 + 2))
  "${train[@]}" --out "$run" > "$work/$sig.log" 2>&1 &
  pid=$!
  wait_steps "$run" "$at" "$pid"
  kill -s "$sig" "$pid" 2> /dev/null || true
  rc=0; wait "$pid" || rc=$?
  want=$((128 + $(kill -l "$sig")))
  if [ "$rc" -eq 0 ]; then
    echo "note: the run finished before SIG$sig arrived (after step $at); nothing to resume"
  else
    [ "$rc" -eq "$want" ] || { cat "$work/$sig.log"; fail "SIG$sig: exit $rc, expected $want"; }
    grep -q '"signal"' "$run/metrics.jsonl" || fail "SIG$sig: no summary line with the signal in metrics.jsonl"
    stopped=$(ls -d "$run"/checkpoints/step-* | grep -E 'step-[0-9]+$' | sort | tail -1)
    echo "ok: SIG$sig after ~$at steps -> exit $rc, checkpoint $(basename "$stopped")"
    "${train[@]}" --out "$run" --resume
  fi
  same_model "$work/ref" "$run"
done

step "SIGKILL soak: kill at random moments, resume, until the run finishes (at most 25 kills)"
soak=$work/soak
kills=0
while :; do
  resume=()
  ls -d "$soak"/checkpoints/step-* > /dev/null 2>&1 && resume=(--resume)
  "${train[@]}" --out "$soak" "${resume[@]}" > "$work/soak.log" 2>&1 &
  pid=$!
  sleep "$(python3 -c "import random; print(round(random.uniform(0.3, 2.5), 2))")"
  if kill -9 "$pid" 2> /dev/null; then
    wait "$pid" 2> /dev/null || true
    kills=$((kills + 1))
    [ "$kills" -le 25 ] || fail "the soak did not finish within 25 kills"
    continue
  fi
  rc=0; wait "$pid" || rc=$?
  [ "$rc" -eq 0 ] || { cat "$work/soak.log"; fail "the soak's last run exited $rc"; }
  break
done
echo "soak: $kills SIGKILLs before the run finished"
same_model "$work/ref" "$soak"

step "one process per run directory, and per dataset while it is read"
unset CRAM_TEST_SECONDS_PER_MICRO_STEP  # a real clock: the holder keeps running while the others try
"$app" train --data "$work/data" --out "$work/busy" --preset crammed_tiny --device cpu --micro-batch 4 \
  --batch-target 8 --threads 1 --budget 5m --quiet > "$work/busy.log" 2>&1 &
holder=$!
wait_steps "$work/busy" 1 "$holder"
expect_fail "in use by another process (pid $holder" "$app" train --data "$work/data" --out "$work/busy" \
  --preset crammed_tiny --device cpu --budget 5m --resume --quiet
expect_fail "dataset $work/data is in use by another process (pid $holder" "$app" prepare --corpus "$wiki" --out "$work/data" \
  --max-docs 20 --vocab-size 8192 --quiet
kill -TERM "$holder"
rc=0; wait "$holder" || rc=$?
[ "$rc" -eq 143 ] || { cat "$work/busy.log"; fail "SIGTERM to the holder: exit $rc, expected 143"; }
echo "ok: the holder stopped on SIGTERM with exit 143"
export CRAM_TEST_SECONDS_PER_MICRO_STEP=1

step "a damaged newest checkpoint: glue and train --resume use the one before; a foreign vocabulary is refused"
cp -r "$work/ref" "$work/damaged"
newest=$(dirname "$(final_model "$work/damaged")")
python3 - "$newest/model.safetensors" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[-11] ^= 0x40  # one bit deep in the tensor data
open(p, "wb").write(bytes(b))
PY
if [ -d "$data/glue/RTE" ]; then
  "$app" glue --checkpoint "$work/damaged" --glue-dir "$data/glue" --out "$work/glue-damaged" --tasks RTE \
    --seeds 1 --epochs 1 --max-train 16 --max-steps 1 --device cpu --threads 2 --quiet 2> "$work/glue.log"
  grep -q "skipping damaged checkpoint $newest" "$work/glue.log" || { cat "$work/glue.log"; fail "glue did not report the damage"; }
  ! grep -qF "$newest\`" "$work/glue-damaged/report.md" || fail "glue evaluated the damaged checkpoint"
  echo "ok: glue passed over $(basename "$newest") and evaluated the one before"
  # same size, two tokens swapped: every id after them means something else
  python3 - "$work/data/vocab.txt" "$work/vocab-swapped.txt" <<'PY'
import sys
lines = open(sys.argv[1], encoding="utf-8").read().split("\n")
lines[200], lines[201] = lines[201], lines[200]
open(sys.argv[2], "w", encoding="utf-8").write("\n".join(lines))
PY
  expect_fail "is not the one the checkpoint was pretrained with" "$app" glue --checkpoint "$work/ref" \
    --glue-dir "$data/glue" --out "$work/glue-vocab" --tasks RTE --vocab "$work/vocab-swapped.txt" --device cpu --quiet
fi
expect_fail "budget_s" "${common[@]}" --threads 2 --budget 70s --checkpoint-every 10s --out "$work/damaged" --resume
"${train[@]}" --out "$work/damaged" --resume 2> "$work/resume-damaged.log"
grep -q "is damaged and will not be used" "$work/resume-damaged.log" || fail "resume did not report the damage"
ls -d "$newest.damaged" > /dev/null || fail "the damaged checkpoint was not set aside"
same_model "$work/ref" "$work/damaged"

step "the command line's mistakes"
expect_fail "did you mean 'train'" "$app" trian --data "$work/data"
expect_fail "100000 is out of range: 0 (all cores)" "${common[@]}" --out "$work/t1" --threads 100000 --budget 60s
expect_fail "must be a whole number 0 or above, got '-1'" "${train[@]}" --out "$work/t2" --seed -1
expect_fail "longer than 1000 days" "${common[@]}" --out "$work/t3" --budget 100000d
mkdir -p "$work/thesis" && echo "years of work" > "$work/thesis/thesis.tex"
expect_fail "is not a cram run (it holds thesis.tex)" "${train[@]}" --out "$work/thesis"
grep -q "years of work" "$work/thesis/thesis.tex" || fail "a foreign --out was written into"
"${common[@]}" --threads 2 --budget 60s --out "$work/no-periodic" --checkpoint-every 0
[ "$(ls -d "$work/no-periodic"/checkpoints/step-* | wc -l)" -eq 1 ] || fail "--checkpoint-every 0 still wrote periodic checkpoints"
echo "ok: --checkpoint-every 0 wrote only the final checkpoint"

echo; echo "reliability: all steps passed in $((SECONDS - started)) s"
