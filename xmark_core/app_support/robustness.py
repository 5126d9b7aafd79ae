"""Apply an attack from :mod:`xmark_core.attacks` to a suspect, for the Robustness page."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from xmark_core import attacks

MODEL_ATTACKS = ("fine-tune", "fine-prune")
NO_ATTACK = "none"
# Phantom seed of the adversary's clean data: disjoint from the demo's training and query seeds.
ATTACKER_SEED = 4242


def attack_names() -> list[str]:
    return [NO_ATTACK, *attacks.INPUT_ATTACKS, *MODEL_ATTACKS]


def clean_data(n: int, size: int, seed: int = ATTACKER_SEED) -> tuple[np.ndarray, np.ndarray]:
    """``n`` clean phantom images (N, 1, size, size) and labels: the adversary's own data."""
    from xmark_core.data.base import to_arrays
    from xmark_core.data.phantom import PhantomDataset

    return to_arrays(PhantomDataset(int(n), size=int(size), seed=int(seed)), int(size))


@dataclass
class Attacked:
    """A suspect after an attack, with what the attack cost it.

    Attributes
    ----------
    suspect : the attacked suspect (same black-box interface)
    description : e.g. ``"jpeg(quality=50)"``
    accuracy_before, accuracy_after : accuracy on the adversary's clean data (model attacks only)
    pruned : channels removed by fine-pruning
    """

    suspect: Any
    description: str
    accuracy_before: float | None = None
    accuracy_after: float | None = None
    pruned: int | None = None


def _accuracy(model: Any, X: np.ndarray, y: np.ndarray) -> float:
    from xmark_core.nets.train import predict_proba

    return float((predict_proba(model, X).argmax(1) == y).mean())


def apply_attack(
    suspect: Any, name: str, params: dict[str, Any], clean: tuple[np.ndarray, np.ndarray] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Attacked:
    """Attack ``suspect`` with a named attack.

    Parameters
    ----------
    suspect : a suspect; model attacks need an in-process one (``.model``, e.g. a checkpoint)
    name : ``"none"``, a key of :data:`xmark_core.attacks.INPUT_ATTACKS`, ``"fine-tune"`` or ``"fine-prune"``
    params : the attack's keyword arguments (input attacks: their function's; fine-tune:
        ``epochs``, ``lr``; fine-prune: ``fraction``, ``finetune_epochs``, ``lr``)
    clean : the adversary's labelled clean data ``(X, y)`` at the suspect's input size (model
        attacks): 80% is used for the attack, 20% to measure accuracy before and after
    progress : fine-tuning progress ``(step, total)``
    """
    desc = f"{name}({', '.join(f'{k}={v}' for k, v in params.items())})" if params else name
    if name == NO_ATTACK:
        return Attacked(suspect, "none")
    if name in attacks.INPUT_ATTACKS:
        return Attacked(attacks.TransformedSuspect(suspect, attacks.input_attack(name, **params), desc), desc)
    if name not in MODEL_ATTACKS:
        raise ValueError(f"unknown attack {name!r}; choose one of {attack_names()}")
    model = getattr(suspect, "model", None)
    if model is None:
        raise ValueError("model attacks need the suspect's weights (a checkpoint), not a remote API")
    if clean is None:
        raise ValueError(f"{name} needs the adversary's clean data")
    from xmark_core.verify.suspects import TorchSuspect

    X, y = clean
    k = int(0.8 * len(X))  # attack on 80%, measure the accuracy cost on the other 20%
    (X_att, y_att), (X_ev, y_ev) = (X[:k], y[:k]), (X[k:], y[k:])
    before = _accuracy(model, X_ev, y_ev)
    pruned = None
    if name == "fine-tune":
        new = attacks.fine_tune(model, X_att, y_att, progress=progress, **params)
    else:
        new, idx = attacks.fine_prune(model, X_att, y=y_att, progress=progress, **params)
        pruned = len(idx)
    where = suspect.identity().get("location")
    attacked = TorchSuspect(new, suspect.classes, suspect.input_size, name=f"{desc} of {where}")
    return Attacked(attacked, desc, before, _accuracy(new, X_ev, y_ev), pruned)
