#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Which work_per_thread? For each candidate grain g, the automatic team of every call of a sweep
# (two threads when work >= 2g and the engine has at least two tasks, else one) against the better
# of the measured 1- and 2-thread times of that call: the geometric mean and the worst of
# chosen / best, per sweep file (each file holds t1 and t2 for every call).
#   choose_grain.py runs/first_sweep_4ab45d2.txt runs/new_1.txt ...
# The task counts are those of the engines at these shapes (QT = 48 query rows per fused task on
# AVX-512, 512 keys per decode split, one linear-time task per head, 16 backward tasks at H = 8).
import math, re, sys

def load(path):
    rows = {}
    for line in open(path):
        m = re.match(r'(.*?)\s+work\s+(\d+)\s+t1\s+([\d.]+)\s+t2\s+([\d.]+)', line)
        if m: rows[m.group(1)] = (float(m.group(2)), float(m.group(3)), float(m.group(4)))
    return rows

def tasks(name):
    H = int(re.search(r'H=(\d+)', name).group(1))
    if name.startswith('forward'): return H * math.ceil(int(re.search(r' L=(\d+)', name).group(1)) / 48)
    if name.startswith('decode'): return H * max(1, math.ceil(int(re.search(r'Lk=(\d+)', name).group(1)) / 512))
    if name.startswith('backward'): return 16
    return H  # linear-time: a task per head; key cache append: per feature head

for path in sys.argv[1:]:
    sweep = load(path)
    print(path)
    for e in range(17, 23):
        g = 2.0 ** e
        ratios = []
        for name, (work, t1, t2) in sweep.items():
            two = work >= 2 * g and tasks(name) >= 2
            ratios.append((t2 if two else t1) / min(t1, t2))
        always_two = [t2 / min(t1, t2) for _, t1, t2 in sweep.values()]
        print(f'  grain 2^{e}: mean {math.exp(sum(map(math.log, ratios)) / len(ratios)):.3f}  worst {max(ratios):.2f}'
              f'   (always 2 threads: mean {math.exp(sum(map(math.log, always_two)) / len(always_two)):.3f}'
              f'  worst {max(always_two):.2f})')
