#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# old/new per benchmark from {old,new}_r*.json (bench_linear, Google Benchmark JSON): each run's
# median aggregate, the median over runs, and the ratio's range over the rounds.
import glob, json, statistics
from collections import defaultdict

t = defaultdict(list)
for path in sorted(glob.glob("*_r*.json")):
    build = path.split("_")[0]
    for b in json.load(open(path))["benchmarks"]:
        if b.get("aggregate_name") == "median":
            t[build, b["run_name"]].append(b["real_time"])
names = sorted({n for _, n in t}, key=lambda n: [int(p.split(":")[1]) if p.split(":")[1].isdigit() else p
                                                   for p in n.split("/")[1:4]])
print("| benchmark | old ms | new ms | old/new (range) |")
print("|---|---|---|---|")
for n in names:
    old, new = t["old", n], t["new", n]
    r = [o / w for o, w in zip(old, new)]
    print(f"| {n.split('/min_time')[0]} | {statistics.median(old):.2f} | {statistics.median(new):.2f} | "
          f"{statistics.median(old) / statistics.median(new):.2f} ({min(r):.2f}-{max(r):.2f}) |")
