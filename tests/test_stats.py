"""Ownership tests: exactness against scipy, false-accusation rate under H0 by simulation of
thousands of null streams (boundary E[d] = tau and adversarial bounded distributions), and
power under alternatives.  Fixed seeds, vectorised: the whole file runs in seconds."""

import numpy as np
import pytest
from scipy import stats as sps

from xmark_core.verify import simulate
from xmark_core.verify.simulate import as_pairs, seed_of
from xmark_core.verify.stats import (
    DEFAULT_MAX_BET,
    SequentialTest,
    _hit_tail,
    label_only_test,
    paired_ttest,
    sequential_path,
    sequential_test,
    ttest_pvalues,
)

S, M, TAU, ALPHA = 20000, 100, 0.2, 0.01
# Allowed excess over alpha: 3 binomial standard errors of a rate estimated from S streams.
SLACK = 3 * np.sqrt(ALPHA * (1 - ALPHA) / S)


def null_streams(name: str, rng: np.random.Generator, shape=(S, M)) -> np.ndarray:
    return simulate.null_streams(name, rng, shape, TAU)


# ----------------------------------------------------------------------------- t-test


def test_ttest_matches_scipy_ttest_rel_with_margin():
    rng = np.random.default_rng(1)
    p_b = rng.beta(1, 5, 100)
    p_w = np.clip(p_b + rng.normal(0.3, 0.2, 100), 0, 1)
    res = paired_ttest(p_w, p_b, TAU, ALPHA)
    ref = sps.ttest_rel(p_w, p_b + TAU, alternative="greater")
    assert res.statistic == pytest.approx(ref.statistic, rel=1e-10)
    assert res.p_value == pytest.approx(ref.pvalue, rel=1e-10)
    assert res.delta_p == pytest.approx(np.mean(p_w - p_b))
    assert res.decision == (ref.pvalue < ALPHA)


def test_ttest_zero_variance_and_bad_input():
    assert paired_ttest(np.full(10, 0.9), np.full(10, 0.1)).p_value == 0.0  # every rise 0.8 > tau
    assert paired_ttest(np.full(10, 0.25), np.full(10, 0.1)).p_value == 1.0  # every rise 0.15 < tau
    with pytest.raises(ValueError):
        paired_ttest(np.full(10, 1.5), np.zeros(10))
    with pytest.raises(ValueError):
        paired_ttest(np.zeros(10), np.zeros(9))


@pytest.mark.parametrize("null", ["uniform", "two_point", "realistic", "inside"])
def test_ttest_false_accusation_rate_at_most_alpha(null):
    rng = np.random.default_rng(seed_of(null))
    d = null_streams(null, rng)
    assert abs(d.mean() - (0.0 if null == "inside" else TAU)) < 2e-3
    _, p = ttest_pvalues(*as_pairs(d), TAU)
    assert (p < ALPHA).mean() <= ALPHA + SLACK


def test_ttest_is_not_distribution_free_but_betting_test_is():
    """Documented weakness: a rare large drop makes the t-test accuse at the H0 boundary far
    more often than alpha (no drop in a sample -> tiny variance -> huge t).  The betting
    test, valid for any bounded law, stays below alpha on the same streams."""
    d = null_streams("rare_crash", np.random.default_rng(7))
    _, p = ttest_pvalues(*as_pairs(d), TAU)
    assert (p < ALPHA).mean() > 10 * ALPHA
    seq_p = sequential_path(d, TAU, ALPHA)["p_value"]
    assert (seq_p.min(axis=1) <= ALPHA).mean() <= ALPHA + SLACK


# ----------------------------------------------------------------------------- sequential


@pytest.mark.parametrize("null", ["uniform", "two_point", "realistic", "beta_skewed", "u_shaped",
                                  "rare_crash", "inside"])
def test_sequential_false_accusation_rate_at_most_alpha_anytime(null):
    """Rejecting at the first time the running p-value touches alpha (the most optimistic
    watcher) is still a false accusation at most alpha of the time."""
    d = null_streams(null, np.random.default_rng(seed_of(null, 1)))
    p = sequential_path(d, TAU, ALPHA)["p_value"]
    ever = (p <= ALPHA).any(axis=1)
    assert ever.mean() <= ALPHA + SLACK


def test_sequential_adaptive_adversary_cannot_beat_alpha():
    """The null may change with what it sees: here each stream picks, from the current bet,
    the mean-tau two-point law that is worst for the bettor.  Ville's inequality still holds."""
    rng = np.random.default_rng(3)
    st = SequentialTest(TAU, ALPHA, shape=(S,))
    for _ in range(M):
        lam = st.next_bet()
        spread = np.where(lam > 0.3, 1.0 - TAU, 0.3)  # wide swings when the bet is large
        d = TAU + np.where(rng.random(S) < 0.5, -spread, spread)
        st.update(np.clip(d, -1, 1))
    assert st.rejected.mean() <= ALPHA + SLACK


def test_sequential_path_properties():
    rng = np.random.default_rng(4)
    d = np.clip(rng.normal(0.6, 0.2, 60), -1, 1)
    path = sequential_path(d, TAU, ALPHA)
    assert np.all(np.diff(path["p_value"]) <= 0)  # running p-value never rises
    cap = DEFAULT_MAX_BET / (1 + TAU)
    assert np.all(path["bet"] >= 0) and np.all(path["bet"] <= cap + 1e-12)
    assert path["bet"].max() == pytest.approx(cap)  # a strong signal bets the cap
    assert np.all(path["e_value"] > 0)
    # the worst query after the largest bet keeps a tenth of the capital, never less
    crash = sequential_path(np.append(d, -1.0), TAU, ALPHA)["e_value"]
    assert crash[-1] / crash[-2] == pytest.approx(1 - DEFAULT_MAX_BET)
    # The scalar and the vectorised runs agree.
    st = SequentialTest(TAU, ALPHA)
    for x in d:
        st.update(x)
    assert float(st.capital) == pytest.approx(path["e_value"][-1])
    res = sequential_test(*as_pairs(d), TAU, ALPHA)
    assert res.decision and res.details["stop_time"] == res.n < 60
    assert res.p_value == pytest.approx(path["p_value"][res.n - 1])
    with pytest.raises(ValueError):
        st.update(1.5)


# ----------------------------------------------------------------------------- power


def test_power_under_alternatives():
    rng = np.random.default_rng(5)
    strong = np.clip(rng.normal(0.5, 0.25, (S // 4, M)), -1, 1)  # a watermarked model
    _, p = ttest_pvalues(*as_pairs(strong), TAU)
    assert (p < ALPHA).mean() > 0.99
    seq_p = sequential_path(strong, TAU, ALPHA)["p_value"]
    hit = seq_p <= ALPHA
    assert hit[:, -1].mean() > 0.98
    stop = hit.argmax(axis=1)[hit.any(axis=1)] + 1
    assert np.median(stop) < 50  # the sequential test usually needs half the queries
    weak = np.clip(rng.normal(0.3, 0.3, (S // 4, M)), -1, 1)  # only 0.1 above the margin
    _, p = ttest_pvalues(*as_pairs(weak), TAU)
    assert 0.7 < (p < ALPHA).mean() < 0.95


# ----------------------------------------------------------------------------- label-only


def test_label_pvalue_is_the_supremum_over_the_null():
    m, tau = 30, 0.2
    fine = np.linspace(0, (1 - tau) / 2, 20001)
    for t_obs in (-3, 0, 8, 12, 20):
        hits_w = np.zeros(m, bool)
        hits_b = np.zeros(m, bool)
        if t_obs >= 0:
            hits_w[:t_obs] = True
        else:
            hits_b[:-t_obs] = True
        p = label_only_test(hits_w, hits_b, tau).p_value
        assert p >= _hit_tail(t_obs, m, fine, tau).max() - 1e-9
        assert p <= 1.0


@pytest.mark.parametrize("p01", [0.0, 0.02, 0.1, 0.3])
def test_label_test_false_accusation_rate_at_most_alpha(p01):
    """Trinomial hit pairs on the boundary p10 - p01 = tau, including p01 = 0 where an
    exact McNemar test with a margin would fail."""
    rng = np.random.default_rng(int(p01 * 100) + 11)
    p10 = p01 + TAU
    u = rng.random((S, M))  # per pair: [0, p10) -> hit only when marked, next p01 -> only when not
    t = (u < p10).sum(1) - ((u >= p10) & (u < p10 + p01)).sum(1)  # T = n10 - n01
    pvals = {int(v): label_only_test(np.arange(M) < v, np.zeros(M, bool), TAU).p_value
             for v in np.unique(t) if v >= 0}
    p = np.array([pvals.get(int(v), 1.0) for v in t])
    assert (p < ALPHA).mean() <= ALPHA + SLACK


def test_label_test_power_and_counts():
    rng = np.random.default_rng(12)
    hit_b = rng.random(M) < 0.05
    hit_w = rng.random(M) < 0.7
    res = label_only_test(hit_w, hit_b, TAU, ALPHA)
    assert res.decision and res.p_value < 1e-6
    d = res.details
    assert d["n10"] + d["n01"] + d["n11"] + d["n00"] == M
    assert res.statistic == d["n10"] - d["n01"]
    none = label_only_test(np.zeros(M, bool), np.zeros(M, bool), TAU, ALPHA)
    assert not none.decision and none.p_value > 0.5
