"""Series for the live verification plots, from a (partial) ``VerificationResult``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xmark_core.verify.protocol import SIDE_SIGN, SIDES, stream_running_p


@dataclass
class LiveSeries:
    """Per-query arrays of a verification run so far.

    Attributes
    ----------
    p_b, p_w : target-class probability on benign / watermarked queries
    running_p : anytime-valid (betting) p-value after each query
    running_wsr : share of watermarked queries labelled the target, after each query
    streams : with the key-specificity check, each stream's running p-value (``running_p`` is
        their maximum); empty without it
    """

    p_b: np.ndarray
    p_w: np.ndarray
    running_p: np.ndarray
    running_wsr: np.ndarray
    streams: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.p_b)


def live_series(result: Any) -> LiveSeries:
    """Arrays for :func:`xmark_core.app_support.figures.verification_figure`."""
    log = result.log
    p_b = np.array([q["p_b"] for q in log], float)
    p_w = np.array([q["p_w"] for q in log], float)
    hits = np.array([q["label_w"] == result.target for q in log], float)
    wsr = np.cumsum(hits) / np.arange(1, len(hits) + 1) if len(hits) else np.zeros(0)
    rp = np.asarray(result.running_p, float)
    return LiveSeries(p_b=p_b, p_w=p_w, running_p=rp, running_wsr=wsr, streams=stream_running_p(log, result.config))


def log_table(result: Any, class_names: list[str] | None = None) -> list[dict[str, Any]]:
    """The query log as rows for a table, with label names and ``P_w - P_b`` (and, with the
    key-specificity check, the answers to the owner's mark turned either way)."""
    names = class_names or []
    rows = []
    for q in result.log:
        row = {"query": q["index"] + 1, "image": q["image_id"], "P_b": round(q["p_b"], 4),
               "P_w": round(q["p_w"], 4), "P_w - P_b": round(q["p_w"] - q["p_b"], 4)}
        if "p_check" in q:  # the owner's mark again at the key check's own gain
            row[f"P_w at check gain {result.config.check_gain:g}"] = round(q["p_check"], 4)
        for side in SIDES:
            if f"p_{side}" in q:  # only logged with the check on, so the config has its angle
                row[f"P key turned {SIDE_SIGN[side] * result.config.specificity:+g}°"] = round(q[f"p_{side}"], 4)
        row["label (benign)"] = names[q["label_b"]] if q["label_b"] < len(names) else q["label_b"]
        row["label (watermarked)"] = names[q["label_w"]] if q["label_w"] < len(names) else q["label_w"]
        rows.append(row)
    return rows
