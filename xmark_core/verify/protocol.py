"""The black-box verification protocol: draw queries, mark them, ask the suspect, test.

``run_verification`` draws ``m`` held-out non-target images with a recorded seed, queries
the suspect on each image ``x`` and its watermarked version ``G(x)`` (benign and marked
versions shuffled within each request so a server cannot tell them apart by position),
logs every query (image id, SHA-256 of both arrays, ``P_b``, ``P_w``), and runs the
pre-registered test.  The same seed, pool, suspect and marker reproduce the same numbers
(:func:`compare_logs` checks a replay).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from xmark_core.errors import DataError, SuspectError
from xmark_core.hashing import canonical_json, sha256_array, sha256_bytes
from xmark_core.verify import stats
from xmark_core.verify.suspects import Suspect, model_hashes


class MarkerLike(Protocol):
    def mark(self, images: np.ndarray) -> np.ndarray: ...


# the two specificity controls: the owner's mark with its carrier turned by -/+ degrees
SIDE_SIGN = {"minus": -1.0, "plus": 1.0}
SIDES = tuple(SIDE_SIGN)


QUERY_CHOICES = ("boundary", "random", "proxy")
# Boundary queries score at most this many times m pool images (a seeded draw of a larger pool).
BOUNDARY_CANDIDATES = 10


# What a verification did before each of these options existed (VerifyConfig.from_recorded).
RECORD_DEFAULTS: dict[str, Any] = {"query_gain": 1.0, "queries": "random", "specificity": 0.0, "max_bet": 0.75,
                                   "threads": None, "check_gain": None}


@dataclass
class VerifyConfig:
    """Parameters of one verification (all recorded in the evidence).

    Attributes
    ----------
    m : number of paired queries (the maximum for the sequential test)
    tau : margin of ``H0: E[P_w - P_b] <= tau``
    alpha : level: the largest accepted probability of accusing an innocent model
    test : "ttest" (DVBW paired t-test), "sequential" (anytime-valid betting test, stops
        as soon as the evidence suffices) or "label" (exact test on target-label hits)
    seed : seed of the query draw and of the in-request shuffling
    batch_size : query images per round (each round sends ``2 * batch_size`` images)
    max_bet : largest fraction of capital the sequential test risks on one query (default
        :data:`~xmark_core.verify.stats.DEFAULT_MAX_BET`, 0.9; 0.75 until 2026-12-05 -- a
        recorded verification replays with the value it recorded)
    query_gain : the watermarked query is ``clip(x + gain * (G(x) - x))``. The queries are
        the owner's own held-out images, never released, so they may carry the mark
        stronger than the release (whose quality bar is PSNR >= 42 dB); a model that
        never learned the mark does not respond to it at any gain (Ind-M), one that
        learned it responds -- up to a point: past about twice the release's strength the
        response of a model that learned the mark falls again (measured over suspect seeds,
        README "Query gain"). Default 2.
    queries : how the ``m`` queries are chosen from the pool. "boundary" (default since
        2026-12-04): the ``m`` pool images the owner's surrogate gives the highest probability
        of the target class, asked in a seeded random order (of at most
        ``BOUNDARY_CANDIDATES * m`` pool images, a seeded draw when the pool is larger: scoring
        loads each one). The choice depends on the owner's model and the pool only, so it is
        fixed before any suspect is queried and a reviewer can redo it. A model that learned
        the mark shifts its target logit; on an image it already gives ~2 % that is a large
        change of probability, on one it gives ~0.1 % (a typical random non-target image) it
        is invisible. It lifts delta P of Malicious suspects of the demo release from ~0.3 to
        ~0.6 (11 of 11 claimed against 6 of 11) while clean models stay at delta P <= 0, but it
        also lifts their answer to *another* key's mark whose carrier lies within ~20 degrees
        of the owner's (docs/architecture.md, 4), which ``specificity`` narrows again.
        "random": a seeded draw from the whole pool (the paper's protocol; needs no surrogate).
        "proxy": the ``m`` candidates (as for "boundary") on which the owner's *proxy* raises
        its probability of the target the most when the mark is added (at ``query_gain``). The
        proxy is a classifier the owner trains itself on its own release, as a thief would
        (``xmark train-classifier --data RELEASE``); never the suspect. The choice still uses
        the owner's data and models only. Why: some pool images resist a learned mark (at the
        full preset, Consolidation phantoms, whose finding outweighs it), and they are largely
        the same for every model trained on the release. In the lab (full preset, three
        suspects, each chosen by one of the others) ΔP rose from 0.68-0.83 to 0.86-0.97 and WSR
        from 71-87 % to 91-100 %, clean models staying at ΔP <= 0 (docs/architecture.md, 6).
    specificity : the key-specificity check, in degrees (0: off). Each query image is also
        sent with the owner's mark turned by ``-specificity`` and ``+specificity``
        (:meth:`~xmark_core.generator.model.Marker.turned`: the same generator and strength,
        the carrier grating rotated, i.e. what a key at that orientation would carry).
        Ownership is claimed only if, besides the main test, the owner's own mark raises the
        target probability more than *each* turned mark (the same kind of test on
        ``P_w - P_turned`` with margin 0); the p-value is the largest of the three (an
        intersection-union test, valid at ``alpha``). Why: a model trained on another key's
        release answers a mark the more, the closer its carrier's orientation is to that
        key's; a claimant whose key lies on the slope finds a turned mark answered more
        strongly than its own, and is refused. Keys closer than about
        ``specificity / 2`` cannot be told apart (docs/architecture.md, 5). Default 25 (with
        boundary queries: all 11 measured Malicious suspects of the demo release claimed, 0 of
        10 independent keys; a random rival key still falls in the claimed zone ~10 % of the
        time). Suspects that see the image at 1/4 of its size tune broadly and off-key: 25
        claims 3 of the 6 of 15 such suspects that learned the mark, 35 all 6 but also lets a
        random rival key claim them ~23 % of the time, so no angle serves them well (README,
        Results). Markers without a key carrier (the benchmark's baselines) need 0.
    check_gain : the gain of the key check's marks: the owner's and the two turned ones (None,
        the default: ``query_gain``). The main test keeps ``query_gain``. With another value each
        query image is also sent with the owner's mark at this gain, logged as ``p_check``. Why:
        a model that learned the mark well answers both the owner's and a turned mark near 1 at
        gain 2, so the check's differences are small and its streams are the sequential test's
        slowest; at a lower gain the answers are off that ceiling. In the benchmark (the hardened
        preset's eight 64 px suspects, 1.5 instead of 2) the first suspect's sequential claim
        came after a median 13 queries instead of 49, at the same owners claimed, but 8 of 80
        rival-key pairs passed the check instead of 6 (README, Results, XXIX). The zone of rival keys
        that pass is set by ``specificity``, not by this gain.
    threads : torch CPU threads the queries are marked (and an in-process suspect run) at;
        None: torch's current count. :func:`run_verification` records the count it used and a
        replay uses it: at another count a few pixels of a mark can land one 16-bit step
        apart, so the recorded watermarked images' hashes would not repeat (the
        probabilities agree either way, to ~1e-7)
    """

    m: int = 100
    tau: float = 0.2
    alpha: float = 0.01
    test: str = "ttest"
    seed: int = 0
    batch_size: int = 20
    max_bet: float = stats.DEFAULT_MAX_BET
    query_gain: float = 2.0
    queries: str = "boundary"
    specificity: float = 25.0
    threads: int | None = None
    check_gain: float | None = None

    def __post_init__(self) -> None:
        if self.test not in stats.TESTS:
            raise ValueError(f"test must be one of {stats.TESTS}, got {self.test!r}")
        if self.m < 2:
            raise ValueError("m must be at least 2")
        if not 0 < self.alpha < 1:
            raise ValueError("alpha must be in (0, 1)")
        if not 0 <= self.tau < 1:
            raise ValueError("tau must be in [0, 1)")
        if self.batch_size < 1:
            raise ValueError("batch_size must be positive")
        if not 0 < self.query_gain <= 8:
            raise ValueError("query_gain must be in (0, 8]")
        if self.queries not in QUERY_CHOICES:
            raise ValueError(f"queries must be one of {QUERY_CHOICES}, got {self.queries!r}")
        if not 0 <= self.specificity <= 90:
            raise ValueError("specificity must be in [0, 90] degrees (0: off)")
        if self.check_gain is not None and not 0 < self.check_gain <= 8:
            raise ValueError("check_gain must be in (0, 8] (or None: the query gain)")
        if self.threads is not None and self.threads < 1:
            raise ValueError("threads must be at least 1 (or None: torch's current count)")

    @property
    def check_strength(self) -> float:
        """The gain the key check's marks are sent at: ``check_gain``, or ``query_gain``."""
        return self.query_gain if self.check_gain is None else self.check_gain

    @property
    def check_column(self) -> str:
        """The log column the key check compares the turned marks with: ``w`` (the owner's
        mark at ``query_gain``) or, at another ``check_gain``, ``check``."""
        return "w" if self.check_strength == self.query_gain else "check"

    @classmethod
    def from_recorded(cls, parameters: dict[str, Any]) -> VerifyConfig:
        """The configuration an evidence bundle recorded. A parameter it lacks predates the
        option and takes the value every verification had then: query gain 1, random queries,
        no key-specificity check, bets up to 0.75, the verifying machine's thread count."""
        return cls(**{**RECORD_DEFAULTS, **parameters})


@dataclass
class VerificationResult:
    """Outcome of :func:`run_verification` (also passed, partial, to ``on_query``).

    Attributes
    ----------
    test, delta_p, p_value, statistic, decision : from the pre-registered test
    wsr : watermark success rate: share of watermarked queries labelled the target
    clean_target_rate : share of benign queries labelled the target
    n_queries : paired queries made
    target, target_name : the target class
    complete : False for the partial results given to ``on_query``
    stopped_early : the sequential test stopped before ``m`` queries
    supporting : p-values of the other tests on the same queries, for information only
        (the decision uses ``test``); the sequential entry is distribution-free
    running_p, running_e : anytime-valid p-value and e-value after each query
    log : one dict per query (index, image_id, sha256_original, sha256_watermarked,
        p_b, p_w, label_b, label_w)
    pool : size of the held-out pool and hash of its image ids (the draw depends on both)
    config : the :class:`VerifyConfig`
    details : test-specific extras
    """

    test: str
    delta_p: float
    p_value: float
    statistic: float
    decision: bool
    wsr: float
    clean_target_rate: float
    n_queries: int
    target: int
    target_name: str
    complete: bool
    stopped_early: bool
    supporting: dict[str, float | None]
    running_p: list[float]
    running_e: list[float]
    log: list[dict[str, Any]]
    pool: dict[str, Any]
    config: VerifyConfig
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def verdict(self) -> str:
        """One plain sentence for a reader who is not a statistician."""
        cfg = self.config
        spec = self.details.get("specificity")
        turned = (f" and more than the same mark with its key turned by {spec['degrees']:g} degrees "
                  f"either way" if spec else "")
        if self.decision:
            return (f"The suspect model reacts to the owner's watermark: on {self.n_queries} images "
                    f"the watermark raised its '{self.target_name}' score by {self.delta_p:.2f} on "
                    f"average, more than the margin {cfg.tau:g}{turned}; an innocent model would show this "
                    f"with probability at most {self.p_value:.2g} (p-value), below the agreed "
                    f"level {cfg.alpha:g}. Ownership is claimed.")
        if spec and spec["main"]["decision"] and not all(spec[side]["decision"] for side in SIDES):
            return (f"The watermark raised the '{self.target_name}' score by {self.delta_p:.2f} on "
                    f"average over {self.n_queries} images, but the same mark with its key turned by "
                    f"{spec['degrees']:g} degrees was answered as strongly (p-value {self.p_value:.2g}, "
                    f"not below {cfg.alpha:g}): the model may have learned a similar key, not "
                    f"necessarily this owner's. No claim is made against this model.")
        return (f"The evidence does not reach the agreed level: the watermark raised the "
                f"'{self.target_name}' score by {self.delta_p:.2f} on average over "
                f"{self.n_queries} images (margin {cfg.tau:g}); p-value {self.p_value:.2g} is "
                f"not below {cfg.alpha:g}. No claim is made against this model.")


def pool_hash(image_ids: Sequence[str]) -> str:
    return sha256_bytes(canonical_json([str(i) for i in image_ids]))


def draw_queries(n_pool: int, m: int, seed: int) -> np.ndarray:
    """Indices of the ``m`` query images: a seeded permutation of the pool, truncated."""
    if n_pool < m:
        raise DataError(f"the held-out non-target pool has {n_pool} images but m={m} queries are "
                        "needed; add held-out images or lower m")
    return np.random.default_rng(seed).permutation(n_pool)[:m]


def boundary_queries(scores: Sequence[float], m: int, seed: int) -> np.ndarray:
    """Indices of the ``m`` pool images with the highest ``scores`` (the owner surrogate's
    probability of the target class), in a seeded random order; equal scores are broken
    at random with the same seed."""
    sc = np.asarray(scores, np.float64)
    if len(sc) < m:
        draw_queries(len(sc), m, seed)  # raises the pool-size error
    if not np.all(np.isfinite(sc)):
        raise DataError("query scores must be finite numbers")
    rng = np.random.default_rng([seed, 2])
    top = np.lexsort((rng.random(len(sc)), -sc))[:m]
    return top[np.random.default_rng(seed).permutation(m)]


def boundary_candidates(n_pool: int, m: int, seed: int) -> np.ndarray:
    """The pool images scored for boundary queries: all of them, or a seeded draw of
    ``BOUNDARY_CANDIDATES * m`` from a larger pool (scoring loads every candidate image)."""
    n = min(n_pool, BOUNDARY_CANDIDATES * m)
    return np.sort(np.random.default_rng([seed, 3]).permutation(n_pool)[:n])


def proxy_scores(proxy: Suspect, marker: MarkerLike, images: Sequence[np.ndarray], target: str,
                 gain: float = 1.0, batch_size: int = 64) -> np.ndarray:
    """How much the owner's proxy model raises its probability of ``target`` when each image
    is marked (``gain`` as the queries carry it): the scores of proxy queries.

    Parameters
    ----------
    proxy : a :class:`~xmark_core.verify.suspects.Suspect` view of a classifier the owner
        trained on its own release (never the suspect); must give probabilities
    marker : the owner's marker
    images : pool images, each (H, W) float in [0, 1]
    target : name of the target class among ``proxy.classes``

    Returns
    -------
    (n,) float64: P_proxy(target | marked) - P_proxy(target | image)
    """
    if target not in proxy.classes:
        raise DataError(f"the proxy's classes {proxy.classes} do not include the target {target!r}")
    if proxy.output == "label":
        raise DataError("the proxy must give probabilities, not labels only")
    t = proxy.classes.index(target)
    out = []
    for i in range(0, len(images), batch_size):
        x = [np.asarray(im, np.float32) for im in images[i:i + batch_size]]
        p = [np.asarray(proxy.predict(v), np.float64)[:, t] for v in (x, _mark(marker, x, gain))]
        out.append(p[1] - p[0])
    return np.concatenate(out) if out else np.zeros(0)


def choose_queries(marker: MarkerLike, images: Sequence[np.ndarray], cfg: VerifyConfig,
                   scores: Sequence[float] | None = None, proxy: Suspect | None = None,
                   target: str | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """The query indices into ``images`` under ``cfg.queries`` and what the evidence records.

    ``scores`` (boundary or proxy queries): the owner surrogate's target probability per pool
    image, or the proxy's rise of it (:func:`proxy_scores`); by default ``marker.target_scores``
    of the candidates (:func:`boundary_candidates`) for boundary queries and ``proxy``'s rise on
    them, for ``target`` (a class name), for proxy queries.
    """
    drawn = draw_queries(len(images), cfg.m, cfg.seed)  # also checks the pool's size
    if cfg.queries == "random":
        return drawn, {"queries": "random"}
    cand = boundary_candidates(len(images), cfg.m, cfg.seed)
    extra: dict[str, Any] = {}
    if scores is not None:
        full = np.asarray(scores, np.float64)
        if full.shape != (len(images),):
            raise DataError(f"{len(images)} pool images but {full.size} query scores")
        sc = full[cand]
    elif cfg.queries == "proxy":
        if proxy is None or target is None:
            raise DataError("proxy queries are chosen with the owner's proxy: a classifier the owner trained on "
                            "its own release (`xmark train-classifier --data RELEASE`); pass it (CLI: --proxy "
                            "PROXY.pt) or use boundary queries")
        sc = proxy_scores(proxy, marker, [images[int(i)] for i in cand], target, cfg.query_gain)
        extra["proxy"] = proxy.identity()
    elif hasattr(marker, "target_scores"):
        sc = np.asarray(marker.target_scores([images[int(i)] for i in cand]), np.float64)  # type: ignore[attr-defined]
    else:
        raise DataError("boundary queries (the default) are chosen with the owner's surrogate, which "
                        "this marker does not carry; pass query_scores or use random queries "
                        "(queries='random', `xmark verify --queries random`)")
    order = cand[boundary_queries(sc, cfg.m, cfg.seed)]
    return order, {"queries": cfg.queries, **extra, "candidates": len(cand),
                   "scores_sha256": sha256_array(sc.astype(np.float32)),
                   "min_score_chosen": float(np.sort(sc)[-cfg.m]), "median_score_candidates": float(np.median(sc))}


def _mark(marker: MarkerLike, images: list[np.ndarray], gain: float = 1.0) -> list[np.ndarray]:
    """Mark images, batching those that share a shape; ``gain`` scales the mark."""
    return _marks(marker, images, (gain,))[0]


def _marks(marker: MarkerLike, images: list[np.ndarray], gains: Sequence[float]) -> list[list[np.ndarray]]:
    """The images marked at each of ``gains`` (one list per gain) from one pass of the marker:
    a gain scales the same mark, so the query gain and the key check's own gain need no second pass."""
    out: list[list[np.ndarray | None]] = [[None] * len(images) for _ in gains]
    by_shape: dict[tuple, list[int]] = {}
    for i, im in enumerate(images):
        by_shape.setdefault(im.shape, []).append(i)
    for idx in by_shape.values():
        marked = np.asarray(marker.mark(np.stack([images[i] for i in idx])), dtype=np.float32)
        if marked.shape != (len(idx), *images[idx[0]].shape):
            raise ValueError(f"marker returned shape {marked.shape} for {len(idx)} images of {images[idx[0]].shape}")
        orig = np.stack([images[i] for i in idx]).astype(np.float32) if any(g != 1.0 for g in gains) else None
        for g, gain in enumerate(gains):
            scaled = marked if gain == 1.0 else np.clip(orig + gain * (marked - orig), 0.0, 1.0)
            for k, i in enumerate(idx):
                out[g][i] = scaled[k]
    return out  # type: ignore[return-value]


def _turned_markers(marker: MarkerLike, degrees: float) -> list[MarkerLike]:
    """The specificity controls: ``marker`` turned by -/+ ``degrees`` (none when 0)."""
    if not degrees:
        return []
    if not hasattr(marker, "turned"):
        raise DataError("the key-specificity check (on by default) turns the owner's key carrier, "
                        "which this marker does not have (an X-Mark generator has one); turn it off: "
                        "specificity=0, `xmark verify --specificity 0`, or 'Key specificity' 0 in the app")
    return [marker.turned(SIDE_SIGN[side] * degrees) for side in SIDES]  # type: ignore[attr-defined]


def _scores(suspect: Suspect, images: list[np.ndarray], target: int) -> tuple[np.ndarray, np.ndarray]:
    """Target probability and label per image (labels-only suspects give 0/1 scores)."""
    out = np.asarray(suspect.predict(images))
    if suspect.output == "label":
        if out.shape != (len(images),):
            raise SuspectError(f"suspect returned labels of shape {out.shape} for {len(images)} images")
        labels = out.astype(np.int64)
        return (labels == target).astype(np.float64), labels
    if out.shape != (len(images), len(suspect.classes)):
        raise SuspectError(f"suspect returned shape {out.shape} for {len(images)} images and "
                           f"{len(suspect.classes)} classes")
    return out[:, target].astype(np.float64), out.argmax(axis=1)


def _column(log: list[dict[str, Any]], key: str) -> np.ndarray:
    return np.array([q[key] for q in log], dtype=np.float64)


def _test(cfg: VerifyConfig, log: list[dict[str, Any]], target: int, a: str, b: str,
          tau: float, stop_early: bool = False) -> stats.OwnershipTestResult:
    """The configured test of ``E[P_a - P_b] > tau`` on the log's columns ``p_a``, ``p_b``
    (target-label hits ``label_a`` / ``label_b`` for the label test)."""
    if cfg.test == "label":
        return stats.label_only_test(_column(log, f"label_{a}") == target,
                                     _column(log, f"label_{b}") == target, tau, cfg.alpha)
    p_a, p_b = _column(log, f"p_{a}"), _column(log, f"p_{b}")
    if cfg.test == "ttest":
        return stats.paired_ttest(p_a, p_b, tau, cfg.alpha)
    return stats.sequential_test(p_a, p_b, tau, cfg.alpha, cfg.max_bet, stop_early=stop_early)


def _specificity(cfg: VerifyConfig, log: list[dict[str, Any]], target: int) -> dict[str, Any]:
    """The key-specificity check: owner's mark against each turned one (margin 0). With the
    sequential test each side also says after how many queries it reached alpha (``stop_time``):
    a claim comes when the slowest of the three streams does."""
    out: dict[str, Any] = {"degrees": cfg.specificity}
    own = cfg.check_column
    for side in SIDES:
        r = _test(cfg, log, target, own, side, 0.0)
        out[side] = {"delta_p": float((_column(log, f"p_{own}") - _column(log, f"p_{side}")).mean()),
                     "p_value": r.p_value, "decision": r.decision}
        if "stop_time" in r.details:
            out[side]["stop_time"] = r.details["stop_time"]
    return out


def stream_running_p(log: list[dict[str, Any]], cfg: VerifyConfig) -> dict[str, np.ndarray]:
    """Running anytime-valid p-value of each stream of a claim under the key-specificity check:
    ``main`` (owner's mark vs benign, margin tau), ``minus`` / ``plus`` (owner's mark vs each
    turned mark, margin 0; both at ``cfg.check_gain``). The claim's running p-value is the
    largest of the three at each query: it waits for the slowest stream. Empty without the
    check (one stream only)."""
    if not cfg.specificity or not log:
        return {}
    p_w, own = _column(log, "p_w"), _column(log, f"p_{cfg.check_column}")
    out = {"main": stats.sequential_path(p_w - _column(log, "p_b"), cfg.tau, cfg.alpha, cfg.max_bet)["p_value"]}
    for side in SIDES:
        out[side] = stats.sequential_path(own - _column(log, f"p_{side}"), 0.0, cfg.alpha, cfg.max_bet)["p_value"]
    return out


def stream_label(stream: str, degrees: float) -> str:
    """How figures name a stream of :func:`stream_running_p`."""
    if stream == "main":
        return "owner's mark vs original"
    return f"owner's mark vs key turned {SIDE_SIGN[stream] * degrees:+g}°"


def evaluate_log(log: list[dict[str, Any]], cfg: VerifyConfig, output: str, target: int,
                 target_name: str, complete: bool, pool: dict[str, Any]) -> VerificationResult:
    """Run the configured test (and the supporting ones) on a query log.

    With ``cfg.specificity`` the log also holds ``p_minus`` / ``p_plus`` (the turned marks);
    the p-value and the running p-values are then the largest of the main test's and the
    two specificity tests' (``details["specificity"]`` holds each)."""
    p_w = np.array([q["p_w"] for q in log], dtype=np.float64)
    p_b = np.array([q["p_b"] for q in log], dtype=np.float64)
    hit_w = np.array([q["label_w"] == target for q in log])
    hit_b = np.array([q["label_b"] == target for q in log])
    n = len(log)
    path = stats.sequential_path(p_w - p_b, cfg.tau, cfg.alpha, cfg.max_bet)
    running_p = path["p_value"]
    supporting: dict[str, float | None] = {"ttest": None, "sequential": None, "label": None}
    res, spec = None, None
    if n >= 2:
        if output == "proba":
            supporting["ttest"] = stats.paired_ttest(p_w, p_b, cfg.tau, cfg.alpha).p_value
        supporting["sequential"] = float(path["p_value"][-1])
        supporting["label"] = stats.label_only_test(hit_w, hit_b, cfg.tau, cfg.alpha).p_value
        res = _test(cfg, log, target, "w", "b", cfg.tau, stop_early=True)
        if cfg.specificity:
            spec = {**_specificity(cfg, log, target), "main": {"p_value": res.p_value, "decision": res.decision}}
            running_p = np.max(np.stack(list(stream_running_p(log, cfg).values())), axis=0)
    details = {} if res is None else {k: v for k, v in res.details.items() if k not in ("e_values", "running_p")}
    p_value = res.p_value if res else 1.0
    decision = bool(res.decision) if res else False
    if spec is not None:
        details["specificity"] = spec
        if cfg.test == "sequential":  # the three anytime-valid paths, at the same stopping time
            p_value = float(running_p[-1])
            decision = p_value <= cfg.alpha
        else:
            p_value = max(p_value, *(spec[side]["p_value"] for side in SIDES))
            decision = decision and all(spec[side]["decision"] for side in SIDES)
    stopped = bool(cfg.test == "sequential" and decision and n < cfg.m)
    return VerificationResult(
        test=cfg.test,
        delta_p=float((p_w - p_b).mean()) if n else float("nan"),
        p_value=p_value,
        statistic=res.statistic if res else float("nan"),
        decision=decision,
        wsr=float(hit_w.mean()) if n else float("nan"),
        clean_target_rate=float(hit_b.mean()) if n else float("nan"),
        n_queries=n,
        target=target,
        target_name=target_name,
        complete=complete,
        stopped_early=stopped,
        supporting=supporting,
        running_p=running_p.tolist(),
        running_e=path["e_value"].tolist(),
        log=log,
        pool=pool,
        config=cfg,
        details=details,
    )


def run_verification(
    suspect: Suspect,
    marker: MarkerLike,
    images: Sequence[np.ndarray],
    image_ids: Sequence[str],
    target: int,
    cfg: VerifyConfig | None = None,
    on_query: Callable[[VerificationResult], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
    query_scores: Sequence[float] | None = None,
    proxy: Suspect | None = None,
) -> VerificationResult:
    """Query ``suspect`` with benign and watermarked held-out images and test ownership.

    Parameters
    ----------
    suspect : any :class:`~xmark_core.verify.suspects.Suspect`
    marker : anything with ``mark(images (N, H, W)) -> (N, H, W)`` (a
        :class:`xmark_core.generator.model.Marker`, or a fake in tests)
    images : the held-out pool of *non-target* images, each (H, W) float in [0, 1]; any
        indexable sequence (e.g. :class:`DatasetImages`, which loads lazily)
    image_ids : one id per pool image (recorded in the log)
    target : index of the target class in ``suspect.classes``
    cfg : :class:`VerifyConfig` (defaults: m=100, tau=0.2, alpha=0.01, t-test, seed 0)
    on_query : called after each round with the partial result (for a live display)
    progress : called as ``(queries done, m)``
    query_scores : for ``cfg.queries == "boundary"``: the owner surrogate's probability of
        the target per pool image (default: ``marker.target_scores(images)``); for
        ``"proxy"``: the proxy's rise of it (default: computed with ``proxy``)
    proxy : for ``cfg.queries == "proxy"``: the owner's proxy model (:func:`proxy_scores`);
        its identity is recorded with the query choice

    Returns
    -------
    VerificationResult
        Its ``config`` names the thread count used (``cfg.threads``, or torch's count).
    """
    import torch

    from xmark_core.device import torch_threads

    cfg = cfg or VerifyConfig()
    if cfg.threads is None:
        cfg = dataclasses.replace(cfg, threads=torch.get_num_threads())
    with torch_threads(cfg.threads):
        return _verify(suspect, marker, images, image_ids, target, cfg, on_query, progress, query_scores, proxy)


def _verify(suspect: Suspect, marker: MarkerLike, images: Sequence[np.ndarray], image_ids: Sequence[str],
            target: int, cfg: VerifyConfig, on_query: Callable[[VerificationResult], None] | None,
            progress: Callable[[int, int], None] | None, query_scores: Sequence[float] | None,
            proxy: Suspect | None) -> VerificationResult:
    """:func:`run_verification` at the thread count it set."""
    if len(images) != len(image_ids):
        raise DataError(f"{len(images)} images but {len(image_ids)} image ids")
    if not 0 <= target < len(suspect.classes):
        raise DataError(f"target {target} is not a class index of the suspect ({suspect.classes})")
    if suspect.output == "label" and cfg.test == "ttest":
        raise SuspectError("this suspect returns labels only; the t-test needs probabilities. "
                           "Use test='label' or test='sequential' (CLI: --test label).")
    if proxy is not None and model_hashes(proxy.identity()) & model_hashes(suspect.identity()):
        raise DataError("the proxy is the suspect itself: queries chosen by the suspect's own answers are not "
                        "fixed before it is tested; use a model the owner trained on its release")
    order, choice = choose_queries(marker, images, cfg, query_scores, proxy, suspect.classes[target])
    turned = _turned_markers(marker, cfg.specificity)
    # rows of each batch: benign, owner's mark, [owner's mark at the check's own gain], turned marks
    own_check = bool(turned) and cfg.check_column == "check"
    own_row = 2 if own_check else 1  # what the turned marks are compared with
    pool = {"size": len(image_ids), "ids_sha256": pool_hash(image_ids), **choice}
    shuffle_rng = np.random.default_rng([cfg.seed, 1])
    target_name = suspect.classes[target]
    # the main test's stream, then (specificity) owner vs each turned mark with margin 0
    seqs = [stats.SequentialTest(cfg.tau, cfg.alpha, cfg.max_bet)] + [
        stats.SequentialTest(0.0, cfg.alpha, cfg.max_bet) for _ in turned]
    log: list[dict[str, Any]] = []
    for start in range(0, cfg.m, cfg.batch_size):
        idx = order[start:start + cfg.batch_size]
        x = [np.asarray(images[int(i)], dtype=np.float32) for i in idx]
        owners = _marks(marker, x, (cfg.query_gain, cfg.check_strength) if own_check else (cfg.query_gain,))
        versions = [x, *owners] + [_mark(t, x, cfg.check_strength) for t in turned]
        k, n_v = len(x), len(versions)
        perm = shuffle_rng.permutation(n_v * k)  # position i of the request holds item perm[i]
        flat = [im for v in versions for im in v]
        score, label = _scores(suspect, [flat[j] for j in perm], target)
        inv = np.empty_like(perm)
        inv[perm] = np.arange(n_v * k)
        score, label = score[inv].reshape(n_v, k), label[inv].reshape(n_v, k)
        for j, i in enumerate(idx):
            entry = {
                "index": len(log), "image_id": str(image_ids[int(i)]),
                "sha256_original": sha256_array(x[j]), "sha256_watermarked": sha256_array(versions[1][j]),
                "p_b": float(score[0, j]), "p_w": float(score[1, j]),
                "label_b": int(label[0, j]), "label_w": int(label[1, j]),
            }
            if own_check:
                entry["p_check"], entry["label_check"] = float(score[own_row, j]), int(label[own_row, j])
            for v, side in enumerate(SIDES[:len(turned)], start=own_row + 1):
                entry[f"p_{side}"], entry[f"label_{side}"] = float(score[v, j]), int(label[v, j])
            log.append(entry)
            seqs[0].update(float(score[1, j] - score[0, j]))
            for v, sq in enumerate(seqs[1:], start=own_row + 1):
                sq.update(float(score[own_row, j] - score[v, j]))
        if progress:
            progress(len(log), cfg.m)
        done = len(log) >= cfg.m or (cfg.test == "sequential" and all(bool(sq.rejected) for sq in seqs))
        if on_query and not done:
            on_query(evaluate_log(log, cfg, suspect.output, target, target_name, False, pool))
        if done:
            break
    result = evaluate_log(log, cfg, suspect.output, target, target_name, True, pool)
    if on_query:
        on_query(result)
    return result


class DatasetImages(Sequence):
    """Lazy view of some records of an :class:`~xmark_core.data.base.XrayDataset` as images."""

    def __init__(self, ds: Any, indices: Sequence[int]):
        self.ds, self.indices = ds, list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> np.ndarray:  # type: ignore[override]
        return self.ds[self.indices[i]].image


def heldout_pool(ds: Any, target: int, exclude_ids: Sequence[str] = ()) -> tuple[DatasetImages, list[str]]:
    """The non-target images of ``ds`` (minus ``exclude_ids``, e.g. released files) and their ids.

    Reading ids needs each record; images are loaded again lazily when queried.
    """
    labels = np.asarray(ds.labels())
    exclude = set(map(str, exclude_ids))
    idx, ids = [], []
    for i in np.flatnonzero(labels != target):
        rid = str(ds[int(i)].image_id)
        if rid not in exclude:
            idx.append(int(i))
            ids.append(rid)
    return DatasetImages(ds, idx), ids


def compare_logs(original: list[dict[str, Any]], replay: list[dict[str, Any]], atol: float = 1e-5) -> dict[str, Any]:
    """Check a replayed query log against the recorded one.

    Returns
    -------
    dict with ``match`` (True when the same images were drawn, their originals hash the
    same and every ``P_b`` / ``P_w`` (and the key check's ``P_check`` / ``P_minus`` / ``P_plus``) agrees within
    ``atol``), ``max_abs_diff``,
    ``watermark_hashes_match`` (bit-identical marks; may differ across devices while the
    probabilities still agree) and a list of ``problems``.
    """
    problems = []
    if len(original) != len(replay):
        problems.append(f"{len(original)} queries recorded, {len(replay)} replayed")
    diff = 0.0
    marks_same = True
    for a, b in zip(original, replay):
        i = a.get("index")
        if a["image_id"] != b["image_id"]:
            problems.append(f"query {i}: image {a['image_id']!r} recorded, {b['image_id']!r} replayed")
            continue
        if a["sha256_original"] != b["sha256_original"]:
            problems.append(f"query {i}: image {a['image_id']!r} has different pixels now")
        marks_same &= a["sha256_watermarked"] == b["sha256_watermarked"]
        cols = ["p_b", "p_w"] + [f"p_{c}" for c in ("check", *SIDES) if f"p_{c}" in a]
        if any(c not in b for c in cols):
            problems.append(f"query {i}: the replay lacks {[c for c in cols if c not in b]}")
            continue
        d = max(abs(a[c] - b[c]) for c in cols)
        diff = max(diff, d)
        if d > atol:
            problems.append(f"query {i}: {'/'.join(cols)} differ by {d:.3g} (> {atol:g})")
    return {"match": not problems, "max_abs_diff": diff, "watermark_hashes_match": bool(marks_same),
            "problems": problems[:50], "n_problems": len(problems)}
