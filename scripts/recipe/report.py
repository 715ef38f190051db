#!/usr/bin/env python3
"""Report on a recipe sweep (scripts/recipe/sweep.py): tables, plots and a loss-against-tokens fit.

Reads the JSON lines sweep.py appends to its results file and writes into --out-dir:

  sweep_table.md  one markdown table per (preset, budget): batch target, lr, optimizer steps, tokens,
                  final validation loss; the best row in bold, auto-recipe rows as "auto (→ N)"; under a
                  table with an auto run, its gap to the best fixed setting of the sweep.
  sweep.svg       one panel per (preset, budget): validation loss against batch target (log2 axis), one
                  line per fixed learning rate, the auto recipe as a star at the batch target it chose.
  loss_fit.json   per preset, L(D) = E + A * D^-alpha (D: tokens trained on, L: final validation loss)
  loss_fit.md     fitted by least squares to the runs whose batch target and lr are both "auto", except
  loss_fit.svg    those of --holdout-budgets, which are predicted instead; plus leave-one-out errors.

  usage: report.py --results FILE --out-dir DIR [--holdout-budgets 2,5] [--fit-preset P [P ...]]

--fit-preset defaults to every preset with at least 3 auto runs; --holdout-budgets to none. Errors are
predicted - measured. Runs without a validation loss show "—" in the tables and are left out of plots
and fits. A torn line (the sweep still writing) is skipped. Standard library only.
"""
import argparse
import json
import math
import os
import sys
from xml.sax.saxutils import escape

MIN_FIT_POINTS = 3  # three parameters: E, A, alpha
ALPHA_RANGE = (0.01, 2.0)
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf"]
STAR_FILL, STAR_EDGE = "#f5c518", "#222222"


# ---------------------------------------------------------------------------------------------- reading

def load(path):
    """The runs of a results file, skipping blank, torn or foreign lines; (runs, lines skipped)."""
    runs, skipped = [], 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                skipped += 1
                continue
            if not isinstance(r, dict) or "preset" not in r or not isinstance(r.get("summary"), dict):
                skipped += 1
                continue
            runs.append(r)
    return runs, skipped


def is_auto(v):
    return isinstance(v, str) and v.strip().lower() == "auto"


def num(v):
    """float(v) when v is a finite number (or numeric string), else None."""
    if v is None or isinstance(v, bool):
        return None
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def val_loss(r):
    return num(r["summary"].get("val_loss"))


def tokens(r):
    d = num(r["summary"].get("tokens"))
    return int(d) if d is not None and d.is_integer() else d


def derived(r):
    d = r.get("derived")
    return d if isinstance(d, dict) else {}


def any_auto(r):
    return is_auto(r.get("target")) or is_auto(r.get("lr"))


def full_auto(r):
    return is_auto(r.get("target")) and is_auto(r.get("lr"))


def eff_target(r):
    """The batch target a run used: its setting, or for "auto" the derived one, else its last step's batch."""
    if not is_auto(r.get("target")):
        return num(r.get("target"))
    t = num(derived(r).get("batch_target"))
    return t if t is not None else num(r.get("final_batch"))


def eff_lr(r):
    """The peak learning rate a run used: its setting, or for "auto" the derived one (None if unknown)."""
    if not is_auto(r.get("lr")):
        return num(r.get("lr"))
    return num(derived(r).get("lr"))


# ------------------------------------------------------------------------------------------- formatting

def fmt_int(x):
    return "—" if x is None else f"{int(round(x)):,}"


def fmt_g(x, digits=3):
    if x is None:
        return "—"
    if float(x).is_integer() and abs(x) < 1e6:
        return str(int(x))
    return f"{x:.{digits}g}"


def fmt_loss(x):
    return "—" if x is None else f"{x:.4f}"


def fmt_si(x):
    """1500 -> 1.5K, 2e6 -> 2M (tick labels)."""
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(x) >= div:
            return f"{x / div:.3g}{suffix}"
    return f"{x:.3g}"


def target_label(r):
    if not is_auto(r.get("target")):
        return fmt_g(num(r.get("target")))
    t = eff_target(r)
    return "auto" if t is None else f"auto (→ {fmt_g(t)})"


def lr_label(r):
    if not is_auto(r.get("lr")):
        return fmt_g(num(r.get("lr")), 6)
    lr = eff_lr(r)
    return "auto" if lr is None else f"auto (→ {fmt_g(lr)})"


def budget_label(b):
    return f"{b:g} min"


# ----------------------------------------------------------------------------------------------- tables

def group_runs(runs):
    """{(preset, budget_min): [runs]}, keys sorted; within a group fixed settings first, then auto runs."""
    groups = {}
    for r in runs:
        groups.setdefault((r["preset"], float(r.get("budget_min", 0))), []).append(r)
    inf = float("inf")

    def order(r):
        t, lr = eff_target(r), eff_lr(r)
        return (any_auto(r), inf if t is None else t, inf if lr is None else lr, r.get("seed", 0))

    return {k: sorted(groups[k], key=order) for k in sorted(groups)}


def best_fixed(rows):
    fixed = [r for r in rows if not any_auto(r) and val_loss(r) is not None]
    return min(fixed, key=val_loss) if fixed else None


def auto_lines(rows):
    """One "auto recipe: ..." line per auto run of a group, with its gap to the best fixed setting."""
    autos = [r for r in rows if any_auto(r)]
    best = best_fixed(rows)
    out = []
    for r in autos:
        name = "auto recipe"
        if len(autos) > 1 or not full_auto(r):
            name += f" (target {target_label(r)}, lr {lr_label(r)}, seed {r.get('seed', 0)})"
        v = val_loss(r)
        if v is None:
            out.append(f"{name}: no validation loss")
        elif best is None:
            out.append(f"{name}: val {v:.4f} (no fixed-setting run to compare with)")
        else:
            b = val_loss(best)
            out.append(f"{name}: val {v:.4f}, best of sweep {b:.4f} (gap {v - b:+.4f}; best: target "
                       f"{target_label(best)}, lr {lr_label(best)})")
    return out


def write_table(groups, path, source):
    lines = ["# Recipe sweep", "",
             f"From `{source}`. Final validation loss after the budget; the lowest of each table in bold. "
             "\"auto (→ N)\": the setting the budget-scaled recipe derived.", ""]
    for (preset, budget), rows in groups.items():
        seeds = len({r.get("seed", 0) for r in rows}) > 1
        lines += [f"## {preset}, {budget_label(budget)}", ""]
        head = ["batch target", "lr"] + (["seed"] if seeds else []) + \
               ["optimizer steps", "tokens", "final validation loss"]
        lines += ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * (len(head) - 2)) + "|"]
        vals = [val_loss(r) for r in rows if val_loss(r) is not None]
        low = min(vals) if vals else None
        for r in rows:
            s = r["summary"]
            cells = [target_label(r), lr_label(r)] + ([str(r.get("seed", 0))] if seeds else []) + \
                    [fmt_int(num(s.get("steps"))), fmt_int(tokens(r)), fmt_loss(val_loss(r))]
            if low is not None and val_loss(r) == low:
                cells = [f"**{c}**" for c in cells]
            lines.append("| " + " | ".join(cells) + " |")
        extra = auto_lines(rows)
        if extra:
            lines += [""] + [line + "  " for line in extra[:-1]] + extra[-1:]
        lines.append("")
    if not groups:
        lines.append("No runs yet.")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


# ------------------------------------------------------------------------------------------------ fit

def _ls_box(xs, ys):
    """min over E >= 0, A >= 0 of sum (y - E - A x)^2: (sse, E, A).

    A convex quadratic on a box: the unconstrained optimum if feasible, else the best of the two edges'
    clipped one-dimensional optima."""
    n = len(xs)
    sx, sy = sum(xs), sum(ys)
    sxx = sum(x * x for x in xs)
    sxy = sum(x * y for x, y in zip(xs, ys))
    cands = []
    det = n * sxx - sx * sx
    if det > 1e-12 * n * sxx:
        a = (n * sxy - sx * sy) / det
        e = (sy - a * sx) / n
        if a >= 0 and e >= 0:
            cands.append((e, a))
    if sxx > 0:
        cands.append((0.0, max(0.0, sxy / sxx)))
    cands.append((max(0.0, sy / n), 0.0))

    def sse(e, a):
        return sum((y - e - a * x) ** 2 for x, y in zip(xs, ys))

    return min((sse(e, a), e, a) for e, a in cands)


def fit_power_law(ds, ls, grid=400, iters=80):
    """Least-squares fit of L = E + A * D^-alpha: {"E", "A", "alpha", "sse", "d_ref"}.

    E and A are solved linearly for each alpha; alpha by a grid over ALPHA_RANGE refined by golden
    section. D is scaled by its geometric mean inside the fit, so D^-alpha stays well conditioned."""
    d_ref = math.exp(sum(math.log(d) for d in ds) / len(ds))
    us = [d / d_ref for d in ds]

    def solve(alpha):
        return _ls_box([u ** -alpha for u in us], ls)

    lo, hi = ALPHA_RANGE
    alphas = [lo + (hi - lo) * i / (grid - 1) for i in range(grid)]
    sses = [solve(a)[0] for a in alphas]
    i = min(range(grid), key=sses.__getitem__)
    best = (sses[i], alphas[i])
    a, b = alphas[max(i - 1, 0)], alphas[min(i + 1, grid - 1)]
    g = (math.sqrt(5) - 1) / 2
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = solve(c)[0], solve(d)[0]
    for _ in range(iters):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = solve(c)[0]
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = solve(d)[0]
    for f_, x_ in ((fc, c), (fd, d)):
        if f_ < best[0]:
            best = (f_, x_)
    alpha = best[1]
    sse, e, a_scaled = solve(alpha)
    return {"E": e, "A": a_scaled * d_ref ** alpha, "alpha": alpha, "sse": sse, "d_ref": d_ref,
            "a_scaled": a_scaled}


def predict(fit, d):
    return fit["E"] + fit["a_scaled"] * (d / fit["d_ref"]) ** -fit["alpha"]


def fit_points(runs, preset):
    """(tokens, loss, budget_min, run) of a preset's fully-auto runs with a validation loss."""
    pts = []
    for r in runs:
        if r["preset"] == preset and full_auto(r):
            d, v = tokens(r), val_loss(r)
            if d is not None and d > 0 and v is not None:
                pts.append((d, v, float(r.get("budget_min", 0)), r))
    return sorted(pts, key=lambda p: (p[0], p[2]))


def in_budgets(b, budgets):
    return any(abs(b - h) < 1e-9 for h in budgets)


def fit_preset(runs, preset, holdout):
    """The loss_fit.json entry of one preset (with "skipped" when there are too few points)."""
    pts = fit_points(runs, preset)
    train = [p for p in pts if not in_budgets(p[2], holdout)]
    held = [p for p in pts if in_budgets(p[2], holdout)]
    entry = {"fit_points": [[p[0], p[1], p[2]] for p in train]}
    if len(train) < MIN_FIT_POINTS:
        entry["skipped"] = (f"{len(train)} fit point(s) (auto runs with a validation loss outside the "
                            f"held-out budgets); at least {MIN_FIT_POINTS} needed")
        entry["holdout"] = [{"budget_min": p[2], "tokens": p[0], "measured": p[1]} for p in held]
        return entry, None
    fit = fit_power_law([p[0] for p in train], [p[1] for p in train])
    resid = [predict(fit, p[0]) - p[1] for p in train]
    loo = []
    if len(train) - 1 >= MIN_FIT_POINTS:
        for i, p in enumerate(train):
            rest = train[:i] + train[i + 1:]
            f = fit_power_law([q[0] for q in rest], [q[1] for q in rest])
            pred = predict(f, p[0])
            loo.append({"budget_min": p[2], "tokens": p[0], "measured": p[1], "predicted": pred,
                        "error": pred - p[1]})
    hold = []
    for p in held:
        pred = predict(fit, p[0])
        hold.append({"budget_min": p[2], "tokens": p[0], "measured": p[1], "predicted": pred,
                     "error": pred - p[1]})
    entry = {
        "E": fit["E"], "A": fit["A"], "alpha": fit["alpha"],
        "tokens_min": min(p[0] for p in train), "tokens_max": max(p[0] for p in train),
        "fit_points": entry["fit_points"],
        "holdout": hold,
        "loo_rmse": math.sqrt(sum(x["error"] ** 2 for x in loo) / len(loo)) if loo else None,
        "holdout_max_abs_error": max(abs(h["error"]) for h in hold) if hold else None,
        "fit_rmse": math.sqrt(sum(x * x for x in resid) / len(resid)),
        "loo": loo,  # per point: refit without it, then predict it
    }
    notes = []
    if fit["a_scaled"] <= 0:
        notes.append("A = 0: the loss does not fall with tokens over these points (flat fit)")
    if min(abs(fit["alpha"] - b) for b in ALPHA_RANGE) < 1e-3:
        notes.append(f"alpha at the edge of its search range {list(ALPHA_RANGE)}")
    if fit["E"] <= 0:
        notes.append("E clamped at 0")
    if notes:
        entry["notes"] = notes
    return entry, fit


def write_fit_md(fits, path, holdout):
    hb = ", ".join(f"{b:g}" for b in holdout) if holdout else "none"
    lines = ["# Loss against tokens: L(D) = E + A·D^(−alpha)", "",
             "Least squares over the auto-recipe runs (batch target and lr both \"auto\"); D = tokens trained "
             f"on, L = final validation loss. Held-out budgets (min): {hb}. error = predicted − measured; "
             "LOO: refit without the point.", ""]
    if not fits:
        lines.append("No preset to fit (none has enough auto runs).")
    else:
        lines += ["| preset | E | A | alpha | fit points | tokens | fit RMSE | LOO RMSE | held-out max \\|error\\| |",
                  "|---|---:|---:|---:|---:|---|---:|---:|---:|"]
        for preset, e in fits.items():
            if "skipped" in e:
                lines.append(f"| {preset} | — | — | — | {len(e['fit_points'])} | skipped: {e['skipped']} "
                             "| — | — | — |")
                continue
            lines.append(f"| {preset} | {e['E']:.4f} | {e['A']:.4g} | {e['alpha']:.4f} | {len(e['fit_points'])} "
                         f"| {fmt_si(e['tokens_min'])}–{fmt_si(e['tokens_max'])} | {e['fit_rmse']:.4f} "
                         f"| {fmt_loss(e['loo_rmse'])} | {fmt_loss(e['holdout_max_abs_error'])} |")
        for preset, e in fits.items():
            if "skipped" in e:
                continue
            lines += ["", f"## {preset}", ""]
            for n in e.get("notes", []):
                lines.append(f"Note: {n}.  ")
            lines += ["| point | budget (min) | tokens | measured | predicted | error |",
                      "|---|---:|---:|---:|---:|---:|"]
            loo = {(x["tokens"], x["budget_min"]): x for x in e["loo"]}
            for d, l, b in e["fit_points"]:
                x = loo.get((d, b))
                pred = f"{x['predicted']:.4f} (LOO)" if x else "—"
                err = f"{x['error']:+.4f}" if x else "—"
                lines.append(f"| fit | {b:g} | {fmt_int(d)} | {l:.4f} | {pred} | {err} |")
            for h in e["holdout"]:
                lines.append(f"| held out | {h['budget_min']:g} | {fmt_int(h['tokens'])} | {h['measured']:.4f} "
                             f"| {h['predicted']:.4f} | {h['error']:+.4f} |")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


# ------------------------------------------------------------------------------------------------- SVG

class Svg:
    """A minimal SVG writer: elements appended as strings, text escaped."""

    def __init__(self, width, height):
        self.w, self.h, self.items = width, height, []

    def add(self, s):
        self.items.append(s)

    def line(self, x1, y1, x2, y2, stroke="#000", width=1.0, dash=None):
        d = f' stroke-dasharray="{dash}"' if dash else ""
        self.add(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{stroke}" '
                 f'stroke-width="{width}"{d}/>')

    def rect(self, x, y, w, h, fill="none", stroke="none", width=1.0):
        self.add(f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" fill="{fill}" '
                 f'stroke="{stroke}" stroke-width="{width}"/>')

    def polyline(self, pts, stroke, width=1.8, dash=None):
        d = f' stroke-dasharray="{dash}"' if dash else ""
        p = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
        self.add(f'<polyline points="{p}" fill="none" stroke="{stroke}" stroke-width="{width}" '
                 f'stroke-linejoin="round"{d}/>')

    def circle(self, x, y, r, fill, stroke="none", width=1.0, title=None):
        t = f"<title>{escape(title)}</title>" if title else ""
        self.add(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r}" fill="{fill}" stroke="{stroke}" '
                 f'stroke-width="{width}">{t}</circle>')

    def square(self, x, y, r, fill, stroke, width=1.5, title=None):
        t = f"<title>{escape(title)}</title>" if title else ""
        self.add(f'<rect x="{x - r:.1f}" y="{y - r:.1f}" width="{2 * r}" height="{2 * r}" fill="{fill}" '
                 f'stroke="{stroke}" stroke-width="{width}">{t}</rect>')

    def star(self, x, y, r, fill=STAR_FILL, stroke=STAR_EDGE, title=None):
        pts = []
        for k in range(10):
            rad = r if k % 2 == 0 else r * 0.45
            ang = -math.pi / 2 + k * math.pi / 5
            pts.append(f"{x + rad * math.cos(ang):.1f},{y + rad * math.sin(ang):.1f}")
        t = f"<title>{escape(title)}</title>" if title else ""
        self.add(f'<polygon points="{" ".join(pts)}" fill="{fill}" stroke="{stroke}" stroke-width="1.2">'
                 f'{t}</polygon>')

    def text(self, x, y, s, size=11, anchor="start", weight="normal", color="#222", rotate=False):
        tr = f' transform="rotate(-90 {x:.1f} {y:.1f})"' if rotate else ""
        self.add(f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
                 f'font-weight="{weight}" fill="{color}"{tr}>{escape(s)}</text>')

    def write(self, path):
        with open(path, "w", encoding="utf-8") as f:
            f.write('<?xml version="1.0" encoding="UTF-8"?>\n')
            f.write(f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.w}" height="{self.h}" '
                    f'viewBox="0 0 {self.w} {self.h}" font-family="Helvetica, Arial, sans-serif">\n')
            f.write(f'<rect width="{self.w}" height="{self.h}" fill="white"/>\n')
            f.write("\n".join(self.items) + "\n</svg>\n")


def nice_step(span, n):
    raw = span / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def linear_ticks(lo, hi, n=5):
    step = nice_step(hi - lo, n)
    t = math.ceil(lo / step - 1e-9) * step
    out = []
    while t <= hi + 1e-9 * step:
        out.append(round(t, 12))
        t += step
    return out


def log_ticks(lo, hi, base):
    """Tick positions on a log axis: powers of 2 (thinned), or decades with 2 and 5 when few decades."""
    if base == 2:
        ks = list(range(math.ceil(math.log2(lo) - 1e-9), math.floor(math.log2(hi) + 1e-9) + 1))
        step = max(1, math.ceil(len(ks) / 9))
        return [2.0 ** k for k in ks[::step]]
    k0, k1 = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    mults = (1,) if k1 - k0 > 3 else (1, 2, 5)
    ticks = [m * 10.0 ** k for k in range(k0, k1 + 1) for m in mults if lo <= m * 10.0 ** k <= hi]
    return ticks if len(ticks) >= 2 else linear_ticks(lo, hi, 4)


def padded(lo, hi, frac=0.06):
    if hi <= lo:
        pad = max(abs(lo) * 0.02, 0.05)
        return lo - pad, hi + pad
    pad = (hi - lo) * frac
    return lo - pad, hi + pad


class Panel:
    """One plot area: maps data to pixels (x linear, log2 or log10; y linear) and draws its axes."""

    def __init__(self, svg, x0, y0, w, h, xlim, ylim, xlog=None):
        self.svg, self.x0, self.y0, self.w, self.h = svg, x0, y0, w, h
        self.xlim, self.ylim, self.xlog = xlim, ylim, xlog

    def _fx(self, x):
        return math.log(x, self.xlog) if self.xlog else x

    def sx(self, x):
        a, b = self._fx(self.xlim[0]), self._fx(self.xlim[1])
        return self.x0 + (self._fx(x) - a) / (b - a) * self.w

    def sy(self, y):
        a, b = self.ylim
        return self.y0 + self.h - (y - a) / (b - a) * self.h

    def axes(self, title, xlabel, ylabel, xfmt):
        s = self.svg
        s.rect(self.x0, self.y0, self.w, self.h, fill="#fbfbfb", stroke="none")
        xt = log_ticks(*self.xlim, self.xlog) if self.xlog else linear_ticks(*self.xlim)
        for t in xt:
            x = self.sx(t)
            s.line(x, self.y0, x, self.y0 + self.h, stroke="#e4e4e4")
            s.line(x, self.y0 + self.h, x, self.y0 + self.h + 4, stroke="#444")
            s.text(x, self.y0 + self.h + 16, xfmt(t), size=10, anchor="middle")
        for t in linear_ticks(*self.ylim):
            y = self.sy(t)
            s.line(self.x0, y, self.x0 + self.w, y, stroke="#e4e4e4")
            s.line(self.x0 - 4, y, self.x0, y, stroke="#444")
            s.text(self.x0 - 7, y + 3.5, f"{t:g}", size=10, anchor="end")
        s.rect(self.x0, self.y0, self.w, self.h, stroke="#444")
        s.text(self.x0 + self.w / 2, self.y0 - 9, title, size=13, anchor="middle", weight="bold")
        s.text(self.x0 + self.w / 2, self.y0 + self.h + 33, xlabel, size=11, anchor="middle", color="#444")
        s.text(self.x0 - 42, self.y0 + self.h / 2, ylabel, size=11, anchor="middle", color="#444", rotate=True)


def legend(svg, x, y, items, max_w):
    """A row of legend entries (wrapping at max_w): items are (draw(x, y), label)."""
    cx = x
    for draw, label in items:
        w = 30 + 6.6 * len(label) + 18
        if cx + w > x + max_w and cx > x:
            cx, y = x, y + 20
        draw(cx + 12, y)
        svg.text(cx + 28, y + 4, label, size=12)
        cx += w
    return y


# Panel geometry shared by both figures
PW, PH = 330, 230          # plot area
ML, MR, MT, MB = 62, 22, 34, 48  # margins around it within a cell


def grid_layout(n, cols):
    cols = max(1, min(cols, n))
    return cols, math.ceil(n / cols)


def draw_sweep(groups, path, source):
    panels = [(k, rows) for k, rows in groups.items()]
    lrs = sorted({eff_lr(r) for rows in groups.values() for r in rows
                  if not any_auto(r) and eff_lr(r) is not None and val_loss(r) is not None})
    color = {lr: PALETTE[i % len(PALETTE)] for i, lr in enumerate(lrs)}
    has_auto = any(any_auto(r) and val_loss(r) is not None and eff_target(r) is not None
                   for rows in groups.values() for r in rows)
    cols, nrows = grid_layout(max(len(panels), 1), 3)
    cw, ch = ML + PW + MR, MT + PH + MB
    width = max(cols * cw + 20, 640)
    left = (width - cols * cw) / 2

    # legend first (its height sets where the panels start)
    probe = Svg(width, 0)
    items = [(lambda x, y, c=color[lr]: (probe.line(x - 10, y, x + 10, y, stroke=c, width=2),
                                         probe.circle(x, y, 3.5, c)), f"lr {fmt_g(lr, 6)}") for lr in lrs]
    if has_auto:
        items.append((lambda x, y: probe.star(x, y, 8), "auto recipe (at its derived batch target)"))
    top = 58
    legend_bottom = legend(probe, 20, top, items, width - 40) if items else top - 20
    y_panels = legend_bottom + 22

    svg = Svg(width, int(y_panels + nrows * ch + 10))
    svg.text(width / 2, 26, "Recipe sweep: final validation loss against batch target", size=17,
             anchor="middle", weight="bold")
    svg.text(width / 2, 44, f"{os.path.basename(source)}: {sum(len(r) for _, r in panels)} runs; "
             "lines: fixed learning rates; x: batch target (sequences, log2)", size=11, anchor="middle",
             color="#555")
    svg.items += probe.items
    if not panels:
        svg.text(width / 2, y_panels + 40, "no runs", size=14, anchor="middle")
    for i, ((preset, budget), rows) in enumerate(panels):
        cx, cy = left + (i % cols) * cw + ML, y_panels + (i // cols) * ch + MT
        pts = [r for r in rows if val_loss(r) is not None and eff_target(r) is not None and eff_target(r) > 0]
        title = f"{preset}, {budget_label(budget)}"
        if not pts:
            svg.rect(cx, cy, PW, PH, fill="#fbfbfb", stroke="#444")
            svg.text(cx + PW / 2, cy - 9, title, size=13, anchor="middle", weight="bold")
            svg.text(cx + PW / 2, cy + PH / 2, "no validation loss yet", size=12, anchor="middle", color="#777")
            continue
        ts = [eff_target(r) for r in pts]
        tlo, thi = min(ts), max(ts)
        if thi / tlo < 2:
            tlo, thi = tlo / 2, thi * 2
        xlim = (tlo / 2 ** 0.35, thi * 2 ** 0.35)
        ylim = padded(min(val_loss(r) for r in pts), max(val_loss(r) for r in pts), 0.08)
        p = Panel(svg, cx, cy, PW, PH, xlim, ylim, xlog=2)
        p.axes(title, "batch target (sequences)", "final validation loss", fmt_g)
        for lr in lrs:
            by_t = {}
            for r in pts:
                if not any_auto(r) and eff_lr(r) == lr:
                    by_t.setdefault(eff_target(r), []).append(val_loss(r))
            if not by_t:
                continue
            line = [(p.sx(t), p.sy(sum(v) / len(v))) for t, v in sorted(by_t.items())]
            if len(line) > 1:
                svg.polyline(line, color[lr])
            for t, v in by_t.items():
                for l in v:
                    svg.circle(p.sx(t), p.sy(l), 3.5, color[lr], stroke="white", width=0.8,
                               title=f"target {fmt_g(t)}, lr {fmt_g(lr, 6)}: {l:.4f}")
        lost = [r for r in rows if any_auto(r) and val_loss(r) is not None and eff_target(r) is None]
        for k, r in enumerate(lost):  # an auto run that did not record its batch target: say so
            svg.text(cx + 6, cy + PH - 8 - 14 * k, f"auto run, batch target unknown: val {val_loss(r):.4f}",
                     size=10, color="#555")
        for r in pts:
            if any_auto(r):
                svg.star(p.sx(eff_target(r)), p.sy(val_loss(r)), 9,
                         title=f"auto: target {target_label(r)}, lr {lr_label(r)}: {val_loss(r):.4f}")
    svg.write(path)


def draw_fit(fits, fitted, path):
    shown = [(p, e) for p, e in fits.items() if "skipped" not in e]
    cols, nrows = grid_layout(max(len(shown), 1), 2)
    cw, ch = ML + PW + MR, MT + PH + MB
    width = max(cols * cw + 20, 600)
    left = (width - cols * cw) / 2
    y_panels = 84
    svg = Svg(width, int(y_panels + nrows * ch + 10))
    svg.text(width / 2, 26, "Validation loss against tokens: L(D) = E + A·D^−α", size=17, anchor="middle",
             weight="bold")
    items = [(lambda x, y: svg.circle(x, y, 4, "#1f77b4", stroke="white", width=0.8), "fit point (auto run)"),
             (lambda x, y: svg.square(x, y, 4, "white", "#d62728"), "held out"),
             (lambda x, y: svg.line(x - 10, y, x + 10, y, stroke="#333", width=2), "fitted curve")]
    legend(svg, width / 2 - 200, 52, items, 420)
    if not shown:
        svg.text(width / 2, y_panels + 40, "no fit (too few auto runs)", size=14, anchor="middle")
    for i, (preset, e) in enumerate(shown):
        fit = fitted[preset]
        cx, cy = left + (i % cols) * cw + ML, y_panels + (i // cols) * ch + MT
        ds = [q[0] for q in e["fit_points"]] + [h["tokens"] for h in e["holdout"]]
        ls = [q[1] for q in e["fit_points"]] + [h["measured"] for h in e["holdout"]]
        dlo, dhi = min(ds), max(ds)
        if dhi / dlo < 3:
            dlo, dhi = dlo / 1.8, dhi * 1.8
        xlim = (dlo / 1.25, dhi * 1.25)
        curve_d = [xlim[0] * (xlim[1] / xlim[0]) ** (k / 120) for k in range(121)]
        curve_l = [predict(fit, d) for d in curve_d]
        ylim = padded(min(ls + curve_l), max(ls), 0.08)   # the curve's far left may climb past the points
        p = Panel(svg, cx, cy, PW, PH, xlim, ylim, xlog=10)
        p.axes(preset, "tokens trained on (log)", "final validation loss", fmt_si)
        clipped = [(p.sx(d), p.sy(l)) for d, l in zip(curve_d, curve_l) if ylim[0] <= l <= ylim[1]]
        if len(clipped) > 1:
            svg.polyline(clipped, "#333", width=2)
        for d, l, b in e["fit_points"]:
            svg.circle(p.sx(d), p.sy(l), 4, "#1f77b4", stroke="white", width=0.8,
                       title=f"{b:g} min: {fmt_int(d)} tokens, {l:.4f}")
        for h in e["holdout"]:
            svg.square(p.sx(h["tokens"]), p.sy(h["measured"]), 4.5, "white", "#d62728",
                       title=f"held out {h['budget_min']:g} min: {h['measured']:.4f}, predicted "
                             f"{h['predicted']:.4f}")
        svg.text(cx + PW - 8, cy + 18, f"E={e['E']:.3f}  A={e['A']:.3g}  α={e['alpha']:.3f}", size=11,
                 anchor="end", color="#333")
        sub = f"LOO RMSE {e['loo_rmse']:.4f}" if e["loo_rmse"] is not None else "LOO: too few points"
        if e["holdout_max_abs_error"] is not None:
            sub += f"; held-out max |err| {e['holdout_max_abs_error']:.4f}"
        svg.text(cx + PW - 8, cy + 33, sub, size=10, anchor="end", color="#555")
    svg.write(path)


# ------------------------------------------------------------------------------------------------ main

def parse_budgets(s):
    if not s:
        return []
    try:
        return [float(x) for x in s.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of minutes: {s!r}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", required=True, help="the sweep's results file (JSON lines)")
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--holdout-budgets", type=parse_budgets, default=[],
                    help="comma-separated budgets (minutes) whose auto runs are predicted, not fitted")
    ap.add_argument("--fit-preset", nargs="+", action="extend", default=None,
                    help="presets to fit (default: every preset with at least 3 auto runs)")
    a = ap.parse_args()

    if not os.path.isfile(a.results):
        ap.error(f"no results file {a.results}")
    runs, skipped = load(a.results)
    os.makedirs(a.out_dir, exist_ok=True)
    groups = group_runs(runs)
    out = {name: os.path.join(a.out_dir, name)
           for name in ("sweep_table.md", "sweep.svg", "loss_fit.json", "loss_fit.md", "loss_fit.svg")}
    write_table(groups, out["sweep_table.md"], a.results)
    draw_sweep(groups, out["sweep.svg"], a.results)

    presets = a.fit_preset
    if presets is None:
        presets = sorted({r["preset"] for r in runs
                          if len(fit_points(runs, r["preset"])) >= MIN_FIT_POINTS})
    fits, fitted = {}, {}
    for preset in presets:
        fits[preset], fit = fit_preset(runs, preset, a.holdout_budgets)
        if fit:
            fitted[preset] = fit
    with open(out["loss_fit.json"], "w", encoding="utf-8") as f:
        json.dump(fits, f, indent=1)
        f.write("\n")
    write_fit_md(fits, out["loss_fit.md"], a.holdout_budgets)
    draw_fit(fits, fitted, out["loss_fit.svg"])

    # summary
    print(f"report: {len(runs)} runs from {a.results}" + (f" ({skipped} unreadable lines skipped)" if skipped else ""))
    for (preset, budget), rows in groups.items():
        best = best_fixed(rows)
        line = f"  {preset} {budget_label(budget)}: {len(rows)} runs"
        if best:
            line += f"; best fixed: target {target_label(best)}, lr {lr_label(best)}, val {val_loss(best):.4f}"
        print(line)
        for s in auto_lines(rows):
            print("    " + s)
    if not presets:
        print(f"  fit: no preset has {MIN_FIT_POINTS} auto runs with a validation loss; skipped")
    for preset, e in fits.items():
        if "skipped" in e:
            print(f"  fit {preset}: skipped ({e['skipped']})")
            continue
        line = (f"  fit {preset}: L = {e['E']:.4f} + {e['A']:.4g}·D^-{e['alpha']:.4f} on {len(e['fit_points'])} "
                f"points; RMSE {e['fit_rmse']:.4f}")
        if e["loo_rmse"] is not None:
            line += f", LOO RMSE {e['loo_rmse']:.4f}"
        print(line)
        for h in e["holdout"]:
            print(f"    held out {h['budget_min']:g} min: measured {h['measured']:.4f}, predicted "
                  f"{h['predicted']:.4f} (error {h['error']:+.4f})")
        for n in e.get("notes", []):
            print(f"    note: {n}")
    print("report: wrote " + ", ".join(out.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
