#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Per round: the IKA kernel's non-causal and causal medians at L = 1024 (ms) and their ratio, for
# each build that ran that round ({old,new,skew}_r{round}.json, bench_attention JSON).
import glob, json, re

rounds = sorted({int(re.search(r"_r(\d+)", p).group(1)) for p in glob.glob("*_r*.json")})
print("| round | build | threads | non-causal ms | causal ms | causal / non-causal |")
print("|---|---|---|---|---|---|")
for r in rounds:
    for build in ("old", "new", "skew"):
        try:
            runs = json.load(open(f"{build}_r{r}.json"))["benchmarks"]
        except FileNotFoundError:
            continue
        d = {b["run_name"].split("/min_time")[0]: b["real_time"] for b in runs if b.get("aggregate_name") == "median"}
        for t in (1, 2):
            n, c = d.get(f"fused_ika/L:1024/omp:{t}"), d.get(f"fused_ika_causal/L:1024/omp:{t}")
            if n and c:
                print(f"| {r} | {build} | {t} | {n:.2f} | {c:.2f} | {c / n:.3f} |")
