#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Table of runs/calls_{old,new}_R.txt: per call, old and new median µs of each round, and the
# median over rounds of old / new.   report.py [DIR]  (DIR holds runs/, default: this folder)
import pathlib, re, statistics, sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).parent)
line = re.compile(r"^(.*?)\s+median\s+([\d.]+) us\s+min\s+([\d.]+) us")
times = {}  # (variant, call) -> [median per round]
rounds = sorted({int(p.stem.split("_")[-1]) for p in (root / "runs").glob("calls_*_*.txt")})
calls = []
for r in rounds:
    for variant in ("old", "new"):
        for text in (root / "runs" / f"calls_{variant}_{r}.txt").read_text().splitlines():
            m = line.match(text)
            if not m:
                continue
            name = m.group(1).strip()
            if name not in calls:
                calls.append(name)
            times.setdefault((variant, name), []).append(float(m.group(2)))
print("| call | old µs (median per round) | new µs | old / new (median of rounds) |")
print("|---|---|---|---|")
for name in calls:
    old, new = times[("old", name)], times[("new", name)]
    ratio = statistics.median(o / n for o, n in zip(old, new))
    fmt = lambda xs: " ".join(f"{x:.3g}" for x in xs)
    print(f"| {name} | {fmt(old)} | {fmt(new)} | {ratio:.2f}× |")
