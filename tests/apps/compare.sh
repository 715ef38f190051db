#!/usr/bin/env bash
# `compare` through the real binary: two tiny runs (a `run --glue-protocol article` output directory, and a
# `train` + `glue` pair under the default, released protocol), `compare` over both, and every cell of compare.json and of the markdown table
# checked against the runs' own state.json, metrics.jsonl and report.json, read here independently. Then the
# refusals: a missing directory, an unfinished run, a malformed report.json, two runs with one label, an
# unknown protocol, and a --resume under another protocol. About 20 s on 2 cores.
# Needs ../shared/data (wiki/ and glue/); exits 77 (ctest: skipped) with a loud line without it.
#   usage: compare.sh APP SHARED_DATA WORK_DIR
set -euo pipefail
app=$1 data=$2 work=$3
wiki=$data/wiki/wiki-00.jsonl.zst
source "$(dirname "$0")/lib.sh"
need_shared_data "$wiki" "$data/glue/RTE/train.tsv" "$data/glue/MRPC/train.tsv" "$data/glue/STS-B/train.tsv"
rm -rf "$work" && mkdir -p "$work"
tiny=(--preset crammed_tiny --device cpu --micro-batch 4 --batch-target 8 --quiet)

step "run A: prepare 150 articles, train 5 s, GLUE RTE + MRPC under the article protocol (capped)"
# an unknown protocol fails when the command line is read, before anything is prepared
expect_fail "the protocols are released, article" "$app" run --corpus "$wiki" --out "$work/a-bad" "${tiny[@]}" \
  --budget 5s --glue-dir "$data/glue" --glue-protocol paper
[ ! -e "$work/a-bad" ] || { echo "FAIL: run with an unknown protocol wrote $work/a-bad"; exit 1; }
"$app" run --corpus "$wiki" --out "$work/a" --max-docs 150 --budget 5s "${tiny[@]}" --glue-dir "$data/glue" \
  --glue-protocol article --glue-tasks RTE,MRPC --glue-seeds 1 --glue-epochs 1 --glue-max-train 32 > "$work/a.log" 2>&1 \
  || { cat "$work/a.log"; exit 1; }

step "run B: train 4 s on A's dataset, then GLUE RTE + STS-B under the default (released) protocol"
"$app" train --data "$work/a/data" --out "$work/b/train" --budget 4s "${tiny[@]}"
expect_fail "the protocols are released, article" "$app" glue --checkpoint "$work/b/train" --glue-dir "$data/glue" \
  --out "$work/b/nope" --protocol paper
gargs=(--checkpoint "$work/b/train" --glue-dir "$data/glue" --out "$work/b/glue" --tasks RTE,STS-B --seeds 1 --epochs 1
       --max-train 32 --device cpu --quiet)
"$app" glue "${gargs[@]}" > /dev/null
# the same evaluation under the other protocol's name is not taken for this one
expect_fail 'protocol (recorded "released", now "article")' "$app" glue "${gargs[@]}" --protocol article --resume

step "compare: both runs, then every cell against the runs' own files"
"$app" compare --out "$work/cmp" "tiny-a=$work/a" "$work/b/train:$work/b/glue" --quiet
python3 - "$work" <<'PY'
import glob, json, math, os, sys
work = sys.argv[1]
cmp = json.load(open(os.path.join(work, "cmp", "compare.json")))
md = open(os.path.join(work, "cmp", "compare.md")).read()
columns = ["MNLI-m", "MNLI-mm", "SST-2", "STS-B", "RTE", "QNLI", "QQP", "MRPC", "CoLA"]
assert cmp["columns"] == columns, cmp["columns"]

def newest_state(train):  # by step number, as the trainer names them
    dirs = sorted(glob.glob(os.path.join(train, "checkpoints", "step-*")), key=lambda d: int(d.rsplit("-", 1)[1]))
    return json.load(open(os.path.join(dirs[-1], "state.json")))

def last_summary(train):
    rows = [json.loads(l) for l in open(os.path.join(train, "metrics.jsonl")) if l.strip()]
    return [r for r in rows if r.get("event") == "summary"][-1]

def fmt_duration(s):  # train::format_duration below a minute
    return f"{s:.1f}s"

runs = {r["label"]: r for r in cmp["runs"]}
assert list(runs) == ["tiny-a", "train"], list(runs)
for label, train, glue, protocol in [("tiny-a", f"{work}/a/run", f"{work}/a/glue", "article"),
                                     ("train", f"{work}/b/train", f"{work}/b/glue", "released")]:
    r, st, sm = runs[label], newest_state(train), last_summary(train)
    rep = json.load(open(os.path.join(glue, "report.json")))
    cfg = st["config"]
    ranks = st.get("ranks", 1)
    assert r["recipe"] == st["run"]["recipe"] == "crammed" and r["preset"] == cfg["preset"] == "crammed_tiny", r
    assert r["backend"] == st["backend"] == "cpu" and r["ranks"] == ranks == 1, r
    assert r["precision"] == st["run"]["precision"] == "fp32", r
    assert r["step"] == st["step"] == sm["steps"] and r["tokens"] == st["tokens"], (r["step"], st["step"], sm["steps"])
    assert r["budget_s"] == st["budget_s"] and r["elapsed_s"] == st["elapsed_s"], r
    hours = st["elapsed_s"] * ranks / 3600
    assert math.isclose(r["device_hours"], hours, rel_tol=1e-12) and r["device_hours_unit"] == "CPU-hours", r
    assert r["final_loss"] == sm["final_loss"] and r["val_loss"] == sm["val_loss"], r
    g = r["glue"]
    assert g["protocol"] == rep["protocol"]["name"] == protocol, (g["protocol"], rep.get("protocol"))
    assert g["deviations"] == rep["deviations"] and len(g["deviations"]) > 0, g["deviations"]
    want = {c: rep["cramming"]["columns"].get(c) for c in columns}
    assert g["columns"] == want, (g["columns"], want)
    assert g["columns_present"] == 2 and g["average"] is None, g  # 2 of 9 tasks: no average
    # the markdown row, cell by cell
    cells = [f"**{label}**", r["recipe"], "crammed_tiny", "cpu, fp32, 1 rank", fmt_duration(st["budget_s"]),
             fmt_duration(st["elapsed_s"]), None, f"{hours:.3g} CPU-h",
             f"{sm['final_loss']:.3f} / " + ("–" if sm["val_loss"] is None else f"{sm['val_loss']:.3f}")]
    cells += [("–" if want[c] is None else f"{want[c]:.1f}") for c in columns]
    cells += ["– (2 of 9)", protocol, f"{len(rep['deviations'])} (notes)"]
    row = next(l for l in md.splitlines() if l.startswith(f"| **{label}** |"))
    got = [c.strip() for c in row.strip("|").split("|")]
    assert len(got) == len(cells), (got, cells)
    for i, (x, y) in enumerate(zip(got, cells)):
        assert y is None or x == y, f"{label} column {i}: table has {x!r}, the files give {y!r}"
    print(f"{label}: step {st['step']}, {st['tokens']} tokens, {hours:.3g} CPU-h, protocol {protocol}, "
          f"RTE {want['RTE']}, every cell matches")
# the deviations each run shows are its caps, not the batch or learning rate of its own protocol
for r in runs.values():
    assert not any(d.startswith(("batch", "learning rate")) for d in r["glue"]["deviations"]), r["glue"]
# run --glue-protocol reached the evaluation: the article's batch and learning rate were used
fa = json.load(open(os.path.join(work, "a", "glue", "report.json")))["settings"]["finetune"]
assert (fa["batch"], fa["lr"]) == (32, 2e-05), fa
assert "| CPU-hours |" in md, "the hours column of CPU runs is not called CPU-hours"
assert not any("GPU" in l for l in md.splitlines() if l.startswith("| **")), "a CPU run shown as a GPU run"
pub = {p["name"]: p for p in cmp["published"]}
assert pub["crammed BERT, 24 h A6000 (paper v1)"]["protocol"] == "article"
assert pub["crammed BERT, 24 h A6000 (released model)"]["average"] == 80.7
assert "| crammed BERT, 24 h A6000 (released model) (published) |" in md
print("compare.json and compare.md agree with the runs' files")
PY

step "compare: refusals name the file or directory at fault"
expect_fail "$work/nope does not exist" "$app" compare --out "$work/cmp2" "$work/nope"
cp -r "$work/b/train" "$work/unfinished"
grep -v '"event":"summary"' "$work/b/train/metrics.jsonl" > "$work/unfinished/metrics.jsonl"
expect_fail "$work/unfinished/metrics.jsonl holds no summary line" "$app" compare --out "$work/cmp2" \
  "$work/unfinished:$work/b/glue"
cp -r "$work/b/glue" "$work/badglue"
head -c 200 "$work/b/glue/report.json" > "$work/badglue/report.json"
expect_fail "$work/badglue/report.json is not valid JSON" "$app" compare --out "$work/cmp2" "$work/b/train:$work/badglue"
expect_fail "which is not one of this run's" "$app" compare --out "$work/cmp2" "$work/b/train:$work/a/glue"
expect_fail "two runs are labelled 'a'" "$app" compare --out "$work/cmp2" "$work/a" "$work/a"
[ ! -e "$work/cmp2" ] || { echo "FAIL: a refused compare wrote $work/cmp2"; exit 1; }
echo; echo "compare: all steps passed"
