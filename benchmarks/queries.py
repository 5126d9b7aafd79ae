"""Part 6: query efficiency of the anytime-valid sequential test on the Malicious suspects.

The test is run with several query seeds; the queries needed is the first ``n`` at which
the running p-value reaches ``alpha`` (the test may stop there). Runs that do not reach it
within ``m`` queries are counted as not reached; the median is then reported only if at
least half of the runs reached it. ``median_queries`` is the first Malicious suspect's (the
one every part reports); ``over_seeds`` pools the runs of all ``malicious_seeds`` suspects,
because one training run is an anecdote (the demo preset's first suspect needed 45; the lab's
11 suspects of the same release, pooled, 28).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmarks.context import BenchContext
from benchmarks.protocol import XMARK, Method
from xmark_core.verify.protocol import SIDES


def queries_needed(running_p: list[float], alpha: float) -> int | None:
    """1-based index of the first running p-value <= ``alpha`` (None if never)."""
    hit = np.flatnonzero(np.asarray(running_p) <= alpha)
    return int(hit[0]) + 1 if hit.size else None


def n_reached(needed: list[int | None]) -> int:
    """How many runs reached alpha."""
    return sum(n is not None for n in needed)


def median_needed(needed: list[int | None]) -> float | None:
    """Median of queries needed, runs that never reached alpha counted as infinite (None when
    fewer than half reached it, or there are no runs)."""
    censored = np.array([n if n is not None else np.inf for n in needed], dtype=float)
    med = float(np.median(censored)) if len(censored) else float("inf")
    return med if np.isfinite(med) else None


def stream_queries(res: Any) -> dict[str, int | None]:
    """Queries each anytime-valid stream of a sequential verification needed to reach alpha:
    ``main`` (owner vs benign, margin tau) and, with the key check, ``minus`` / ``plus`` (owner
    vs each turned mark, margin 0). The claim comes with the slowest."""
    spec = res.details.get("specificity") or {}
    return {"main": res.details.get("stop_time"),
            **{side: spec[side].get("stop_time") for side in SIDES if side in spec}}


def run(ctx: BenchContext, methods: dict[str, Method]) -> dict[str, Any]:
    """``{"median_queries", "per_repeat", "streams", "reached", "repeats", "m", "alpha",
    "over_seeds"}``: the first Malicious suspect's runs (``streams``: each stream's median, see
    :func:`stream_queries`), and ``over_seeds`` = ``{"median_queries", "reached",
    "runs", "per_suspect"}`` over every Malicious suspect."""
    s = ctx.s
    meth = methods[XMARK]
    per_suspect, streams = [], []
    for i in range(max(1, s.malicious_seeds)):
        suspect = ctx.suspect(ctx.train(XMARK, seed=s.suspect_seed(i)))
        needed = []
        for r in range(s.seq_repeats):
            res = ctx.verify(suspect, meth.marker, XMARK, test="sequential", seed=s.verify_seed + 1 + r,
                             batch_size=s.seq_batch)
            needed.append(queries_needed(res.running_p, s.alpha))
            if i == 0:
                streams.append(stream_queries(res))
        per_suspect.append(needed)
        ctx.log(f"sequential test, suspect {i + 1}: median queries {median_needed(needed)} "
                f"({n_reached(needed)}/{s.seq_repeats} reached alpha)")
    first = per_suspect[0]
    pooled = [n for needed in per_suspect for n in needed]
    by_stream = {k: median_needed([st[k] for st in streams]) for k in streams[0]} if streams else {}
    return {"median_queries": median_needed(first), "per_repeat": first, "streams": by_stream,
            "reached": n_reached(first), "repeats": s.seq_repeats, "m": s.m, "alpha": s.alpha,
            "over_seeds": {"median_queries": median_needed(pooled), "reached": n_reached(pooled),
                           "runs": len(pooled), "per_suspect": per_suspect}}
