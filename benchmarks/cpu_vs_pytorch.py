#!/usr/bin/env python3
"""cram's CPU backend against the PyTorch peer: training micro-step throughput, and GEMM against the CPU's peak.

One invocation measures, for each preset in --presets and micro-batch in --micro-batches:

  cram   BUILD/benchmarks/bench_cpu_ops --benchmark_filter='^bm_train_step<P>/micro:M/threads:T/'
         for every T in --cram-threads (default 1 2): zero grads, MLM forward + backward, gradient norm, AdamW,
         i.e. one optimizer step per micro-step. cram's best thread count counts.
  peer   benchmarks/pytorch/crammed_bert.py bench --device cpu --preset P --micro-batches M ... --no-compile
         --threads t, one process per (torch threads t, BLAS threads b) in --peer-configs (default 1,1 2,1 1,2 2,2),
         with OMP_NUM_THREADS=t and OPENBLAS_NUM_THREADS=MKL_NUM_THREADS=b. Its tokens/s are counted as
         micro x 128 / (seconds_per_micro_step + optimizer_step_seconds): forward + backward + one clip + AdamW
         step per micro-step, as cram's. The peer's best configuration counts.

and, unless --no-gemm, bench_cpu_ops's bm_gemm benchmarks (cram's thread default: all cores) against this
machine's fp32 peak: physical cores x FMA pipes x fp32 lanes x 2 FLOP per FMA x clock (lscpu's max MHz, or
BogoMIPS / 2 when it reports none).

Every configuration of both sides runs --rounds times (default 3), cram and the peer alternating, and each side
counts with its best configuration's median: a virtual machine's speed drifts by 20% from minute to minute.
Prints a table and writes every number (each configuration, machine, torch version, date) to --json.
Runs with any python3 >= 3.9; the peer runs with --peer-python (default /usr/bin/python3, Debian's, with torch).
See docs/benchmarks.md, "CPU backend against PyTorch".
"""
import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEER = os.path.join(ROOT, "benchmarks", "pytorch", "crammed_bert.py")
SEQ = 128  # bench_cpu_ops and the peer both use 128-token sequences
PRESETS = ("crammed_tiny", "crammed_mini")  # the presets bench_cpu_ops registers bm_train_step for


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def fail(msg):
    raise SystemExit(f"cpu_vs_pytorch: {msg}")


def run(cmd, env=None):
    """(returncode, stdout, stderr) of cmd; a missing program is an error, not an exception."""
    try:
        p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    except OSError as e:
        return 127, "", str(e)
    return p.returncode, p.stdout, p.stderr


def tail(text, lines=15):
    return "\n".join(text.strip().splitlines()[-lines:])


# ---- machine ------------------------------------------------------------------------------------------------
def lscpu():
    rc, out, _ = run(["lscpu"])
    info = {}
    if rc == 0:
        for line in out.splitlines():
            if ":" in line:
                k, v = line.split(":", 1)
                info[k.strip()] = v.strip()
    return info


def cpuinfo_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def nproc():
    rc, out, _ = run(["nproc"])
    if rc == 0 and out.strip().isdigit():
        return int(out.strip())
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def fp32_peak(info, n):
    """The fp32 FMA peak of the n usable hardware threads: a dict with the inputs, the formula and GFLOP/s."""
    flags = set(info.get("Flags", "").split())
    vendor, family = info.get("Vendor ID", ""), info.get("CPU family", "")
    per_core_text = info.get("Thread(s) per core", "1")
    per_core = int(per_core_text) if per_core_text.isdigit() else 1
    cores = max(1, n // max(1, per_core))  # SMT siblings share a core's FMA pipes
    if info.get("CPU max MHz"):
        mhz, clock_source = float(info["CPU max MHz"]), "lscpu CPU max MHz"
    elif info.get("BogoMIPS"):
        mhz, clock_source = float(info["BogoMIPS"]) / 2, "lscpu BogoMIPS / 2 (no max MHz reported)"
    else:
        mhz, clock_source = None, "unknown (lscpu reports neither max MHz nor BogoMIPS)"
    if "avx512f" in flags and vendor == "AuthenticAMD" and family == "25":
        pipes, lanes = 2, 8
        isa = ("avx512f on AMD family 25 (Zen 4): 512-bit FMAs execute as two 256-bit halves, "
               "so 2 FMA pipes x 8 fp32 lanes")
    elif "avx512f" in flags:
        pipes, lanes = 2, 16
        isa = ("avx512f: 16 fp32 lanes per FMA, 2 FMA pipes assumed (parts with one 512-bit FMA unit "
               "peak at half this)")
    elif "avx2" in flags and "fma" in flags:
        pipes, lanes = 2, 8
        isa = "avx2 + fma: 2 FMA pipes x 8 fp32 lanes"
    elif "avx" in flags:
        pipes, lanes = 1, 8
        isa = "avx without fma: one 8-lane multiply + one 8-lane add per cycle, counted as 1 FMA pipe x 8 lanes"
    elif "sse2" in flags:
        pipes, lanes = 1, 4
        isa = "sse2: one 4-lane multiply + one 4-lane add per cycle, counted as 1 FMA pipe x 4 lanes"
    else:
        pipes, lanes, isa = None, None, "unknown vector unit (no x86 flags in lscpu)"
    out = {"formula": "peak = cores x FMA pipes x fp32 lanes x 2 FLOP/FMA x clock", "cores": cores,
           "hardware_threads": n, "threads_per_core": per_core, "fma_pipes": pipes, "fp32_lanes": lanes,
           "vector_unit": isa, "clock_mhz": mhz, "clock_source": clock_source, "vendor": vendor,
           "cpu_family": family, "model": info.get("Model"), "gflops": None}
    if mhz and pipes:
        out["gflops"] = cores * pipes * lanes * 2 * mhz / 1e3
        out["formula_filled"] = (f"{cores} cores x {pipes} FMA pipes x {lanes} fp32 lanes x 2 FLOP/FMA x "
                                 f"{mhz / 1e3:.3f} GHz = {out['gflops']:.1f} GFLOP/s")
    else:
        out["formula_filled"] = "unknown"
    return out


# ---- cram ---------------------------------------------------------------------------------------------------
def bench_path(build):
    exe = os.path.join(build, "benchmarks", "bench_cpu_ops")
    if not os.path.isfile(exe) or not os.access(exe, os.X_OK):
        fail(f"{exe} not found (or not executable). Build it:\n"
             f"  cmake -S {ROOT} -B {build} -G Ninja -DCMAKE_BUILD_TYPE=Release   # once\n"
             f"  cmake --build {build} --target bench_cpu_ops")
    return exe


def list_benchmarks(exe, build):
    rc, out, err = run([exe, "--benchmark_list_tests"])
    if rc != 0:
        fail(f"{exe} --benchmark_list_tests failed (exit {rc}):\n{tail(err or out)}")
    names = [line.strip() for line in out.splitlines() if line.strip()]
    if not any(n.startswith("bm_train_step<") for n in names):
        fail(f"{exe} has no bm_train_step benchmarks (an older build): "
             f"rebuild it with `cmake --build {build} --target bench_cpu_ops`")
    return names


def run_google_benchmark(exe, pattern, min_time):
    """Runs the benchmarks matching the regex; returns the 'benchmarks' list of the JSON report."""
    # Debian's Google Benchmark 1.7.1 reads --benchmark_min_time as plain seconds ("2", not "2s"); newer
    # versions still accept the plain number.
    cmd = [exe, f"--benchmark_filter={pattern}", "--benchmark_format=json", f"--benchmark_min_time={min_time:g}"]
    log("  $ " + " ".join(cmd))
    rc, out, err = run(cmd)
    if rc != 0:
        return None, f"exit {rc}: {tail(err or out)}"
    try:
        report = json.loads(out)
    except json.JSONDecodeError as e:
        return None, f"unreadable JSON from bench_cpu_ops ({e}): {tail(out)}"
    rows = [b for b in report.get("benchmarks", []) if b.get("run_type", "iteration") == "iteration"]
    errors = [f"{b['name']}: {b.get('error_message')}" for b in rows if b.get("error_occurred")]
    if errors:
        return None, "; ".join(errors)
    if not rows:
        return None, f"no benchmark matched {pattern}"
    return {"context": report.get("context", {}), "benchmarks": rows}, None


def step_name(preset, micro, threads):
    return f"bm_train_step<{preset}>/micro:{micro}/threads:{threads}/"


def cram_step(exe, preset, micro, threads, min_time):
    name = step_name(preset, micro, threads)
    res, err = run_google_benchmark(exe, "^" + re.escape(name), min_time)
    entry = {"preset": preset, "micro_batch": micro, "threads": threads, "benchmark": name.rstrip("/")}
    if err:
        entry["error"] = err
        return entry
    b = res["benchmarks"][0]
    ms = b["real_time"] * {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[b.get("time_unit", "ns")]
    entry.update({"name": b["name"], "iterations": b["iterations"], "ms_per_step": ms,
                  "tokens_per_s": b["tokens/s"], "load_avg": res["context"].get("load_avg")})
    return entry


def gemm(exe, min_time):
    res, err = run_google_benchmark(exe, "^bm_gemm/", min_time)
    if err:
        return [{"error": err}]
    out = []
    for b in res["benchmarks"]:
        ms = b["real_time"] * {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[b.get("time_unit", "ns")]
        out.append({"name": b["name"], "n": int(b["name"].split("/")[1]), "ms": ms, "gflops": b["flops"] / 1e9,
                    "iterations": b["iterations"]})
    return out


# ---- the peer -----------------------------------------------------------------------------------------------
def peer_torch(python):
    rc, out, err = run([python, "-c", "import torch, sys; print(torch.__version__); print(torch.get_num_threads())"])
    if rc == 127:
        fail(f"--peer-python {python}: cannot run it ({err.strip()})")
    if rc != 0:
        fail(f"--peer-python {python} has no usable torch:\n{tail(err)}\n"
             "Install it (Debian: apt-get install python3-torch, then use /usr/bin/python3) or pass "
             "--peer-python PATH to a python3 that has torch.")
    version, default_threads = out.split()[:2]
    return version, int(default_threads)


def peer_config(python, preset, micros, torch_threads, blas_threads, steps, warmup):
    env = dict(os.environ, OMP_NUM_THREADS=str(torch_threads), OPENBLAS_NUM_THREADS=str(blas_threads),
               MKL_NUM_THREADS=str(blas_threads))
    cmd = [python, PEER, "bench", "--device", "cpu", "--preset", preset, "--micro-batches", *map(str, micros),
           "--steps", str(steps), "--warmup", str(warmup), "--no-compile", "--threads", str(torch_threads)]
    log(f"  $ OMP_NUM_THREADS={torch_threads} OPENBLAS_NUM_THREADS={blas_threads} MKL_NUM_THREADS={blas_threads} "
        + " ".join(cmd))
    rc, out, err = run(cmd, env=env)
    base = {"preset": preset, "torch_threads": torch_threads, "blas_threads": blas_threads}
    if rc != 0:
        return [dict(base, micro_batch=m, error=f"exit {rc}: {tail(err or out)}") for m in micros], None
    try:
        report = json.loads(out.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError) as e:
        return [dict(base, micro_batch=m, error=f"unreadable peer output ({e}): {tail(out)}") for m in micros], None
    opt_s = report["optimizer_step_seconds"]
    rows = []
    for r in report["micro_steps"]:
        row = dict(base, micro_batch=r["micro_batch"], torch_reported_threads=report.get("threads"))
        if "error" in r:
            row["error"] = r["error"]
        else:
            step_s = r["seconds_per_micro_step"] + opt_s
            row.update({"seconds_per_micro_step": r["seconds_per_micro_step"], "optimizer_step_seconds": opt_s,
                        "ms_per_step": step_s * 1e3, "tokens_per_s": r["micro_batch"] * SEQ / step_s,
                        "tokens_per_s_without_optimizer": r["tokens_per_s"], "loss": r.get("loss")})
        rows.append(row)
    return rows, report


# ---- report -------------------------------------------------------------------------------------------------
def si(x):
    if x is None:
        return "-"
    for unit, div in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(x) >= div:
            return f"{x / div:.2f}{unit}"
    return f"{x:.1f}"


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2


def best(rows, key):
    """The configuration (rows grouped by key) with the highest median tokens/s over the rounds, as one row
    whose tokens_per_s is that median, with the rounds' min and max."""
    groups = {}
    for r in rows:
        if "tokens_per_s" in r:
            groups.setdefault(key(r), []).append(r)
    if not groups:
        return None
    runs = max(groups.values(), key=lambda g: median([r["tokens_per_s"] for r in g]))
    rates = [r["tokens_per_s"] for r in runs]
    return dict(runs[0], tokens_per_s=median(rates), tokens_per_s_min=min(rates), tokens_per_s_max=max(rates),
                rounds=len(rates))


def parse_config(text):
    m = re.fullmatch(r"(\d+),(\d+)", text)
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: want TORCH_THREADS,BLAS_THREADS, e.g. 2,1")
    return int(m.group(1)), int(m.group(2))


def main():
    default_peer = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawTextHelpFormatter,
                                 epilog=__doc__.split("\n", 2)[2])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"),
                    help="cram's build directory holding benchmarks/bench_cpu_ops (default: %(default)s)")
    ap.add_argument("--presets", nargs="+", default=list(PRESETS), choices=PRESETS)
    ap.add_argument("--micro-batches", nargs="+", type=int, default=[8],
                    help="bench_cpu_ops registers 8 and 32 (default: 8)")
    ap.add_argument("--cram-threads", nargs="+", type=int, default=[1, 2],
                    help="cram's thread counts; bench_cpu_ops registers 1 and 2 (default: 1 2)")
    ap.add_argument("--min-time", type=float, default=2.0,
                    help="Google Benchmark --benchmark_min_time in seconds, per cram run (default: 2)")
    ap.add_argument("--peer-python", default=default_peer, help="a python3 with torch (default: %(default)s)")
    ap.add_argument("--peer-configs", nargs="+", type=parse_config, default=[(1, 1), (2, 1), (1, 2), (2, 2)],
                    metavar="T,B", help="(torch threads, BLAS threads) pairs to try (default: 1,1 2,1 1,2 2,2)")
    ap.add_argument("--steps", type=int, default=20, help="the peer's timed micro-steps (default: 20)")
    ap.add_argument("--warmup", type=int, default=3, help="the peer's untimed micro-steps first (default: 3)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="repeat every configuration of both sides this many times, alternating cram and the peer, "
                         "and compare medians: on a shared or virtual machine one run can be off by 20%% "
                         "(default: %(default)s)")
    ap.add_argument("--no-gemm", action="store_true", help="skip the bm_gemm GFLOP/s against the peak")
    ap.add_argument("--json", default=os.path.join(ROOT, "benchmarks", "results", "cpu-vs-pytorch", "latest.json"),
                    help="where to write every number (default: %(default)s)")
    args = ap.parse_args()
    if args.min_time <= 0 or args.steps < 1 or args.warmup < 0 or args.rounds < 1:
        fail("--min-time, --steps and --rounds must be positive, --warmup not negative")

    exe = bench_path(args.build)
    names = list_benchmarks(exe, args.build)
    missing = [step_name(p, m, t) for p in args.presets for m in args.micro_batches for t in args.cram_threads
               if not any(n.startswith(step_name(p, m, t)) for n in names)]
    if missing:
        have = sorted({n.rsplit("/", 1)[0] for n in names if n.startswith("bm_train_step<")})
        fail("bench_cpu_ops has no " + ", ".join(m.rstrip("/") for m in missing) + "; it registers:\n  " +
             "\n  ".join(have))
    if not os.path.isfile(PEER):
        fail(f"{PEER} not found")
    torch_version, torch_default_threads = peer_torch(args.peer_python)

    info = lscpu()
    n = nproc()
    peak = fp32_peak(info, n)
    rc, commit, _ = run(["git", "-C", ROOT, "rev-parse", "HEAD"])
    result = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": [sys.argv[0], *sys.argv[1:]],
        "commit": commit.strip() if rc == 0 else None,
        "machine": {"model_name": cpuinfo_model(), "nproc": n, "vendor": info.get("Vendor ID"),
                    "cpu_family": info.get("CPU family"), "model": info.get("Model"),
                    "threads_per_core": info.get("Thread(s) per core"), "cpu_max_mhz": info.get("CPU max MHz"),
                    "bogomips": info.get("BogoMIPS"), "hypervisor": info.get("Hypervisor vendor"),
                    "load_avg_start": list(os.getloadavg())},
        "environment": {k: v for k, v in sorted(os.environ.items())
                        if re.match(r"(OMP|GOMP|KMP|OPENBLAS|MKL)_", k)},  # as inherited; the peer's are overridden
        "bench_cpu_ops": exe,
        "peer": {"python": args.peer_python, "torch": torch_version, "torch_default_threads": torch_default_threads,
                 "script": os.path.relpath(PEER, ROOT)},
        "settings": {"presets": args.presets, "micro_batches": args.micro_batches, "seq": SEQ,
                     "cram_threads": args.cram_threads, "min_time_s": args.min_time,
                     "peer_configs": [list(c) for c in args.peer_configs], "peer_steps": args.steps,
                     "peer_warmup": args.warmup, "rounds": args.rounds},
        "counting": ("tokens/s = micro_batch x 128 / time of one micro-step that does forward + backward + one "
                     "optimizer step (cram: zero grads, mlm_forward_backward, grad_norm, adamw_step; peer: "
                     "seconds_per_micro_step + optimizer_step_seconds, i.e. loss.backward() then "
                     "clip_grad_norm_ + AdamW.step())"),
        "peak": peak, "gemm": [], "cram": [], "peer_runs": [], "summary": [],
    }
    log(f"machine: {result['machine']['model_name']}, nproc {n}; peer torch {torch_version} ({args.peer_python})")

    for rnd in range(1, args.rounds + 1):
        for preset in args.presets:
            log(f"[cram] {preset} (round {rnd} of {args.rounds})")
            for micro in args.micro_batches:
                for threads in args.cram_threads:
                    e = dict(cram_step(exe, preset, micro, threads, args.min_time), round=rnd)
                    result["cram"].append(e)
                    log(f"    micro {micro}, threads {threads}: " +
                        (f"{e['ms_per_step']:.1f} ms, {si(e['tokens_per_s'])} tokens/s" if "error" not in e
                         else "ERROR " + e["error"]))
            log(f"[peer] {preset} (round {rnd} of {args.rounds})")
            for t, b in args.peer_configs:
                rows, report = peer_config(args.peer_python, preset, args.micro_batches, t, b, args.steps,
                                           args.warmup)
                rows = [dict(r, round=rnd) for r in rows]
                result["peer_runs"].extend(rows)
                for r in rows:
                    log(f"    micro {r['micro_batch']}, torch {t} / BLAS {b}: " +
                        (f"{r['ms_per_step']:.1f} ms (optimizer {r['optimizer_step_seconds'] * 1e3:.1f} ms), "
                         f"{si(r['tokens_per_s'])} tokens/s" if "error" not in r else "ERROR " + r["error"]))
    if not args.no_gemm:
        log("[cram] bm_gemm")
        result["gemm"] = gemm(exe, args.min_time)
    result["machine"]["load_avg_end"] = list(os.getloadavg())

    # ---- the table
    print()
    print(f"Machine: {result['machine']['model_name']}, nproc {n}; cram {result['commit'] or '?'}; "
          f"torch {torch_version}; {result['date']}")
    print("Counted per micro-step: forward + backward + one optimizer step (cram: zero grads, "
          "mlm_forward_backward, grad_norm, adamw_step;\n  peer: seconds_per_micro_step + optimizer_step_seconds). "
          f"Sequences of {SEQ} tokens; each side's best configuration by its median over {args.rounds} "
          "round(s) (min-max in brackets).")
    print()
    hdr = ("preset", "micro", "cram tokens/s", "cram threads", "peer tokens/s", "peer torch,BLAS", "cram/peer")
    rows = []
    for preset in args.presets:
        for micro in args.micro_batches:
            c = best([e for e in result["cram"] if e["preset"] == preset and e["micro_batch"] == micro],
                     key=lambda e: e["threads"])
            p = best([e for e in result["peer_runs"] if e["preset"] == preset and e["micro_batch"] == micro],
                     key=lambda e: (e["torch_threads"], e["blas_threads"]))
            ratio = c["tokens_per_s"] / p["tokens_per_s"] if c and p else None
            result["summary"].append({
                "preset": preset, "micro_batch": micro,
                "cram_tokens_per_s": c and c["tokens_per_s"], "cram_threads": c and c["threads"],
                "cram_tokens_per_s_range": c and [c["tokens_per_s_min"], c["tokens_per_s_max"]],
                "peer_tokens_per_s": p and p["tokens_per_s"],
                "peer_tokens_per_s_range": p and [p["tokens_per_s_min"], p["tokens_per_s_max"]],
                "peer_torch_threads": p and p["torch_threads"], "peer_blas_threads": p and p["blas_threads"],
                "cram_over_peer": ratio})
            def rate(x):
                return f"{si(x['tokens_per_s'])} [{si(x['tokens_per_s_min'])}-{si(x['tokens_per_s_max'])}]" if x \
                    else "-"
            rows.append((preset, str(micro), rate(c), str(c["threads"]) if c else "failed",
                         rate(p), f"{p['torch_threads']},{p['blas_threads']}" if p else "failed",
                         f"{ratio:.2f}" if ratio else "-"))
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(hdr)]
    for r in [hdr, tuple("-" * w for w in widths), *rows]:
        print("  ".join(x.ljust(w) if i < 2 else x.rjust(w) for i, (x, w) in enumerate(zip(r, widths))))

    if not args.no_gemm:
        print()
        print(f"GEMM (bm_gemm, C = A B^T, N x N x N, cram's default threads = all {n}) against the fp32 peak:")
        print(f"  {peak['formula']}")
        print(f"  {peak['formula_filled']}")
        print(f"  ({peak['vector_unit']}; clock from {peak['clock_source']})")
        for g in result["gemm"]:
            if "error" in g:
                print(f"  bm_gemm: ERROR {g['error']}")
                continue
            frac = g["gflops"] / peak["gflops"] if peak["gflops"] else None
            g["fraction_of_peak"] = frac
            print(f"  {g['name']:<22} {g['ms']:8.3f} ms  {g['gflops']:7.1f} GFLOP/s" +
                  (f"  {100 * frac:5.1f}% of peak" if frac is not None else ""))

    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print()
    print(f"All numbers: {args.json}")
    failed = [e for e in result["cram"] + result["peer_runs"] + result["gemm"] if "error" in e]
    if failed:
        log(f"{len(failed)} run(s) failed; see 'error' in {args.json}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
