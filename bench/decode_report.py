#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""bench_decode JSON -> a markdown table (GB/s of K and V per Lk and threads, as a share of the
streaming read measured in the same run) and an SVG of GB/s against Lk.

    bench/decode_report.py bench/results/decode.json bench/results   (writes decode.md, decode.svg)
"""
import json
import math
import os
import re
import sys

from svg_series import legend, series, write

TARGET_SHARE = 0.70  # of the streaming read's bandwidth, softmax (the kernels with O(D) work per key)
METHODS = ("stream", "softmax", "ika", "ika_cached")
COLOURS = {"stream": "#7f7f7f", "softmax": "#1f77b4", "ika": "#d62728", "ika_cached": "#ff7f0e"}


def medians(path):
    with open(path) as f:
        data = json.load(f)
    rates, reads = {}, {}
    for b in data["benchmarks"]:
        if b.get("aggregate_name") != "median":
            continue
        m = re.match(r"(stream|softmax|ika_cached|ika)/Lk:(\d+)/omp:(\d+)", b["run_name"])
        if m:
            key = (m.group(1), int(m.group(2)), int(m.group(3)))
            rates[key] = float(b["GB/s"])
            if "read_GB/s" in b:
                reads[key] = float(b["read_GB/s"])
    return data["context"], rates, reads


H, D = 8, 64  # bench/common.hpp; K and V rows of D floats each


def kv_mib(Lk):
    return 2 * H * Lk * D * 4 / 2**20


def last_level_cache(context):
    sizes = [c["size"] for c in context.get("caches", []) if c.get("type") in ("Unified", "Data")]
    return max(sizes) if sizes else 0


def table(rates, reads, llc):
    keys = sorted({(t, Lk) for (_, Lk, t) in rates})
    lines = ["| threads | Lk | K + V | stream GB/s | softmax GB/s | softmax / stream | IKA GB/s | IKA / stream "
             "| IKA cached GB/s | IKA cached: read GB/s | read / stream |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for t, Lk in keys:
        s, a, k, c = (rates.get((m, Lk, t)) for m in METHODS)
        if s is None:
            continue
        r = reads.get(("ika_cached", Lk, t))
        share = lambda x: f"{x / s * 100:.0f} %" if x is not None else "—"
        rate = lambda x: f"{x:.1f}" if x is not None else "—"
        where = "DRAM" if kv_mib(Lk) * 2**20 > llc else "fits the last-level cache"
        lines.append(f"| {t} | {Lk} | {kv_mib(Lk):.0f} MiB ({where}) | {s:.1f} | {rate(a)} | {share(a)} | {rate(k)} "
                     f"| {share(k)} | {rate(c)} | {rate(r)} | {share(r)} |")
    return "\n".join(lines) + "\n"


def verdict(rates, llc):
    out = []
    for (m, Lk, t), a in sorted(rates.items()):
        if m != "softmax" or t != 2 or ("stream", Lk, t) not in rates:
            continue
        share = a / rates[("stream", Lk, t)]
        if kv_mib(Lk) * 2**20 <= llc:
            out.append(f"- Lk = {Lk}, 2 threads: K and V fit the last-level cache ({llc / 2**20:.0f} MiB), the "
                       f"streaming read runs at cache bandwidth; softmax at {share * 100:.0f} % of it (not a DRAM case)")
            continue
        out.append(f"- Lk = {Lk}, 2 threads: softmax at {share * 100:.0f} % of the streaming read from DRAM: "
                   f"**{'met' if share >= TARGET_SHARE else 'NOT met'}**")
    return "\n".join(out) + "\n"


def svg(rates, path, threads=2):
    width, height, left, right, top, bottom = 640, 400, 60, 170, 40, 50
    pw, ph = width - left - right, height - top - bottom
    Ls = sorted({Lk for (_, Lk, t) in rates if t == threads})
    hi = max(v for (_, _, t), v in rates.items() if t == threads)
    hi = math.ceil(hi / 10) * 10
    x0, x1 = math.log2(Ls[0]), math.log2(Ls[-1])

    def X(L):
        return left + (math.log2(L) - x0) / max(x1 - x0, 1) * pw

    def Y(v):
        return top + (1 - v / hi) * ph

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
           f'font-size="12">', f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{left}" y="22" font-size="14">decode (Lq = 1): GB/s of K and V read, {threads} threads</text>']
    for v in range(0, hi + 1, 10):
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{Y(v):.1f}" y2="{Y(v):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 6}" y="{Y(v) + 4:.1f}" text-anchor="end">{v}</text>')
    for L in Ls:
        out.append(f'<text x="{X(L):.1f}" y="{top + ph + 18}" text-anchor="middle">{L}</text>')
    out.append(f'<text x="{left + pw / 2}" y="{height - 8}" text-anchor="middle">Lk (keys in the cache, log scale)</text>')
    for i, m in enumerate(METHODS):
        pts = [(X(L), Y(rates[(m, L, threads)])) for L in Ls if (m, L, threads) in rates]
        series(out, pts, COLOURS[m])
        legend(out, left + pw + 15, top + 10 + 20 * i, COLOURS[m], m)
    # the target: 70 % of the streaming read
    pts = [(X(L), Y(TARGET_SHARE * rates[("stream", L, threads)])) for L in Ls if ("stream", L, threads) in rates]
    series(out, pts, "#7f7f7f", width=1, dash="5 4")
    legend(out, left + pw + 15, top + 10 + 20 * len(METHODS), "#7f7f7f", "70 % of stream", width=1, dash="5 4")
    write(out, path)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    context, rates, reads = medians(sys.argv[1])
    out_dir = sys.argv[2]
    llc = last_level_cache(context)
    md = ["# bench_decode results", "",
          f"- run: {context.get('date', '?')}, {context.get('num_cpus', '?')} CPUs, load average at start "
          f"{', '.join(f'{x:.2f}' for x in context.get('load_avg', [])) or '?'}",
          "- shape: fp32, B = 1, H = 8, Lq = 1, D = Dv = 64, causal lower-right (the query sees every key); "
          "GB/s = bytes of K and V / time, median of the repetitions",
          "- stream: a parallel vector sum of the same K and V arrays (four accumulators per thread), the "
          "bandwidth this access gets: DRAM when K and V exceed the last-level cache, cache bandwidth otherwise",
          "- IKA cached: the IKA kernel over an `ika::key_cache` filled once before the timing (features "
          "and terms of every key prepared when appended); GB/s counts K and V as for the others, read GB/s "
          "what it reads (2M = 128 features and a term per key and query head, and V: 1.5× the bytes of K and V)",
          "", table(rates, reads, llc), "## Target: softmax decode ≥ 70 % of the DRAM bandwidth (the streaming read of K and V)",
          "", verdict(rates, llc),
          "The IKA kernel maps every key to 2M random features (2·2·M·D flops, cos and sin, per key): "
          "it is compute-bound at decode, not memory-bound, and its GB/s is not held to the target. Over a "
          "key cache those features are read, not computed, and the decode is bound by memory again.", ""]
    with open(os.path.join(out_dir, "decode.md"), "w") as f:
        f.write("\n".join(md))
    svg(rates, os.path.join(out_dir, "decode.svg"))
    print("\n".join(md))


if __name__ == "__main__":
    main()
