#!/usr/bin/env python3
"""The numbers of one GPU run (benchmarks/run_gpu.sh), gathered from the files its steps wrote.

    summarize.py OUT WORK > results.json     # then prints a short table on stderr

Reads (each optional): OUT/bench_train.json, OUT/bench_kernels.json and WORK/bench_gemm.json (Google Benchmark
JSON), OUT/peer.jsonl
(one JSON object per PyTorch peer process), OUT/app_metrics.jsonl (the app's metrics; its "summary" line) and
WORK/glue/glue_metrics.jsonl (the GLUE "task" lines). Writes one JSON object: tokens/s and MFU of every
configuration against the H200's dense bf16 peak (989 TFLOP/s) and against the cuBLASLt bf16 GEMM ceiling
measured in the same run (BM_gemm_ceiling), cram / PyTorch at equal micro-batch, each new kernel's time beside
its predecessor's (the kernel benchmarks' old/new arguments), the app's training summary and its RTE score. A benchmark that reported an error is listed with it, never with a rate.
"""
import json
import os
import re
import sys

FLOPS_PER_TOKEN = 0.623e9  # CRAMMING.md's cost model for crammed_bert at seq 128 (bench_cuda_train.cu)
PEAK_FLOPS = 989e12        # H100/H200 SXM dense bf16, by the datasheet
SEQ = 128
MS_PER_UNIT = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}  # Google Benchmark's time_unit


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def load_lines(path):
    out = []
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line.startswith("{"):
                    try:
                        out.append(json.loads(line))
                    except ValueError:
                        pass
    except OSError:
        pass
    return out


def mfu(tokens_per_s, peak):
    return tokens_per_s * FLOPS_PER_TOKEN / peak if tokens_per_s and peak else None


# Kernel benchmarks whose arguments pick the predecessor or the new kernels (bench_cuda_kernels.cu): the
# family, the arguments that name a variant, and which variant is the predecessor each is set against.
OLD_NEW = [
    (re.compile(r"BM_(attention_forward|attention_backward|layernorm_forward|layernorm_backward|decoder_cross_entropy)/(\d+)/([01])/"),
     {"0": "old", "1": "new"}),
    (re.compile(r"BM_(add_layernorm_forward)/(\d+)/([01]/[01])/"),
     {"0/0": "old", "1/0": "new kernels, unfused", "1/1": "new kernels, fused"}),
    # not a successor: the fp32 residual stream's price beside the bf16 one (its "speedup" is below 1)
    (re.compile(r"BM_(stream_layernorm)/(\d+)/([01])/"), {"0": "old", "1": "fp32 stream"}),
]


def kernel_pairs(benchmarks):
    """[{kernel, batch, variants: {label: ms}, speedup: {label: old ms / its ms}}], from the kernel benchmarks."""
    groups = {}
    for b in benchmarks:
        if b.get("error_occurred") or b.get("run_type", "iteration") != "iteration":
            continue
        for pattern, labels in OLD_NEW:
            m = pattern.match(b.get("name", ""))
            if m and m.group(3) in labels:
                ms = b.get("real_time", 0) * MS_PER_UNIT.get(b.get("time_unit", "ns"), 1e-6)
                groups.setdefault((m.group(1), int(m.group(2))), {})[labels[m.group(3)]] = ms
    pairs = []
    for (kernel, batch), variants in sorted(groups.items()):
        old = variants.get("old")
        pairs.append({"kernel": kernel, "batch": batch, "ms": variants,
                      "speedup": {k: old / v for k, v in variants.items() if k != "old" and old and v}})
    return pairs


def main():
    out_dir, work = sys.argv[1], sys.argv[2]
    res = {"flops_per_token": FLOPS_PER_TOKEN, "peak_bf16_tflops": PEAK_FLOPS / 1e12}

    ceiling = None
    gemm = load_json(os.path.join(work, "bench_gemm.json")) or {}
    for b in gemm.get("benchmarks", []):
        if b.get("name", "").startswith("BM_gemm_ceiling"):
            if b.get("error_occurred"):
                res["gemm_ceiling_error"] = b.get("error_message")
            elif b.get("TFLOP/s"):
                ceiling = float(b["TFLOP/s"]) * 1e12
                res["gemm_ceiling"] = {"name": b["name"], "tflops": ceiling / 1e12, "ms": b.get("real_time")}
    res["gemm_ceiling_tflops"] = ceiling / 1e12 if ceiling else None

    train, phases = [], []
    for b in (load_json(os.path.join(out_dir, "bench_train.json")) or {}).get("benchmarks", []):
        name = b.get("name", "")
        if name.startswith("BM_crammed_bert_phases"):
            # the per-op table: "ms <op>" counters (milliseconds per micro-step) and "TFLOP/s <GEMM shape>"
            row = {"name": name, "ms_per_micro_step": b.get("real_time")}
            if b.get("error_occurred"):
                row["error"] = b.get("error_message", "error_occurred")
            row["ms_per_op"] = dict(sorted(((k[3:], v) for k, v in b.items() if k.startswith("ms ")),
                                           key=lambda kv: -kv[1]))
            row["gemm_tflops"] = {k[8:]: v for k, v in b.items() if k.startswith("TFLOP/s ")}
            phases.append(row)
            continue
        m = re.match(r"BM_crammed_bert_micro_step(_residual32)?/(\d+)/(\d+)", name)
        if not m:
            continue
        row = {"name": name, "micro_batch_arg": int(m.group(2)), "attention": "flash" if m.group(3) != "0" else "gemm",
               "residual": "fp32" if m.group(1) else "bf16"}
        if b.get("error_occurred"):
            row["error"] = b.get("error_message", "error_occurred")
        else:
            tps = b.get("tokens/s")
            row.update({"micro_batch": int(b.get("micro_batch", 0)) or None, "tokens_per_s": tps,
                        "ms_per_micro_step": b.get("real_time"), "loss": b.get("loss"),
                        "mfu_vs_peak": mfu(tps, PEAK_FLOPS), "mfu_vs_gemm_ceiling": mfu(tps, ceiling)})
        train.append(row)
    res["cram_train"] = train
    res["cram_phases"] = phases

    peers = []
    for p in load_lines(os.path.join(out_dir, "peer.jsonl")):
        if p.get("impl") != "pytorch":
            continue
        for r in p.get("micro_steps", []):
            row = {"micro_batch": r.get("micro_batch"), "torch": p.get("torch"), "gpu": p.get("gpu"),
                   "device": p.get("device"), "compiled": p.get("compiled"), "static_shapes": p.get("static_shapes"),
                   "sdpa": p.get("sdpa"), "bf16_autocast": p.get("bf16_autocast")}
            if "error" in r:
                row["error"] = r["error"]
            else:
                tps = r.get("tokens_per_s")
                row.update({"tokens_per_s": tps, "ms_per_micro_step": 1e3 * r.get("seconds_per_micro_step", 0),
                            "mfu_vs_peak": mfu(tps, PEAK_FLOPS), "mfu_vs_gemm_ceiling": mfu(tps, ceiling)})
            peers.append(row)
    res["pytorch"] = peers

    ratios = []
    for c in train:
        for p in peers:
            if c.get("tokens_per_s") and p.get("tokens_per_s") and c.get("micro_batch") == p.get("micro_batch"):
                ratios.append({"micro_batch": c["micro_batch"], "cram_attention": c["attention"],
                               "cram_over_pytorch": c["tokens_per_s"] / p["tokens_per_s"]})
    res["cram_vs_pytorch"] = ratios
    kernels = (load_json(os.path.join(out_dir, "bench_kernels.json")) or {}).get("benchmarks", [])
    res["kernels_old_new"] = kernel_pairs(kernels)

    summ = [l for l in load_lines(os.path.join(out_dir, "app_metrics.jsonl")) if l.get("event") == "summary"]
    if summ:
        s = summ[-1]
        res["app_train"] = {k: s.get(k) for k in ("steps", "tokens", "elapsed_s", "tokens_per_s", "mfu", "first_loss",
                                                  "final_loss", "val_loss", "stop_reason")}
    tasks = [l for l in load_lines(os.path.join(work, "glue", "glue_metrics.jsonl")) if l.get("event") == "task"]
    if tasks:
        res["glue"] = tasks
    json.dump(res, sys.stdout, indent=1)
    sys.stdout.write("\n")

    # the short table, last in the device tool's output
    def pct(x):
        return f"{100 * x:5.1f}%" if x is not None else "    -"
    def row(label, r):  # one configuration: its rate and MFU, or its error
        if "error" in r:
            return f"{label:<46}  ERROR: {r['error'][:60]}"
        return f"{label:<46}{r['tokens_per_s'] or 0:>12.0f}{pct(r['mfu_vs_peak']):>10}{pct(r['mfu_vs_gemm_ceiling']):>10}"
    lines = [f"{'configuration':<46}{'tokens/s':>12}{'MFU/peak':>10}{'MFU/GEMM':>10}"]
    lines += [row(f"cram {c['name'].split('/min_time')[0]} (mb {c.get('micro_batch') or '?'})", c) for c in train]
    lines += [row(f"pytorch mb {p['micro_batch']} (compiled={p['compiled']})", p) for p in peers]
    for k in res["kernels_old_new"]:
        lines.append(f"kernel {k['kernel']} batch {k['batch']}: " + ", ".join(
            f"{label} {ms:.3f} ms" + (f" ({k['speedup'][label]:.2f}x)" if label in k["speedup"] else "")
            for label, ms in k["ms"].items()))
    if ceiling:
        lines.append(f"cuBLASLt bf16 GEMM ceiling: {ceiling / 1e12:.0f} TFLOP/s (peak {PEAK_FLOPS / 1e12:.0f})")
    if "app_train" in res:
        a = res["app_train"]
        lines.append(f"app train: {a.get('steps')} steps, {a.get('tokens_per_s') or 0:.0f} tokens/s, "
                     f"loss {a.get('first_loss')} -> {a.get('final_loss')}, val {a.get('val_loss')}")
    for t in tasks:
        lines.append("glue: " + json.dumps({k: v for k, v in t.items() if k != "event"})[:150])
    print("\n".join(lines), file=sys.stderr)


if __name__ == "__main__":
    main()
