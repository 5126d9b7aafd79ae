"""Part 5: false accusations -- independent models (Ind-M) and independent keys (Ind-T).

Ind-M: clean-trained models with other seeds, queried with the owner's marker. Ind-T: every
Malicious suspect (``malicious_seeds`` of them) queried with markers of independent keys (for
X-Mark a generator trained from scratch with another key and seed, against the same surrogate
-- the harder case for us), so ``n`` is keys x suspects; ``claims`` names each pair with
``p < alpha``. No row may reach it. With the key-specificity check on (``specificity``), Ind-T
is also verified without it (``ind_t_no_check``, details only): how many claims the check refused.
``by_check`` (X-Mark, details only) holds the Malicious suspects verified with the owner's key, and
every Ind-T pair, with no check and at each of the settings' ``check_angles``: what a narrower or
wider check would claim, on the same models and queries.
"""

from __future__ import annotations

from typing import Any

from benchmarks.context import CLEAN, BenchContext, MemoMarker, brief, summarize
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
        ctx.log(f"{name} Ind-M: {len(ind_m)} clean models verified, claimed {sum(r['p'] < s.alpha for r in ind_m)}")
        others = [meth.independent(i) for i in range(s.n_ind_keys)]
        seeds = [s.suspect_seed(i) for i in range(s.malicious_seeds)]
        suspects = {seed: ctx.suspect(ctx.train(name, seed=seed)) for seed in seeds}
        keyed = hasattr(getattr(meth.marker, "inner", meth.marker), "turned")  # the baselines have no key to turn
        rows = ind_t_rows(ctx, name, suspects, others, keyed)
        ind_t = rows[s.specificity]
        out[name] = {"ind_m": summarize(ind_m, s.alpha),
                     "ind_t": {**summarize(ind_t, s.alpha), "suspect_seeds": seeds, "claims": _claims(s, seeds, ind_t)}}
        if keyed and s.specificity:
            out[name]["ind_t_no_check"] = summarize(rows[0.0], s.alpha)
        for k in out[name]:
            r = out[name][k]
            ctx.log(f"{name} {k}: n {r['n']}, min p {r['min_p']:.3g}, max dP {r['max_delta_p']:.3f}, "
                    f"share p<alpha {r['share_p_below_alpha']:.2f}")
        if keyed:
            out[name]["by_check"] = by_check(ctx, name, meth.marker, suspects, rows)
    return out


def ind_t_rows(ctx: BenchContext, name: str, suspects: dict[int, Any], others: list[MarkerLike],
               keyed: bool) -> dict[float, list[dict[str, Any]]]:
    """Every Ind-T pair verified (``brief``), by check angle: the run's ``specificity`` and, for a
    method with a key carrier (``keyed``), also no check (0) and each of ``also_checks``. Rows are
    suspect-major: ``[j * len(others) + i]`` is suspect j with key i.

    The work goes key by key: each key's queries (and its turned marks') are marked once for all
    suspects and angles, then dropped, so memory holds one key's marks at a time."""
    s = ctx.s
    angles = sorted({*s.check_angles, 0.0}) if keyed else [s.specificity]
    rows: dict[float, list[dict[str, Any]]] = {d: [{}] * (len(suspects) * len(others)) for d in angles}
    for i, other in enumerate(others):
        memo = MemoMarker(other)
        for d in angles:
            for j, sus in enumerate(suspects.values()):
                rows[d][j * len(others) + i] = brief(ctx.verify(sus, memo, name, **({"specificity": d} if keyed else {})))
        claimed = sum(rows[s.specificity][j * len(others) + i]["p"] < s.alpha for j in range(len(suspects)))
        ctx.log(f"{name} Ind-T key {i + 1} of {len(others)}: verified on {len(suspects)} suspects at "
                f"{len(angles)} check angles; {claimed} claimed with the run's settings")
    return rows


def _claims(s: BenchSettings, seeds: list[int], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Ind-T pairs with p < alpha, named by suspect seed and key (``rows`` suspect-major)."""
    pairs = [(seed, s.key(i)) for seed in seeds for i in range(s.n_ind_keys)]
    return [{"suspect_seed": seed, "key": key, "p": r["p"], "delta_p": r["delta_p"]}
            for (seed, key), r in zip(pairs, rows) if r["p"] < s.alpha]


def by_check(ctx: BenchContext, name: str, owner: MarkerLike, suspects: dict[int, Any],
             rows: dict[float, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Per check angle of ``rows`` (``"25"``; ``"0"``: none): the Malicious ``suspects`` (by
    seed) verified with the owner's key (``owner``: claimed, and p and the turned marks' tests per
    seed), and the Ind-T pairs ``rows[angle]`` verified at that angle (``ind_t``: claimed, n, the
    claims, and p and the turned marks' tests per pair); the same models and queries at each angle."""
    s, seeds = ctx.s, list(suspects)
    out: dict[str, dict[str, Any]] = {}
    for d, pairs in rows.items():
        own = [brief(ctx.verify(sus, owner, name, specificity=d)) for sus in suspects.values()]
        claims = _claims(s, seeds, pairs)
        out[f"{d:g}"] = {"owner": {"claimed": sum(r["p"] < s.alpha for r in own), "n": len(own),
                                   "p": [r["p"] for r in own], "p_turned": [r["p_turned"] for r in own],
                                   "suspect_seeds": seeds},
                         "ind_t": {"claimed": len(claims), "n": len(pairs), "claims": claims,
                                   "p": [r["p"] for r in pairs], "p_turned": [r["p_turned"] for r in pairs]}}
        ctx.log(f"{name} {f'check ±{d:g}°' if d else 'no check'}: owner claims {out[f'{d:g}']['owner']['claimed']} "
                f"of {len(own)}, Ind-T claims {len(claims)} of {len(pairs)}")
    return out
