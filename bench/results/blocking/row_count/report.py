#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# old / new per call from the alternating runs of calls.cpp: report.py runs > table.md
import re, statistics, sys
from pathlib import Path

def load(path):
    return {m.group(1).strip(): float(m.group(2))
            for m in (re.match(r'(.*?)\s+median\s+([\d.]+)', line) for line in open(path)) if m}

runs = Path(sys.argv[1])
old = [load(p) for p in sorted(runs.glob('old_*.txt'))]
new = [load(p) for p in sorted(runs.glob('new_*.txt'))]
print(f'{len(old)} alternating rounds; median µs per call of each round, one thread.\n')
print('| call | old | new | old / new (medians) |')
print('|---|---|---|---|')
for name in old[0]:
    o, n = [r[name] for r in old], [r[name] for r in new]
    print(f"| {name} | {' '.join(f'{x:.1f}' for x in o)} | {' '.join(f'{x:.1f}' for x in n)} | "
          f'{statistics.median(o) / statistics.median(n):.2f}× |')
