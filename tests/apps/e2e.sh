#!/usr/bin/env bash
# End to end through the real binary, as a user runs it: prepare real Wikipedia text, tokenize,
# train under a wall-clock budget, interrupt and --resume, the errors a user meets, then GLUE.
# Needs ../shared/data (wiki/ and glue/); exits 77 (ctest: skipped) with a loud line without it.
#   usage: e2e.sh APP SHARED_DATA WORK_DIR
set -euo pipefail
app=$1 data=$2 work=$3
wiki=$data/wiki/wiki-00.jsonl.zst
source "$(dirname "$0")/lib.sh"
need_shared_data "$wiki" "$data/glue/RTE"
rm -rf "$work" && mkdir -p "$work"

step "prepare: 400 Wikipedia articles -> 8192-token vocabulary + shards"
"$app" prepare --corpus "$wiki" --out "$work/data" --max-docs 400 --vocab-size 8192 --quiet
for f in vocab.txt tokenizer_config.json summary.json; do test -s "$work/data/$f"; done
ls "$work/data"/train-*.shard > /dev/null

step "tokenize: ids for a known word, no special tokens"
ids=$(echo "the" | "$app" tokenize --vocab "$work/data/vocab.txt")
want=$(grep -nxF "the" "$work/data/vocab.txt" | cut -d: -f1)
[ "$ids" = "$((want - 1))" ] || { echo "FAIL: 'the' -> '$ids', vocab.txt line $want"; exit 1; }

step "prepare: every refusal leaves the dataset byte for byte as it was (issue 13)"
digest() { (cd "$1" && find . -type f ! -name .cram-lock | sort | xargs md5sum) | md5sum; }
before=$(digest "$work/data")
expect_fail "wiki-0O.jsonl.zst" "$app" prepare --corpus "$data/wiki/wiki-0O.jsonl.zst" --out "$work/data" --quiet
expect_fail "--vocab-size 3" "$app" prepare --corpus "$wiki" --out "$work/data" --vocab-size 3 --quiet
expect_fail "--threads 100000" "$app" prepare --corpus "$wiki" --out "$work/data" --threads 100000 --quiet
expect_fail "--val-fraction 1" "$app" prepare --corpus "$wiki" --out "$work/data" --val-fraction 1 --quiet
expect_fail "nope.txt" "$app" prepare --corpus "$wiki" --out "$work/data" --vocab "$work/nope.txt" --quiet
printf '\n{"text": ""}\nnot json\n' > "$work/empty.jsonl"
expect_fail "no documents read from $work/empty.jsonl" "$app" prepare --corpus "$work/empty.jsonl" --out "$work/data" --quiet
echo '{"text": "the history of the city"}' > "$work/tiny.jsonl"
expect_fail "0 training sequences" "$app" prepare --corpus "$work/tiny.jsonl" --out "$work/data" --vocab "$work/data/vocab.txt" \
  --seq-len 128 --val-fraction 0 --quiet
head -c 1100000 /dev/zero | tr '\0' 'x' > "$work/long.txt"
expect_fail "--max-line-bytes" "$app" prepare --corpus "$work/long.txt" --out "$work/data" --max-line-bytes 1048576 --quiet
mkdir -p "$work/mine" && echo precious > "$work/mine/notes.txt"
expect_fail "notes.txt" "$app" prepare --corpus "$wiki" --out "$work/mine" --max-docs 10 --quiet
grep -qx precious "$work/mine/notes.txt"
flock -s "$work/data/.cram-lock" -c "sleep 60" & reader=$!  # a reader holding the dataset shared
sleep 0.5
expect_fail "in use by another process" "$app" prepare --corpus "$wiki" --out "$work/data" --max-docs 10 --quiet
kill "$reader"; wait "$reader" 2> /dev/null || true
[ "$(digest "$work/data")" = "$before" ] || { echo "FAIL: a refused prepare changed $work/data"; exit 1; }
echo "ok: $work/data unchanged"

step "prepare: BOM, invalid UTF-8 and a lone surrogate in JSON lines; built beside and swapped in"
{ printf '\xEF\xBB\xBF{"text": "the city of the river"}\n'; printf '{"text": "caf\xE9 of the \\udc80 city"}\n'
  for i in $(seq 40); do echo '{"text": "the river of the city is the city of the river"}'; done; } > "$work/odd.jsonl"
for round in 1 2; do  # the second round replaces the first dataset
  "$app" prepare --corpus "$work/odd.jsonl" --out "$work/odd" --vocab "$work/data/vocab.txt" --seq-len 16 \
    --val-fraction 0 --quiet > "$work/odd.json"
done
python3 - "$work/odd/summary.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
assert s["bad_lines"] == 0 and s["documents"] == 42, (s["bad_lines"], s["first_bad_line"], s["documents"])
assert len(s["vocab_xxh64"]) == 16, s.get("vocab_xxh64")
print("odd.jsonl: 42 documents, 0 malformed lines, vocab_xxh64", s["vocab_xxh64"])
PY
if ls -d "$work"/odd.tmp-* "$work"/odd.old-* 2> /dev/null; then echo "FAIL: work directories left behind"; exit 1; fi
ids_bom=$(printf '\xEF\xBB\xBFthe city\n' | "$app" tokenize --vocab "$work/data/vocab.txt")
ids=$(printf 'the city\n' | "$app" tokenize --vocab "$work/data/vocab.txt")
[ "$ids_bom" = "$ids" ] || { echo "FAIL: a BOM changed tokenize's ids: '$ids_bom' vs '$ids'"; exit 1; }

step "train: interrupted after 3 steps, then resumed to the end of a 25 s budget"
"$app" train --data "$work/data" --out "$work/run" --budget 25s --preset crammed_tiny --device cpu \
  --micro-batch 4 --batch-target 16 --max-steps 3 --quiet
ls -d "$work/run"/checkpoints/* > /dev/null 2>&1 || ls -R "$work/run" | head
expect_fail "--resume" "$app" train --data "$work/data" --out "$work/run" --budget 25s --preset crammed_tiny \
  --device cpu --micro-batch 4 --batch-target 16 --quiet
expect_fail "budget" "$app" train --data "$work/data" --out "$work/run" --budget 50s --preset crammed_tiny \
  --device cpu --micro-batch 4 --batch-target 16 --resume --quiet
"$app" train --data "$work/data" --out "$work/run" --budget 25s --preset crammed_tiny --device cpu \
  --micro-batch 4 --batch-target 16 --resume --quiet
test -s "$work/run/metrics.jsonl" && test -s "$work/run/loss.svg"
python3 - "$work/run/metrics.jsonl" <<'PY'
import json, math, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
steps = [r for r in rows if "loss" in r and isinstance(r.get("loss"), (int, float))]
assert len(steps) >= 4, f"expected several logged steps, got {len(steps)}"
first, last = steps[0]["loss"], steps[-1]["loss"]
print(f"metrics: {len(steps)} logged steps, loss {first:.3f} -> {last:.3f} (ln 8192 = {math.log(8192):.3f})")
assert last < first, "the loss did not go down"
PY

step "plan, then train with the defaults (budget-scaled recipe, test clock): the plan is kept, the recipe derived, the loss falls"
"$app" plan --data "$work/data" --budget 40s --preset crammed_tiny --device cpu --json > "$work/plan.json"
"$app" plan --data "$work/data" --budget 40s --preset crammed_tiny --gpu h200 > "$work/plan_gpu.txt"
grep -q "estimated: h200" "$work/plan_gpu.txt"
CRAM_TEST_SECONDS_PER_MICRO_STEP=0.25 "$app" train --data "$work/data" --out "$work/auto" --budget 40s \
  --preset crammed_tiny --device cpu --quiet
python3 - "$work/plan.json" "$work/auto/metrics.jsonl" <<'PY'
import json, sys
plan = json.load(open(sys.argv[1]))
rows = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
ev = {r["event"]: r for r in rows if "event" in r}
p = plan["plan"]
assert p["tokens"] == p["sequences"] * 128 and p["micro_steps"] * plan["micro_batch"] == p["sequences"], p
assert "plan" in ev and ev["plan"]["preset"] == "crammed_tiny", "train did not record its plan"
d, s = ev["derived"], ev["summary"]
m = plan["micro_batch"]
assert d["target_derived"] and d["batch_target"] % m == 0 and d["batch_target"] >= m, d
steps = [r for r in rows if "event" not in r]
# 40 s at 0.25 s per micro-step: 160 micro-steps, all of them in applied steps (none thrown away)
assert s["micro_steps"] == 160 and sum(r["accumulation"] for r in steps) == 160, (s["micro_steps"], len(steps))
print(f"auto recipe: target {d['batch_target']}, lr {d['lr']:.3g}, {s['steps']} steps; "
      f"loss {s['first_loss']:.3f} -> {s['final_loss']:.3f} (ln 8192 = 9.011)")
assert s["final_loss"] < s["first_loss"] - 1.0, "the loss did not fall clearly"
PY

step "errors a user meets"
expect_fail "vocab" "$app" train --data "$work/data" --out "$work/run2" --budget 5s --preset crammed_mini --device cpu
expect_fail "$work/nope" "$app" train --data "$work/nope" --out "$work/run3" --budget 5s --preset crammed_tiny
expect_fail "1q" "$app" train --data "$work/data" --out "$work/run4" --budget 1q --preset crammed_tiny
expect_fail "missing.jsonl" "$app" prepare --corpus "$work/missing.jsonl" --out "$work/data2"
if ! command -v nvidia-smi > /dev/null; then
  expect_fail "cuda" "$app" train --data "$work/data" --out "$work/run5" --budget 5s --preset crammed_tiny --device cuda
fi

if "$app" --help 2>&1 | grep -qE "^ +glue "; then
  step "glue: RTE from the checkpoint, one seed, one epoch, capped training set"
  "$app" glue --checkpoint "$work/run" --glue-dir "$data/glue" --out "$work/glue" --tasks RTE --seeds 1 \
    --epochs 1 --max-train 64 --device cpu
  ls "$work/glue"
  for f in report.md report.json; do test -s "$work/glue/$f"; done
  grep -q "RTE" "$work/glue/report.md"
  expect_fail "--resume" "$app" glue --checkpoint "$work/run" --glue-dir "$data/glue" --out "$work/glue" \
    --tasks RTE --seeds 1 --epochs 1 --max-train 64 --device cpu

  step "glue: SIGTERM mid-evaluation -> exit 143, partial report; a second glue on the --out refused; --resume finishes"
  gsig=$work/glue_sig
  gargs=(--checkpoint "$work/run" --glue-dir "$data/glue" --out "$gsig" --tasks RTE,MRPC --seeds 2 --epochs 2
         --max-train 256 --device cpu --threads 1)
  "$app" glue "${gargs[@]}" > "$work/glue_sig.log" 2>&1 &
  gpid=$!
  for _ in $(seq 1 150); do  # until the first epoch is recorded (at most 30 s)
    grep -q '"event":"epoch"' "$gsig/glue_metrics.jsonl" 2> /dev/null && break
    sleep 0.2
  done
  grep -q '"event":"epoch"' "$gsig/glue_metrics.jsonl" || { echo "FAIL: no epoch recorded"; cat "$work/glue_sig.log"; exit 1; }
  expect_fail "pid $gpid" "$app" glue "${gargs[@]}" --resume
  kill -TERM "$gpid"
  grc=0
  wait "$gpid" || grc=$?
  [ "$grc" = 143 ] || { echo "FAIL: glue after SIGTERM exited $grc, want 143"; cat "$work/glue_sig.log"; exit 1; }
  grep -q "SIGTERM received" "$work/glue_sig.log"
  grep -q "Interrupted by SIGTERM: .* of 4 runs complete; continue with .*--resume" "$gsig/report.md"
  python3 - "$gsig" <<'PY'
import json, os, sys
d = sys.argv[1]
rep = json.load(open(os.path.join(d, "report.json")))
lines = [json.loads(l) for l in open(os.path.join(d, "glue_metrics.jsonl"))]
assert rep["complete"] is False and rep["interrupted"]["signal"] == "SIGTERM", rep.get("interrupted")
assert rep["cramming"]["average"]["value"] is None and rep["leaderboard"]["average"]["value"] is None
done = sum(1 for l in lines if l["event"] == "run")
assert rep["interrupted"]["runs_done"] == done < 4, (rep["interrupted"], done)
assert lines[0]["event"] == "settings" and lines[-1]["event"] == "interrupted", (lines[0], lines[-1])
print(f"interrupted: {done} of 4 runs recorded, incomplete tasks {sorted(rep['incomplete'])}")
PY
  expect_fail "--resume" "$app" glue "${gargs[@]}"
  expect_fail "finetune.lr" "$app" glue "${gargs[@]}" --lr 1e-3 --resume
  "$app" glue "${gargs[@]}" --resume --quiet
  python3 - "$gsig" <<'PY'
import json, os, sys
d = sys.argv[1]
rep = json.load(open(os.path.join(d, "report.json")))
lines = [json.loads(l) for l in open(os.path.join(d, "glue_metrics.jsonl"))]
assert rep["complete"] is True and "interrupted" not in rep and not rep["incomplete"], rep.get("incomplete")
assert sorted(rep["tasks"]) == ["MRPC", "RTE"] and all(len(t["runs"]) == 2 for t in rep["tasks"].values())
assert rep["cramming"]["average"]["value"] is not None
runs = [(l["task"], l["seed"]) for l in lines if l["event"] == "run"]
assert sorted(runs) == sorted(set(runs)) and len(runs) == 4, runs  # none re-run
assert lines[-1]["event"] == "summary"
print("resumed to completion:", {t: v["median"]["dev"] for t, v in rep["tasks"].items()})
PY

  step "run: prepare -> train -> GLUE in one command (tiny budget, train's --max-steps, capped GLUE protocol)"
  "$app" run --corpus "$wiki" --out "$work/all" --max-docs 150 --budget 8s --preset crammed_tiny --device cpu \
    --micro-batch 4 --batch-target 8 --max-steps 2 --glue-dir "$data/glue" --glue-tasks RTE --glue-seeds 1 \
    --glue-epochs 1 --glue-max-train 32 --quiet
  test -s "$work/all/glue/report.md"
  # the trainer records its dataset, which is where glue finds the vocabulary
  python3 - "$work/all" <<'PY'
import json, os, sys, glob
st = json.load(open(sorted(glob.glob(os.path.join(sys.argv[1], "run/checkpoints/step-*/state.json")))[-1]))
want = os.path.realpath(os.path.join(sys.argv[1], "data"))
assert os.path.realpath(st["run"]["data_dir"]) == want, (st.get("run"), want)
print("state.json run.data_dir:", st["run"]["data_dir"])
# run takes train's options: --max-steps 2 stopped it after two steps, well inside the budget
summary = [json.loads(l) for l in open(os.path.join(sys.argv[1], "run/metrics.jsonl")) if '"summary"' in l][-1]
assert st["step"] == 2 and summary["stop_reason"] == "max_steps", (st["step"], summary["stop_reason"])
print("run --max-steps 2: stopped by", summary["stop_reason"], "at step", st["step"])
PY
fi
echo; echo "e2e: all steps passed"
