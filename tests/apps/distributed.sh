#!/usr/bin/env bash
# Data-parallel training through mpirun and the real binary (docs/distributed.md), on crammed_tiny:
#  - 2 ranks end bit for bit where one process accumulating their micro-batches (pairwise) ends;
#  - 4 ranks too (recursive halving and doubling keep the tree of a power-of-two rank count);
#  - a 2-rank checkpoint resumes on 2 ranks and on 1 process, both to the same end;
#  - SIGUSR1 to mpirun (forwarded) and SIGTERM to the ranks: every rank stops after the same micro-step,
#    rank 0 writes the checkpoint, all exit 128 + signal, and --resume ends where an unbroken run does;
#  - a rank killed with SIGKILL: the job ends with a message naming it within seconds, and resumes;
#  - other commands under mpirun are refused; an error on rank 0 ends the job at once, naming the rank;
#  - on a machine with two GPUs, 2 GPU ranks over NCCL train close to one GPU (skipped, saying so, without).
# The comparisons use the test clock (CRAM_TEST_SECONDS_PER_MICRO_STEP: budget time is micro-batches),
# so every run follows the same schedule. Needs ../shared/data (wiki/) and mpirun; exits 77 (skipped)
# without them.
#   usage: distributed.sh APP SHARED_DATA WORK_DIR
set -euo pipefail
app=$1 data=$2 work=$3
wiki=$data/wiki/wiki-00.jsonl.zst
if [ ! -f "$wiki" ]; then echo "SKIPPED: shared data missing ($wiki)"; exit 77; fi
if ! command -v mpirun > /dev/null; then echo "SKIPPED: no mpirun (Debian: openmpi-bin)"; exit 77; fi
rm -rf "$work" && mkdir -p "$work"
started=$SECONDS
step() { echo; echo "=== $* ($((SECONDS - started)) s)"; }
fail() { echo "FAIL: $*"; exit 1; }
# --oversubscribe: more ranks than this machine's cores; the vader copy mechanism off: containers often
# forbid the cross-process reads it uses; --allow-run-as-root for CI's root container
mpi=(mpirun --oversubscribe --bind-to none --mca btl_vader_single_copy_mechanism none)
[ "$(id -u)" = 0 ] && mpi+=(--allow-run-as-root)
final_dir() { ls -d "$1"/checkpoints/step-* | grep -E 'step-[0-9]+$' | sort | tail -1; }
state() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$(final_dir "$1")/state.json" "$2"; }
same_model() {  # same_model RUN_A RUN_B: byte-identical final parameters and moments, same step and data position
  for f in model.safetensors optimizer.safetensors; do
    cmp -s "$(final_dir "$1")/$f" "$(final_dir "$2")/$f" || fail "$f of $1 and $2 differ"
  done
  [ "$(state "$1" step)" = "$(state "$2" step)" ] && [ "$(state "$1" data_position)" = "$(state "$2" data_position)" ] ||
    fail "$1 and $2 end at other steps or data positions"
  echo "ok: $2 ends bit for bit as $1 (step $(state "$2" step), data position $(state "$2" data_position))"
}
wait_for() {  # wait_for SECONDS COMMAND...: until the command succeeds
  local end=$((SECONDS + $1)); shift
  until "$@" 2> /dev/null; do [ $SECONDS -lt $end ] || return 1; sleep 0.1; done
}
steps_in() { grep -c '"clip_scale"' "$1/metrics.jsonl" 2> /dev/null || true; }
has_steps() { [ "$(steps_in "$1")" -ge "$2" ]; }                     # has_steps RUN N
has_checkpoint() { [ -d "$1/checkpoints" ] && has_steps "$1" "$2"; }  # and a periodic checkpoint
rank_pid() {  # rank_pid RUN RANK: the pid of that rank of the job training into RUN
  for p in $(pgrep -f -- "--out $1( |$)"); do
    tr '\0' '\n' < /proc/"$p"/environ 2> /dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2" && { echo "$p"; return; }
  done
}

step "prepare a small dataset"
"$app" prepare --corpus "$wiki" --out "$work/data" --max-docs 150 --vocab-size 8192 --quiet > /dev/null
export CRAM_TEST_SECONDS_PER_MICRO_STEP=1
# 4 micro-batches of 4 sequences per step: 4 on one process, 2 on each of 2 ranks, 1 on each of 4
base=("$app" train --data "$work/data" --preset crammed_tiny --device cpu --micro-batch 4 --batch-target 16
      --ramp-end 0 --lr 5e-4 --checkpoint-every 20s --keep 2 --val-batches 1 --threads 1 --quiet)
train=("${base[@]}" --budget 1000s)

step "reference: one process, pairwise accumulation, 8 steps"
"${train[@]}" --grad-accumulation pairwise --max-steps 8 --out "$work/one"

step "2 ranks, 8 steps: bit for bit the reference"
"${mpi[@]}" -np 2 "${train[@]}" --max-steps 8 --out "$work/two"
same_model "$work/one" "$work/two"
python3 - "$work/two/metrics.jsonl" <<'PY'
import json, sys
steps = [j for j in map(json.loads, open(sys.argv[1])) if "event" not in j]
assert steps and all(s["ranks"] == 2 and s["batch"] == 16 and s["allreduce_s"] >= 0 and s["rank_spread_s"] >= 0
                     for s in steps), steps[-1]
print("ok: metrics.jsonl (rank 0's alone) records ranks, batch 16, allreduce_s, rank_spread_s")
PY
[ "$(state "$work/two" ranks)" = 2 ] || fail "state.json does not record 2 ranks"

step "4 ranks (oversubscribed), 8 steps: bit for bit the reference"
"${mpi[@]}" -np 4 "${train[@]}" --max-steps 8 --out "$work/four"
same_model "$work/one" "$work/four"

step "2 ranks on the real clock (each rank started at its own moment): all stop at the budget together"
timeout 120 env -u CRAM_TEST_SECONDS_PER_MICRO_STEP "${mpi[@]}" -np 2 "${base[@]}" --budget 6s --rank-timeout 30s --out "$work/real" ||
  fail "the 2-rank job on the real clock failed or hung"
[ "$(state "$work/real" ranks)" = 2 ] || fail "no 2-rank checkpoint"
echo "ok: stopped by the budget after $(state "$work/real" step) steps"

step "in-place accumulation on one process differs (the comparison can fail)"
"${train[@]}" --grad-accumulation in-place --max-steps 8 --out "$work/inplace"
if cmp -s "$(final_dir "$work/one")/model.safetensors" "$(final_dir "$work/inplace")/model.safetensors"; then
  fail "in-place and pairwise accumulation gave identical parameters: the bitwise comparisons prove nothing"
fi
echo "ok: in-place accumulation ends elsewhere (rounding order), as it should"

step "resume: a 2-rank run stopped at step 4 continues on 2 ranks, and on 1 process, to the same end"
"${mpi[@]}" -np 2 "${train[@]}" --max-steps 4 --out "$work/half"
cp -r "$work/half" "$work/half1"
"${mpi[@]}" -np 2 "${train[@]}" --max-steps 8 --resume --out "$work/half"
same_model "$work/one" "$work/half"
"${train[@]}" --grad-accumulation pairwise --max-steps 8 --resume --out "$work/half1"
same_model "$work/one" "$work/half1"

step "reference for the interruptions: one process, 60 steps"
"${train[@]}" --grad-accumulation pairwise --max-steps 60 --out "$work/long"

# interrupted NAME SIGNAL WHOM: a 2-rank job of 60 steps into $work/NAME gets SIGNAL after 5 steps, sent to
# mpirun or to rank 1 alone; every rank must stop with the checkpoint, and --resume end as the reference
interrupted() {
  local run=$work/$1 sig=$2 whom=$3 job target rc=0
  "${mpi[@]}" -np 2 "${train[@]}" --max-steps 60 --out "$run" > "$run.log" 2>&1 &
  job=$!
  wait_for 120 has_steps "$run" 5 || fail "the 2-rank job did not start"
  target=$job
  [ "$whom" = mpirun ] || target=$(rank_pid "$run" 1)
  [ -n "$target" ] || fail "rank 1 of the job not found"
  kill -"$sig" "$target"
  wait $job || rc=$?
  [ $rc -ne 0 ] || fail "mpirun exited 0 after SIG$sig"
  python3 -c "import json,sys; s=json.loads(open(sys.argv[1]).read().splitlines()[-1]); assert s['event']=='summary' and s['stop_reason']==sys.argv[2], s; print('ok: every rank stopped on', s['stop_reason'], 'at step', s['steps'])" "$run/metrics.jsonl" "SIG$sig"
  "${mpi[@]}" -np 2 "${train[@]}" --max-steps 60 --resume --out "$run"
  same_model "$work/long" "$run"
}

step "SIGUSR1 to mpirun: forwarded to every rank, checkpoint, exit 128 + 10, resume to the same end"
interrupted usr1 USR1 mpirun

step "SIGTERM to one rank (a scheduler signals each): the agreement after each micro-step stops both"
interrupted term TERM rank1

step "a rank killed (SIGKILL): the job ends within seconds naming it, and resumes from the last checkpoint"
"${mpi[@]}" -np 2 "${train[@]}" --max-steps 60 --out "$work/kill" > "$work/kill.log" 2>&1 &
job=$!
wait_for 120 has_checkpoint "$work/kill" 12 || fail "no checkpoint appeared"
r1=$(rank_pid "$work/kill" 1)
[ -n "$r1" ] || fail "rank 1 of the job not found"
killed_at=$SECONDS
kill -KILL "$r1"
rc=0; wait $job || rc=$?
[ $rc -ne 0 ] || fail "mpirun exited 0 after a rank was killed"
echo "ok: the job ended $((SECONDS - killed_at)) s after the kill, exit $rc: $(grep -m1 -o 'process rank 1 .*' "$work/kill.log" || tail -1 "$work/kill.log")"
[ $((SECONDS - killed_at)) -le 60 ] || fail "the job took over 60 s to end after a rank died"
"${mpi[@]}" -np 2 "${train[@]}" --max-steps 60 --resume --out "$work/kill"
same_model "$work/long" "$work/kill"

step "commands other than train are refused under mpirun"
if "${mpi[@]}" -np 2 "$app" plan --preset crammed_tiny --budget 1h > "$work/refused.log" 2>&1; then fail "plan ran under mpirun"; fi
grep -q "only \`train\` runs data-parallel" "$work/refused.log" || { cat "$work/refused.log"; fail "no clear refusal"; }
echo "ok: $(grep -m1 "only" "$work/refused.log" | head -c 200)"

step "an error on rank 0 (a fresh run into a finished one) ends the whole job at once, saying which rank"
if timeout 60 "${mpi[@]}" -np 2 "${train[@]}" --max-steps 8 --out "$work/two" > "$work/again.log" 2>&1; then
  fail "a fresh run into a run directory with checkpoints was accepted"
fi
grep -q "error on rank 0 of 2: run directory .* already holds checkpoints" "$work/again.log" || { cat "$work/again.log"; fail "no clear error"; }
echo "ok: $(grep -m1 "error on rank" "$work/again.log" | head -c 200)"

step "GPU ranks over NCCL (needs two GPUs)"
gpus=0
command -v nvidia-smi > /dev/null && gpus=$(nvidia-smi -L 2> /dev/null | grep -c '^GPU' || true)
if [ "$gpus" -ge 2 ]; then
  gpu=("$app" train --data "$work/data" --preset crammed_tiny --device cuda --micro-batch 8 --batch-target 32
       --ramp-end 0 --lr 5e-4 --budget 1000s --max-steps 20 --checkpoint-every 0 --val-batches 0 --quiet)
  "${gpu[@]}" --grad-accumulation pairwise --out "$work/gpu1"
  "${mpi[@]}" -np 2 "${gpu[@]}" --out "$work/gpu2"
  # NCCL sums in its own order: close to one GPU, not bit for bit
  python3 - "$(final_dir "$work/gpu1")/state.json" "$(final_dir "$work/gpu2")/state.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
assert a["step"] == b["step"] == 20 and b["ranks"] == 2, (a["step"], b["step"])
assert abs(a["loss"] - b["loss"]) < 0.02 * abs(a["loss"]), (a["loss"], b["loss"])
print(f"ok: 2 GPU ranks end at loss {b['loss']:.4f}, one GPU at {a['loss']:.4f}")
PY
else
  echo "skipped: $gpus GPU(s) here; the NCCL path is compiled but not run"
fi

echo; echo "distributed: all passed ($((SECONDS - started)) s)"
