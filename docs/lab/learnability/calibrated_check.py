"""The key check centred where the owner's proxy answers most: can the check angle shrink? (lab; repo root)

A suspect's answer to the owner's mark peaks a few degrees off the key (-5 to -10 degrees), so
the +/-25 degree check must tolerate that offset, and the claimed zone of orientations (the
share of random rival keys that would be claimed, Ind-T) stays ~20-25 degrees wide. Here the
owner first finds the offset on its own proxy (a model trained on its own release: here each
other suspect of the same release, leave one out) and verifies with its mark turned by it, with
a narrower check angle d. The zone's *size* does not depend on where it is centred, so the
question is only whether the owners are still claimed at the smaller d.

Reads orientation sweeps saved by split_key.py (per suspect and offset, every 5 degrees over
+/-115, the per-query (P_b, P_w) on the same boundary queries), replays the defaults' claim
(main test tau 0.2 and the +/-d check, alpha 0.01) at every offset, and prints per d: each
suspect's claimed zone, whether the owner is claimed at its key, and at each proxy's peak.

    PYTHONPATH=. python docs/lab/learnability/calibrated_check.py /tmp/exp/split_0_4000x256e20.npz /tmp/exp/split_0.npz
"""
import sys
from collections import defaultdict

import numpy as np
from check_replay import claimed_zone

ALPHA, DS = 0.01, (10, 15, 20, 25)


def sweeps(path: str) -> dict[str, dict[int, np.ndarray]]:
    """suspect -> offset -> (m, 2) per-query (P_b, P_w)."""
    z, out = np.load(path), defaultdict(dict)
    for k in z.files:
        name, _, off = k.split("|")
        out[name][int(off)] = z[k]
    return out


def main() -> None:
    for path in sys.argv[1:]:
        a = sweeps(path)
        dp = {n: {o: float(np.mean(v[:, 1] - v[:, 0])) for o, v in s.items()} for n, s in a.items()}
        peak = {n: max((o for o in d if abs(o) <= 45), key=d.get) for n, d in dp.items()}
        print(path + ": peaks " + ", ".join(f"{n} {peak[n]:+d} (dP {dp[n][peak[n]]:.3f}, at 0 {dp[n][0]:.3f})"
                                            for n in sorted(a)))
        for d in DS:
            zones = {n: sorted(claimed_zone(s, d, ALPHA)) for n, s in sorted(a.items())}
            at_key = sum(0 in z for z in zones.values())
            at_peak = [peak[p] in z for n, z in zones.items() for p in a if p != n]
            mean_zone = 5 * np.mean([len(z) for z in zones.values()])
            print(f"  check +/-{d}: zone {mean_zone:.0f} deg on average ({mean_zone / 180:.0%} of random keys); "
                  f"owner claimed at the key {at_key} of {len(zones)}, at the proxy's peak {sum(at_peak)} of "
                  f"{len(at_peak)}; zones " + "; ".join(f"{n.split('_')[-1]} {z}" for n, z in zones.items()))


if __name__ == "__main__":
    main()
