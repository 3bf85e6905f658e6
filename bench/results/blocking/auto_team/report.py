#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Table of the sweep runs: for each call, the automatic team's time (threads = 0) with the old
# headers and the new, per round, and the new build's 1- and 2-thread times (was the choice right?).
#   report.py runs/ > table.md
import re, statistics, sys
from pathlib import Path

def load(path):
    rows = {}
    for line in open(path):
        m = re.match(r'(.*?)\s+work\s+(\d+)\s+t1\s+([\d.]+)\s+t2\s+([\d.]+)\s+t0\s+([\d.]+)', line)
        if m: rows[m.group(1)] = tuple(float(m.group(i)) for i in range(2, 6))
    return rows

runs = Path(sys.argv[1])
old = [load(p) for p in sorted(runs.glob('old_*.txt'))]
new = [load(p) for p in sorted(runs.glob('new_*.txt'))]
med = statistics.median
fmt = lambda xs: ' '.join(f'{x:.3g}' for x in xs)
print(f'{len(old)} alternating rounds (old, new); times are medians of each round\'s calls, µs.\n')
print('| call | work (multiply-adds) | old threads=0 | new threads=0 | old / new | new 1 thread | new 2 threads |')
print('|---|---|---|---|---|---|---|')
for name in old[0]:
    o = [r[name][3] for r in old]
    n = [r[name][3] for r in new]
    t1 = [r[name][1] for r in new]
    t2 = [r[name][2] for r in new]
    print(f'| {name} | {old[0][name][0]:.3g} | {fmt(o)} | {fmt(n)} | {med(o) / med(n):.2f}× | {fmt(t1)} | {fmt(t2)} |')
