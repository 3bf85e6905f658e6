#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Time PyTorch's attention on bench_attention's problem, for comparison with ika's numbers.

    python3 bench/torch_compare.py --threads 1 2 --json bench/results/torch.json
    python3 bench/torch_compare.py --check                  # also the self-consistency check first
    python3 bench/torch_compare.py --device cuda --threads 1  # on a GPU
    python3 bench/torch_compare.py --device cuda --threads 1 --batch 4 --heads 16 --lengths 1024 2048 4096
                                                              # bench_cuda_attention's shape

What it runs: the shape of bench_attention (bench/common.hpp, bench/README.md): fp32, B = 1, H = 8,
D = Dv = 64, Lq = Lk = L (default L in {256, 1024, 4096}), q, k, v ~ N(0, 1) in (B, H, L, D)
layout, each method with each thread count of --threads (torch.set_num_threads before the runs of
that count), all under torch.inference_mode():

  torch_sdpa          torch.nn.functional.scaled_dot_product_attention(q, k, v), no mask, i.e.
                      softmax(QKᵀ/√D)·V, whatever backend PyTorch picks for the device
  torch_sdpa_causal   the same with is_causal=True (query i sees keys j ≤ i)
  torch_ika_paper     the IKA kernel as the paper's PyTorch formulation writes it, unfused, as a
                      PyTorch user would (batched matmul, torch.cos/sin, torch.linalg.vector_norm,
                      torch.softmax; no custom kernels), with M = 64 spectral points per head:
                        Z_i  = 2π · X W_i               W₁, W₂ of shape (H, D, M)
                        Φ(X) = (4M)^-½ [cos Z₁ + cos Z₂, sin Z₁ + sin Z₂]     (L, 2M) per head
                        S    = Φ(Q) Φ(K)ᵀ                                      (L, L) per head
                        logit_ij = log(S_ij² + 1e-5) + μ(k_j),  μ(k) = ‖k‖₃² / (2√D)
                        O    = softmax_j(logit) · V
                      This is ika's log_kernel(yaglom_rff<float>::from_seed(42, H, D, 64)) +
                      magnitude(lp{3.0}) (the defaults: squared estimate, ε = 1e-5, μ exponent 2,
                      divisor 2√D), i.e. bench_attention's fused_ika and baseline_ika.
                      W₁, W₂ are drawn here with torch's generator (seed 42) from the distribution
                      ika's from_seed uses, N(0, (2πσ)⁻² I) with σ² = √D; they are NOT ika's
                      points (ika draws them with its own counter-based generator), so outputs are
                      not comparable element by element, but the cost is the same.

Timing, per (method, L, threads): one warm-up call; then the number of calls n is calibrated
(doubling, then scaled) until one batch of n calls takes at least --min-time seconds; then
--repeats batches of n calls are timed, and the median of (batch time / n) is the time per call.
With --device cuda, torch.cuda.synchronize() is called before starting and before stopping each
timed batch. The runs are shape-major (for L, for threads, for method), as in bench_attention.

Reported: time per call in ms, and GFLOP/s with ika's convention 4·B·H·L²·D / time, the same count
for every method, the causal one included (it needs about half), so for a given shape GFLOP/s is
proportional to speed. A markdown table (method, L, threads, time ms, GFLOP/s) is printed; --json
writes it with the machine (torch version, torch.get_num_threads(), CPU model from /proc/cpuinfo
when present, GPU name on cuda, date) and every repetition.

--check: before any timing, torch_ika_paper (fp32, on --device) is compared at L = 64 with a
float64 reference of the same formula written differently and without Python loops (the kernel
estimate through cos(a − b) sums over the four pairs of projections instead of the feature product,
‖k‖₃ through Σ|k|³, softmax through exp(x − max) / Σ), and torch_sdpa with a float64
softmax(QKᵀ/√D)·V; the max abs differences are printed (and written to the JSON). The script stops
with status 1 if a difference is ≥ 1e-3 (bench_attention's tolerance for its own baselines).

Comparison with ika: bench/results/table.md (bench_attention, bench/run.sh) has the same shapes and
thread counts; compare fused_softmax with torch_sdpa, fused_softmax_causal with torch_sdpa_causal,
fused_ika with torch_ika_paper (and baseline_ika, ika's own Eigen version of the same unfused
computation). Compare only runs on the same machine, idle, with the same thread counts.

This script is optional: it needs PyTorch (nothing else beyond the standard library), which this
repository does not depend on; it is not run by this repository's CI and has not been run in it.
Without PyTorch it says so and exits with status 2.
"""

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import sys
import time

# bench/common.hpp: bench::B, H, D, Dv, M, kernel_seed
B, H, D, DV, M = 1, 8, 64, 64, 64
KERNEL_SEED = 42
RFF_EPSILON = 1e-5  # yaglom_rff::epsilon default (rff_estimate::squared: log(k̂² + ε))
NORM_P = 3.0  # ika::lp{3.0}: μ(x) = ‖x‖_p^2 / (2√D) (norm_exponent::two, norm_divisor::paper)
CHECK_L = 64
CHECK_TOLERANCE = 1e-3

METHODS = ("torch_sdpa", "torch_sdpa_causal", "torch_ika_paper")

torch = None  # imported in main(), after the arguments are parsed, so that --help works without it


# ---- problem ---------------------------------------------------------------------------------------


def spectral_points(device):
    """W₁, W₂ of shape (H, D, M), N(0, (2πσ)⁻² I) with σ² = √D, as ika's yaglom_rff::from_seed
    draws them (bandwidth_sq = 0), but from torch's generator: not ika's points."""
    sigma2 = math.sqrt(D)
    scale = 1.0 / (2.0 * math.pi * math.sqrt(sigma2))
    g = torch.Generator(device="cpu").manual_seed(KERNEL_SEED)
    w1 = torch.randn(H, D, M, generator=g, dtype=torch.float32) * scale
    w2 = torch.randn(H, D, M, generator=g, dtype=torch.float32) * scale
    return w1.to(device), w2.to(device)


def inputs(L, device):
    """q, k, v ~ N(0, 1), fp32, (B, H, L, D); one generator per L (seed 1234 + L, as the bench's
    convention, though torch's draws differ from bench::fill_normal's)."""
    g = torch.Generator(device="cpu").manual_seed(1234 + L)
    q = torch.randn(B, H, L, D, generator=g, dtype=torch.float32)
    k = torch.randn(B, H, L, D, generator=g, dtype=torch.float32)
    v = torch.randn(B, H, L, DV, generator=g, dtype=torch.float32)
    return q.to(device), k.to(device), v.to(device)


# ---- methods ---------------------------------------------------------------------------------------


def torch_sdpa(q, k, v, w1, w2):
    return torch.nn.functional.scaled_dot_product_attention(q, k, v)


def torch_sdpa_causal(q, k, v, w1, w2):
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)


def yaglom_features(x, w1, w2):
    """Φ(x) = (4M)^-½ [cos(2πxW₁) + cos(2πxW₂), sin(2πxW₁) + sin(2πxW₂)]: (B, H, L, D) -> (B, H, L, 2M)."""
    m = w1.shape[-1]
    z1 = 2 * math.pi * torch.matmul(x, w1)  # (B, H, L, D) @ (H, D, M) -> (B, H, L, M)
    z2 = 2 * math.pi * torch.matmul(x, w2)
    phi = torch.cat([torch.cos(z1) + torch.cos(z2), torch.sin(z1) + torch.sin(z2)], dim=-1)
    return phi / math.sqrt(4 * m)


def torch_ika_paper(q, k, v, w1, w2):
    """IKA attention, unfused: Yaglom features, S = ΦqΦkᵀ, log(S² + ε) + μ(k_j), softmax, @ v."""
    d = q.shape[-1]
    phi_q = yaglom_features(q, w1, w2)
    phi_k = yaglom_features(k, w1, w2)
    s = torch.matmul(phi_q, phi_k.transpose(-2, -1))  # (B, H, L, L)
    mu = torch.linalg.vector_norm(k, ord=NORM_P, dim=-1).pow(2) / (2 * math.sqrt(d))  # (B, H, L)
    logits = torch.log(s.square() + RFF_EPSILON) + mu.unsqueeze(-2)
    return torch.matmul(torch.softmax(logits, dim=-1), v)


METHOD_FNS = {"torch_sdpa": torch_sdpa, "torch_sdpa_causal": torch_sdpa_causal, "torch_ika_paper": torch_ika_paper}


# ---- check -----------------------------------------------------------------------------------------


def reference_ika(q, k, v, w1, w2):
    """float64 reference of the same formula, written another way: with a = 2πWᵀx, b the same for
    W₂, Φ(q)·Φ(k) = (4M)⁻¹ Σ_m [cos(a_q − a_k) + cos(a_q − b_k) + cos(b_q − a_k) + cos(b_q − b_k)]
    (cos x cos y + sin x sin y = cos(x − y)); μ(k) = (Σ|k|³)^(2/3) / (2√D); softmax as
    exp(x − max) / Σ. No Python loops: broadcasting over (B, H, Lq, Lk, M)."""
    q, k, v, w1, w2 = (t.to(torch.float64) for t in (q, k, v, w1, w2))
    m = w1.shape[-1]
    d = q.shape[-1]
    a_q = 2 * math.pi * torch.einsum("bhld,hdm->bhlm", q, w1)
    b_q = 2 * math.pi * torch.einsum("bhld,hdm->bhlm", q, w2)
    a_k = 2 * math.pi * torch.einsum("bhld,hdm->bhlm", k, w1)
    b_k = 2 * math.pi * torch.einsum("bhld,hdm->bhlm", k, w2)

    def diff(x, y):  # (B, H, Lq, 1, M) − (B, H, 1, Lk, M)
        return x.unsqueeze(3) - y.unsqueeze(2)

    s = (torch.cos(diff(a_q, a_k)) + torch.cos(diff(a_q, b_k)) + torch.cos(diff(b_q, a_k))
         + torch.cos(diff(b_q, b_k))).sum(dim=-1) / (4 * m)
    mu = k.abs().pow(3).sum(dim=-1).pow(2.0 / 3.0) / (2 * math.sqrt(d))
    logits = torch.log(s * s + RFF_EPSILON) + mu[..., None, :]
    e = torch.exp(logits - logits.max(dim=-1, keepdim=True).values)
    p = e / e.sum(dim=-1, keepdim=True)
    return torch.einsum("bhij,bhjd->bhid", p, v)


def reference_softmax(q, k, v):
    q, k, v = (t.to(torch.float64) for t in (q, k, v))
    logits = torch.einsum("bhid,bhjd->bhij", q, k) / math.sqrt(q.shape[-1])
    e = torch.exp(logits - logits.max(dim=-1, keepdim=True).values)
    return torch.einsum("bhij,bhjd->bhid", e / e.sum(dim=-1, keepdim=True), v)


def max_abs_diff(a, b):
    a = a.detach().to("cpu", torch.float64)
    b = b.detach().to("cpu", torch.float64)
    if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
        return float("nan")
    return float((a - b).abs().max())


def run_check(device, w1, w2):
    """Self-consistency at L = CHECK_L: fp32 methods on `device` against float64 references on the CPU."""
    q, k, v = inputs(CHECK_L, device)
    with torch.inference_mode():
        ika = torch_ika_paper(q, k, v, w1, w2)
        sdpa = torch_sdpa(q, k, v, w1, w2)
        ref_ika = reference_ika(q.cpu(), k.cpu(), v.cpu(), w1.cpu(), w2.cpu())
        ref_softmax = reference_softmax(q.cpu(), k.cpu(), v.cpu())
    result = {
        "L": CHECK_L,
        "tolerance": CHECK_TOLERANCE,
        "torch_ika_paper_vs_float64_reference": max_abs_diff(ika, ref_ika),
        "torch_sdpa_vs_float64_reference": max_abs_diff(sdpa, ref_softmax),
    }
    for name in ("torch_ika_paper_vs_float64_reference", "torch_sdpa_vs_float64_reference"):
        print(f"check L={CHECK_L}: max |{name.replace('_vs_', ' − ')}| = {result[name]:.3g}")
    result["passed"] = all(
        math.isfinite(result[n]) and result[n] < CHECK_TOLERANCE
        for n in ("torch_ika_paper_vs_float64_reference", "torch_sdpa_vs_float64_reference"))
    return result


# ---- timing ----------------------------------------------------------------------------------------


def timed_batch(fn, n, sync):
    """Seconds for n calls of fn (synchronised before and after on cuda)."""
    sync()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    sync()
    return time.perf_counter() - start


def time_method(fn, min_time, repeats, sync):
    """Warm-up call, calibrate n so that n calls take ≥ min_time, then `repeats` batches of n calls.
    Returns (median seconds per call, per-repetition seconds per call, n)."""
    timed_batch(fn, 1, sync)  # warm-up
    n = 1
    while True:
        t = timed_batch(fn, n, sync)
        if t >= min_time:
            break
        # grow like Google Benchmark: at most ×10, aiming 40 % past min_time
        n = max(n + 1, min(10 * n, int(math.ceil(n * 1.4 * min_time / max(t, 1e-9)))))
    per_call = [timed_batch(fn, n, sync) / n for _ in range(repeats)]
    return statistics.median(per_call), per_call, n


def conventional_flops(L):
    """ika's convention (bench/common.hpp conventional_flops): 4·B·H·Lq·Lk·D per call."""
    return 4.0 * B * H * L * L * D


# ---- machine ---------------------------------------------------------------------------------------


def cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def machine_info(device):
    info = {
        "torch_version": torch.__version__,
        "torch_num_threads": torch.get_num_threads(),
        "torch_num_interop_threads": torch.get_num_interop_threads(),
        "cpu_model": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": device,
    }
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda_version"] = torch.version.cuda
        info["matmul_allow_tf32"] = bool(torch.backends.cuda.matmul.allow_tf32)
    return info


# ---- main ------------------------------------------------------------------------------------------


def parse_args(argv):
    ap = argparse.ArgumentParser(
        description="Time PyTorch attention (SDPA and the paper's unfused IKA formulation) on bench_attention's "
        "shape (fp32, B=1, H=8, D=Dv=64), for comparison with bench/results/table.md. Needs PyTorch.")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                    help="thread counts, torch.set_num_threads before each (default: 1 2)")
    ap.add_argument("--lengths", type=int, nargs="+", default=[256, 1024, 4096],
                    help="sequence lengths Lq = Lk = L (default: 256 1024 4096)")
    ap.add_argument("--repeats", type=int, default=5, help="timed repetitions; the median is reported (default: 5)")
    ap.add_argument("--min-time", type=float, default=0.5,
                    help="minimum seconds per repetition (default: 0.5)")
    ap.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS),
                    help="methods to time (default: all)")
    ap.add_argument("--json", metavar="OUT.json", help="write the results and the machine info to this file")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="device (default: cpu)")
    ap.add_argument("--batch", type=int, default=B, help=f"B (default: {B}; bench_cuda_attention uses 4)")
    ap.add_argument("--heads", type=int, default=H, help=f"H (default: {H}; bench_cuda_attention uses 16)")
    ap.add_argument("--check", action="store_true",
                    help=f"first compare torch_ika_paper (and torch_sdpa) with a float64 reference at L={CHECK_L}")
    args = ap.parse_args(argv)
    if any(t < 1 for t in args.threads):
        ap.error("--threads: counts must be ≥ 1")
    if any(L < 1 for L in args.lengths):
        ap.error("--lengths: lengths must be ≥ 1")
    if args.batch < 1 or args.heads < 1:
        ap.error("--batch and --heads must be ≥ 1")
    if args.repeats < 1:
        ap.error("--repeats must be ≥ 1")
    if not args.min_time > 0:
        ap.error("--min-time must be > 0")
    return args


def main(argv=None):
    global B, H
    args = parse_args(argv)
    B, H = args.batch, args.heads

    global torch
    try:
        import torch as _torch
    except ImportError:
        print("torch_compare.py: PyTorch is not installed (import torch failed); this optional comparison "
              "needs it (see the docstring of bench/torch_compare.py)", file=sys.stderr)
        return 2
    torch = _torch

    if not hasattr(torch.nn.functional, "scaled_dot_product_attention"):
        print(f"torch_compare.py: PyTorch {torch.__version__} has no scaled_dot_product_attention (needs 2.0 or later)",
              file=sys.stderr)
        return 2

    device = args.device
    if device == "cuda" and not torch.cuda.is_available():
        print("torch_compare.py: --device cuda, but torch.cuda.is_available() is False", file=sys.stderr)
        return 2
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    machine = machine_info(device)
    w1, w2 = spectral_points(device)

    check = None
    if args.check:
        check = run_check(device, w1, w2)
        if not check["passed"]:
            print(f"torch_compare.py: check failed (a difference is ≥ {CHECK_TOLERANCE} or not finite)",
                  file=sys.stderr)
            return 1

    results = []
    with torch.inference_mode():
        for L in args.lengths:
            q, k, v = inputs(L, device)
            for threads in args.threads:
                torch.set_num_threads(threads)
                for name in args.methods:
                    method = METHOD_FNS[name]
                    median, per_call, n = time_method(lambda: method(q, k, v, w1, w2), args.min_time,
                                                      args.repeats, sync)
                    mean = statistics.fmean(per_call)
                    cv = statistics.pstdev(per_call) / mean if len(per_call) > 1 and mean > 0 else 0.0
                    row = {
                        "method": name,
                        "L": L,
                        "threads": threads,
                        "time_ms": median * 1e3,
                        "gflops": conventional_flops(L) / median * 1e-9,
                        "cv": cv,
                        "calls_per_repeat": n,
                        "seconds_per_call": per_call,
                    }
                    results.append(row)
                    print(f"{name} L={L} threads={threads}: {row['time_ms']:.3f} ms, {row['gflops']:.1f} GFLOP/s "
                          f"(cv {100 * cv:.1f} %, {n} calls x {args.repeats})", file=sys.stderr, flush=True)
            del q, k, v

    print(f"\ntorch {machine['torch_version']}, device {device}"
          + (f" ({machine['gpu']})" if device == "cuda" else "")
          + f", CPU {machine['cpu_model']}, {machine['date']}")
    print("GFLOP/s = 4·B·H·L²·D / time (every method, causal included); time = median per call\n")
    print("| method | L | threads | time (ms) | GFLOP/s |")
    print("|---|---|---|---|---|")
    for r in results:
        print(f"| {r['method']} | {r['L']} | {r['threads']} | {r['time_ms']:.3f} | {r['gflops']:.1f} |")

    if args.json:
        out = {
            "machine": machine,
            "shape": f"fp32 B={B} H={H} D=Dv={D} Lq=Lk=L, yaglom M={M}",
            "settings": {
                "threads": args.threads,
                "lengths": args.lengths,
                "repeats": args.repeats,
                "min_time_s": args.min_time,
                "methods": args.methods,
                "spectral_points": f"torch.Generator seed {KERNEL_SEED}, N(0, (2π σ)^-2 I), σ² = √D (not ika's points)",
                "epsilon": RFF_EPSILON,
                "magnitude": f"‖k‖_{NORM_P:g}² / (2√D)",
                "flops_per_call": "4·B·H·L²·D",
            },
            "check": check,
            "results": results,
        }
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=2, ensure_ascii=False)
            f.write("\n")
        print(f"\nwrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
