#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Table of runs/{build}_t{threads}_r{round}.txt (calls.cpp output; builds old, heaplinear, new):
# per case and thread count, the median over rounds of each build's median µs per call, the
# ratios to new (range over rounds), and page faults per call.
import glob, re, statistics
from collections import defaultdict

line = re.compile(r"^(.*?)\s+median\s+([\d.]+) us\s+min\s+([\d.]+) us\s+faults/call\s+([\d.]+)")
times, faults, order = defaultdict(list), defaultdict(list), []
for path in sorted(glob.glob("runs/*_t*_r*.txt")):
    build, threads = re.match(r"runs/(\w+)_t(\d+)_r\d+\.txt", path).groups()
    for text in open(path):
        m = line.match(text)
        if m:
            case = m.group(1).strip()
            if case not in order:
                order.append(case)
            times[build, threads, case].append(float(m.group(2)))
            faults[build, threads, case].append(float(m.group(4)))

def ratio(a, b):
    r = [x / y for x, y in zip(a, b)]
    return f"{statistics.median(a) / statistics.median(b):.2f} ({min(r):.2f}-{max(r):.2f})"

print("| case | threads | old µs | heaplinear µs | new µs | old/new | heaplinear/new | faults/call old, new |")
print("|---|---|---|---|---|---|---|---|")
for threads in sorted({k[1] for k in times}):
    for case in order:
        t = {b: times[b, threads, case] for b in ("old", "heaplinear", "new")}
        f = {b: statistics.median(faults[b, threads, case]) for b in ("old", "new")}
        print(f"| {case} | {threads} | {statistics.median(t['old']):.1f} | {statistics.median(t['heaplinear']):.1f} | "
              f"{statistics.median(t['new']):.1f} | {ratio(t['old'], t['new'])} | {ratio(t['heaplinear'], t['new'])} | "
              f"{f['old']:.1f}, {f['new']:.1f} |")
