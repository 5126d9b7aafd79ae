"""Part 5: false accusations -- independent models (Ind-M) and independent keys (Ind-T).

Ind-M: clean-trained models with other seeds, queried with the owner's marker. Ind-T: every
Malicious suspect (``malicious_seeds`` of them) queried with markers of independent keys (for
X-Mark a generator trained from scratch with another key and seed, against the same surrogate
-- the harder case for us), so ``n`` is keys x suspects; ``claims`` names each pair with
``p < alpha``. No row may reach it. With the key-specificity check on (``specificity``), Ind-T
is also verified without it (``ind_t_no_check``, details only): how many claims the check refused.
``by_check`` (X-Mark, details only) verifies the Malicious suspects with the owner's key, and every
Ind-T pair, at each of the settings' ``check_angles``: what a narrower or wider check would claim,
on the same models and queries.
"""

from __future__ import annotations

from typing import Any

from benchmarks.context import CLEAN, BenchContext, brief, summarize
from benchmarks.protocol import Method
from benchmarks.settings import BenchSettings
from xmark_core.verify.protocol import MarkerLike


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
        suspects = {seed: ctx.suspect(ctx.train(name, seed=seed)) for seed in seeds}
        ind_t, unchecked = [], []
        for malicious in suspects.values():  # suspect-major: rows [j * n_ind_keys + i] are suspect j, key i
            for other in others:
                ind_t.append(brief(ctx.verify(malicious, other, name)))
                if s.specificity and hasattr(other, "turned"):  # the baselines have no key to turn
                    unchecked.append(brief(ctx.verify(malicious, other, name, specificity=0.0)))
        out[name] = {"ind_m": summarize(ind_m, s.alpha),
                     "ind_t": {**summarize(ind_t, s.alpha), "suspect_seeds": seeds, "claims": _claims(s, seeds, ind_t)}}
        if unchecked:
            out[name]["ind_t_no_check"] = summarize(unchecked, s.alpha)
        for k in out[name]:
            r = out[name][k]
            ctx.log(f"{name} {k}: n {r['n']}, min p {r['min_p']:.3g}, max dP {r['max_delta_p']:.3f}, "
                    f"share p<alpha {r['share_p_below_alpha']:.2f}")
        if hasattr(getattr(meth.marker, "inner", meth.marker), "turned"):
            out[name]["by_check"] = _by_check(ctx, name, meth.marker, suspects, others)
    return out


def _claims(s: BenchSettings, seeds: list[int], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Ind-T pairs with p < alpha, named by suspect seed and key (``rows`` suspect-major)."""
    pairs = [(seed, s.key(i)) for seed in seeds for i in range(s.n_ind_keys)]
    return [{"suspect_seed": seed, "key": key, "p": r["p"], "delta_p": r["delta_p"]}
            for (seed, key), r in zip(pairs, rows) if r["p"] < s.alpha]


def _by_check(ctx: BenchContext, name: str, owner: MarkerLike, suspects: dict[int, Any],
              others: list[MarkerLike]) -> dict[str, dict[str, Any]]:
    """Per check angle (``"25"``; ``"0"``: none): the Malicious suspects verified with the owner's
    key (``owner``: claimed, and p and the turned marks' tests per seed) and every Ind-T pair
    (``ind_t``: claimed, n and the claims); the same models and queries at each angle."""
    s, seeds = ctx.s, list(suspects)
    out: dict[str, dict[str, Any]] = {}
    for d in s.check_angles:
        own = [brief(ctx.verify(sus, owner, name, specificity=d)) for sus in suspects.values()]
        rows = [brief(ctx.verify(sus, other, name, specificity=d)) for sus in suspects.values() for other in others]
        claims = _claims(s, seeds, rows)
        out[f"{d:g}"] = {"owner": {"claimed": sum(r["p"] < s.alpha for r in own), "n": len(own),
                                   "p": [r["p"] for r in own], "p_turned": [r["p_turned"] for r in own],
                                   "suspect_seeds": seeds},
                         "ind_t": {"claimed": len(claims), "n": len(rows), "claims": claims}}
        ctx.log(f"{name} {f'check ±{d:g}°' if d else 'no check'}: owner claims {out[f'{d:g}']['owner']['claimed']} of {len(own)}, "
                f"Ind-T claims {len(claims)} of {len(rows)}")
    return out
