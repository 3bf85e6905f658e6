#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""bench_linear JSON -> a markdown table (time and speed-up per L, M, causal) and a log-log SVG.

    bench/linear_report.py bench/results/linear.json bench/results   (writes linear.md, linear.svg)
"""
import json
import math
import os
import re
import sys

from svg_series import legend, series, write


def medians(path):
    with open(path) as f:
        data = json.load(f)
    times = {}
    for b in data["benchmarks"]:
        if b.get("aggregate_name") != "median":
            continue
        m = re.match(r"(exact|linear)/L:(\d+)/M:(\d+)/causal:(\d)", b["run_name"])
        method, L, M, causal = m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4))
        times[(method, L, M, causal)] = b["real_time"]  # milliseconds
    return data["context"], times


def table(times):
    keys = sorted({(M, c, L) for (_, L, M, c) in times})
    lines = ["| M | causal | L | exact (ms) | linear (ms) | exact / linear |", "|---|---|---|---|---|---|"]
    for M, c, L in keys:
        e, l = times.get(("exact", L, M, c)), times.get(("linear", L, M, c))
        if e is None or l is None:
            continue
        lines.append(f"| {M} | {'yes' if c else 'no'} | {L} | {e:.2f} | {l:.2f} | {e / l:.2f}× |")
    return "\n".join(lines) + "\n"


def svg(times, path):
    width, height, left, right, top, bottom = 640, 420, 70, 200, 40, 50
    pw, ph = width - left - right, height - top - bottom
    drawn = []
    colours = {"exact": "#d62728", "linear": "#1f77b4"}
    for (method, L, M, c) in sorted(times):
        if c:
            continue
        drawn.append((method, M))
    drawn = sorted(set(drawn))
    Ls = sorted({L for (_, L, _, _) in times})
    values = [v for v in times.values()]
    lo, hi = math.floor(math.log10(min(values))), math.ceil(math.log10(max(values)))
    x0, x1 = math.log2(Ls[0]), math.log2(Ls[-1])

    def X(L):
        return left + (math.log2(L) - x0) / (x1 - x0) * pw

    def Y(t):
        return top + (hi - math.log10(t)) / (hi - lo) * ph

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
           f'font-size="12">', f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{left}" y="22" font-size="14">exact vs linear-time attention (non-causal), time per call</text>']
    for e in range(lo, hi + 1):
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{Y(10 ** e):.1f}" y2="{Y(10 ** e):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 6}" y="{Y(10 ** e) + 4:.1f}" text-anchor="end">{10 ** e:g} ms</text>')
    for L in Ls:
        out.append(f'<text x="{X(L):.1f}" y="{top + ph + 18}" text-anchor="middle">{L}</text>')
    out.append(f'<text x="{left + pw / 2}" y="{height - 8}" text-anchor="middle">L (log scale)</text>')
    for i, (method, M) in enumerate(drawn):
        pts = [(L, times[(method, L, M, 0)]) for L in Ls if (method, L, M, 0) in times]
        dash = "" if M == 64 else "6 4"
        series(out, [(X(L), Y(t)) for L, t in pts], colours[method], dash=dash)
        legend(out, left + pw + 15, top + 10 + 20 * i, colours[method], f"{method}, M = {M}", dash=dash)
    write(out, path)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    context, times = medians(sys.argv[1])
    os.makedirs(sys.argv[2], exist_ok=True)
    md = (f"bench_linear, {context.get('host_name', '')}, {context.get('num_cpus', '?')} CPUs, "
          f"omp_max_threads {context.get('omp_max_threads', '?')}, {context.get('date', '')}; "
          "medians of 3 repetitions; fp32 B=1 H=8 D=Dv=64, Yaglom M per head, L3 magnitude.\n\n" + table(times))
    with open(os.path.join(sys.argv[2], "linear.md"), "w") as f:
        f.write(md)
    svg(times, os.path.join(sys.argv[2], "linear.svg"))
    print(md, end="")


if __name__ == "__main__":
    main()
