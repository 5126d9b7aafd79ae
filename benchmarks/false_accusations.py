"""Part 5: false accusations -- independent models (Ind-M) and independent keys (Ind-T).

Ind-M: clean-trained models with other seeds, queried with the owner's marker. Ind-T: every
Malicious suspect (``malicious_seeds`` of them) queried with markers of independent keys (for
X-Mark a generator trained from scratch with another key and seed, against the same surrogate
-- the harder case for us), so ``n`` is keys x suspects; ``claims`` names each pair with
``p < alpha``. No row may reach it. With the key-specificity check on (``specificity``), Ind-T
is also verified without it (``ind_t_no_check``, details only): how many claims the check refused.
"""

from __future__ import annotations

from typing import Any

from benchmarks.context import CLEAN, BenchContext, brief, summarize
from benchmarks.protocol import Method


def run(ctx: BenchContext, methods: dict[str, Method]) -> dict[str, dict[str, Any]]:
    """Per method: ``{"ind_m": summary, "ind_t": summary}`` (see :func:`~benchmarks.context.summarize`)."""
    s = ctx.s
    ctx.train_many([(CLEAN, None, None, s.suspect_seed(i)) for i in range(s.n_ind_models)]
                   + [(name, None, None, s.suspect_seed(i)) for name in methods for i in range(s.malicious_seeds)])
    clean = [ctx.train(CLEAN, seed=s.suspect_seed(i)) for i in range(s.n_ind_models)]
    out: dict[str, dict[str, Any]] = {}
    for meth in methods.values():
        meth.prefetch(range(s.n_ind_keys))
    for name, meth in methods.items():
        ind_m = [brief(ctx.verify(ctx.suspect(c), meth.marker, name)) for c in clean]
        others = [meth.independent(i) for i in range(s.n_ind_keys)]
        seeds = [s.suspect_seed(i) for i in range(s.malicious_seeds)]
        ind_t, unchecked, claims = [], [], []
        for seed in seeds:  # suspect-major: rows [j * n_ind_keys + i] are suspect j, key i
            malicious = ctx.suspect(ctx.train(name, seed=seed))
            for i, other in enumerate(others):
                r = brief(ctx.verify(malicious, other, name))
                ind_t.append(r)
                if r["p"] < s.alpha:
                    claims.append({"suspect_seed": seed, "key": s.key(i), "p": r["p"], "delta_p": r["delta_p"]})
                if s.specificity and hasattr(other, "turned"):  # the baselines have no key to turn
                    unchecked.append(brief(ctx.verify(malicious, other, name, specificity=0.0)))
        out[name] = {"ind_m": summarize(ind_m, s.alpha),
                     "ind_t": {**summarize(ind_t, s.alpha), "suspect_seeds": seeds, "claims": claims}}
        if unchecked:
            out[name]["ind_t_no_check"] = summarize(unchecked, s.alpha)
        for k in out[name]:
            r = out[name][k]
            ctx.log(f"{name} {k}: n {r['n']}, min p {r['min_p']:.3g}, max dP {r['max_delta_p']:.3f}, "
                    f"share p<alpha {r['share_p_below_alpha']:.2f}")
    return out
