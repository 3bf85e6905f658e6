#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Turn bench_attention's or bench_backward's Google Benchmark JSON into a markdown table and an SVG plot.

    python3 bench/plot.py bench/results/attention.json [--out-dir bench/results] [--machine TEXT]
    python3 bench/plot.py bench/results/backward.json [--out-dir bench/results] [--machine TEXT]
                          [--command TEXT] [--before bench/results/backward_before.json]

bench_attention: prints the table (method, L, threads, time, GFLOP/s, fused/baseline speed-up,
fused/BLAS-flash speed-up, IKA/softmax time, causal/non-causal time, peak MiB) and the targets, and
writes <out-dir>/table.md and <out-dir>/gflops_vs_L.svg (the causal methods are in the table only).
bench_backward (recognised by its forward_*/backward_* methods): prints the table (kernel, L,
threads, forward and backward time and GFLOP/s, backward/forward GFLOP/s ratio, peak MiB; with
--before also the same columns of another run, e.g. the previous implementation) and writes
<out-dir>/backward.md and <out-dir>/backward.svg. Every ratio is taken between runs of the same
JSON file, i.e. the same invocation on the same machine.

Standard library only (no numpy, no matplotlib): the SVG is written by hand.
"""

import argparse
import json
import math
import os
import re
import sys

# method: (kernel, implementation, causal), in table order (bench_attention registers them so)
METHOD_INFO = {
    "fused_softmax": ("softmax", "fused", False),
    "blas_flash_softmax": ("softmax", "blas_flash", False),
    "baseline_softmax": ("softmax", "baseline", False),
    "fused_ika": ("ika", "fused", False),
    "baseline_ika": ("ika", "baseline", False),
    "fused_softmax_causal": ("softmax", "fused", True),
    "fused_ika_causal": ("ika", "fused", True),
}
METHODS = list(METHOD_INFO)
PLOT_METHODS = [m for m in METHODS if not METHOD_INFO[m][2]]  # the causal rows stay in the table
COLORS = {
    "fused_softmax": "#1f77b4",
    "blas_flash_softmax": "#9467bd",
    "baseline_softmax": "#7fb2e0",
    "fused_ika": "#d62728",
    "baseline_ika": "#f29b9b",
}
MARKERS = {"fused_softmax": "circle", "blas_flash_softmax": "diamond", "baseline_softmax": "square",
           "fused_ika": "circle", "baseline_ika": "square"}

# Targets stated by the project.
TARGET_SOFTMAX_GFLOPS = 100.0  # fused softmax, 2 threads, L = 4096
TARGET_IKA_OVER_SOFTMAX = 2.0  # fused IKA time / fused softmax time (issue 5; was 2.5)
# fused forward softmax (= rbf + L2, the rbf + Lp kernel that equals softmax), 2 threads, L >= 1024:
TARGET_FORWARD_MIN_L = 1024
TARGET_FORWARD_GFLOPS = 150.0  # conventional GFLOP/s
TARGET_OVER_BLAS_FLASH = 1.5  # blas_flash_softmax time / fused_softmax time
TARGET_CAUSAL_RATIO = 0.6  # fused causal time / fused non-causal time, same kernel, L and threads

NAME = re.compile(r"^(?P<method>[a-z_]+)/L:(?P<L>\d+)/omp:(?P<threads>\d+)(/|$)")
PEAK_NAME = re.compile(r"^fma_peak/omp:(?P<threads>\d+)(/|$)")
TIME_UNIT_TO_MS = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}


def load(path):
    """{(method, L, threads): record} from a Google Benchmark JSON file.

    With --benchmark_repetitions the median aggregate is used, otherwise the single run."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    runs, medians, peaks = {}, {}, {}
    for b in data.get("benchmarks", []):
        if b.get("error_occurred"):
            continue
        peak = PEAK_NAME.match(b.get("run_name", b["name"]))
        if peak and (b.get("run_type") != "aggregate" or b.get("aggregate_name") == "median"):
            peaks[int(peak["threads"])] = float(b.get("GFLOP/s", float("nan")))
            continue
        m = NAME.match(b.get("run_name", b["name"]))
        if not m:
            continue
        key = (m["method"], int(m["L"]), int(m["threads"]))
        time_ms = float(b["real_time"]) * TIME_UNIT_TO_MS[b.get("time_unit", "ns")]
        record = {
            "time_ms": time_ms,
            "gflops": float(b.get("GFLOP/s", float("nan"))),
            "real_gflops": float(b["real_GFLOP/s"]) if "real_GFLOP/s" in b else None,
            "peak_mib": float(b.get("peak_MiB", float("nan"))),
            "iterations": int(b.get("iterations", 0)),
        }
        if b.get("run_type") == "aggregate":
            if b.get("aggregate_name") == "median":
                medians.setdefault(key, {}).update(record)
            elif b.get("aggregate_name") == "cv":  # real_time holds stddev/mean as a fraction
                medians.setdefault(key, {})["cv"] = float(b["real_time"])
        else:
            runs.setdefault(key, record)  # first repetition if repetitions were not aggregated
    runs.update({k: v for k, v in medians.items() if "time_ms" in v})
    context = dict(data.get("context", {}))
    if peaks:
        context["fma_peak"] = peaks  # threads -> the machine's FMA peak, GFLOP/s
    return context, runs, bool(medians)


def fmt(x, digits=2):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:.{digits}f}"


def time_ratio(runs, numerator, denominator, L, t):
    """time of numerator / time of denominator at (L, t), None when either is missing."""
    a, b = runs.get((numerator, L, t)), runs.get((denominator, L, t))
    return a["time_ms"] / b["time_ms"] if a and b else None


def non_causal(method):
    return method[: -len("_causal")] if method.endswith("_causal") else method


def build_table(runs):
    """The markdown table and its rows [(method, L, threads, record, ratios)], ratios a dict of
    "baseline" (fused/baseline speed-up), "blas_flash" (fused/BLAS-flash speed-up), "ika" (IKA/softmax
    time) and "causal" (causal/non-causal time), each None where it does not apply."""
    lengths = sorted({k[1] for k in runs})
    threads = sorted({k[2] for k in runs})
    header = ("| method | L | threads | time (ms) | cv | GFLOP/s | real GFLOP/s | fused/baseline speed-up "
              "| fused/BLAS-flash speed-up | IKA/softmax time | causal/non-causal time | peak MiB |")
    lines = [header, "|" + "---|" * 12]
    rows = []

    def x(v):
        return f"{fmt(v)}×" if v is not None else "—"

    for L in lengths:
        for t in threads:
            for method in METHODS:
                r = runs.get((method, L, t))
                if r is None:
                    continue
                kind, impl, causal = METHOD_INFO[method]
                ratios = {"baseline": None, "blas_flash": None, "ika": None, "causal": None}
                if impl == "fused" and not causal:
                    ratios["baseline"] = time_ratio(runs, f"baseline_{kind}", method, L, t)
                    if kind == "softmax":
                        ratios["blas_flash"] = time_ratio(runs, "blas_flash_softmax", method, L, t)
                if kind == "ika":
                    ratios["ika"] = time_ratio(runs, method, method.replace("_ika", "_softmax"), L, t)
                if causal:
                    ratios["causal"] = time_ratio(runs, method, non_causal(method), L, t)
                rows.append((method, L, t, r, ratios))
                lines.append(
                    f"| {method} | {L} | {t} | {fmt(r['time_ms'], 3)} "
                    f"| {fmt(100 * r['cv'], 1) + '%' if 'cv' in r else '—'} | {fmt(r['gflops'], 1)} "
                    f"| {fmt(r['real_gflops'], 1)} | {x(ratios['baseline'])} | {x(ratios['blas_flash'])} "
                    f"| {x(ratios['ika'])} | {x(ratios['causal'])} | {fmt(r['peak_mib'], 1)} |"
                )
    return "\n".join(lines), rows


def peak_lines(runs, peaks):
    """Each fused and BLAS method's GFLOP/s as a share of the FMA peak (fma_peak) at L = max."""
    if not peaks:
        return []
    L = max(k[1] for k in runs)
    out = ["- FMA peak of this binary's ISA (fma_peak: independent FMA chains, no memory): "
           + ", ".join(f"{t} thread(s) {g:.1f} GFLOP/s" for t, g in sorted(peaks.items()))]
    for t, g in sorted(peaks.items()):
        parts = [f"{m} {runs[(m, L, t)]['gflops'] / g * 100:.0f} %"
                 for m in ("fused_softmax", "blas_flash_softmax", "baseline_softmax") if (m, L, t) in runs]
        if parts:
            out.append(f"  - share of the peak at L = {L}, {t} thread(s): " + ", ".join(parts))
    blas = runs.get(("blas_flash_softmax", L, 2))
    if blas and 2 in peaks:
        share = blas["gflops"] / peaks[2]
        out.append(f"  - {TARGET_OVER_BLAS_FLASH}× the BLAS flash baseline would be {share * TARGET_OVER_BLAS_FLASH * 100:.0f} % "
                   f"of the FMA peak at L = {L}, 2 threads"
                   + (": not reachable on this machine" if share * TARGET_OVER_BLAS_FLASH > 1 else ""))
    return out


def targets(runs, peaks=None):
    out = peak_lines(runs, peaks or {})
    lengths = sorted({k[1] for k in runs})
    threads = sorted({k[2] for k in runs})
    r = runs.get(("fused_softmax", 4096, 2))
    if r:
        met = r["gflops"] >= TARGET_SOFTMAX_GFLOPS
        out.append(f"- fused softmax, 2 threads, L = 4096: {r['gflops']:.1f} GFLOP/s "
                   f"(target ≥ {TARGET_SOFTMAX_GFLOPS:.0f}): **{'met' if met else 'NOT met'}**")
    else:
        out.append("- fused softmax, 2 threads, L = 4096: not measured")
    bad, ratios = [], []
    for L in lengths:
        for t in threads:
            a, b = runs.get(("fused_ika", L, t)), runs.get(("fused_softmax", L, t))
            if a and b:
                ratio = a["time_ms"] / b["time_ms"]
                ratios.append(f"L={L}/t={t}: {ratio:.2f}×")
                if ratio > TARGET_IKA_OVER_SOFTMAX:
                    bad.append(f"L={L}, {t} thread(s)")
    verdict = "met at every shape" if not bad else "NOT met at " + "; ".join(bad)
    out.append(f"- fused IKA time / fused softmax time ≤ {TARGET_IKA_OVER_SOFTMAX}: **{verdict}** "
               f"({', '.join(ratios)})")

    # fused forward softmax = rbf + L2 (the rbf + Lp logit that is softmax exactly): speed and
    # speed-up over the OpenBLAS flash attention, 2 threads, every measured L >= 1024
    out.append(f"- fused forward softmax and rbf + Lp (fused_softmax is rbf + L2, i.e. softmax exactly), 2 threads, "
               f"L ≥ {TARGET_FORWARD_MIN_L}: ≥ {TARGET_FORWARD_GFLOPS:.0f} GFLOP/s and "
               f"≥ {TARGET_OVER_BLAS_FLASH}× blas_flash_softmax (BLAS-flash time / fused time):")
    big = [L for L in lengths if L >= TARGET_FORWARD_MIN_L]
    if not big:
        out.append(f"  - no L ≥ {TARGET_FORWARD_MIN_L} measured")
    for L in big:
        r = runs.get(("fused_softmax", L, 2))
        if r is None:
            out.append(f"  - L = {L}: fused_softmax with 2 threads not measured")
            continue
        speedup = time_ratio(runs, "blas_flash_softmax", "fused_softmax", L, 2)
        gflops_ok = r["gflops"] >= TARGET_FORWARD_GFLOPS
        if speedup is None:
            verdict = "NOT checkable: blas_flash_softmax not measured (bench_attention built without OpenBLAS?)"
            speed_text = "— BLAS flash"
        else:
            verdict = "met" if gflops_ok and speedup >= TARGET_OVER_BLAS_FLASH else "NOT met"
            speed_text = f"{speedup:.2f}× BLAS flash"
        out.append(f"  - L = {L}: {r['gflops']:.1f} GFLOP/s ({'≥' if gflops_ok else '<'} {TARGET_FORWARD_GFLOPS:.0f}), "
                   f"{speed_text}: **{verdict}**")

    # causal: time against the non-causal run of the same kernel, L and threads (GFLOP/s of the
    # causal rows uses the same full count, so it is this ratio inverted)
    out.append(f"- fused causal time ≤ {TARGET_CAUSAL_RATIO}× fused non-causal time (same kernel, L, threads; "
               "causal = mask(causal_upper_left{})):")
    any_causal = False
    for L in lengths:
        for t in threads:
            parts = []
            for kind in ("softmax", "ika"):
                ratio = time_ratio(runs, f"fused_{kind}_causal", f"fused_{kind}", L, t)
                if ratio is not None:
                    parts.append(f"{kind} {ratio:.2f}× **{'met' if ratio <= TARGET_CAUSAL_RATIO else 'NOT met'}**")
            if parts:
                any_causal = True
                out.append(f"  - L = {L}, {t} thread(s): {'; '.join(parts)}")
    if not any_causal:
        out.append("  - no causal runs measured")
    return "\n".join(out)


def anomalies(rows, runs):
    notes = []
    for method, L, t, r, ratios in rows:
        for key, what in (("baseline", "its Eigen baseline"), ("blas_flash", "the OpenBLAS flash baseline")):
            speedup = ratios[key]
            if speedup is not None and speedup < 1.0:
                notes.append(f"- {method} is slower than {what} at L={L}, {t} thread(s): "
                             f"{speedup:.2f}× ({r['time_ms']:.3f} ms vs {r['time_ms'] * speedup:.3f} ms)")
    for method in METHODS:
        for L in sorted({k[1] for k in runs}):
            one, two = runs.get((method, L, 1)), runs.get((method, L, 2))
            if one and two and two["time_ms"] > one["time_ms"]:
                notes.append(f"- {method} at L={L} is slower with 2 threads than with 1 "
                             f"({two['time_ms']:.3f} ms vs {one['time_ms']:.3f} ms)")
    for method, L, t, r, _ in rows:
        if r.get("cv", 0) > 0.10:
            notes.append(f"- {method} at L={L}, {t} thread(s) is noisy: cv {100 * r['cv']:.0f}% over the repetitions")
    return "\n".join(notes) if notes else "- none detected automatically"


# ---- SVG ---------------------------------------------------------------------------------------

def esc(s):
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def nice_ceiling(x):
    """A round upper bound for the y axis and its tick step."""
    if x <= 0:
        return 1.0, 0.2
    exp = 10 ** math.floor(math.log10(x))
    for m in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if m * exp >= x * 1.05:
            top = m * exp
            break
    for step_m in (0.1, 0.2, 0.25, 0.5, 1, 2, 2.5, 5):
        step = step_m * exp
        if top / step <= 8:
            return top, step
    return top, top / 5


def y_grid(o, top, step, left, pw, Y):
    """Horizontal grid lines and y tick labels from 0 to top, every step (both SVG plots)."""
    v = 0.0
    while v <= top + 1e-9:
        y = Y(v)
        o.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}" stroke="#e4e4e4"/>')
        o.append(f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">{v:g}</text>')
        v += step


def marker(shape, x, y, fill, color):
    """A point marker centred at (x, y): circle, square or diamond."""
    if shape == "circle":
        return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4.5" fill="{fill}" stroke="{color}" stroke-width="2"/>'
    if shape == "diamond":
        pts = f"{x:.1f},{y - 5.5:.1f} {x + 5.5:.1f},{y:.1f} {x:.1f},{y + 5.5:.1f} {x - 5.5:.1f},{y:.1f}"
        return f'<polygon points="{pts}" fill="{fill}" stroke="{color}" stroke-width="2"/>'
    return f'<rect x="{x - 4:.1f}" y="{y - 4:.1f}" width="8" height="8" fill="{fill}" stroke="{color}" stroke-width="2"/>'


def write_svg(runs, path, title):
    lengths = sorted({k[1] for k in runs})
    threads = sorted({k[2] for k in runs})
    series = []
    for method in PLOT_METHODS:
        for t in threads:
            pts = [(L, runs[(method, L, t)]["gflops"]) for L in lengths if (method, L, t) in runs]
            if pts:
                series.append((method, t, pts))
    ymax = max((y for _, _, pts in series for _, y in pts), default=1.0)
    ymax = max(ymax, TARGET_SOFTMAX_GFLOPS, TARGET_FORWARD_GFLOPS)
    top, step = nice_ceiling(ymax)

    W, Hh = 900, 560
    left, right, top_m, bottom = 80, 250, 60, 70
    pw, ph = W - left - right, Hh - top_m - bottom
    lx0, lx1 = math.log2(min(lengths)), math.log2(max(lengths))
    pad = 0.25 * max(lx1 - lx0, 1.0)
    lx0, lx1 = lx0 - pad, lx1 + pad

    def X(L):
        return left + (math.log2(L) - lx0) / (lx1 - lx0) * pw

    def Y(v):
        return top_m + ph - v / top * ph

    o = []
    o.append(f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{Hh}" viewBox="0 0 {W} {Hh}" '
             'font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="13">')
    o.append(f'<rect x="0" y="0" width="{W}" height="{Hh}" fill="white"/>')
    o.append(f'<text x="{W / 2}" y="30" text-anchor="middle" font-size="16" font-weight="bold">'
             f'{esc(title)}</text>')
    y_grid(o, top, step, left, pw, Y)
    # x ticks at the measured L (log2 axis)
    for L in lengths:
        x = X(L)
        o.append(f'<line x1="{x:.1f}" y1="{top_m}" x2="{x:.1f}" y2="{top_m + ph}" stroke="#e4e4e4"/>')
        o.append(f'<text x="{x:.1f}" y="{top_m + ph + 20}" text-anchor="middle">{L}</text>')
    # target lines: 100 GFLOP/s (L = 4096) across, 150 GFLOP/s from L = 1024 on
    yt = Y(TARGET_SOFTMAX_GFLOPS)
    o.append(f'<line x1="{left}" y1="{yt:.1f}" x2="{left + pw}" y2="{yt:.1f}" stroke="#2ca02c" '
             'stroke-width="1.5" stroke-dasharray="2,4"/>')
    yt2 = Y(TARGET_FORWARD_GFLOPS)
    x_from = max(left, min(left + pw, X(TARGET_FORWARD_MIN_L)))
    o.append(f'<line x1="{x_from:.1f}" y1="{yt2:.1f}" x2="{left + pw}" y2="{yt2:.1f}" stroke="#ff7f0e" '
             'stroke-width="1.5" stroke-dasharray="6,3"/>')
    # axes
    o.append(f'<rect x="{left}" y="{top_m}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>')
    o.append(f'<text x="{left + pw / 2}" y="{Hh - 22}" text-anchor="middle" font-size="14">'
             'sequence length L = Lq = Lk (log₂ scale)</text>')
    o.append(f'<text x="22" y="{top_m + ph / 2}" text-anchor="middle" font-size="14" '
             f'transform="rotate(-90 22 {top_m + ph / 2})">GFLOP/s (4·B·H·L²·D per call)</text>')
    # series
    for method, t, pts in series:
        color = COLORS[method]
        dash = "" if t == 1 else ' stroke-dasharray="8,5"'
        d = " ".join(f"{X(L):.1f},{Y(y):.1f}" for L, y in pts)
        o.append(f'<polyline points="{d}" fill="none" stroke="{color}" stroke-width="2.5"{dash}/>')
        for L, y in pts:
            o.append(marker(MARKERS[method], X(L), Y(y), color if t == 1 else "white", color))
    # legend
    lx, ly = left + pw + 20, top_m + 10
    o.append(f'<text x="{lx}" y="{ly}" font-weight="bold">method, threads</text>')
    for i, (method, t, _) in enumerate(series):
        y = ly + 24 + i * 24
        color = COLORS[method]
        dash = "" if t == 1 else ' stroke-dasharray="8,5"'
        fill = color if t == 1 else "white"
        o.append(f'<line x1="{lx}" y1="{y - 4}" x2="{lx + 36}" y2="{y - 4}" stroke="{color}" stroke-width="2.5"{dash}/>')
        o.append(marker(MARKERS[method], lx + 18, y - 4, fill, color))
        o.append(f'<text x="{lx + 44}" y="{y}">{esc(method)}, {t} thr</text>')
    y = ly + 24 + len(series) * 24 + 8
    o.append(f'<line x1="{lx}" y1="{y - 4}" x2="{lx + 36}" y2="{y - 4}" stroke="#2ca02c" stroke-width="1.5" '
             'stroke-dasharray="2,4"/>')
    o.append(f'<text x="{lx + 44}" y="{y}">target ≥ {TARGET_SOFTMAX_GFLOPS:g} GFLOP/s</text>')
    o.append(f'<text x="{lx + 44}" y="{y + 16}" font-size="11" fill="#555">(fused softmax,</text>')
    o.append(f'<text x="{lx + 44}" y="{y + 30}" font-size="11" fill="#555">2 threads, L = 4096)</text>')
    y += 52
    o.append(f'<line x1="{lx}" y1="{y - 4}" x2="{lx + 36}" y2="{y - 4}" stroke="#ff7f0e" stroke-width="1.5" '
             'stroke-dasharray="6,3"/>')
    o.append(f'<text x="{lx + 44}" y="{y}">target ≥ {TARGET_FORWARD_GFLOPS:g} GFLOP/s</text>')
    o.append(f'<text x="{lx + 44}" y="{y + 16}" font-size="11" fill="#555">(fused softmax, 2 thr,</text>')
    o.append(f'<text x="{lx + 44}" y="{y + 30}" font-size="11" fill="#555">L ≥ {TARGET_FORWARD_MIN_L}; '
             f'≥ {TARGET_OVER_BLAS_FLASH:g}× BLAS flash)</text>')
    o.append("</svg>")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(o) + "\n")


# ---- report ------------------------------------------------------------------------------------

def run_lines(machine, context, command=""):
    """The first lines of either report: machine, command (if given), date/CPUs/load of the run."""
    ctx = []
    if machine:
        ctx.append(machine.strip())
    if command:
        ctx.append(f"- command: `{command}`")
    ctx.append(f"- run: {context.get('date', '?')}, {context.get('num_cpus', '?')} CPUs at "
               f"{context.get('mhz_per_cpu', '?')} MHz (as Google Benchmark reports them), load average at start "
               f"{', '.join(f'{x:.2f}' for x in context.get('load_avg', [])) or '?'}")
    return ctx


def write_report(out_dir, md_name, md, svg_name, write_plot):
    """Writes the markdown lines md to <out_dir>/md_name, the plot to <out_dir>/svg_name with
    write_plot(path), and prints the markdown."""
    text = "\n".join(md)
    os.makedirs(out_dir, exist_ok=True)
    md_path, svg = os.path.join(out_dir, md_name), os.path.join(out_dir, svg_name)
    with open(md_path, "w", encoding="utf-8") as f:
        f.write(text)
    write_plot(svg)
    print(text)
    print(f"wrote {md_path} and {svg}", file=sys.stderr)


# ---- bench_backward ----------------------------------------------------------------------------

BACKWARD_KERNELS = ["softmax", "ika"]
TARGET_BACKWARD_RATIO = 0.60  # backward GFLOP/s (2.5x forward flops) / forward GFLOP/s (issue 5; was 0.40)
BACKWARD_COLORS = {"forward": "#1f77b4", "backward": "#d62728", "before": "#bbbbbb"}


def is_backward_run(runs):
    return any(k[0].startswith(("forward_", "backward_")) for k in runs)


def backward_rows(runs):
    """[(kernel, L, threads, forward record, backward record, ratio)] in shape-major order."""
    rows = []
    for L in sorted({k[1] for k in runs}):
        for t in sorted({k[2] for k in runs}):
            for kernel in BACKWARD_KERNELS:
                f, b = runs.get((f"forward_{kernel}", L, t)), runs.get((f"backward_{kernel}", L, t))
                if f and b:
                    rows.append((kernel, L, t, f, b, b["gflops"] / f["gflops"]))
    return rows


def backward_table(rows, before):
    head = ("| kernel | L | threads | forward ms | forward GFLOP/s | backward ms | backward GFLOP/s "
            "| bwd/fwd | peak MiB fwd / bwd |")
    sep = "|" + "---|" * 9
    if before:
        head += " before: backward ms | before: bwd/fwd | backward speed-up |"
        sep += "---|---|---|"
    lines = [head, sep]
    for kernel, L, t, f, b, ratio in rows:
        line = (f"| {kernel} | {L} | {t} | {fmt(f['time_ms'], 2)} | {fmt(f['gflops'], 1)} | {fmt(b['time_ms'], 2)} "
                f"| {fmt(b['gflops'], 1)} | **{100 * ratio:.0f} %** | {fmt(f['peak_mib'], 1)} / {fmt(b['peak_mib'], 1)} |")
        if before:
            old = before.get((kernel, L, t))
            if old:
                line += (f" {fmt(old[4]['time_ms'], 2)} | {100 * old[5]:.0f} % "
                         f"| {old[4]['time_ms'] / b['time_ms']:.2f}× |")
            else:
                line += " — | — | — |"
        lines.append(line)
    return "\n".join(lines)


def backward_targets(rows, label=""):
    bad = [f"{k} L={L}/t={t}" for k, L, t, _, _, r in rows if r < TARGET_BACKWARD_RATIO]
    ratios = ", ".join(f"{k} L={L}/t={t}: {100 * r:.0f} %" for k, L, t, _, _, r in rows)
    verdict = "met at every shape" if not bad else "NOT met at " + "; ".join(bad)
    return (f"- {label}backward GFLOP/s ≥ {100 * TARGET_BACKWARD_RATIO:.0f} % of forward GFLOP/s: **{verdict}** "
            f"({ratios})")


def write_backward_svg(rows, before, path, title):
    """Grouped bars per (kernel, L, threads): forward, backward (and the --before backward) GFLOP/s."""
    series = ["forward", "backward"] + (["before"] if before else [])
    ymax = max([max(f["gflops"], b["gflops"]) for _, _, _, f, b, _ in rows] +
               [old[4]["gflops"] for old in (before or {}).values()] + [1.0])
    top, step = nice_ceiling(ymax)
    W, Hh = 1000, 560
    left, right, top_m, bottom = 80, 250, 60, 95
    pw, ph = W - left - right, Hh - top_m - bottom
    group_w = pw / max(len(rows), 1)
    bar_w = group_w * 0.8 / len(series)

    def Y(v):
        return top_m + ph - v / top * ph

    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{Hh}" viewBox="0 0 {W} {Hh}" '
         'font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="13">',
         f'<rect x="0" y="0" width="{W}" height="{Hh}" fill="white"/>',
         f'<text x="{left + pw / 2}" y="30" text-anchor="middle" font-size="17" font-weight="bold">{esc(title)}</text>']
    y_grid(o, top, step, left, pw, Y)
    for g, (kernel, L, t, f, b, ratio) in enumerate(rows):
        x0 = left + g * group_w + group_w * 0.1
        values = {"forward": f["gflops"], "backward": b["gflops"]}
        if before and (kernel, L, t) in before:
            values["before"] = before[(kernel, L, t)][4]["gflops"]
        for i, name in enumerate(series):
            if name not in values:
                continue
            x, y = x0 + i * bar_w, Y(values[name])
            o.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w * 0.92:.1f}" height="{top_m + ph - y:.1f}" '
                     f'fill="{BACKWARD_COLORS[name]}"/>')
        # the floor: 40 % of the forward, drawn across the backward bar
        xb, yf = x0 + bar_w, Y(TARGET_BACKWARD_RATIO * f["gflops"])
        o.append(f'<line x1="{xb - 2:.1f}" y1="{yf:.1f}" x2="{xb + bar_w * 0.92 + 2:.1f}" y2="{yf:.1f}" '
                 'stroke="#2ca02c" stroke-width="2.5"/>')
        o.append(f'<text x="{xb + bar_w * 0.46:.1f}" y="{Y(b["gflops"]) - 6:.1f}" text-anchor="middle" '
                 f'font-size="12" font-weight="bold">{100 * ratio:.0f}%</text>')
        if "before" in values:
            old_ratio = before[(kernel, L, t)][5]
            o.append(f'<text x="{x0 + 2.46 * bar_w:.1f}" y="{Y(values["before"]) - 6:.1f}" text-anchor="middle" '
                     f'font-size="11" fill="#666">{100 * old_ratio:.0f}%</text>')
        xc = left + (g + 0.5) * group_w
        o.append(f'<text x="{xc:.1f}" y="{top_m + ph + 18}" text-anchor="middle">{esc(kernel)}</text>')
        o.append(f'<text x="{xc:.1f}" y="{top_m + ph + 34}" text-anchor="middle" font-size="12">L={L}</text>')
        o.append(f'<text x="{xc:.1f}" y="{top_m + ph + 50}" text-anchor="middle" font-size="12">{t} thr</text>')
    o.append(f'<rect x="{left}" y="{top_m}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>')
    o.append(f'<text x="22" y="{top_m + ph / 2}" text-anchor="middle" font-size="14" '
             f'transform="rotate(-90 22 {top_m + ph / 2})">GFLOP/s (forward 4·B·H·L²·D, backward 2.5×)</text>')
    lx, ly = left + pw + 20, top_m + 10
    labels = {"forward": "forward", "backward": "backward (label: bwd/fwd)", "before": "backward, before (bwd/fwd)"}
    for i, name in enumerate(series):
        y = ly + i * 24
        o.append(f'<rect x="{lx}" y="{y - 11}" width="14" height="14" fill="{BACKWARD_COLORS[name]}"/>')
        o.append(f'<text x="{lx + 22}" y="{y}">{esc(labels[name])}</text>')
    y = ly + len(series) * 24
    o.append(f'<line x1="{lx}" y1="{y - 4}" x2="{lx + 14}" y2="{y - 4}" stroke="#2ca02c" stroke-width="2.5"/>')
    o.append(f'<text x="{lx + 22}" y="{y}">floor: {100 * TARGET_BACKWARD_RATIO:.0f} % of forward</text>')
    o.append("</svg>")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(o) + "\n")


def backward_report(args, context, runs, aggregated):
    rows = backward_rows(runs)
    before = None
    if args.before:
        _, old_runs, _ = load(args.before)
        before = {(k, L, t): r for r in backward_rows(old_runs) for (k, L, t) in [r[:3]]}
    ctx = run_lines(args.machine, context, args.command)
    if "shape" in context:
        ctx.append(f"- shape: {context['shape']}; softmax = rbf + lp(2), IKA = yaglom_rff (M = 64) + lp(3); "
                   "the backward computes dq, dk, dv from q, k, v, out, lse and d_out")
    checks = sorted((k, v) for k, v in context.items() if k.startswith("check_"))
    if checks:
        ctx.append("- startup checks: " + ", ".join(f"{k[len('check_'):]} {v}" for k, v in checks))
    ctx.append("- time: real (wall-clock) time per call, "
               f"{'median of the repetitions' if aggregated else 'mean over the iterations of one run'}; "
               "GFLOP/s = 4·B·H·L²·D / time for the forward and 2.5 × that / time for the backward; "
               "bwd/fwd = backward GFLOP/s / forward GFLOP/s of the same kernel, L and threads in this run "
               "(= 2.5 · forward time / backward time); peak MiB = largest extra operator-new memory during one call")
    if before:
        ctx.append(f"- before: `{args.before}`, the same benchmark built against the previous implementation and "
                   "run right before this one; backward speed-up = before backward time / backward time")
    md = ["# bench_backward results", "", *ctx, "", backward_table(rows, before), "", "## Targets", "",
          backward_targets(rows)]
    if before:
        md.append(backward_targets(list(before.values()), "before: "))
    noisy = [f"- {r[0]} L={r[1]}, {r[2]} thread(s): cv {100 * x['cv']:.0f}% ({name})"
             for r in rows for name, x in (("forward", r[3]), ("backward", r[4])) if x.get("cv", 0) > 0.10]
    md += ["", "## Anomalies (automatic)", "", "\n".join(noisy) if noisy else "- none detected automatically", ""]
    write_report(args.out_dir, "backward.md", md, "backward.svg",
                 lambda svg: write_backward_svg(rows, before, svg, "ika fused backward vs forward (fp32, B=1, H=8, D=64)"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("json", help="output of --benchmark_out=FILE --benchmark_out_format=json")
    ap.add_argument("--out-dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"))
    ap.add_argument("--machine", default="", help="line(s) put at the top of table.md (CPU model, cores)")
    ap.add_argument("--command", default="", help="bench_backward: the command that produced the JSON")
    ap.add_argument("--before", default="", help="bench_backward: JSON of another run to compare with")
    args = ap.parse_args()

    context, runs, aggregated = load(args.json)
    if not runs:
        sys.exit(f"plot.py: no bench_attention or bench_backward results in {args.json}")
    if is_backward_run(runs):
        backward_report(args, context, runs, aggregated)
        return
    table, rows = build_table(runs)

    ctx = run_lines(args.machine, context)
    if "shape" in context:
        ctx.append(f"- shape: {context['shape']}")
    checks = sorted((k, v) for k, v in context.items() if k.startswith("check_max_abs_diff_"))
    if checks:
        ctx.append("- startup check, max |fused − baseline| (2 threads): "
                   + ", ".join(f"{k[len('check_max_abs_diff_'):]} {v}" for k, v in checks))
    if "openblas" in context:
        ctx.append(f"- OpenBLAS (blas_flash_softmax, 1 BLAS thread per OpenMP thread): {context['openblas']}"
                   + (f"; blocks {context['blas_flash_blocks']}" if "blas_flash_blocks" in context else ""))
    ctx.append(f"- time: real (wall-clock) time per call, "
               f"{'median of the repetitions; cv = stddev/mean of the repetitions' if aggregated else 'mean over the iterations of one run'}"
               "; GFLOP/s = 4·B·H·L²·D / time for every method, the causal ones included (so causal GFLOP/s "
               "= non-causal GFLOP/s / causal time ratio); real GFLOP/s (non-causal IKA only) = 2·L²·2M + 2·L²·Dv + 2·2L·M·D·2 per head / time; "
               "fused/baseline and fused/BLAS-flash speed-up = that method's time / fused time; "
               "IKA/softmax = IKA time / softmax time of the same implementation (and masking); "
               "causal/non-causal = causal time / non-causal time of the same kernel; "
               "peak MiB = largest extra operator-new memory during one call")

    md = ["# bench_attention results", "", *ctx, "", table, "", "## Targets", "", targets(runs, context.get("fma_peak")), "",
          "## Anomalies (automatic)", "", anomalies(rows, runs), ""]
    write_report(args.out_dir, "table.md", md, "gflops_vs_L.svg",
                 lambda svg: write_svg(runs, svg, "ika attention: fused engine vs Eigen and OpenBLAS flash (fp32, B=1, H=8, D=64)"))


if __name__ == "__main__":
    main()
