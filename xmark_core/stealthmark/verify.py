"""Black-box verification of a segmentation suspect against the owner's mark.

Three pieces of evidence, all computed from the suspect's *soft* outputs:

1. the picture: LIME over the grid cells (:mod:`reveal`), binarised at a threshold fixed
   in advance, un-masked with the key, decoded with OpenCV, compared with the claim;
2. bit agreement of the binarised picture with the committed QR matrix, and its one-sided
   binomial p-value under H0 "the suspect never learned this key" (agreement 1/2 per
   module: the keyed mask is uniform and independent of an innocent model);
3. a detector on single outputs: score = mean uncertainty in stamped cells whose bit is
   dark minus in stamped cells whose bit is light; TPR on stamped queries (the paper's
   ASR) and FPR on the same images unstamped, at a threshold fixed in advance.

A suspect whose outputs are binary masks, or probabilities rounded so coarsely that a rise
to ``eps`` cannot show, is refused as *unverifiable* instead of being judged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy.stats import binomtest

from xmark_core.errors import SuspectError
from xmark_core.stealthmark.mark import SegMark
from xmark_core.stealthmark.reveal import RevealConfig, RevealState, reveal_stream
from xmark_core.stealthmark.suspects import SegSuspect, query_images
from xmark_core.stealthmark.trigger import pixel_mask

VERIFIED, NOT_VERIFIED, UNVERIFIABLE = "verified", "not verified", "unverifiable"


@dataclass
class SegVerifyConfig:
    """Verification settings, all fixed before the suspect is queried.

    Attributes
    ----------
    reveal : LIME settings (queries, bit threshold)
    detector_queries : stamped/clean query pairs for the detector
    detector_threshold : detector fires when its score exceeds ``detector_threshold * eps``
    alpha : significance level of the bit-agreement test
    seed : randomness of the detector's stamps
    """

    reveal: RevealConfig = field(default_factory=RevealConfig)
    detector_queries: int = 64
    detector_threshold: float = 0.5
    alpha: float = 1e-6
    seed: int = 1


@dataclass
class OutputCheck:
    """Whether the suspect's outputs can carry the evidence.

    Attributes
    ----------
    verifiable : False for binary masks or too coarse rounding
    kind : "soft", "quantized" or "binary"
    levels : distinct output values seen
    step : smallest gap between distinct values (the rounding step, if any)
    message : plain-language explanation
    """

    verifiable: bool
    kind: str
    levels: int
    step: float
    message: str


def check_outputs(probs: np.ndarray, eps: float) -> OutputCheck:
    """Decide whether soft outputs can show an uncertainty rise to ``eps``.

    Parameters
    ----------
    probs : (N, C, H, W) outputs of the suspect on some queries
    eps : the mark's uncertainty level
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 4:
        raise SuspectError(f"a segmentation suspect must return (N, C, H, W) maps, got shape {p.shape}")
    if not np.isfinite(p).all() or p.min() < 0.0 or p.max() > 1.0:
        raise SuspectError("the suspect's outputs are not probabilities in [0, 1] (logits? apply a sigmoid)")
    values = np.unique(p)
    step = float(np.diff(values).min()) if len(values) > 1 else 1.0
    if len(values) <= 2:
        return OutputCheck(False, "binary", len(values), step,
                           "The suspect returns binary masks only (values "
                           f"{', '.join(f'{v:g}' for v in values)}). The mark lives in the soft output's "
                           "uncertainty, which a thresholded mask erases: this suspect cannot be verified "
                           "this way. Ask for probability maps.")
    if step > eps / 2:
        return OutputCheck(False, "quantized", len(values), step,
                           f"The suspect rounds its probabilities to steps of {step:.3g}, coarser than "
                           f"half the mark's uncertainty level ({eps:g}): the rise cannot be told from "
                           "rounding, so this suspect cannot be verified. Ask for unrounded probabilities.")
    if len(values) < 1000 and step >= 1e-3:
        return OutputCheck(True, "quantized", len(values), step,
                           f"Outputs are rounded to steps of {step:.3g}; fine enough for a rise to {eps:g}.")
    return OutputCheck(True, "soft", len(values), step, "Soft probability maps.")


def stamped_example(suspect: SegSuspect, image: np.ndarray, mark: SegMark, density: float = 0.5,
                    seed: int = 0) -> dict[str, np.ndarray]:
    """One clean query and its stamped twin, with the suspect's maps (for side-by-side display).

    Returns
    -------
    dict with ``clean``, ``stamped`` (H, W) images, ``probs_clean``, ``probs_stamped``
    (C, H, W), ``on`` bool (n, n) stamped cells, ``raise_cells`` bool (n, n) stamped cells
    whose embedded bit is dark (where a marked model answers).
    """
    x = query_images(np.asarray(image)[None], suspect)
    on = np.random.default_rng(seed).random((1, mark.n**2)) < density
    xs = mark.stamp(x, on)
    p = suspect.predict(np.concatenate([x, xs]))
    on2 = on.reshape(mark.n, mark.n)
    return {"clean": x[0], "stamped": xs[0], "probs_clean": p[0], "probs_stamped": p[1],
            "on": on2, "raise_cells": on2 & mark.bits}


def mean_uncertainty(probs: np.ndarray) -> np.ndarray:
    """Pixel uncertainty ``min(p, 1 - p)`` averaged over channels: (N, C, H, W) -> (N, H, W)."""
    p = np.asarray(probs, dtype=np.float64)
    return np.minimum(p, 1.0 - p).mean(axis=1)


def detector_scores(probs: np.ndarray, on: np.ndarray, mark: SegMark) -> np.ndarray:
    """Detector score per query: mean uncertainty over stamped dark-bit cells minus over
    stamped light-bit cells (``on`` (N, n*n) says which cells were stamped)."""
    u = mean_uncertainty(probs)
    on = np.asarray(on, dtype=bool).reshape(len(on), -1)
    bits = mark.bits.reshape(1, -1)
    dark = pixel_mask(on & bits, u.shape[-2:], mark.n)
    light = pixel_mask(on & ~bits, u.shape[-2:], mark.n)
    mean = lambda m: (u * m).sum(axis=(1, 2)) / np.maximum(m.sum(axis=(1, 2)), 1)  # noqa: E731
    return mean(dark) - mean(light)


@dataclass
class DetectorResult:
    """Detector scores on stamped and clean queries, threshold, TPR (ASR) and FPR."""

    triggered: np.ndarray
    clean: np.ndarray
    threshold: float

    @property
    def tpr(self) -> float:
        return float(np.mean(self.triggered > self.threshold))

    @property
    def fpr(self) -> float:
        return float(np.mean(self.clean > self.threshold))


def run_detector(suspect: SegSuspect, images: np.ndarray, mark: SegMark, queries: int,
                 threshold: float, seed: int, stamp_prob: float = 0.5) -> DetectorResult:
    """Query ``queries`` stamped images and the same images clean; score both."""
    images = query_images(images, suspect)
    rng = np.random.default_rng(seed)
    idx = np.arange(queries) % len(images)
    on = rng.random((queries, mark.n**2)) < stamp_prob
    trig = detector_scores(suspect.predict(mark.stamp(images[idx], on)), on, mark)
    clean = detector_scores(suspect.predict(images[idx]), on, mark)
    return DetectorResult(trig, clean, threshold * mark.eps)


@dataclass
class SegVerification:
    """Everything a verification found; ``verdict`` is "verified", "not verified" or "unverifiable"."""

    verdict: str
    message: str
    claim: str
    output_check: OutputCheck
    decoded: str | None = None
    match: bool = False
    bit_agreement: float = float("nan")
    n_bits: int = 0
    p_value: float = float("nan")
    alpha: float = 1e-6
    tpr: float = float("nan")
    fpr: float = float("nan")
    n_queries: int = 0
    reveal: RevealState | None = None
    detector: DetectorResult | None = None
    suspect: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """Plain numbers for JSON (no arrays)."""
        return {
            "verdict": self.verdict, "message": self.message, "claim": self.claim,
            "decoded": self.decoded, "match": self.match, "bit_agreement": self.bit_agreement,
            "n_bits": self.n_bits, "p_value": self.p_value, "alpha": self.alpha,
            "asr_tpr": self.tpr, "fpr": self.fpr, "n_queries": self.n_queries,
            "output_check": asdict(self.output_check), "suspect": self.suspect, "config": self.config,
        }


@dataclass
class VerifyEvent:
    """One step of a live verification: ``stage`` is "check", "detector", "reveal" or "done"."""

    stage: str
    state: RevealState | None = None
    result: SegVerification | None = None


def verify_stream(suspect: SegSuspect, images: np.ndarray, mark: SegMark,
                  cfg: SegVerifyConfig | None = None, refit_every: int = 250) -> Iterator[VerifyEvent]:
    """Verify step by step (for live displays); the last event carries the result.

    Parameters
    ----------
    suspect : black box returning probability maps (N, C, H, W)
    images : clean held-out images (M, H, W) in [0, 1] at the suspect's input size
    mark : the owner's mark (from the owner record)
    cfg : :class:`SegVerifyConfig`
    refit_every : LIME queries between intermediate pictures

    Yields
    ------
    VerifyEvent
    """
    cfg = cfg or SegVerifyConfig()
    images = query_images(images, suspect)
    ident = suspect.identity()
    conf = asdict(cfg)
    # probe with stamped and clean images: rounding shows on either
    probe_on = np.random.default_rng(cfg.seed).random((min(4, len(images)), mark.n**2)) < 0.5
    probe = np.concatenate([suspect.predict(images[:4]), suspect.predict(mark.stamp(images[:4], probe_on))])
    check = check_outputs(probe, mark.eps)
    base = dict(claim=mark.claim, output_check=check, alpha=cfg.alpha, suspect=ident, config=conf)
    if not check.verifiable:
        yield VerifyEvent("done", result=SegVerification(verdict=UNVERIFIABLE, message=check.message, **base))
        return
    yield VerifyEvent("check")
    det = run_detector(suspect, images, mark, cfg.detector_queries, cfg.detector_threshold, cfg.seed,
                       cfg.reveal.stamp_prob)
    yield VerifyEvent("detector")
    state = None
    for state in reveal_stream(suspect, images, mark, cfg.reveal, refit_every=refit_every):
        yield VerifyEvent("reveal", state=state)
    assert state is not None
    agree = state.modules == mark.code.matrix
    k, n = int(agree.sum()), int(agree.size)
    p_value = float(binomtest(k, n, 0.5, alternative="greater").pvalue)
    match = state.decoded == mark.claim
    if match and p_value < cfg.alpha:
        verdict = VERIFIED
        msg = (f"The suspect's uncertainty draws the owner's QR code: it decodes to {mark.claim!r} and "
               f"{k}/{n} modules agree (p = {p_value:.2g} under H0 of an innocent model).")
    else:
        verdict = NOT_VERIFIED
        why = (f"decodes to {state.decoded!r}" if state.decoded else "does not decode") if not match \
            else f"bit agreement is not significant (p = {p_value:.2g} >= {cfg.alpha:g})"
        msg = f"No evidence of the mark: the revealed picture {why}; {k}/{n} modules agree with the claim's code."
    result = SegVerification(
        verdict=verdict, message=msg, decoded=state.decoded, match=match, bit_agreement=k / n, n_bits=n,
        p_value=p_value, tpr=det.tpr, fpr=det.fpr, n_queries=state.n_queries, reveal=state, detector=det,
        **base,
    )
    yield VerifyEvent("done", result=result)


def verify_segmenter(suspect: SegSuspect, images: np.ndarray, mark: SegMark,
                     cfg: SegVerifyConfig | None = None,
                     progress: Callable[[int, int], None] | None = None) -> SegVerification:
    """Run :func:`verify_stream` to the end; ``progress`` gets (LIME queries done, total)."""
    cfg = cfg or SegVerifyConfig()
    for event in verify_stream(suspect, images, mark, cfg, refit_every=max(cfg.reveal.batch_size, 250)):
        if event.state is not None and progress:
            progress(event.state.n_queries, cfg.reveal.n_samples)
        if event.result is not None:
            return event.result
    raise RuntimeError("verification ended without a result")  # unreachable
