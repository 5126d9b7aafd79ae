"""What does each key-check angle cost in queries? (lab; repo root)

Replays the sequential claim on orientation_tuning.py's per-query answers with the library's
own streams (``protocol.stream_running_p``: owner's mark vs original, margin tau, and vs the
mark turned -d and +d, margin 0; the claim's running p is their largest; without the check the
main stream alone, ``stats.sequential_path``), at the library's bet cap, over ORDERS random
orders of the 100 queries; the claim stops when that running p falls below alpha. Prints, per
suspect and angle, the median stop (runs that never reach alpha count as m + 1) and how many
orders reached it. peak_test.py gives the same angles' rival zones.

    DS=0,15,20,25,30,35 python docs/lab/learnability/check_angle_queries.py /tmp/exp/tuning_256.npz
"""
import os
import sys
from collections import defaultdict

import numpy as np

from xmark_core.verify import stats
from xmark_core.verify.protocol import VerifyConfig, stream_running_p

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
    cfg = VerifyConfig(tau=TAU, alpha=ALPHA, specificity=d)
    m = len(a[0.0])
    out = []
    for _ in range(orders):
        order = rng.permutation(m)
        log = [{"p_b": a[0.0][i, 0], "p_w": a[0.0][i, 1]}
               | ({"p_minus": a[-d][i, 1], "p_plus": a[d][i, 1]} if d else {}) for i in order]
        streams = stream_running_p(log, cfg)
        running = (np.max(np.stack(list(streams.values())), axis=0) if streams else
                   stats.sequential_path(a[0.0][order, 1] - a[0.0][order, 0], TAU, ALPHA)["p_value"])
        hit = np.flatnonzero(running < ALPHA)
        out.append(hit[0] + 1 if len(hit) else m + 1)
    return np.array(out)


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
