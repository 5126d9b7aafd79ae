"""Classification metrics: accuracy, macro one-vs-rest AUC, confusion matrix."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
from sklearn.metrics import roc_auc_score


@dataclass
class Metrics:
    """Scores of a classifier on one labelled set.

    Attributes
    ----------
    accuracy : share of correct arg-max predictions
    macro_auc : mean one-vs-rest ROC AUC over the classes that can be scored (present
        and absent in ``y``); NaN when none can
    confusion : ``confusion[true][pred]`` counts, K x K
    per_class_auc : one-vs-rest AUC per class, NaN where the class cannot be scored
    n : number of samples
    """

    accuracy: float
    macro_auc: float
    confusion: list[list[int]]
    per_class_auc: list[float] = field(default_factory=list)
    n: int = 0

    def to_dict(self) -> dict:
        """Plain, JSON-safe dict (NaN becomes None)."""

        def clean(v):
            if isinstance(v, float) and math.isnan(v):
                return None
            if isinstance(v, list):
                return [clean(x) for x in v]
            return v

        return {k: clean(v) for k, v in asdict(self).items()}


def classification_metrics(proba: np.ndarray, y: np.ndarray) -> Metrics:
    """Metrics from predicted probabilities.

    Parameters
    ----------
    proba : (N, K) class probabilities (or any scores; arg-max is the prediction)
    y : (N,) true class indices in ``[0, K)``

    Returns
    -------
    Metrics
    """
    proba = np.asarray(proba, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    n, k = proba.shape
    pred = proba.argmax(1)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (y, pred), 1)
    aucs = []
    for c in range(k):
        pos = y == c
        # AUC of class c is undefined unless both positives and negatives exist.
        aucs.append(float(roc_auc_score(pos, proba[:, c])) if 0 < pos.sum() < n else math.nan)
    scored = [a for a in aucs if not math.isnan(a)]
    return Metrics(
        accuracy=float((pred == y).mean()) if n else math.nan,
        macro_auc=float(np.mean(scored)) if scored else math.nan,
        confusion=confusion.tolist(),
        per_class_auc=aucs,
        n=int(n),
    )
