"""What does each key-check angle cost in queries? (lab; repo root)

Replays the sequential claim (the library's betting rule, ``stats.sequential_path``, cap
``DEFAULT_MAX_BET``) on orientation_tuning.py's per-query answers: for the owner (offset 0)
and a check angle d, the three streams of a checked claim -- owner's mark vs original (margin
tau), owner's mark vs the mark turned -d and +d (margin 0) -- over ORDERS random orders of the
100 queries; the claim stops when the largest running p falls below alpha. Prints, per suspect
and angle, the median stop (runs that never reach alpha count as beyond 100) and how many
orders reached it. peak_test.py gives the same angles' rival zones.

    DS=0,15,20,25,30,35 python docs/lab/learnability/check_angle_queries.py /tmp/exp/tuning_256.npz
"""
import os
import sys
from collections import defaultdict

import numpy as np

from xmark_core.verify import stats

TAU, ALPHA = 0.2, 0.01
orders = int(os.environ.get("ORDERS", 200))
ds = [float(x) for x in os.environ.get("DS", "0,15,20,25,30,35").split(",")]
query = os.environ.get("QUERIES", "boundary")
answers = defaultdict(dict)  # suspect -> offset -> (m, 2) of (P_b, P_w)
for f in sys.argv[1:] or ["/tmp/exp/tuning_256.npz"]:
    data = np.load(f)
    for k in data.files:
        name, q, off = k.split("|")
        if q == query and not name.startswith(("clean", "shipped_clean")):
            answers[name][float(off)] = data[k]


def stop_times(a: dict, d: float, rng: np.random.Generator) -> np.ndarray:
    """Queries to the claim over ``orders`` random orders (m + 1 where never claimed)."""
    p_b, p_w = a[0.0][:, 0], a[0.0][:, 1]
    m = len(p_w)
    perm = np.stack([rng.permutation(m) for _ in range(orders)])
    paths = [stats.sequential_path((p_w - p_b)[perm], TAU, ALPHA)["p_value"]]
    if d:
        paths += [stats.sequential_path((p_w - a[s * d][:, 1])[perm], 0.0, ALPHA)["p_value"] for s in (-1, 1)]
    claimed = np.max(paths, axis=0) < ALPHA  # (orders, m)
    return np.where(claimed.any(1), claimed.argmax(1) + 1, m + 1)


print(f"{query} queries; median queries to the claim (orders that reached alpha of {orders})")
print("suspect        " + " ".join(f"{f'±{d:g}' if d else 'off':>12s}" for d in ds))
pooled = defaultdict(list)
for name, a in sorted(answers.items()):
    cells = []
    for d in ds:
        if d and (-d not in a or d not in a):
            cells.append(f"{'–':>12s}")
            continue
        t = stop_times(a, d, np.random.default_rng(0))
        pooled[d].append(np.median(t))
        cells.append(f"{np.median(t):>6.0f} ({int((t <= len(a[0.0])).sum()):>3d})")
    print(f"{name:14s} " + " ".join(cells))
print("median of suspects " + " ".join(f"{np.median(pooled[d]):>9.1f}" for d in ds if pooled[d]))
