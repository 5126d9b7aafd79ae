"""Part 4: adaptive attacks on X-Mark's Malicious suspects.

Model attacks (the attacker's own clean data, ``attacker_fraction`` of the dataset size):
fine-tuning, pruning of the last block's least active channels, and fine-pruning (prune,
then fine-tune with the pruned channels kept at zero). Input attacks: every query goes
through a transform before the suspect sees it (JPEG, resize, blur, noise, median). Each
row reports the verification and the clean accuracy (BA) after the attack: an attack that
costs more than a few points of BA is not one an adversary would deploy.

Every attack is run on each of the ``malicious_seeds`` suspects: whether an attack removes
a clean-label mark depends on the training run it attacks (lab, 11 suspects: of the 6 that
fine-pruning left within 5 BA points, 5 stayed claimed; the one cleared is the benchmark's first).
The rows are the first suspect's; ``over_seeds`` counts over all of them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmarks.context import BenchContext, Trained, brief, resize_stack
from benchmarks.protocol import XMARK, Method
from xmark_core.attacks import TransformedSuspect, fine_prune, fine_tune, input_attack

BA_BUDGET = 0.05
"""An attack costing more clean accuracy than this (5 points) is not deployable (issue target)."""


def _row(ctx: BenchContext, name: str, suspect: Any, meth: Method, tag: str) -> dict[str, Any]:
    r = {**brief(ctx.verify(suspect, meth.marker, meth.name)), "ba": ctx.accuracy(suspect)}
    ctx.log(f"attack {name}{tag}: WSR {r['wsr']:.3f} dP {r['delta_p']:.3f} p {r['p']:.3g} BA {r['ba']:.4f}")
    return r


def attack_suspect(ctx: BenchContext, mal: Trained, meth: Method, tag: str = "") -> dict[str, dict[str, Any]]:
    """Every attack of the settings on one Malicious suspect: ``{attack: {wsr, delta_p, p, ba, ...}}``
    with ``"none"`` (the suspect unattacked) first; ``tag`` labels the log lines."""
    s = ctx.s
    size = mal.input_size
    Xa = resize_stack(ctx.X_att, size)[:, None]
    ya = ctx.y_att
    out: dict[str, dict[str, Any]] = {"none": _row(ctx, "none", ctx.suspect(mal), meth, tag)}

    ft = fine_tune(mal.model, Xa, ya, epochs=s.ft_epochs, lr=s.ft_lr, seed=s.seed,
                   progress=ctx.log.progress(f"fine-tune{tag}", 50))
    out["finetune"] = _row(ctx, "finetune", ctx.suspect(ft, size), meth, tag)
    pruned, _ = fine_prune(mal.model, Xa, fraction=s.prune_fraction)
    out["prune"] = _row(ctx, "prune", ctx.suspect(pruned, size), meth, tag)
    fp, _ = fine_prune(mal.model, Xa, fraction=s.prune_fraction, y=ya, finetune_epochs=s.ft_epochs,
                       lr=s.ft_lr, seed=s.seed, progress=ctx.log.progress(f"fine-prune{tag}", 50))
    out["fineprune"] = _row(ctx, "fineprune", ctx.suspect(fp, size), meth, tag)

    for name in s.input_attacks:
        attacked = TransformedSuspect(ctx.suspect(mal), input_attack(name), name=name)
        out[name] = _row(ctx, name, attacked, meth, tag)
    return out


def over_seeds(rows: list[dict[str, Any]], ba_before: list[float], alpha: float) -> dict[str, Any]:
    """One attack over several suspects: how many stay claimed (p < ``alpha``), in all and
    among those whose BA fell by at most :data:`BA_BUDGET`.

    Parameters
    ----------
    rows : the attack's row for each suspect (``p``, ``delta_p``, ``ba``)
    ba_before : each suspect's BA unattacked, in the same order
    alpha : the claim threshold
    """
    p = np.array([r["p"] for r in rows], dtype=float)
    drop = np.array(ba_before, dtype=float) - np.array([r["ba"] for r in rows], dtype=float)
    within = drop <= BA_BUDGET + 1e-9
    claimed = p < alpha
    return {"n": len(rows), "claimed": int(claimed.sum()), "within_ba": int(within.sum()),
            "claimed_within_ba": int((claimed & within).sum()), "p": p.tolist(),
            "delta_p": [float(r["delta_p"]) for r in rows], "ba_drop": drop.tolist()}


def run(ctx: BenchContext, methods: dict[str, Method]) -> dict[str, dict[str, Any]]:
    """``{attack name: {wsr, delta_p, p, ba, over_seeds}}`` with ``"none"`` (unattacked): the
    numbers of the first Malicious suspect, and ``over_seeds`` (:func:`over_seeds`) over all
    ``malicious_seeds`` of them."""
    s = ctx.s
    meth = methods[XMARK]
    n = max(1, s.malicious_seeds)
    per = []
    for i in range(n):
        tag = f" [suspect {i + 1}/{n}]" if n > 1 else ""
        per.append(attack_suspect(ctx, ctx.train(XMARK, seed=s.suspect_seed(i)), meth, tag))
    ba_before = [p["none"]["ba"] for p in per]
    out = per[0]
    for name in out:
        out[name]["over_seeds"] = over_seeds([p[name] for p in per], ba_before, s.alpha)
    return out
