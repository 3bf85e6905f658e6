# Fits T_plain(L) = f·(L/1024) + a·(L/1024)² per round (exact through L = 512 and 1024 and
# least squares over all three), then the ideal causal time f·x + a·x²/2 against the measured one.
import re, sys
runs = {}
for l in open(sys.argv[1]):
    m = re.match(r'r(\d) L=(\d+) (\w+) ([\d.]+)', l)
    runs.setdefault(int(m[1]), {})[(int(m[2]), m[3])] = float(m[4])
for r, d in sorted(runs.items()):
    Ls = [512, 1024, 2048]
    xs = [L / 1024 for L in Ls]
    y = [d[(L, 'plain')] for L in Ls]
    # normal equations for [x, x²]
    s11 = sum(x * x for x in xs); s12 = sum(x ** 3 for x in xs); s22 = sum(x ** 4 for x in xs)
    b1 = sum(x * t for x, t in zip(xs, y)); b2 = sum(x * x * t for x, t in zip(xs, y))
    det = s11 * s22 - s12 * s12
    f = (b1 * s22 - b2 * s12) / det; a = (s11 * b2 - s12 * b1) / det
    print(f"round {r}: linear part f = {f:.2f} ms, quadratic part a = {a:.2f} ms at L = 1024; "
          f"fit residuals " + ", ".join(f"{t - (f * x + a * x * x):+.2f}" for x, t in zip(xs, y)))
    for L, x, plain in zip(Ls, xs, y):
        ideal = f * x + a * x * x / 2; meas = d[(L, 'causal')]
        print(f"  L = {L}: linear {f * x / plain * 100:.0f} % of non-causal; ideal causal {ideal:.2f} ms = {ideal / plain:.3f}x, "
              f"measured {meas:.2f} ms = {meas / plain:.3f}x")
