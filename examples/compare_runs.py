#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Compare fashion_mnist runs: markdown tables and one SVG of test accuracy per epoch.

    examples/compare_runs.py OUT_DIR RUN_DIR [RUN_DIR ...]          accuracy table + chart
    examples/compare_runs.py --speed OUT_DIR RUN_DIR [RUN_DIR ...]  training throughput table

Each RUN_DIR is a fashion_mnist --out folder (log.csv, summary.json). Writes OUT_DIR/comparison.md
and OUT_DIR/comparison.svg, or OUT_DIR/speed.md. Standard library only.
"""
import csv
import json
import os
import sys

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf"]


def load(run_dir):
    with open(os.path.join(run_dir, "summary.json")) as f:
        summary = json.load(f)
    with open(os.path.join(run_dir, "log.csv")) as f:
        log = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
    return summary, log


def table(runs):
    lines = ["| attention | parameters | test accuracy | best epoch (test) | final train loss |",
             "|---|---|---|---|---|"]
    for summary, log in runs:
        best = max(log, key=lambda r: r["test_accuracy"])
        lines.append(f"| {summary['attention']} | {summary['parameters']:,} | "
                     f"**{100 * summary['final_test_accuracy']:.2f} %** | {100 * best['test_accuracy']:.2f} % "
                     f"(epoch {int(best['epoch'])}) | {summary['final_train_loss']:.4f} |")
    return "\n".join(lines) + "\n"


def speed_table(runs):
    lines = ["| attention | training images/s | seconds per 60 000 images |", "|---|---|---|"]
    for summary, log in runs:
        images = sum(r["images_per_second"] * r["seconds"] for r in log)
        rate = images / sum(r["seconds"] for r in log)
        lines.append(f"| {summary['attention']} | {rate:.0f} | {60000 / rate:.0f} |")
    return "\n".join(lines) + "\n"


def chart(runs, path):
    width, height, left, right, top, bottom = 640, 400, 60, 170, 40, 50
    pw, ph = width - left - right, height - top - bottom
    epochs = max(len(log) for _, log in runs)
    values = [100 * r["test_accuracy"] for _, log in runs for r in log]
    lo, hi = int(min(values)) - 1, int(max(values)) + 1

    def X(e):
        return left + (e - 1) / max(epochs - 1, 1) * pw

    def Y(v):
        return top + (hi - v) / (hi - lo) * ph

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
           f'font-size="12">', f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{left}" y="22" font-size="14">Fashion-MNIST: test accuracy per epoch</text>']
    step = 1 if hi - lo <= 12 else 2
    for v in range(lo, hi + 1, step):
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{Y(v):.1f}" y2="{Y(v):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 6}" y="{Y(v) + 4:.1f}" text-anchor="end">{v}</text>')
    for e in range(1, epochs + 1):
        out.append(f'<text x="{X(e):.1f}" y="{top + ph + 18}" text-anchor="middle">{e}</text>')
    out.append(f'<text x="{left + pw / 2}" y="{height - 8}" text-anchor="middle">epoch</text>')
    out.append(f'<text x="16" y="{top + ph / 2}" transform="rotate(-90 16 {top + ph / 2})" '
               f'text-anchor="middle">test accuracy (%)</text>')
    for i, (summary, log) in enumerate(runs):
        colour = COLOURS[i % len(COLOURS)]
        points = " ".join(f"{X(r['epoch']):.1f},{Y(100 * r['test_accuracy']):.1f}" for r in log)
        out.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>')
        y = top + 10 + 20 * i
        out.append(f'<line x1="{left + pw + 15}" x2="{left + pw + 35}" y1="{y}" y2="{y}" stroke="{colour}" '
                   f'stroke-width="2"/>')
        out.append(f'<text x="{left + pw + 40}" y="{y + 4}">{summary["attention"]} '
                   f'({100 * summary["final_test_accuracy"]:.2f} %)</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def main():
    args = sys.argv[1:]
    speed = bool(args) and args[0] == "--speed"
    if speed:
        args = args[1:]
    if len(args) < 2:
        sys.exit(__doc__)
    out_dir, run_dirs = args[0], args[1:]
    runs = [load(d) for d in run_dirs]
    os.makedirs(out_dir, exist_ok=True)
    text = speed_table(runs) if speed else table(runs)
    with open(os.path.join(out_dir, "speed.md" if speed else "comparison.md"), "w") as f:
        f.write(text)
    if not speed:
        chart(runs, os.path.join(out_dir, "comparison.svg"))
    print(text, end="")


if __name__ == "__main__":
    main()
