"""The key check at a lower query gain: does a less saturated answer sharpen it? (lab; repo root)

The check compares the suspect's answer to the owner's mark with its answer to the mark turned by
+/-d degrees (margin 0), both at the query gain (2). A strong learner answers both near 1 at gain 2
(saturated), so the differences are small: the check's streams are the sequential test's slowest
(the hardened preset's first suspect: +25 degrees, 49 queries), and a rival key 10 degrees off
the owner's passes its own check (Ind-T). At a lower gain the answers are off the ceiling, where
an orientation tuning curve is steeper. Here the ownership test stays at gain 2 and only the
check's three marks (the key's and its two turned ones) take the gain G.

For a benchmark run's kept models (no training): the Malicious suspects (the run's size and
arch, not the proxies) and the run's independent keys' generators (``generator_key{K}.pt``; Ind-T:
every key against every suspect), on the run's proxy queries (the mean of the kept proxies of
``proxy_seeds``; the same queries for every key, as the benchmark), per check gain G (GAINS) and
angle d (DS): owners claimed (t-test; p the largest of the three tests), Ind-T pairs claimed, and
the sequential claim's median queries on the first suspect and pooled, over ORDERS random orders
of the queries (the same orders at every G and d).

    PYTHONPATH=docs/lab/learnability:. python docs/lab/learnability/check_gain.py \
        results/full_hard_res128_seeds3 results/full_hard2_models
"""
import os
import sys
from pathlib import Path

import numpy as np
import torch
from kept import kept_malicious, kept_marker, kept_owner, run_settings

from benchmarks.context import BenchContext, Log, model_file
from benchmarks.protocol import XMARK
from xmark_core.nets.checkpoint import load_checkpoint
from xmark_core.verify import stats
from xmark_core.verify.protocol import choose_queries, proxy_scores
from xmark_core.verify.suspects import MeanSuspect, TorchSuspect

torch.set_num_threads(int(os.environ.get("THREADS", 1)))
run_dir, folder = sys.argv[1], Path(sys.argv[2])
s = run_settings(run_dir)
GAINS = [float(g) for g in os.environ.get("GAINS", "0.5,1,1.5,2").split(",")]
DS = [float(d) for d in os.environ.get("DS", "15,20,25").split(",")]
ORDERS = int(os.environ.get("ORDERS", 20))
t, tau, alpha = s.target, s.tau, s.alpha

ctx = BenchContext.create(s, Log())
owner = kept_owner(folder, s)
proxies = [TorchSuspect(load_checkpoint(folder / model_file((XMARK, s.arch, s.input_size, sd)), device="cpu").model,
                        s.classes, s.input_size) for sd in s.proxy_seeds]
cfg = ctx.verify_config()
scores = proxy_scores(MeanSuspect(proxies) if len(proxies) > 1 else proxies[0], owner, ctx.pool,
                      s.classes[t], cfg.query_gain)
order, _ = choose_queries(owner, ctx.pool, cfg, scores=scores)
x = np.stack([np.asarray(ctx.pool[int(i)], np.float32) for i in order])
suspects = kept_malicious([folder], s)
print(f"{len(x)} proxy queries; suspects {[sus.name for sus in suspects]}", flush=True)


MARKS = Path(os.environ.get("MARKS", "/tmp/exp/check_gain_marks"))  # the marks, cached per key and angle


def unit_mark(marker, name: str) -> np.ndarray:
    path = MARKS / f"{name}.npy"
    if not path.exists():
        MARKS.mkdir(parents=True, exist_ok=True)
        np.save(path, np.asarray(marker.mark(x), np.float32) - x)
    return np.load(path)


def answers(delta: np.ndarray, gain: float) -> np.ndarray:
    """(n_suspects, m) target probabilities of the queries carrying ``gain`` times ``delta``."""
    q = np.clip(x + gain * delta, 0.0, 1.0)
    return np.stack([sus.predict(q)[:, t] for sus in suspects])


def key_answers(marker, key: int) -> dict:
    """The suspects' answers to ``marker``'s mark (of ``key``) at the query gain and, per check
    gain and angle, to its mark and its turned marks."""
    own = unit_mark(marker, f"{key}")
    turned = {(d, side): unit_mark(marker.turned(side * d), f"{key}_{side * d:g}") for d in DS for side in (-1, 1)}
    return {"w": answers(own, cfg.query_gain),
            **{("own", g): answers(own, g) for g in GAINS},
            **{(k, g): answers(v, g) for k, v in turned.items() for g in GAINS}}


def ttest_p(a: np.ndarray, b: np.ndarray, margin: float) -> np.ndarray:
    return np.array([stats.paired_ttest(a[j], b[j], margin, alpha).p_value for j in range(len(a))])


def claims(benign: np.ndarray, ans: dict, g: float, d: float) -> np.ndarray:
    """Per suspect: the t-test claim's p (the largest of the ownership test and both checks)."""
    p = [ttest_p(ans["w"], benign, tau)]
    p += [ttest_p(ans[("own", g)], ans[((d, side), g)], 0.0) for side in (-1, 1)]
    return np.max(p, axis=0)


def stop(d: np.ndarray, margin: float) -> np.ndarray:
    """Queries until the betting test reaches alpha, per row of (..., m); m + 1 when never."""
    reached = stats.sequential_path(d, margin, alpha, cfg.max_bet)["p_value"] < alpha
    return np.where(reached.any(-1), reached.argmax(-1) + 1, d.shape[-1] + 1)


def seq_claims(benign: np.ndarray, ans: dict, g: float, d: float, orders: np.ndarray) -> np.ndarray:
    """(n_suspects, ORDERS): queries until the sequential claim (the slowest stream)."""
    streams = [(ans["w"] - benign, tau)] + [(ans[("own", g)] - ans[((d, side), g)], 0.0) for side in (-1, 1)]
    return np.max([stop(diff[:, orders], margin) for diff, margin in streams], axis=0)


def median(n: np.ndarray, m: int) -> str:
    v = float(np.median(n))
    return "-" if v > m else f"{v:g}"


benign = np.stack([sus.predict(x)[:, t] for sus in suspects])
mine = key_answers(owner, s.owner_key)
rivals = [key_answers(kept_marker(folder, s, s.key(i)), s.key(i)) for i in range(s.n_ind_keys)]
seeds = [int(sus.name.rsplit("seed", 1)[1]) for sus in suspects]
orders = np.stack([np.random.default_rng([s.verify_seed, r]).permutation(len(x)) for r in range(ORDERS)])
print("rows: check gain G, angle d | owners claimed (t-test) | Ind-T pairs claimed | sequential median "
      "queries: first suspect, pooled over the suspects | owner's check dP (mean own@G - turned@G, both sides)")
for d in DS:
    for g in GAINS:
        own_p = claims(benign, mine, g, d)
        ind_p = np.stack([claims(benign, r, g, d) for r in rivals])  # (keys, suspects)
        seq = seq_claims(benign, mine, g, d, orders)
        check_dp = np.mean([(mine[("own", g)] - mine[((d, side), g)]).mean(1) for side in (-1, 1)], axis=0)
        print(f"G {g:3g} d {d:2g} | owners {int((own_p < alpha).sum())} of {len(own_p)} | Ind-T "
              f"{int((ind_p < alpha).sum())} of {ind_p.size} | seq first {median(seq[0], len(x))}, pooled "
              f"{median(seq.ravel(), len(x))} | check dP " + " ".join(f"{v:.2f}" for v in check_dp)
              + " | pairs " + " ".join(f"{seeds[j]}/{s.key(i)}" for i, j in zip(*np.nonzero(ind_p < alpha))), flush=True)
