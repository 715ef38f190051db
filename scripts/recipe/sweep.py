#!/usr/bin/env python3
"""Budget sweeps of the training recipe on the CPU (docs/training.md, "The budget-scaled recipe").

Runs `cram_bert_24h train` over a grid of (preset, budget, batch target, learning rate) and appends one
JSON line per finished run to RESULTS (the run's summary plus its settings). Every run uses a fixed-rate
budget clock (CRAM_TEST_SECONDS_PER_MICRO_STEP): the budget is spent at the micro-step time measured on an
idle machine, so a run sees the same number of micro-steps however loaded the machine is while the sweep
runs, and two runs can share the cores without changing each other's result. Runs already in RESULTS are
skipped, so an interrupted sweep continues where it stopped.

  usage: sweep.py --app APP --results FILE --work DIR --grid GRID.json [--jobs 2] [--adopt]

GRID.json: a list of {"preset", "data", "micro_batch", "step_seconds", "budgets_min": [...],
"targets": [... or "auto"], "lrs": [... or "auto"], "seed": 0} blocks; each block is the product of its lists.
"""
import argparse
import concurrent.futures as cf
import itertools
import json
import os
import subprocess
import sys
import threading
import time


def run_key(r):
    return f"{r['preset']}-b{r['budget_min']:g}m-t{r['target']}-lr{r['lr']}-s{r['seed']}"


def expand(grid):
    for block in grid:
        for budget, target, lr in itertools.product(block["budgets_min"], block["targets"], block["lrs"]):
            yield {
                "preset": block["preset"],
                "data": block["data"],
                "micro_batch": block["micro_batch"],
                "step_seconds": block["step_seconds"],
                "budget_min": budget,
                "target": target,
                "lr": lr,
                "seed": block.get("seed", 0),
                "val_batches": block.get("val_batches", 50),
            }


def finished(out):
    """The run directory's metrics hold a summary: the run ended (e.g. one whose sweep process was stopped)."""
    path = os.path.join(out, "metrics.jsonl")
    return os.path.exists(path) and any('"event":"summary"' in line for line in open(path))


def run_one(app, work, r, adopt=False):
    out = os.path.join(work, run_key(r))
    if adopt:
        if not finished(out):
            raise RuntimeError(f"{run_key(r)}: --adopt found no finished run in {out}")
        return record(r, out, wall=None)
    if os.path.exists(out):
        subprocess.run(["rm", "-rf", out], check=True)
    cmd = [app, "train", "--data", r["data"], "--out", out, "--budget", f"{r['budget_min'] * 60:g}s",
           "--preset", r["preset"], "--device", "cpu", "--micro-batch", str(r["micro_batch"]),
           "--batch-target", str(r["target"]), "--lr", str(r["lr"]), "--threads", "1", "--seed", str(r["seed"]),
           "--val-batches", str(r["val_batches"]), "--checkpoint-every", "off", "--keep", "1", "--quiet"]
    env = dict(os.environ, CRAM_TEST_SECONDS_PER_MICRO_STEP=str(r["step_seconds"]))
    t0 = time.time()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.time() - t0
    if p.returncode != 0:
        raise RuntimeError(f"{run_key(r)} failed ({p.returncode}): {p.stderr[-2000:]}")
    return record(r, out, wall)


def record(r, out, wall):
    events = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
    summary = [e for e in events if e.get("event") == "summary"][-1]
    derived = [e for e in events if e.get("event") in ("plan", "derived")]
    steps = [e for e in events if e.get("event") == "step"]
    res = dict(r, key=run_key(r), wall_s=wall, summary=summary,
               final_batch=steps[-1]["batch"] if steps else None,
               derived=derived[-1] if derived else None)
    # the checkpoint is not needed for the sweep; the metrics stay for the plots
    subprocess.run(["rm", "-rf", os.path.join(out, "checkpoints")], check=True)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--app", required=True)
    ap.add_argument("--results", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--grid", required=True)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--adopt", action="store_true",
                    help="record runs that already finished in --work (their sweep was stopped) instead of running")
    a = ap.parse_args()
    grid = json.load(open(a.grid))
    done = set()
    if os.path.exists(a.results):
        done = {json.loads(line)["key"] for line in open(a.results) if line.strip()}
    todo = [r for r in expand(grid) if run_key(r) not in done]
    # longest first, so the pool ends together
    todo.sort(key=lambda r: -r["budget_min"] * r["step_seconds"])
    print(f"sweep: {len(todo)} runs to do ({len(done)} already in {a.results})", flush=True)
    os.makedirs(a.work, exist_ok=True)
    lock = threading.Lock()
    failures = 0
    with cf.ThreadPoolExecutor(a.jobs) as pool:
        futures = {pool.submit(run_one, a.app, a.work, r, a.adopt): r for r in todo}
        for f in cf.as_completed(futures):
            try:
                res = f.result()
            except Exception as e:  # report and go on: one bad point does not lose the sweep
                failures += 1
                print(f"sweep: {e}", file=sys.stderr, flush=True)
                continue
            with lock, open(a.results, "a") as out:
                out.write(json.dumps(res) + "\n")
            s = res["summary"]
            wall = f"{res['wall_s']:.0f} s" if res["wall_s"] is not None else "adopted"
            print(f"sweep: {res['key']}: steps {s['steps']} val {s['val_loss']} ({wall})", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
