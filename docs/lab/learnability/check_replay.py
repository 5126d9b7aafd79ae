"""The key-specificity check replayed on an orientation sweep's per-query answers (lab).

Shared by peak_test.py, split_key.py, split_proxy.py and calibrated_check.py: ``a`` maps a carrier offset (degrees) to the (m, 2)
array of per-query (P_b, P_w) the suspect gave at that offset, the same queries at every offset.
"""
import itertools

import numpy as np

from xmark_core.verify import stats


def claim(a, r, d):
    """p-values (main test with margin 0.2, own mark against the mark turned -d, against +d) of
    a claimant whose carrier sits at offset r, with the check at +/-d; None where a turned mark
    is off the sweep. Claimed when the largest is below alpha."""
    if r - d not in a or r + d not in a:
        return None
    p_b, p_w = a[r][:, 0], a[r][:, 1]
    main = stats.paired_ttest(p_w, p_b, 0.2).p_value
    side = [stats.paired_ttest(p_w, a[r + s * d][:, 1], 0.0).p_value for s in (-1, 1)]
    return main, *side


def on_circle(zone, r, grid=5):
    """Whether orientation r (degrees from the key's carrier, any real) lies in ``zone``, a set
    of claimed offsets within +/-90 on a ``grid`` of degrees (-90 and +90 are one orientation)."""
    q = int(round(((r + 90) % 180 - 90) / grid) * grid)
    return q in zone or (abs(q) == 90 and -q in zone)


def claimed_zone(a, d, alpha=0.01, grid=5):
    """The offsets within +/-90 (every ``grid`` degrees) at which a claimant is claimed: the
    main test and the +/-``d`` check all below ``alpha`` (not where a turned mark is off the sweep)."""
    return {r for r in range(-90, 91, grid) if (ps := claim(a, r, d)) is not None and max(ps) < alpha}


def rival_share(zone, n, seps, phis):
    """Share of random rival keys of ``n`` orientations whose every orientation lies in ``zone``:
    the first at each of ``phis``, consecutive ones ``seps`` apart (every combination)."""
    gaps = list(itertools.product(seps, repeat=n - 1))
    return np.mean([all(on_circle(zone, p + g) for g in np.cumsum((0.0, *gap))) for p in phis for gap in gaps])
