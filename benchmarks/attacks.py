"""Part 4: adaptive attacks on X-Mark's Malicious suspect.

Model attacks (the attacker's own clean data, ``attacker_fraction`` of the dataset size):
fine-tuning, pruning of the last block's least active channels, and fine-pruning (prune,
then fine-tune with the pruned channels kept at zero). Input attacks: every query goes
through a transform before the suspect sees it (JPEG, resize, blur, noise, median). Each
row reports the verification and the clean accuracy (BA) after the attack: an attack that
costs more than a few points of BA is not one an adversary would deploy.
"""

from __future__ import annotations

from typing import Any

from benchmarks.context import BenchContext, Trained, brief, resize_stack
from benchmarks.protocol import XMARK, Method
from xmark_core.attacks import TransformedSuspect, fine_prune, fine_tune, input_attack


def _row(ctx: BenchContext, name: str, suspect: Any, meth: Method) -> dict[str, Any]:
    r = {**brief(ctx.verify(suspect, meth.marker)), "ba": ctx.accuracy(suspect)}
    ctx.log(f"attack {name}: WSR {r['wsr']:.3f} dP {r['delta_p']:.3f} p {r['p']:.3g} BA {r['ba']:.4f}")
    return r


def run(ctx: BenchContext, methods: dict[str, Method]) -> dict[str, dict[str, Any]]:
    """``{attack name: {wsr, delta_p, p, ba, ...}}``, plus ``"none"`` (the unattacked suspect)."""
    s = ctx.s
    meth = methods[XMARK]
    mal: Trained = ctx.train(XMARK)
    size = mal.input_size
    Xa = resize_stack(ctx.X_att, size)[:, None]
    ya = ctx.y_att
    out: dict[str, dict[str, Any]] = {"none": _row(ctx, "none", ctx.suspect(mal), meth)}

    ft = fine_tune(mal.model, Xa, ya, epochs=s.ft_epochs, lr=s.ft_lr, seed=s.seed,
                   progress=ctx.log.progress("fine-tune", 50))
    out["finetune"] = _row(ctx, "finetune", ctx.suspect(ft, size), meth)
    pruned, _ = fine_prune(mal.model, Xa, fraction=s.prune_fraction)
    out["prune"] = _row(ctx, "prune", ctx.suspect(pruned, size), meth)
    fp, _ = fine_prune(mal.model, Xa, fraction=s.prune_fraction, y=ya, finetune_epochs=s.ft_epochs,
                       lr=s.ft_lr, seed=s.seed, progress=ctx.log.progress("fine-prune", 50))
    out["fineprune"] = _row(ctx, "fineprune", ctx.suspect(fp, size), meth)

    for name in s.input_attacks:
        attacked = TransformedSuspect(ctx.suspect(mal), input_attack(name), name=name)
        out[name] = _row(ctx, name, attacked, meth)
    return out
