#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""ika's fused softmax attention against PyTorch's CPU SDPA, call by call in one process.

    python3 bench/torch_paired.py --lib main=build/release/bench/libika_bench_capi.so \
        --threads 1 2 --lengths 1024 4096 --seconds 20 --json paired.json

Why: on shared machines (the GPU machines' host CPUs) the speed of one process drifts by up to 2×
between runs a minute apart (bench/results/pytorch/intel_*), so ratios of separate runs (bench_attention
then torch_compare.py) are mostly noise. Here each --lib (a build of bench/paired/ika_capi.cpp, the
C entry point ika_bench_softmax_attention; several builds, e.g. tuning variants compiled against
changed headers, can be named) and torch.nn.functional.scaled_dot_product_attention are called in
turn, one call each per iteration, the order rotating from one iteration to the next, on the same
tensors. Each iteration gives one ratio per ika build, torch time / ika time (> 1: ika faster), from
calls made within a second of each other; the median of those ratios and its quartiles are reported.

Problem: bench_attention's (bench/common.hpp): fp32, B = 1, H = 8, D = Dv = 64, Lq = Lk = L, q, k,
v ~ N(0, 1) in (B, H, L, D) layout (torch's generator, seed 0), no mask and causal (query i sees
keys j ≤ i: torch's is_causal=True, ika's causal_upper_left). Threads: torch.set_num_threads(n) and
ika's {.threads = n}, n from --threads. torch runs under torch.inference_mode() and allocates its
output at each call, as SDPA does; ika writes into one preallocated tensor.

Check: before timing each (L, causal), every build's output is compared with torch's on the same
inputs; the script stops with status 1 if the max abs difference is ≥ 1e-3 (bench_attention's
tolerance for its baselines).

Timing per (L, threads, causal): one warm-up call of each method, then iterations until --seconds
have passed (at least --min-iterations, at most --max-iterations); each call is timed alone with
time.perf_counter_ns. Reported: the median time per call of each method, and per ika build the
median over iterations of torch time / ika time with its 25th and 75th percentiles and the share of
iterations in which ika was faster; with several builds, also each build's ratio to the first
(first time / build time, > 1: the build is faster). --json writes everything, every call's time
included, with the machine (CPU model, torch version and CPU capability, thread settings).

It needs PyTorch; without it it says so and exits with status 2. Not run by CI.
"""

import argparse
import ctypes
import datetime
import json
import statistics
import sys
import time

# the shape of bench_attention, the check's tolerance and the machine's CPU model, as torch_compare.py
# has them (it imports torch only in its main())
from torch_compare import B, CHECK_TOLERANCE as TOLERANCE, D, H, cpu_model


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lib", action="append", required=True, metavar="NAME=PATH",
                   help="a build of bench/paired/ika_capi.cpp; repeat for variants (the first is the reference)")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--lengths", type=int, nargs="+", default=[1024, 4096])
    p.add_argument("--masks", nargs="+", choices=["none", "causal"], default=["none", "causal"])
    p.add_argument("--seconds", type=float, default=20.0, help="time budget per (L, threads, mask)")
    p.add_argument("--min-iterations", type=int, default=7)
    p.add_argument("--max-iterations", type=int, default=400)
    p.add_argument("--json", help="write every call's time and the summary here")
    return p.parse_args()


def quantile(values, q):
    s = sorted(values)
    pos = q * (len(s) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def ratio_summary(numerators, denominators):
    """Median and quartiles over iterations of numerator time / denominator time."""
    r = [a / b for a, b in zip(numerators, denominators)]
    return {"median": statistics.median(r), "q25": quantile(r, 0.25), "q75": quantile(r, 0.75)}


def main():
    args = parse_args()
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        print("torch_paired.py: PyTorch is not installed here (python3 -c 'import torch' fails)", file=sys.stderr)
        return 2

    builds = []
    for spec in args.lib:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            print(f"--lib: expected NAME=PATH, got '{spec}'", file=sys.stderr)
            return 2
        lib = ctypes.CDLL(path)
        fn = lib.ika_bench_softmax_attention
        fn.restype = ctypes.c_int
        fn.argtypes = [ctypes.c_void_p] * 4 + [ctypes.c_longlong] * 4 + [ctypes.c_int, ctypes.c_int]
        lib.ika_bench_last_error.restype = ctypes.c_char_p
        builds.append((name, path, fn, lib))

    results = []
    machine = {
        "cpu": cpu_model(),
        "torch": torch.__version__,
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_parallel_info": torch.__config__.parallel_info(),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "builds": {name: path for name, path, _, _ in builds},
    }
    print(f"# {machine['cpu']}, torch {machine['torch']} ({machine['torch_cpu_capability']})", flush=True)

    gen = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        for L in args.lengths:
            q, k, v = (torch.randn(B, H, L, D, generator=gen, dtype=torch.float32) for _ in range(3))
            out = torch.empty(B, H, L, D, dtype=torch.float32)
            for mask in args.masks:
                causal = mask == "causal"

                def run_ika(fn, lib, threads):
                    rc = fn(q.data_ptr(), k.data_ptr(), v.data_ptr(), out.data_ptr(), B, H, L, D, int(causal), threads)
                    if rc != 0:
                        raise RuntimeError(lib.ika_bench_last_error().decode())

                torch.set_num_threads(max(args.threads))
                expected = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
                for name, _, fn, lib in builds:
                    out.fill_(float("nan"))
                    run_ika(fn, lib, max(args.threads))
                    diff = (out - expected).abs().max().item()
                    print(f"check L={L} {mask} {name}: max |ika - torch| = {diff:.3g}", flush=True)
                    if not diff < TOLERANCE:
                        print(f"torch_paired.py: {name} differs from torch by {diff} >= {TOLERANCE}", file=sys.stderr)
                        return 1

                for threads in args.threads:
                    torch.set_num_threads(threads)
                    methods = [("torch", lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal))]
                    methods += [(name, (lambda fn=fn, lib=lib: run_ika(fn, lib, threads))) for name, _, fn, lib in builds]
                    for _, call in methods:  # warm-up
                        call()
                    times = {name: [] for name, _ in methods}
                    start = time.perf_counter()
                    i = 0
                    while i < args.max_iterations and (i < args.min_iterations or time.perf_counter() - start < args.seconds):
                        for j in range(len(methods)):
                            name, call = methods[(i + j) % len(methods)]
                            t0 = time.perf_counter_ns()
                            call()
                            times[name].append((time.perf_counter_ns() - t0) * 1e-6)
                        i += 1
                    row = {"L": L, "threads": threads, "mask": mask, "iterations": i, "times_ms": times,
                           "median_ms": {n: statistics.median(t) for n, t in times.items()}, "torch_over": {}, "over_first": {}}
                    first = builds[0][0]
                    for name, _, _, _ in builds:
                        row["torch_over"][name] = ratio_summary(times["torch"], times[name])
                        row["torch_over"][name]["ika_faster"] = sum(a > b for a, b in zip(times["torch"], times[name])) / i
                        if name != first:
                            row["over_first"][name] = ratio_summary(times[first], times[name])
                    results.append(row)
                    line = ", ".join(f"{n} {m:.2f} ms" for n, m in row["median_ms"].items())
                    ratios = ", ".join(f"torch/{n} {s['median']:.3f} [{s['q25']:.3f}, {s['q75']:.3f}] faster in {s['ika_faster']:.0%}"
                                       for n, s in row["torch_over"].items())
                    variants = ", ".join(f"{first}/{n} {s['median']:.3f} [{s['q25']:.3f}, {s['q75']:.3f}]"
                                         for n, s in row["over_first"].items())
                    print(f"L={L} threads={threads} {mask}: {i} iterations; {line}; {ratios}"
                          + (f"; {variants}" if variants else ""), flush=True)

    print()
    print("| L | threads | mask | iterations | torch ms | " + " | ".join(f"{n} ms | torch/{n} [q25, q75]" for n, *_ in builds) + " |")
    print("|---|---|---|---|---|" + "---|---|" * len(builds))
    for row in results:
        cells = [str(row["L"]), str(row["threads"]), row["mask"], str(row["iterations"]), f"{row['median_ms']['torch']:.2f}"]
        for name, *_ in builds:
            s = row["torch_over"][name]
            cells += [f"{row['median_ms'][name]:.2f}", f"{s['median']:.3f} [{s['q25']:.3f}, {s['q75']:.3f}]"]
        print("| " + " | ".join(cells) + " |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
