"""Part 6: query efficiency of the anytime-valid sequential test on the Malicious suspect.

The test is run with several query seeds; the queries needed is the first ``n`` at which
the running p-value reaches ``alpha`` (the test may stop there). Runs that do not reach it
within ``m`` queries are counted as not reached; the median is then reported only if at
least half of the runs reached it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmarks.context import BenchContext
from benchmarks.protocol import XMARK, Method


def queries_needed(running_p: list[float], alpha: float) -> int | None:
    """1-based index of the first running p-value <= ``alpha`` (None if never)."""
    hit = np.flatnonzero(np.asarray(running_p) <= alpha)
    return int(hit[0]) + 1 if hit.size else None


def run(ctx: BenchContext, methods: dict[str, Method]) -> dict[str, Any]:
    """``{"median_queries", "per_repeat", "reached", "m", "alpha"}`` for X-Mark's Malicious suspect."""
    s = ctx.s
    meth = methods[XMARK]
    suspect = ctx.suspect(ctx.train(XMARK))
    needed = []
    for r in range(s.seq_repeats):
        res = ctx.verify(suspect, meth.marker, test="sequential", seed=s.verify_seed + 1 + r, batch_size=s.seq_batch)
        needed.append(queries_needed(res.running_p, s.alpha))
    censored = np.array([n if n is not None else np.inf for n in needed], dtype=float)
    med = float(np.median(censored)) if len(censored) else float("inf")
    out = {"median_queries": med if np.isfinite(med) else None, "per_repeat": needed,
           "reached": int(sum(n is not None for n in needed)), "repeats": s.seq_repeats, "m": s.m, "alpha": s.alpha}
    ctx.log(f"sequential test: median queries {out['median_queries']} ({out['reached']}/{s.seq_repeats} reached alpha)")
    return out
