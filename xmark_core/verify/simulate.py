"""Monte-Carlo check of the ownership tests: false-accusation rate under H0 and power.

``python -m xmark_core.verify.simulate [--streams 200000] [--json]`` prints, for each null
law (all bounded; most on the boundary ``E[P_w - P_b] = tau``) the share of innocent
streams that each test accuses, and for each alternative the share it claims and the
median stopping time of the sequential test.  Vectorised numpy, seconds per law.
"""

from __future__ import annotations

import argparse
import json
import zlib

import numpy as np

from xmark_core.verify.stats import _label_pvalue, sequential_path, ttest_pvalues

# name -> description; every law has E[d] = tau exactly unless said otherwise.
NULLS = {
    "uniform": "tau + U(-0.5, 0.5): symmetric",
    "two_point": "tau +- 0.8 with prob. 1/2: widest symmetric law",
    "realistic": "P_b ~ Beta(1,6), P_w = P_b + tau + symmetric noise",
    "beta_skewed": "2 Beta(3,2) - 1: mean tau, skewness -0.29",
    "u_shaped": "2 Beta(0.6,0.4) - 1: mass near -1 and +1",
    "rare_crash": "-1 with prob. 1%, else a small rise (adversarial skew)",
    "inside": "U(-0.3, 0.3): innocent, mean 0 (inside H0)",
}
ALTERNATIVES = {"strong": (0.5, 0.25), "moderate": (0.4, 0.3), "weak": (0.3, 0.3)}


def null_streams(name: str, rng: np.random.Generator, shape: tuple[int, int], tau: float = 0.2) -> np.ndarray:
    """Differences ``d = P_w - P_b`` in [-1, 1] drawn from the null law ``name``.

    The Beta-based laws have mean 0.2 whatever ``tau`` is; use them with ``tau = 0.2``.
    """
    if name == "uniform":
        return tau + rng.uniform(-0.5, 0.5, shape)
    if name == "two_point":
        return tau + np.where(rng.random(shape) < 0.5, -0.8, 0.8)
    if name == "realistic":
        pb = rng.beta(1, 6, shape)
        half = np.minimum(np.minimum(pb + tau, 1 - pb - tau), 0.3)
        return tau + rng.uniform(-1, 1, shape) * np.maximum(half, 0)
    if name == "beta_skewed":
        return 2 * rng.beta(3, 2, shape) - 1
    if name == "u_shaped":
        return 2 * rng.beta(0.6, 0.4, shape) - 1
    if name == "rare_crash":
        q = 0.01
        return np.where(rng.random(shape) < q, -1.0, (tau + q) / (1 - q))
    if name == "inside":
        return rng.uniform(-0.3, 0.3, shape)
    raise KeyError(f"unknown null law {name!r}; known: {list(NULLS)}")


def as_pairs(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities ``(P_w, P_b)`` in [0, 1] with ``P_w - P_b = d`` exactly."""
    return np.clip(d, 0, 1), np.clip(-d, 0, 1)


def seed_of(name: str, offset: int = 0) -> int:
    """A stable per-law seed (Python's ``hash`` of a str changes between runs)."""
    return zlib.crc32(name.encode()) + offset


def false_accusation_rates(streams: int = 20000, m: int = 100, tau: float = 0.2,
                           alpha: float = 0.01) -> list[dict]:
    """Share of null streams each test rejects; the sequential test is counted as rejecting
    if its running p-value *ever* reaches alpha (a watcher who stops at the best moment)."""
    rows = []
    for name, desc in NULLS.items():
        d = null_streams(name, np.random.default_rng(seed_of(name)), (streams, m), tau)
        _, p = ttest_pvalues(*as_pairs(d), tau)
        seq = sequential_path(d, tau, alpha)["p_value"]
        rows.append({"null": name, "law": desc, "mean_d": float(d.mean()),
                     "ttest": float((p < alpha).mean()), "sequential": float((seq <= alpha).any(1).mean()),
                     "binomial_se": float(np.sqrt(alpha * (1 - alpha) / streams))})
    for p01 in (0.0, 0.1, 0.3):  # label-only: trinomial hit pairs on the boundary
        rng = np.random.default_rng(seed_of("label", int(p01 * 100)))
        u = rng.random((streams, m))
        t = (u < p01 + tau).sum(1) - ((u >= p01 + tau) & (u < 2 * p01 + tau)).sum(1)
        pv = {int(v): _label_pvalue(int(v), m, float(tau)) for v in np.unique(t)}
        rate = float(np.mean([pv[int(v)] < alpha for v in t]))
        rows.append({"null": f"label p01={p01}", "law": "hits: p10 = p01 + tau", "mean_d": tau,
                     "label": rate, "binomial_se": float(np.sqrt(alpha * (1 - alpha) / streams))})
    return rows


def power(streams: int = 20000, m: int = 100, tau: float = 0.2, alpha: float = 0.01) -> list[dict]:
    """Claim rates under normal-ish alternatives ``d ~ N(mu, sd)`` clipped to [-1, 1]."""
    rows = []
    for name, (mu, sd) in ALTERNATIVES.items():
        d = np.clip(np.random.default_rng(seed_of(name)).normal(mu, sd, (streams, m)), -1, 1)
        _, p = ttest_pvalues(*as_pairs(d), tau)
        hit = sequential_path(d, tau, alpha)["p_value"] <= alpha
        stop = hit.argmax(1)[hit.any(1)] + 1
        rows.append({"alternative": name, "mean_d": float(d.mean()), "sd_d": sd,
                     "ttest": float((p < alpha).mean()), "sequential": float(hit[:, -1].mean()),
                     "sequential_median_stop": float(np.median(stop)) if stop.size else None})
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--streams", type=int, default=20000)
    ap.add_argument("--m", type=int, default=100)
    ap.add_argument("--tau", type=float, default=0.2)
    ap.add_argument("--alpha", type=float, default=0.01)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    out = {"false_accusation": false_accusation_rates(a.streams, a.m, a.tau, a.alpha),
           "power": power(a.streams, a.m, a.tau, a.alpha)}
    if a.json:
        print(json.dumps(out, indent=2))
        return
    print(f"False-accusation rate, {a.streams} null streams of m={a.m}, tau={a.tau}, alpha={a.alpha}")
    for r in out["false_accusation"]:
        cols = "  ".join(f"{k}={r[k]:.4f}" for k in ("ttest", "sequential", "label") if k in r)
        print(f"  {r['null']:<16} {cols}   ({r['law']}; +-{r['binomial_se']:.4f} s.e.)")
    print("Power")
    for r in out["power"]:
        print(f"  {r['alternative']:<9} mean d={r['mean_d']:.3f} sd={r['sd_d']}: ttest={r['ttest']:.3f} "
              f"sequential={r['sequential']:.3f} (median stop {r['sequential_median_stop']})")


if __name__ == "__main__":
    main()
