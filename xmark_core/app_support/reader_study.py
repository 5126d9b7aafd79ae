"""Blinded reader study: can a reader tell the watermarked image from the original?

Each trial shows an original and its watermarked copy side by side, sides drawn at
random, trials in random order. The reader picks the image they believe is
watermarked (two-alternative forced choice) and may rate the diagnostic quality of
each image from 1 (non-diagnostic) to 5 (excellent). Under the null hypothesis that
the mark is invisible, picks are coin flips: the number of correct picks is
Binomial(n, 1/2), and a one-sided exact binomial test says whether readers beat chance.
Quality ratings of the paired images are compared with a Wilcoxon signed-rank test.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from scipy import stats

from xmark_core.atomic import atomic_write_text
from xmark_core.errors import DataError

SIDES = ("left", "right")


@dataclass(frozen=True)
class Trial:
    """One blinded pair: which dataset item, and on which side the watermarked copy is."""

    order: int
    item: int
    image_id: str
    watermarked_side: str


def make_trials(image_ids: Sequence[str], n: int | None = None, seed: int = 0) -> list[Trial]:
    """Random order and random sides for up to ``n`` of the given images (deterministic in seed).

    Parameters
    ----------
    image_ids : identifiers of the images available for the study (index = item)
    n : number of trials (default: all images)
    seed : randomisation seed; record it with the results
    """
    if len(image_ids) == 0:
        raise ValueError("a reader study needs at least one image")
    rng = np.random.default_rng(seed)
    n = len(image_ids) if n is None else min(int(n), len(image_ids))
    items = rng.permutation(len(image_ids))[:n]
    sides = rng.integers(0, 2, size=n)
    return [
        Trial(order=k, item=int(i), image_id=str(image_ids[i]), watermarked_side=SIDES[s])
        for k, (i, s) in enumerate(zip(items, sides))
    ]


@dataclass
class Response:
    """A reader's answer to one trial. Ratings are 1-5, or 0 when not given."""

    reader: str
    order: int
    image_id: str
    watermarked_side: str
    choice: str
    rating_left: int = 0
    rating_right: int = 0
    timestamp: str = ""

    @property
    def correct(self) -> bool:
        return self.choice == self.watermarked_side

    @property
    def rating_watermarked(self) -> int:
        return self.rating_left if self.watermarked_side == "left" else self.rating_right

    @property
    def rating_original(self) -> int:
        return self.rating_right if self.watermarked_side == "left" else self.rating_left


def respond(
    trial: Trial, reader: str, choice: str, rating_left: int = 0, rating_right: int = 0,
    image_id: str | None = None,
) -> Response:
    """Record a reader's pick (``"left"``/``"right"``) and optional 1-5 ratings for a trial.

    ``image_id`` overrides the trial's id in the record (e.g. the file name of the image).
    """
    if choice not in SIDES:
        raise ValueError(f"choice must be 'left' or 'right', got {choice!r}")
    for r in (rating_left, rating_right):
        if r not in (0, 1, 2, 3, 4, 5):
            raise ValueError(f"ratings are 1..5 (0 = not rated), got {r}")
    return Response(
        reader=reader, order=trial.order, image_id=image_id or trial.image_id,
        watermarked_side=trial.watermarked_side, choice=choice, rating_left=int(rating_left),
        rating_right=int(rating_right), timestamp=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )


_FIELDS = [f.name for f in fields(Response)]


def responses_csv(responses: Sequence[Response]) -> str:
    """CSV text (header + one row per response, plus a ``correct`` column)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=_FIELDS + ["correct"], lineterminator="\n")
    w.writeheader()
    for r in responses:
        w.writerow({**asdict(r), "correct": int(r.correct)})
    return buf.getvalue()


def save_responses(path: str | Path, responses: Sequence[Response]) -> None:
    """Write all responses to ``path`` atomically (a crash leaves the previous file whole)."""
    atomic_write_text(path, responses_csv(responses))


def load_responses(path: str | Path) -> list[Response]:
    """Read a CSV written by :func:`save_responses` (raises DataError naming the file)."""
    path = Path(path)
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        return [
            Response(
                reader=r["reader"], order=int(r["order"]), image_id=r["image_id"],
                watermarked_side=r["watermarked_side"], choice=r["choice"],
                rating_left=int(r.get("rating_left") or 0), rating_right=int(r.get("rating_right") or 0),
                timestamp=r.get("timestamp", ""),
            )
            for r in rows
        ]
    except (OSError, KeyError, ValueError) as e:
        raise DataError(f"not a reader-study CSV ({e}); expected the columns {', '.join(_FIELDS)}", path) from e


@dataclass
class StudySummary:
    """Result of the study so far.

    Attributes
    ----------
    n, correct : trials answered and correct picks
    accuracy : correct / n
    p_value : one-sided exact binomial test of H0 "picks are coin flips" vs "better than chance"
    ci_low, ci_high : 95% Clopper-Pearson interval of the detection rate
    n_rated : trials with both images rated
    mean_rating_original, mean_rating_watermarked : mean 1-5 ratings (nan if none)
    rating_p_value : two-sided Wilcoxon signed-rank test of paired ratings (nan if < 2 differ)
    """

    n: int
    correct: int
    accuracy: float
    p_value: float
    ci_low: float
    ci_high: float
    alpha: float
    n_rated: int
    mean_rating_original: float
    mean_rating_watermarked: float
    rating_p_value: float

    @property
    def beats_chance(self) -> bool:
        return self.n > 0 and self.p_value < self.alpha

    def sentence(self) -> str:
        """A plain-language reading of the result."""
        if self.n == 0:
            return "No answers yet."
        head = (
            f"Readers picked the watermarked image in {self.correct} of {self.n} trials "
            f"({100 * self.accuracy:.0f}%, 95% CI {100 * self.ci_low:.0f}-{100 * self.ci_high:.0f}%; "
            f"chance is 50%). One-sided binomial p = {self.p_value:.3g}: "
        )
        if self.beats_chance:
            return head + f"readers DO tell the marked images apart better than chance (alpha = {self.alpha})."
        return head + f"no evidence that readers beat chance (alpha = {self.alpha})."


def summarize(responses: Sequence[Response], alpha: float = 0.05) -> StudySummary:
    """Binomial test of the forced-choice picks and a paired comparison of the ratings."""
    n = len(responses)
    k = sum(r.correct for r in responses)
    if n:
        test = stats.binomtest(k, n, 0.5, alternative="greater")
        ci = test.proportion_ci(confidence_level=0.95, method="exact")
        p, lo, hi = float(test.pvalue), float(ci.low), float(ci.high)
    else:
        p, lo, hi = 1.0, 0.0, 1.0
    rated = [r for r in responses if r.rating_left and r.rating_right]
    orig = np.array([r.rating_original for r in rated], float)
    wm = np.array([r.rating_watermarked for r in rated], float)
    rating_p = float("nan")
    if np.count_nonzero(wm - orig) >= 2:
        rating_p = float(stats.wilcoxon(wm, orig, zero_method="wilcox").pvalue)
    return StudySummary(
        n=n, correct=int(k), accuracy=k / n if n else 0.0, p_value=p, ci_low=lo, ci_high=hi,
        alpha=alpha, n_rated=len(rated),
        mean_rating_original=float(orig.mean()) if len(rated) else float("nan"),
        mean_rating_watermarked=float(wm.mean()) if len(rated) else float("nan"),
        rating_p_value=rating_p,
    )
