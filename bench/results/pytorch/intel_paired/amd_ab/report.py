import re, sys, statistics, collections
t = collections.defaultdict(lambda: collections.defaultdict(list))
for line in open(sys.argv[1]):
    m = re.match(r"r(\d+) (old|new) (\w+) (\w+) L=(\d+) t=(\d+) ([\d.]+) ms", line)
    if m: t[(m[3], m[4], int(m[5]), int(m[6]))][m[2]].append((int(m[1]), float(m[7])))
print("| kernel | mask | L | threads | old ms per round | new ms per round | old/new per round | median |")
print("|---|---|---|---|---|---|---|---|")
for k, v in t.items():
    o = dict(v["old"]); n = dict(v["new"]); r = [o[i] / n[i] for i in sorted(o) if i in n]
    print(f"| {k[0]} | {k[1]} | {k[2]} | {k[3]} | {', '.join(f'{o[i]:.1f}' for i in sorted(o))} | {', '.join(f'{n[i]:.1f}' for i in sorted(n))} | {', '.join(f'{x:.2f}' for x in r)} | {statistics.median(r):.2f} |")
