# SPDX-License-Identifier: MIT
# Table of the A/B rounds of ab.sh: Google Benchmark medians per round, old / new time ratios.
#   python3 ab_report.py DIR   (reads DIR/runs/)
import collections, json, statistics, sys
from pathlib import Path

scale = {'ns': 1e-6, 'us': 1e-3, 'ms': 1.0, 's': 1e3}
res = collections.defaultdict(lambda: collections.defaultdict(list))
here = Path(sys.argv[1])
for kind in ['attention', 'backward', 'decode', 'linear']:
    for b in ['old', 'new']:
        for r in [1, 2, 3]:
            path = here / 'runs' / f'{kind}_{b}_{r}.json'
            if not path.exists():  # a round set that timed only some of the benchmarks
                continue
            for x in json.load(open(path))['benchmarks']:
                if x.get('aggregate_name') == 'median':
                    res[x['run_name'].split('/min_time')[0]][b].append(x['real_time'] * scale[x['time_unit']])
print('| benchmark | old ms (rounds 1-3) | new ms | old / new per round | median |')
print('|---|---|---|---|---|')
for name, v in res.items():
    o, n = v['old'], v['new']
    ratios = [a / b for a, b in zip(o, n)]
    fmt = lambda ts: ' '.join(f'{t:.3f}' for t in ts)
    print(f"| {name} | {fmt(o)} | {fmt(n)} | {' '.join(f'{q:.3f}' for q in ratios)} | {statistics.median(ratios):.3f} |")
