#!/usr/bin/env bash
# Data-parallel training on one CPU machine, measured side by side (docs/distributed.md): a preset
# (crammed_tiny by default), micro-batch 8, a fixed batch of 32 sequences, the real clock, each configuration for the same budget:
#   1 process x all cores, in-place accumulation (the one-process default)
#   1 process x all cores, pairwise accumulation (what the ranks reproduce bit for bit)
#   N ranks x cores/N threads (mpirun; pairwise)
# and prints tokens/s (all ranks), the gradient sum's share of the step time and the rank spread, from
# each run's metrics.jsonl. Writes RESULTS/cpu-ranks-PRESET.json.
#   usage: cpu_ranks.sh BUILD_DIR SHARED_DATA RESULTS_DIR [budget=60s] [ranks=2] [preset=crammed_tiny]
set -euo pipefail
build=$1 data=$2 results=$3 budget=${4:-60s} ranks=${5:-2} preset=${6:-crammed_tiny}
app=$build/examples/cram_bert_24h/cram_bert_24h
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$results"
cores=$(nproc)
mpi=(mpirun --oversubscribe --bind-to none --mca btl_vader_single_copy_mechanism none -np "$ranks")
[ "$(id -u)" = 0 ] && mpi+=(--allow-run-as-root)
vocab=8192 docs=1000
[ "$preset" = crammed_tiny ] || vocab=32768 docs=4000
"$app" prepare --corpus "$data/wiki/wiki-00.jsonl.zst" --out "$work/data" --max-docs $docs --vocab-size $vocab --quiet > /dev/null
train=("$app" train --data "$work/data" --preset "$preset" --device cpu --micro-batch 8 --batch-target 32
       --ramp-end 0 --lr 1e-3 --budget "$budget" --checkpoint-every 0 --val-batches 0 --quiet)
echo "1 process x $cores threads, in-place"; "${train[@]}" --threads "$cores" --grad-accumulation in-place --out "$work/in-place"
echo "1 process x $cores threads, pairwise"; "${train[@]}" --threads "$cores" --grad-accumulation pairwise --out "$work/pairwise"
echo "$ranks ranks x $((cores / ranks)) threads"; "${mpi[@]}" "${train[@]}" --threads $((cores / ranks)) --out "$work/ranks"
python3 - "$work" "$results/cpu-ranks-$preset.json" "$cores" "$ranks" "$budget" "$preset" <<'PY'
import json, sys, platform
work, out, cores, ranks, budget, preset = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6]
rows = []
for name in ("in-place", "pairwise", "ranks"):
    lines = [json.loads(l) for l in open(f"{work}/{name}/metrics.jsonl")]
    steps = [j for j in lines if "event" not in j]
    summary = [j for j in lines if j.get("event") == "summary"][-1]
    # step time from consecutive records' elapsed budget (the first step carries start-up: left out)
    span = steps[-1]["elapsed_s"] - steps[0]["elapsed_s"]
    allreduce = sum(s.get("allreduce_s", 0) for s in steps[1:])
    spread = sorted(s.get("rank_spread_s", 0) for s in steps[1:])
    rows.append({"config": name, "tokens_per_s": summary["tokens_per_s"], "steps": summary["steps"],
                 "allreduce_share": allreduce / span if span > 0 else 0,
                 "median_rank_spread_s": spread[len(spread) // 2] if spread else 0,
                 "median_step_s": span / max(1, len(steps) - 1)})
base = rows[0]["tokens_per_s"]
print(f"\n{'configuration':<34}{'tokens/s':>10}{'vs 1 process':>14}{'gradient sum':>14}{'rank spread':>13}")
label = {"in-place": f"1 process x {cores} threads, in-place", "pairwise": f"1 process x {cores} threads, pairwise",
         "ranks": f"{ranks} ranks x {cores // ranks} threads"}
for r in rows:
    print(f"{label[r['config']]:<34}{r['tokens_per_s']:>10.0f}{r['tokens_per_s'] / base:>13.2f}x"
          f"{100 * r['allreduce_share']:>13.1f}%{1000 * r['median_rank_spread_s']:>10.1f} ms")
json.dump({"machine": platform.processor() or platform.machine(), "cores": cores, "ranks": ranks, "budget": budget,
           "preset": preset, "micro_batch": 8, "batch": 32, "rows": rows}, open(out, "w"), indent=1)
PY
