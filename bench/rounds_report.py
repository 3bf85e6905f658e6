#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Tables from bench/cpu_rounds.sh's output: ika's fused softmax against torch's SDPA, per round and
as the median over rounds.

    python3 bench/rounds_report.py DIR > DIR/rounds.md

DIR holds r<round>_<variant>.json (bench_attention, Google Benchmark JSON) and r<round>_torch.json
(bench/torch_compare.py). Each file gives one time per (method, L, threads): Google Benchmark's
median over its repetitions, torch_compare.py's median over its batches. The report takes the
median of those over the rounds; speed-up = torch time / ika time (ika faster when > 1), also per
round (the two programs ran back to back, so a slow period of a drifting machine hits both).
Thread counts: whichever the files hold (cpu_rounds.sh's fourth argument).
"""

import glob
import json
import os
import re
import statistics
import sys

from plot import load


def ika_times(path):
    _, runs, _ = load(path)  # bench_attention's JSON, medians as plot.py reads them
    return {key: run["time_ms"] for key, run in runs.items()}


def torch_times(path):
    return {(r["method"], r["L"], r["threads"]): r["time_ms"] for r in json.load(open(path))["results"]}


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    folder = sys.argv[1]
    runs = {}  # variant -> round -> {(method, L, threads): ms}
    for path in sorted(glob.glob(os.path.join(folder, "r*_*.json"))):
        m = re.fullmatch(r"r(\d+)_(.+)\.json", os.path.basename(path))
        round_, variant = int(m.group(1)), m.group(2)
        runs.setdefault(variant, {})[round_] = (torch_times if variant == "torch" else ika_times)(path)
    if "torch" not in runs or "main" not in runs:
        sys.exit(f"{folder}: needs r<N>_main.json and r<N>_torch.json files")

    def median(variant, key):
        values = [r[key] for r in runs[variant].values() if key in r]
        return statistics.median(values) if values else None, values

    def per_round(numerator, numerator_key, denominator, denominator_key):
        """numerator's time / denominator's in every round that timed both"""
        return [runs[numerator][r][numerator_key] / runs[denominator][r][denominator_key]
                for r in rounds
                if numerator_key in runs[numerator].get(r, {}) and denominator_key in runs[denominator].get(r, {})]

    rounds = sorted(runs["main"])
    thread_counts = sorted({key[2] for r in runs["main"].values() for key in r})
    print(f"# ika vs torch SDPA, {len(rounds)} interleaved rounds ({folder})\n")
    print("Time per call in ms: each round's value (Google Benchmark's / torch_compare.py's median over its "
          "repetitions), then the median over rounds; speed-up = torch time / ika time.\n")
    print("| ika method | torch method | L | threads | ika per round | ika median | torch per round | torch median | "
          "speed-up | speed-up per round |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for ika_method, torch_method in (("fused_softmax", "torch_sdpa"), ("fused_softmax_causal", "torch_sdpa_causal")):
        for L in (1024, 4096):
            for threads in thread_counts:
                a, a_values = median("main", (ika_method, L, threads))
                t, t_values = median("torch", (torch_method, L, threads))
                if a is None or t is None:
                    continue
                ms = lambda v: f"{v:.2f}" if v < 10 else f"{v:.1f}"
                fmt = lambda vs: ", ".join(ms(v) for v in vs)
                speed_ups = per_round("torch", (torch_method, L, threads), "main", (ika_method, L, threads))
                print(f"| {ika_method} | {torch_method} | {L} | {threads} | {fmt(a_values)} | {ms(a)} | "
                      f"{fmt(t_values)} | {ms(t)} | {t / a:.2f}× | {', '.join(f'{x:.2f}' for x in speed_ups)} |")
    variants = [v for v in runs if v not in ("main", "torch")]
    if variants:
        print("\nVariants of the library (median over rounds, ms; ratio = main / variant, the variant faster when > 1; "
              "per round: main / variant in the rounds that ran both):\n")
        print("| method | L | threads | main | " + " | ".join(f"{v} | {v} per round" for v in variants) + " |")
        print("|---|---|---|---|" + "---|---|" * len(variants))
        keys = sorted({key for v in variants for r in runs[v].values() for key in r})
        for key in keys:
            base, _ = median("main", key)
            if base is None:
                continue
            cells = []
            for v in variants:
                x, _ = median(v, key)
                cells.append("—" if x is None else f"{x:.1f} ({base / x:.2f})")
                cells.append(", ".join(f"{ratio:.2f}" for ratio in per_round("main", key, v, key)) or "—")
            print(f"| {key[0]} | {key[1]} | {key[2]} | {base:.1f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
