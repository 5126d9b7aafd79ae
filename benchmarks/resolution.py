"""Part 3: resolution transfer, the paper's central claim.

Suspects are trained on a method's release downsampled to a fraction of the source
resolution (their input size is that fraction; queries at the source resolution are
resized to it by the suspect's own preprocessing), and, for X-Mark, on the release at the
standard size with another architecture than the surrogate's. Each case is verified with the
settings' ``queries`` and also with each of ``also_queries`` (``by_queries``): the owner's
proxy shares the surrogate's architecture, and the query choice it makes can undersell a
suspect of another architecture.
"""

from __future__ import annotations

from typing import Any

from benchmarks.context import BenchContext, Trained, brief, summarize
from benchmarks.protocol import XMARK, Method

MIN_SIZE = 32  # the classifiers need at least 32 px


def run(ctx: BenchContext, methods: dict[str, Method]) -> dict[str, dict[str, Any]]:
    """Per method: ``{str(factor): {wsr, delta_p, p, input_size, ba, ..., by_queries}}``; X-Mark
    also has ``other_arch``. Factors whose side falls below 32 px are recorded as skipped.
    ``by_queries`` (only with ``also_queries``): ``{choice: brief(...)}`` for each other query
    choice; the row's own numbers are with the settings' ``queries``. With ``resolution_seeds``
    above 1, each X-Mark factor's row is its first seed's and also holds ``over_seeds``:
    :func:`~benchmarks.context.summarize` of every seed's suspect, with ``seeds`` and ``ba``.

    Each suspect is verified and logged as soon as it is trained (also with ``jobs`` > 1), so
    the log of a run stopped early holds every case it finished.
    """
    s = ctx.s
    cases: dict[tuple, dict[str, Any]] = {}

    seeds = [s.suspect_seed(i) for i in range(s.resolution_seeds)]

    def case(tr: Trained) -> dict[str, Any]:
        key = (tr.train_set, tr.arch, tr.input_size, tr.seed)
        if key not in cases:
            suspect, marker = ctx.suspect(tr), methods[tr.train_set].marker
            r = brief(ctx.verify(suspect, marker, tr.train_set))
            more = {q: brief(ctx.verify(suspect, marker, tr.train_set, queries=q)) for q in s.query_choices[1:]}
            ctx.log(f"resolution {tr.train_set} {tr.arch}@{tr.input_size}px seed {tr.seed}: "
                    f"WSR {r['wsr']:.3f} dP {r['delta_p']:.3f} p {r['p']:.3g}"
                    + "".join(f"; {q} queries dP {m['delta_p']:.3f} p {m['p']:.3g}" for q, m in more.items()))
            cases[key] = {**r, "input_size": tr.input_size, "arch": tr.arch, "ba": tr.accuracy,
                          **({"by_queries": more} if more else {})}
        return cases[key]

    def seeds_of(name: str) -> list[int]:
        return seeds if name == XMARK else seeds[:1]

    ctx.train_many([(name, s.size_at(f), None, seed) for name in methods
                    for f in (s.resolution_factors if name == XMARK else s.baseline_factors)
                    if s.size_at(f) >= MIN_SIZE for seed in seeds_of(name)]
                   + [(XMARK, None, s.other_arch, None)] * (XMARK in methods),
                   on_trained=case)
    out: dict[str, dict[str, Any]] = {}
    for name in methods:
        factors = s.resolution_factors if name == XMARK else s.baseline_factors
        rows: dict[str, Any] = {}
        for f in factors:
            size = s.size_at(f)
            if size < MIN_SIZE:
                rows[str(f)] = {"skipped": f"{size} px is below the {MIN_SIZE} px minimum"}
                continue
            every = [case(ctx.train(name, size=size, seed=seed)) for seed in seeds_of(name)]
            rows[str(f)] = dict(every[0])
            if len(every) > 1:
                rows[str(f)]["over_seeds"] = {**summarize(every, s.alpha), "seeds": seeds_of(name),
                                              "ba": [r["ba"] for r in every]}
                ctx.log(f"resolution {name} x{f}: claimed {sum(r['p'] < s.alpha for r in every)} of {len(every)} "
                        "seeds; dP " + ", ".join(f"{r['delta_p']:.3f}" for r in every))
        if name == XMARK:
            rows["other_arch"] = case(ctx.train(name, arch=s.other_arch))
        out[name] = rows
    return out
