# report.py DIR BASE VARIANT...: per benchmark, BASE time / VARIANT time in each of the three rounds DIR/NAME_{1,2,3}.json (medians)
import json,collections,sys
d_=sys.argv[1]; vs=sys.argv[2:]
t=collections.defaultdict(dict)
for v in vs:
  for r in [1,2,3]:
    for b in json.load(open(f'{d_}/{v}_{r}.json'))['benchmarks']:
      if b.get('aggregate_name')=='median':
        t[b['run_name'].split('/min')[0]].setdefault(v,[]).append(b['real_time'])
base=vs[0]
for k,d in t.items():
  print(f"{k:30s} {base} {' '.join(f'{x:7.2f}' for x in d[base])} | " + ' | '.join(f"{base}/{v} {' '.join(f'{o/n:.2f}' for o,n in zip(d[base],d[v]))}" for v in vs[1:]))
