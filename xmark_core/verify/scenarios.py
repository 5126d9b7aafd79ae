"""The three verification scenarios of the design, as one harness returning a table.

* **Malicious** -- suspect trained on the watermarked release, queried with the owner's
  generator: the only scenario that may be claimed.
* **Ind-M** -- independent model (trained on clean data only), owner's generator.
* **Ind-T** -- the watermarked suspect queried with an *independent* generator (another
  key / seed): a verifier with the wrong key must not be able to claim.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from xmark_core.verify.protocol import (
    MarkerLike,
    VerificationResult,
    VerifyConfig,
    run_verification,
)
from xmark_core.verify.suspects import Suspect


@dataclass
class Scenario:
    """One row of the table: a suspect, the marker used to query it, and whether a claim
    is the correct outcome."""

    name: str
    suspect: Suspect
    marker: MarkerLike
    should_claim: bool


def standard_scenarios(watermarked: Suspect, clean: Suspect, marker: MarkerLike,
                       independent_marker: MarkerLike) -> list[Scenario]:
    """Malicious, Ind-M and Ind-T from two suspects and two markers."""
    return [
        Scenario("Malicious", watermarked, marker, True),
        Scenario("Ind-M", clean, marker, False),
        Scenario("Ind-T", watermarked, independent_marker, False),
    ]


def run_scenarios(
    scenarios: Sequence[Scenario],
    images: Sequence[np.ndarray],
    image_ids: Sequence[str],
    target: int,
    cfg: VerifyConfig | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[pd.DataFrame, list[VerificationResult]]:
    """Verify every scenario on the same held-out pool and seed.

    Parameters
    ----------
    scenarios : from :func:`standard_scenarios` or hand-made
    images, image_ids, target, cfg : as :func:`~xmark_core.verify.protocol.run_verification`
    progress : called as ``(scenarios done, total)``

    Returns
    -------
    (table, results) : one row per scenario with columns ``scenario``, ``should_claim``,
        ``claimed``, ``correct``, ``delta_p``, ``p_value``, ``wsr``, ``clean_target_rate``,
        ``n_queries``, ``test``, ``p_ttest``, ``p_sequential``, ``p_label``; and the full results.
    """
    cfg = cfg or VerifyConfig()
    rows, results = [], []
    for k, sc in enumerate(scenarios):
        r = run_verification(sc.suspect, sc.marker, images, image_ids, target, cfg)
        results.append(r)
        rows.append({
            "scenario": sc.name, "should_claim": sc.should_claim, "claimed": r.decision,
            "correct": r.decision == sc.should_claim, "delta_p": r.delta_p, "p_value": r.p_value,
            "wsr": r.wsr, "clean_target_rate": r.clean_target_rate, "n_queries": r.n_queries,
            "test": r.test, **{f"p_{k_}": v for k_, v in r.supporting.items()},
        })
        if progress:
            progress(k + 1, len(scenarios))
    return pd.DataFrame(rows), results
