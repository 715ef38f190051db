#!/usr/bin/env bash
# The paper's compared recipes and fp16 through the binary (issue 19, docs/training.md): a short run of each
# recipe on its small preset, its learning rates against the recipe's formula worked out here, fp16 (emulated on
# the CPU) with a loss scale forced past fp16's range (the steps overflow, are skipped, the scale halves, the
# run trains on, and an interrupted run resumes with the scaler's state exactly), the refusals, then the
# comparison report over the runs. Needs ../shared/data (wiki/, glue/RTE); exits 77 (ctest: skipped) without it.
#   usage: recipes.sh APP SHARED_DATA WORK_DIR
set -euo pipefail
app=$1 data=$2 work=$3
wiki=$data/wiki/wiki-00.jsonl.zst
source "$(dirname "$0")/lib.sh"
need_shared_data "$wiki" "$data/glue/RTE"
rm -rf "$work" && mkdir -p "$work"
# the test clock: 0.05 s of budget per micro-step, so runs are short and repeat exactly
export CRAM_TEST_SECONDS_PER_MICRO_STEP=0.05

step "prepare: 200 Wikipedia articles, the 8192-token vocabulary all three small presets share"
"$app" prepare --corpus "$wiki" --out "$work/data" --max-docs 200 --vocab-size 8192 --quiet > /dev/null

step "each recipe on its small preset (the batch targets scaled down to fit a few seconds)"
for r in "crammed crammed_tiny" "bert-original bert_tiny" "izsak izsak_tiny"; do
  set -- $r
  "$app" train --recipe "$1" --preset "$2" --data "$work/data" --out "$work/run-$1" --budget 4s --batch-target 16 \
    --val-batches 0 --quiet
done

python3 - "$work" <<'PY'
import json, math, sys, glob, os
work = sys.argv[1]
def steps(run):
    lines = [json.loads(l) for l in open(f"{work}/run-{run}/metrics.jsonl")]
    return [l for l in lines if "event" not in l]
def state(run):
    ck = sorted(glob.glob(f"{work}/run-{run}/checkpoints/step-*"))[-1]
    return json.load(open(os.path.join(ck, "state.json")))
def close(a, b, what):
    if not math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-12):
        sys.exit(f"FAIL: {what}: {a} != {b}")
def f32(x, want):  # a value stored as fp32 in the config
    return math.isclose(x, want, rel_tol=1e-6)

# crammed: budget-triangle2 on the derived peak: lr / peak = min(0.25 + p, 4 (1 - p)) (0.25 + p/0.75 * 0.75)
s = steps("crammed"); st = state("crammed")
assert "recipe" not in st["config"], "crammed keeps the old fingerprint (no recipe key)"
assert st["run"]["recipe"] == "crammed"
assert st["run"]["attention"].startswith("per (sequence, head) GEMMs"), st["run"]  # the CPU's one path, recorded
assert st["run"]["decoder"].startswith("row chunks"), st["run"]  # likewise the decoder's
assert st["run"]["residual"].startswith("fp32"), st["run"]  # the CPU's residual stream is fp32, as every activation
peak = st["recipe"]["lr"]
for r in s[len(s)//2:]:  # after the warm-up derived the peak
    close(r["lr"], peak * max(0.0, min(0.25 + r["progress"], 4 * (1 - r["progress"]))), f"crammed lr at p={r['progress']}")

# bert-original: polynomial decay over sequences: 1e-4 * (sequences before the step) / 5,120,000 in the warm-up
s = steps("bert-original"); st = state("bert-original")
c = st["config"]
assert c["recipe"] == "bert-original" and f32(c["mask_fraction"], 0.15), c
assert f32(c["adamw"]["beta2"], 0.999) and f32(c["adamw"]["eps"], 1e-8) and c["adamw"]["clip_norm"] == 0, c["adamw"]
assert f32(c["dropout"]["hidden"], 0.1) and f32(c["dropout"]["attention"], 0.1), c.get("dropout")
assert st["config"]["model"]["norm"] == "post" and st["config"]["model"]["positions"] == "learned"
for r in s:
    close(r["lr"], 1e-4 * (r["sequences"] - r["batch"]) / 5_120_000, f"bert-original lr at step {r['step']}")
assert s[0]["lr"] == 0.0  # the first step is the warm-up's zero, as in the original

# izsak: 6% warm-up then linear decay over the budget, peak 2e-3
s = steps("izsak"); st = state("izsak")
assert st["config"]["recipe"] == "izsak" and f32(st["config"]["adamw"]["eps"], 1e-6)
assert st["config"]["model"]["norm"] == "pre" and st["config"]["model"]["ffn"] == "gelu"
for r in s:
    p = r["progress"]
    close(r["lr"], 2e-3 * (p / 0.06 if p < 0.06 else (1 - p) / 0.94), f"izsak lr at p={p}")
for run in ("crammed", "bert-original", "izsak"):
    s = steps(run)
    assert all(math.isfinite(r["loss"]) for r in s), run
    assert max(r["batch"] for r in s) == 16, run
print("ok: the three recipes' learning rates follow their formulas; configs recorded")
PY

step "fp16 emulated on the CPU, the loss scale forced to 1e12: overflows skipped, the scale halves, training goes on"
"$app" train --preset crammed_tiny --data "$work/data" --out "$work/fp16" --budget 6s --batch-target 16 --val-batches 0 \
  --precision fp16 --loss-scale 1e12 --max-steps 40 --quiet
"$app" train --preset crammed_tiny --data "$work/data" --out "$work/fp16-split" --budget 6s --batch-target 16 --val-batches 0 \
  --precision fp16 --loss-scale 1e12 --max-steps 24 --quiet
"$app" train --preset crammed_tiny --data "$work/data" --out "$work/fp16-split" --budget 6s --batch-target 16 --val-batches 0 \
  --precision fp16 --loss-scale 1e12 --max-steps 40 --quiet --resume
python3 - "$work" <<'PY'
import json, math, sys, glob, os
work = sys.argv[1]
def lines(d): return [json.loads(l) for l in open(f"{work}/{d}/metrics.jsonl")]
full = lines("fp16")
s = [l for l in full if "event" not in l]
summary = [l for l in full if l.get("event") == "summary"][-1]
scale, overflows = 1e12, 0
for r in s:
    if not math.isclose(r["loss_scale"], scale, rel_tol=1e-12): sys.exit(f"FAIL: step record scale {r['loss_scale']} != {scale}")
    if r.get("overflow"):
        assert r.get("skipped"), r
        overflows += 1
        scale /= 2
    else:
        assert math.isfinite(r["loss"]) and math.isfinite(r["grad_norm"]), r
first_applied = next(i for i, r in enumerate(s) if not r.get("overflow"))
assert first_applied > 5, f"the opening overflow streak ({first_applied}) should outlast max_bad_steps (5)"
assert summary["steps"] == 40 and summary["skipped_steps"] == overflows, summary
assert summary["loss_scaler"]["overflows"] == overflows and math.isclose(summary["loss_scaler"]["scale"], scale)
ck = sorted(glob.glob(f"{work}/fp16/checkpoints/step-*"))[-1]
st = json.load(open(os.path.join(ck, "state.json")))
assert st["loss_scaler"] == summary["loss_scaler"], (st["loss_scaler"], summary["loss_scaler"])
assert st["config"]["fp16"]["emulated_gradients"] is True and st["run"]["precision"] == "fp16 (emulated)"
print(f"ok: {overflows} overflow steps skipped ({first_applied} in a row at the start), scale {scale:g} at the end")
# the interrupted run, resumed, repeats the unbroken one: losses, scales and overflows, step for step
split = [l for l in lines("fp16-split") if "event" not in l]
key = lambda r: (r["step"], r["skipped_steps"], r["loss"], r["loss_scale"], r.get("overflow", False))
if [key(r) for r in split] != [key(r) for r in s]:
    sys.exit("FAIL: the resumed fp16 run differs from the unbroken one")
print("ok: the resumed fp16 run matches the unbroken one step for step (scaler state restored)")
PY

step "GLUE (RTE, a few steps) on each recipe's run, then the comparison report over the three"
for r in crammed bert-original izsak; do
  "$app" glue --checkpoint "$work/run-$r" --glue-dir "$data/glue" --out "$work/glue-$r" --tasks RTE --seeds 1 \
    --epochs 1 --max-train 32 --quiet > /dev/null
done
"$app" compare --out "$work/cmp" "crammed=$work/run-crammed:$work/glue-crammed" \
  "bert-original=$work/run-bert-original:$work/glue-bert-original" "izsak=$work/run-izsak:$work/glue-izsak" --quiet
python3 - "$work" <<'PY'
import json, sys, glob, os
work = sys.argv[1]
cmp = json.load(open(f"{work}/cmp/compare.json"))
runs = {r["label"]: r for r in cmp["runs"]}
assert list(runs) == ["crammed", "bert-original", "izsak"], list(runs)
for label, preset in [("crammed", "crammed_tiny"), ("bert-original", "bert_tiny"), ("izsak", "izsak_tiny")]:
    r = runs[label]
    ck = sorted(glob.glob(f"{work}/run-{label}/checkpoints/step-*"))[-1]
    st = json.load(open(os.path.join(ck, "state.json")))
    rep = json.load(open(f"{work}/glue-{label}/report.json"))
    assert r["recipe"] == label and r["preset"] == preset and r["precision"] == "fp32", r
    assert r["tokens"] == st["tokens"] and r["step"] == st["step"], (r, st["step"])
    assert r["glue"]["columns"]["RTE"] == rep["cramming"]["columns"]["RTE"], (r["glue"], rep["cramming"])
md = open(f"{work}/cmp/compare.md").read()
for label in runs:
    assert f"| **{label}** | {label} |" in md, label
print("ok: the comparison report lists the three recipes with their tokens and RTE scores")
PY

step "refusals"
expect_fail "computes in fp32" "$app" train --preset crammed_tiny --data "$work/data" --out "$work/bad" --budget 2s --precision bf16
expect_fail "roberta not in {crammed,bert-original,izsak}" "$app" train --recipe roberta --data "$work/data" --out "$work/bad" --budget 2s
# an fp32 residual stream is built for pre-norm blocks; bert_tiny's are post-norm
expect_fail "has post-norm blocks" "$app" train --recipe bert-original --preset bert_tiny --data "$work/data" \
  --out "$work/bad" --budget 2s --residual fp32
# resuming the fp16 run in fp32 would change what its steps compute: refused, naming the difference
expect_fail "fp16" "$app" train --preset crammed_tiny --data "$work/data" --out "$work/fp16" --budget 6s --batch-target 16 \
  --val-batches 0 --max-steps 50 --resume --quiet
# the recipe is part of the checkpoint: resuming izsak's run as bert-original is refused
expect_fail "recipe" "$app" train --recipe bert-original --preset izsak_tiny --data "$work/data" --out "$work/run-izsak" \
  --budget 4s --batch-target 16 --resume --quiet
echo; echo "recipes: all checks passed"
