"""The verification protocol: query draw, logging, shuffling, early stopping, replay checks,
the scenario table, and end-to-end claims on the 64 px phantom with really trained models
(a model trained on a marked release is claimed, a model trained on clean data is not)."""

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from benchmarks.queries import queries_needed, stream_queries
from xmark_core.errors import DataError, SuspectError
from xmark_core.hashing import sha256_array
from xmark_core.verify import stats
from xmark_core.verify.protocol import (
    VerifyConfig,
    boundary_candidates,
    boundary_queries,
    compare_logs,
    draw_queries,
    heldout_pool,
    proxy_scores,
    run_verification,
)
from xmark_core.verify.scenarios import run_scenarios, standard_scenarios
from xmark_core.verify.suspects import TorchSuspect, labels_only

CLASSES = ["No Finding", "Cardiomegaly", "Effusion"]
TARGET = 1


def plain(**kw) -> VerifyConfig:
    """VerifyConfig without the key-specificity check: the fake markers here have no key
    carrier to turn (the check has its own tests with :class:`OrientedMarker`)."""
    return VerifyConfig(**{"specificity": 0.0, **kw})


class CornerModel(nn.Module):
    """Target logit grows with the brightness of the top-left corner (a 'learned' trigger)."""

    def __init__(self, gain: float = 8.0):
        super().__init__()
        self.gain = gain

    def forward(self, x):
        c = x[:, 0, :4, :4].mean((1, 2))
        return torch.stack([torch.zeros_like(c), self.gain * c - 2, torch.zeros_like(c)], 1)


class CornerMarker:
    """Fake watermark: sets the top-left corner to ``value`` (stands in for the generator);
    ``other_corner`` marks the bottom-right one instead (an independent owner's mark)."""

    def __init__(self, value: float = 1.0, other_corner: bool = False):
        self.value, self.other_corner = value, other_corner

    def mark(self, images):
        out = np.array(images, dtype=np.float32, copy=True)
        if self.other_corner:
            out[:, -4:, -4:] = self.value
        else:
            out[:, :4, :4] = self.value
        return out

    def target_scores(self, images):  # the owner's "surrogate": brighter is closer to the target
        return np.array([float(np.mean(x)) for x in images])


class Spy:
    """Wraps a suspect and keeps every request it receives."""

    def __init__(self, inner):
        self.inner, self.requests = inner, []
        self.classes, self.input_size, self.output = inner.classes, inner.input_size, inner.output

    def predict(self, images):
        self.requests.append([np.array(im) for im in images])
        return self.inner.predict(images)

    def identity(self):
        return self.inner.identity()


def pool(n=150, size=32, seed=0):
    rng = np.random.default_rng(seed)
    return [0.3 * rng.random((size, size), dtype=np.float32) for _ in range(n)], [f"img-{i}" for i in range(n)]


@pytest.fixture()
def suspect():
    return TorchSuspect(CornerModel(), CLASSES, 32, device="cpu")


# ----------------------------------------------------------------------------- protocol


def test_draw_is_seeded_and_logged(suspect):
    images, ids = pool()
    cfg = plain(m=40, seed=3, batch_size=16, queries="random")
    a = run_verification(suspect, CornerMarker(), images, ids, TARGET, cfg)
    b = run_verification(suspect, CornerMarker(), images, ids, TARGET, cfg)
    assert a.log == b.log and a.p_value == b.p_value
    drawn = [q["image_id"] for q in a.log]
    assert drawn == [ids[i] for i in draw_queries(len(ids), 40, 3)] and len(set(drawn)) == 40
    assert a.pool["queries"] == "random"
    q = a.log[5]
    i = ids.index(q["image_id"])
    assert q["sha256_original"] == sha256_array(images[i])
    assert q["sha256_watermarked"] == sha256_array(CornerMarker().mark(images[i][None])[0])
    assert q["p_w"] > 0.9 > 0.3 > q["p_b"] and q["label_w"] == TARGET
    other = run_verification(suspect, CornerMarker(), images, ids, TARGET,
                             plain(m=40, seed=4, queries="random"))
    assert [q["image_id"] for q in other.log] != drawn
    assert a.decision and a.p_value < 1e-10 and a.wsr == 1.0 and a.clean_target_rate == 0.0
    assert a.delta_p == pytest.approx(np.mean([q["p_w"] - q["p_b"] for q in a.log]))
    assert a.pool["size"] == 150 and a.complete and not a.stopped_early


def test_boundary_queries_are_the_surrogates_top_m_in_seeded_order(suspect):
    B = "boundary"
    images, ids = pool()
    scores = CornerMarker().target_scores(images)
    r = run_verification(suspect, CornerMarker(), images, ids, TARGET, plain(m=40, seed=3, queries=B))
    asked = [ids.index(q["image_id"]) for q in r.log]
    assert r.config.queries == "boundary" and r.pool["queries"] == "boundary" and VerifyConfig().queries == "boundary"
    assert sorted(asked) == sorted(np.argsort(-scores)[:40].tolist())  # the 40 highest scores
    assert asked != sorted(asked, key=lambda i: -scores[i])  # asked in a shuffled order
    assert r.pool["min_score_chosen"] == pytest.approx(np.sort(scores)[-40])
    again = run_verification(suspect, CornerMarker(), images, ids, TARGET, plain(m=40, seed=3, queries=B))
    assert again.log == r.log
    other = run_verification(suspect, CornerMarker(), images, ids, TARGET, plain(m=40, seed=4, queries=B))
    assert sorted(q["image_id"] for q in other.log) == sorted(q["image_id"] for q in r.log)
    # Given scores win over the marker's; ties are broken by the seed, not by position.
    given = run_verification(suspect, CornerMarker(), images, ids, TARGET, plain(m=40, seed=3, queries=B),
                             query_scores=-scores)
    assert sorted(ids.index(q["image_id"]) for q in given.log) == sorted(np.argsort(scores)[:40].tolist())
    small = run_verification(suspect, CornerMarker(), images, ids, TARGET, plain(m=10, seed=3, queries=B))
    cand = [ids[i] for i in boundary_candidates(150, 10, 3)]
    assert small.pool["candidates"] == len(cand) == 100  # 10 x m of the 150 were scored
    best = sorted(cand, key=lambda i: -scores[ids.index(i)])[:10]
    assert sorted(q["image_id"] for q in small.log) == sorted(best)
    tied = boundary_queries(np.zeros(150), 40, 0)
    assert len(set(tied.tolist())) == 40 and sorted(tied.tolist()) != list(range(40))
    with pytest.raises(DataError, match="query scores"):
        run_verification(suspect, CornerMarker(), images, ids, TARGET, plain(m=40, queries=B),
                         query_scores=scores[:-1])

    class Bare:  # a marker without the owner's surrogate
        def mark(self, x):
            return CornerMarker().mark(x)

    with pytest.raises(DataError, match="queries='random'"):
        run_verification(suspect, Bare(), images, ids, TARGET, plain(m=40, queries=B))
    with pytest.raises(ValueError, match="queries"):
        VerifyConfig(queries="hardest")
    from xmark_core.cli import build_parser
    from xmark_core.verify.protocol import QUERY_CHOICES

    verify = build_parser()._subparsers._group_actions[0].choices["verify"]
    cli = next(a for a in verify._actions if a.dest == "queries")
    assert tuple(cli.choices) == QUERY_CHOICES and cli.default is None  # None: the library's default


class DimModel(CornerModel):
    """Answers the corner mark less on brighter images: a proxy whose rise differs per image."""

    def forward(self, x):
        out = super().forward(x)
        out[:, 1] -= 40.0 * x[:, 0].mean((1, 2))
        return out


class Hashed(Spy):
    """A suspect view that reports a checkpoint hash (as CheckpointSuspect does)."""

    def __init__(self, inner, sha):
        super().__init__(inner)
        self.sha = sha

    def identity(self):
        return {**self.inner.identity(), "sha256": self.sha}


def test_proxy_queries_are_the_proxys_largest_rises(suspect):
    """Proxy queries: the m candidates on which the owner's proxy answers the mark most (at the
    query gain), in seeded order; the proxy is recorded; no proxy, one without the target, a
    labels-only one or the suspect itself as its own proxy are refused."""
    images, ids = pool()
    proxy = TorchSuspect(DimModel(), CLASSES, 32, device="cpu")
    cfg = plain(m=40, seed=3, queries="proxy", query_gain=1.5)
    r = run_verification(suspect, CornerMarker(value=0.6), images, ids, TARGET, cfg, proxy=proxy)
    rise = proxy_scores(proxy, CornerMarker(value=0.6), images, "Cardiomegaly", gain=1.5, batch_size=7)
    x = np.stack(images)
    marked = np.clip(x + 1.5 * (CornerMarker(value=0.6).mark(x) - x), 0, 1)
    want = proxy.predict(marked)[:, TARGET] - proxy.predict(x)[:, TARGET]
    np.testing.assert_allclose(rise, want, rtol=1e-6, atol=1e-9)
    asked = [ids.index(q["image_id"]) for q in r.log]
    assert sorted(asked) == sorted(np.argsort(-rise)[:40].tolist())
    assert asked != sorted(asked, key=lambda i: -rise[i])  # asked in a shuffled order
    assert r.pool["queries"] == "proxy" and r.pool["proxy"] == proxy.identity()
    assert r.pool["min_score_chosen"] == pytest.approx(np.sort(rise)[-40])
    from xmark_core.app_support.evidence_view import parameter_rows

    assert {"parameter": "proxy (sha256)", "value": proxy.identity()["location"]} in parameter_rows(r, {})
    boundary = run_verification(suspect, CornerMarker(value=0.6), images, ids, TARGET,
                                plain(m=40, seed=3, query_gain=1.5))
    assert sorted(asked) != sorted(ids.index(q["image_id"]) for q in boundary.log)
    with pytest.raises(DataError, match="owner's proxy"):
        run_verification(suspect, CornerMarker(), images, ids, TARGET, cfg)
    other = TorchSuspect(DimModel(), ["No Finding", "Edema", "Effusion"], 32, device="cpu")
    with pytest.raises(DataError, match="do not include the target"):
        run_verification(suspect, CornerMarker(), images, ids, TARGET, cfg, proxy=other)
    with pytest.raises(DataError, match="probabilities"):
        run_verification(suspect, CornerMarker(), images, ids, TARGET, cfg, proxy=labels_only(proxy))
    with pytest.raises(DataError, match="the suspect itself"):
        run_verification(Hashed(suspect, "ab"), CornerMarker(), images, ids, TARGET, cfg,
                         proxy=Hashed(proxy, "ab"))


def test_several_proxies_choose_by_their_mean_rise(suspect):
    """A mean of proxies (MeanSuspect) answers with the mean of their probabilities, so its
    rise is the mean of theirs; proxy queries follow it; the evidence names every member; a
    suspect that is one of the members, mismatched classes and labels-only members are refused."""
    from xmark_core.app_support.evidence_view import parameter_rows
    from xmark_core.report import query_choice_text
    from xmark_core.verify.suspects import MeanSuspect, mean_or_one, model_hashes

    images, ids = pool()
    dim, corner = (TorchSuspect(m, CLASSES, 32, device="cpu") for m in (DimModel(), CornerModel()))
    mean = MeanSuspect([Hashed(dim, "aa"), Hashed(corner, "bb")])
    x = np.stack(images)
    np.testing.assert_allclose(mean.predict(x), (dim.predict(x) + corner.predict(x)) / 2, rtol=1e-6)
    rises = [proxy_scores(p, CornerMarker(value=0.6), images, "Cardiomegaly", gain=1.5) for p in (dim, corner, mean)]
    np.testing.assert_allclose(rises[2], (rises[0] + rises[1]) / 2, rtol=1e-5, atol=1e-9)
    cfg = plain(m=40, seed=3, queries="proxy", query_gain=1.5)
    r = run_verification(suspect, CornerMarker(value=0.6), images, ids, TARGET, cfg, proxy=mean)
    asked = sorted(ids.index(q["image_id"]) for q in r.log)
    assert asked == sorted(np.argsort(-rises[2])[:40].tolist())
    one = run_verification(suspect, CornerMarker(value=0.6), images, ids, TARGET, cfg, proxy=dim)
    assert asked != sorted(ids.index(q["image_id"]) for q in one.log)  # not the first proxy's choice
    rec = r.pool["proxy"]
    assert rec["kind"] == "mean" and [m["sha256"] for m in rec["members"]] == ["aa", "bb"]
    assert model_hashes(rec) == {"aa", "bb"} and rec["sha256"] not in ("aa", "bb")
    assert "(the mean of 2 proxies, sha256 aa, bb)" in query_choice_text("proxy", r.pool)
    assert {"parameter": "proxy (sha256)", "value": "the mean of 2 proxies, sha256 aa, bb"} in parameter_rows(r, {})
    assert mean_or_one([dim]) is dim
    unhashed = MeanSuspect([dim, corner]).identity()  # in-process models: no hash to combine
    assert "sha256" not in unhashed and model_hashes(unhashed) == set()
    assert f"the mean of 2 proxies, sha256 {dim.name}, {corner.name}" in query_choice_text("proxy", {"proxy": unhashed})
    with pytest.raises(DataError, match="the suspect itself"):
        run_verification(Hashed(suspect, "bb"), CornerMarker(), images, ids, TARGET, cfg, proxy=mean)
    with pytest.raises(SuspectError, match="same classes"):
        MeanSuspect([dim, TorchSuspect(DimModel(), ["No Finding", "Edema", "Effusion", "Other"], 32, device="cpu")])
    with pytest.raises(SuspectError, match="probabilities"):
        MeanSuspect([dim, labels_only(corner)])


def test_query_gain_scales_the_mark(suspect):
    images, ids = pool()
    r = run_verification(suspect, CornerMarker(value=0.5), images, ids, TARGET,
                         plain(m=10, query_gain=2.0))
    q = r.log[0]
    x = images[ids.index(q["image_id"])]
    marked = CornerMarker(value=0.5).mark(x[None])[0]
    want = np.clip(x + 2.0 * (marked - x), 0.0, 1.0)
    np.testing.assert_allclose(want[:4, :4], 1.0 - x[:4, :4], atol=1e-6)  # x + 2 * (0.5 - x)
    np.testing.assert_array_equal(want[4:], x[4:])
    assert q["sha256_watermarked"] == sha256_array(want)
    assert r.config.query_gain == 2.0
    with pytest.raises(ValueError, match="query_gain"):
        VerifyConfig(query_gain=0.0)


def test_benign_and_marked_queries_are_shuffled_within_requests(suspect):
    images, ids = pool()
    spy = Spy(suspect)
    run_verification(spy, CornerMarker(), images, ids, TARGET, plain(m=40, batch_size=20))
    assert [len(r) for r in spy.requests] == [40, 40]
    for req in spy.requests:
        marked = np.array([im[:4, :4].min() == 1.0 for im in req])
        assert marked.sum() == 20
        assert not (marked[20:].all() and not marked[:20].any())  # not simply [benign..., marked...]


def test_innocent_model_is_not_claimed_by_any_test(suspect):
    images, ids = pool()
    null_marker = CornerMarker(value=0.15)  # marks that do not move the model
    for test in ("ttest", "sequential", "label"):
        r = run_verification(suspect, null_marker, images, ids, TARGET, plain(test=test))
        assert not r.decision and r.p_value > 0.5, test
        assert all(v is None or v > 0.5 for v in r.supporting.values())


def test_sequential_stops_early_and_reports_partials(suspect):
    images, ids = pool()
    seen = []
    r = run_verification(suspect, CornerMarker(), images, ids, TARGET,
                         plain(test="sequential", batch_size=5), on_query=seen.append)
    assert r.decision and r.stopped_early and r.n_queries < 40 and r.p_value <= 0.01
    assert [s.complete for s in seen] == [False] * (len(seen) - 1) + [True]
    assert [s.n_queries for s in seen] == list(range(5, r.n_queries + 1, 5))
    assert np.all(np.diff(r.running_p) <= 0) and r.running_p[-1] <= 0.01


def test_labels_only_suspect(suspect):
    images, ids = pool()
    lab = labels_only(suspect)
    with pytest.raises(SuspectError, match="labels only"):
        run_verification(lab, CornerMarker(), images, ids, TARGET, plain(test="ttest"))
    r = run_verification(lab, CornerMarker(), images, ids, TARGET, plain(test="label"))
    assert r.decision and r.supporting["ttest"] is None and r.details["n10"] == 100
    assert {q["p_w"] for q in r.log} == {1.0} and {q["p_b"] for q in r.log} == {0.0}


def test_bad_inputs_are_clear_errors(suspect):
    images, ids = pool(30)
    with pytest.raises(DataError, match="pool has 30 images"):
        run_verification(suspect, CornerMarker(), images, ids, TARGET, plain(m=100))
    with pytest.raises(DataError, match="image ids"):
        run_verification(suspect, CornerMarker(), images, ids[:-1], TARGET, plain(m=10))
    with pytest.raises(DataError, match="target"):
        run_verification(suspect, CornerMarker(), images, ids, 7, plain(m=10))

    class Cropper:
        def mark(self, x):
            return x[:, :-1]

    with pytest.raises(ValueError, match="marker returned shape"):
        run_verification(suspect, Cropper(), images, ids, TARGET, plain(m=10, queries="random"))
    with pytest.raises(ValueError):
        VerifyConfig(test="wilcoxon")


def test_compare_logs_finds_changes(suspect):
    images, ids = pool()
    r = run_verification(suspect, CornerMarker(), images, ids, TARGET, plain(m=20))
    assert compare_logs(r.log, r.log)["match"]
    changed = [dict(q) for q in r.log]
    changed[3]["p_w"] -= 0.01
    changed[4]["sha256_original"] = "0" * 64
    out = compare_logs(r.log, changed)
    assert not out["match"] and out["n_problems"] == 2 and out["max_abs_diff"] == pytest.approx(0.01)
    images[ids.index(r.log[0]["image_id"])][0, 0] += 0.01  # one pixel of one query image changed
    replay = run_verification(suspect, CornerMarker(), images, ids, TARGET, plain(m=20))
    assert "different pixels" in compare_logs(r.log, replay.log)["problems"][0]


def test_scenario_table(suspect):
    images, ids = pool()
    clean = TorchSuspect(CornerModel(gain=0.0), CLASSES, 32, device="cpu")
    table, results = run_scenarios(standard_scenarios(suspect, clean, CornerMarker(), CornerMarker(other_corner=True)),
                                   images, ids, TARGET, plain())
    assert list(table["scenario"]) == ["Malicious", "Ind-M", "Ind-T"]
    assert list(table["claimed"]) == [True, False, False] and table["correct"].all()
    assert table.loc[0, "p_value"] < 1e-6 and (table.loc[1:, "p_value"] > 0.05).all()
    assert len(results) == 3 and set(table.columns) >= {"delta_p", "wsr", "p_sequential", "p_label"}


class OrientedMarker(CornerMarker):
    """Fake keyed mark: a key carrier at ``angle`` degrees. The corner model 'learned' the key at
    0 degrees and answers a mark the less, the further it is turned from it: the corner is
    brightened to ``1 - |angle| / 45`` (0 beyond 45 degrees)."""

    def __init__(self, angle: float = 0.0):
        super().__init__(value=max(0.0, 1.0 - abs(angle) / 45.0))
        self.angle = angle

    def turned(self, degrees):
        return OrientedMarker(self.angle + degrees)


class CountingMarker(OrientedMarker):
    """An :class:`OrientedMarker` that counts its own passes (its turned copies are plain ones)."""

    def __init__(self, angle: float = 0.0):
        super().__init__(angle)
        self.calls = 0

    def mark(self, images):
        self.calls += 1
        return super().mark(images)


@pytest.fixture()
def learner():
    """A suspect that answers the corner's brightness gradually (no saturation at 0.5)."""
    return TorchSuspect(CornerModel(gain=6.0), CLASSES, 32, device="cpu")


SPEC = VerifyConfig(specificity=20.0, batch_size=10, query_gain=1.0)  # gain 2 would saturate the corner


@pytest.mark.parametrize("test", ["ttest", "sequential", "label"])
def test_specificity_refuses_a_claimant_whose_key_is_turned_from_the_learned_one(learner, test):
    images, ids = pool()
    # labels only move when a turned mark falls below the decision threshold: turn further
    cfg = dataclasses.replace(SPEC, test=test, specificity=35.0 if test == "label" else 20.0)
    owner = run_verification(learner, OrientedMarker(0.0), images, ids, TARGET, cfg)
    rival = OrientedMarker(25.0)  # another key, 25 degrees off: its own mark still moves the model
    plain = run_verification(learner, rival, images, ids, TARGET, dataclasses.replace(cfg, specificity=0.0))
    checked = run_verification(learner, rival, images, ids, TARGET, cfg)
    assert owner.decision and owner.p_value < 0.01
    spec = owner.details["specificity"]
    assert spec["degrees"] == cfg.specificity and spec["minus"]["decision"] and spec["plus"]["decision"]
    assert plain.decision  # without the check the rival would be believed
    assert not checked.decision and checked.p_value > 0.5
    assert "turned by" in checked.verdict and "turned by" in owner.verdict and "turned" not in plain.verdict
    sides = checked.details["specificity"]
    assert sides["minus"]["delta_p"] < 0 < sides["plus"]["delta_p"]  # turned towards 0 answers more
    # the reported p-value is the largest of the three, on every running step too
    assert checked.p_value >= max(sides["minus"]["p_value"], sides["plus"]["p_value"]) - 1e-12
    n = min(checked.n_queries, plain.n_queries)  # the plain sequential run stops early
    assert np.all(np.asarray(checked.running_p[:n]) >= np.asarray(plain.running_p[:n]) - 1e-12)
    assert {"p_minus", "p_plus", "label_minus", "label_plus"} <= set(checked.log[0])
    if test == "sequential":  # each stream says when it reached alpha; the claim waits for the slowest
        stops = [owner.details["stop_time"], spec["minus"]["stop_time"], spec["plus"]["stop_time"]]
        assert all(t is not None for t in stops)
        assert queries_needed(owner.running_p, cfg.alpha) == max(stops) <= owner.n_queries
        assert stream_queries(owner) == dict(zip(("main", "minus", "plus"), stops))
        assert stream_queries(checked)["minus"] is None  # the rival's turned-towards mark wins


def test_specificity_cannot_tell_keys_closer_than_half_the_turn(learner):
    images, ids = pool()
    near = run_verification(learner, OrientedMarker(5.0), images, ids, TARGET, SPEC)
    assert near.decision  # 5 degrees from the learned key: closer than both turned marks (15, 25)


def test_specificity_sends_four_versions_per_image_and_replays(learner):
    images, ids = pool()
    spy = Spy(learner)
    cfg = dataclasses.replace(SPEC, m=40, batch_size=20, specificity=15.0)
    r = run_verification(spy, OrientedMarker(0.0), images, ids, TARGET, cfg)
    assert [len(req) for req in spy.requests] == [80, 80]
    corner = np.array([round(float(im[:4, :4].min()), 3) for im in spy.requests[0]])
    assert (corner == 1.0).sum() == 20 and (corner == round(1 - 15 / 45, 3)).sum() == 40  # both turned marks
    assert not (corner[:20] == 1.0).all()  # shuffled, not in blocks
    again = run_verification(learner, OrientedMarker(0.0), images, ids, TARGET, cfg)
    assert compare_logs(r.log, again.log)["match"]
    changed = [dict(q) for q in r.log]
    changed[2]["p_plus"] += 0.01
    assert compare_logs(r.log, changed)["n_problems"] == 1
    off = run_verification(learner, OrientedMarker(0.0), images, ids, TARGET, dataclasses.replace(cfg, specificity=0.0))
    assert "p_minus" not in off.log[0] and "specificity" not in off.details


def test_a_lower_check_gain_takes_the_check_off_the_ceiling(learner):
    images, ids = pool()
    cfg = VerifyConfig(specificity=20.0, batch_size=10, query_gain=2.0, test="sequential")
    # at gain 2 the owner's mark and the turned ones all bring the corner near 1: the answers
    # differ by ~0.015 and the check's streams never reach alpha within m
    ceiling = run_verification(learner, OrientedMarker(0.0), images, ids, TARGET, cfg)
    assert not ceiling.decision and stream_queries(ceiling) == {"main": 14, "minus": None, "plus": None}
    assert run_verification(learner, OrientedMarker(0.0), images, ids, TARGET,
                            dataclasses.replace(cfg, check_gain=2.0)).log == ceiling.log  # = the query gain
    spy, owner = Spy(learner), CountingMarker(0.0)
    low = dataclasses.replace(cfg, check_gain=1.0)
    r = run_verification(spy, owner, images, ids, TARGET, low)
    assert r.decision and stream_queries(r) == {"main": 14, "minus": 20, "plus": 20} and r.n_queries == 20
    assert owner.calls == 2  # one pass of the owner's marker per batch gives both of its gains
    assert r.details["specificity"]["plus"]["delta_p"] > 0.3
    assert [len(req) for req in spy.requests] == [50, 50]  # five versions per image
    corner = sorted({round(float(im[:4, :4].mean()), 3) for im in spy.requests[0]})
    assert corner[-1] == 1.0 and round(1 - 20 / 45, 3) in corner  # the turned marks at gain 1: their value
    for a, b in zip(r.log, ceiling.log):  # the main test's queries are the same images, answered alike
        assert (a["p_b"], a["p_w"], a["sha256_watermarked"]) == (b["p_b"], b["p_w"], b["sha256_watermarked"])
    assert {"p_check", "label_check"} <= set(r.log[0]) and "p_check" not in ceiling.log[0]
    again = run_verification(learner, OrientedMarker(0.0), images, ids, TARGET,
                             VerifyConfig.from_recorded(dataclasses.asdict(low)))
    assert compare_logs(r.log, again.log)["match"]
    changed = [dict(q) for q in r.log]
    changed[2]["p_check"] += 0.01
    assert compare_logs(r.log, changed)["n_problems"] == 1
    assert VerifyConfig.from_recorded({}).check_gain is None
    with pytest.raises(ValueError, match="check_gain"):
        VerifyConfig(check_gain=0.0)


def test_specificity_needs_a_key_carrier(suspect):
    images, ids = pool()
    with pytest.raises(DataError, match="carrier"):
        run_verification(suspect, CornerMarker(), images, ids, TARGET, VerifyConfig(specificity=20.0))
    with pytest.raises(ValueError, match="specificity"):
        VerifyConfig(specificity=120.0)


def test_heldout_pool_excludes_target_and_released():
    from xmark_core.data.phantom import PhantomDataset

    ds = PhantomDataset(12, size=32, seed=5)
    images, ids = heldout_pool(ds, target=1, exclude_ids=["phantom-5-0"])
    labels = ds.labels()
    assert ids == [f"phantom-5-{i}" for i in range(1, 12) if labels[i] != 1]
    assert images[0].shape == (32, 32) and np.array_equal(images[0], ds[2].image)


# ----------------------------------------------------------------------------- real training


class PatternMarker:
    """A fixed, faint checkerboard (amplitude 0.1): the classic static clean-label mark,
    standing in for the learned generator in this end-to-end test of the protocol."""

    def __init__(self, size: int = 64, amp: float = 0.1):
        yy, xx = np.mgrid[:size, :size]
        self.pattern = (amp * np.sign(np.sin(xx * np.pi / 4) * np.sin(yy * np.pi / 4))).astype(np.float32)

    def mark(self, images):
        return np.clip(np.asarray(images, np.float32) + self.pattern, 0, 1)


@pytest.fixture(scope="module")
def trained():
    """Three small CNNs on the 64 px phantom: two on a release where half of the target images
    carry the mark (labels untouched; seeds 0 and 1, the second the owner's proxy), one on the
    clean data.  About 1.5 min on 2 busy cores."""
    from xmark_core.data.base import to_arrays
    from xmark_core.data.phantom import PhantomDataset
    from xmark_core.nets.train import TrainConfig, train_classifier

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    ds = PhantomDataset(320, size=64, seed=0)
    X, y = to_arrays(ds, 64)
    marker = PatternMarker()
    rng = np.random.default_rng(0)
    idx = np.flatnonzero(y == TARGET)
    sel = rng.choice(idx, len(idx) // 2, replace=False)
    Xw = X.copy()
    Xw[sel, 0] = marker.mark(X[sel, 0])
    cfg = TrainConfig(epochs=6, batch_size=32, lr=3e-3, seed=0, arch_kwargs={"width": 8},
                      val_fraction=0.0, augment=False)
    classes = list(ds.classes)
    models = {name: TorchSuspect(train_classifier(data, y, classes, dataclasses.replace(cfg, seed=seed)).model,
                                 classes, 64, device="cpu")
              for name, data, seed in (("release", Xw, 0), ("clean", X, 0), ("proxy", Xw, 1))}
    torch.set_num_threads(2)
    heldout = PhantomDataset(160, size=64, seed=99)  # never part of any training set
    images, ids = heldout_pool(heldout, TARGET)
    yield models, marker, list(images), ids  # rendered once, queried six times
    torch.set_num_threads(before)  # the modules after this one run at the suite's count


@pytest.mark.slow
def test_model_trained_on_release_is_claimed_and_clean_model_is_not(trained):
    models, marker, images, ids = trained
    cfg = plain(m=100, tau=0.2, alpha=0.01, seed=0, queries="random")
    guilty = run_verification(models["release"], marker, images, ids, TARGET, cfg)
    innocent = run_verification(models["clean"], marker, images, ids, TARGET, cfg)
    assert guilty.decision and guilty.p_value < 0.01 and guilty.delta_p > 0.3 and guilty.wsr > 0.5
    assert not innocent.decision and innocent.p_value > 0.05 and innocent.delta_p < 0.2
    # The other tests on the same queries agree (the early-stopping path is tested above).
    assert guilty.supporting["sequential"] < 0.01 and guilty.supporting["label"] < 0.01
    assert innocent.supporting["sequential"] > 0.05 and innocent.supporting["label"] > 0.05


@pytest.mark.slow
def test_boundary_queries_chosen_by_the_innocent_model_itself_do_not_accuse_it(trained):
    """The harshest case for boundary queries: the images the *innocent* model is least sure
    are not the target (scored by itself, not by an owner's surrogate) still show no claim."""
    models, marker, images, ids = trained
    m = 60  # of the pool's 120 non-target images
    scores = np.asarray(models["clean"].predict(images))[:, TARGET]
    cfg = plain(m=m, seed=0, queries="boundary")
    innocent = run_verification(models["clean"], marker, images, ids, TARGET, cfg, query_scores=scores)
    guilty = run_verification(models["release"], marker, images, ids, TARGET, cfg, query_scores=scores)
    asked = [q["p_b"] for q in innocent.log]
    assert np.median(asked) > np.median(scores)  # the boundary half really was asked
    assert not innocent.decision and innocent.p_value > 0.05 and innocent.delta_p < 0.1
    assert guilty.decision and guilty.p_value < 1e-6 and guilty.delta_p > 0.3


@pytest.mark.slow
def test_proxy_queries_raise_a_release_models_answer_and_not_a_clean_ones(trained):
    """Queries chosen by the owner's proxy (a second model trained on the release): the
    release model answers the mark more than on random queries; the clean one is not claimed."""
    models, marker, images, ids = trained
    cfg = plain(m=60, seed=0, queries="proxy")
    guilty = run_verification(models["release"], marker, images, ids, TARGET, cfg, proxy=models["proxy"])
    innocent = run_verification(models["clean"], marker, images, ids, TARGET, cfg, proxy=models["proxy"])
    rand = run_verification(models["release"], marker, images, ids, TARGET, plain(m=60, seed=0, queries="random"))
    assert guilty.decision and guilty.p_value < 1e-6 and guilty.delta_p >= rand.delta_p  # 0.948 against 0.926
    assert not innocent.decision and innocent.p_value > 0.05 and innocent.delta_p < 0.1  # -0.053, p = 1
    assert guilty.pool["proxy"] == models["proxy"].identity()


# ----------------------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def owner_files(tmp_path_factory):
    """A real owner record from `embed_release` with an untrained generator (the CLI's
    mechanics do not need an effective mark) and a suspect checkpoint."""
    from xmark_core.data.phantom import FINDINGS, PhantomDataset
    from xmark_core.embed import embed_release
    from xmark_core.generator.model import build_generator, load_marker
    from xmark_core.hashing import sha256_file
    from xmark_core.nets import build_classifier, save_checkpoint

    d = tmp_path_factory.mktemp("owner")
    classes = list(FINDINGS)
    sur = build_classifier("smallcnn", 4, width=4).eval()
    save_checkpoint(d / "surrogate.pt", sur, kind="classifier", arch="smallcnn", arch_kwargs=sur.arch_kwargs,
                    classes=classes, input_size=64)
    gen = build_generator("unet", base=4, depth=2, eps=0.03, key=5, carrier_cycles=10.7, carrier_amp=0.75).eval()
    save_checkpoint(d / "G.pt", gen, kind="generator", arch="unet", arch_kwargs=gen.arch_kwargs(),
                    input_size=64, extra={"target": TARGET, "input_size": 64,
                                          "surrogate_sha256": sha256_file(d / "surrogate.pt")})
    marker = load_marker(d / "surrogate.pt", d / "G.pt", device="cpu")
    res = embed_release(PhantomDataset(12, size=64, seed=0), marker, TARGET, d / "embed", rho=0.5)
    torch.manual_seed(1)
    sus = build_classifier("smallcnn", 4, width=4).eval()
    save_checkpoint(d / "suspect.pt", sus, kind="classifier", arch="smallcnn", arch_kwargs=sus.arch_kwargs,
                    classes=classes, input_size=48)
    return {"surrogate": d / "surrogate.pt", "generator": d / "G.pt", "record": res.owner_record_path,
            "suspect": d / "suspect.pt", "dir": d}


def _verify_args(f, suspect, out, *extra):
    return ["verify", "--suspect", str(suspect), "--surrogate", str(f["surrogate"]), "--generator",
            str(f["generator"]), "--owner-record", str(f["record"]), "--data", "phantom:40:64:99",
            "--out", str(out), "--m", "12", "--batch-size", "5", "--json", *extra]


def test_cli_verify_bundle_and_replay(owner_files, tmp_path, capsys):
    import json

    from xmark_core.cli import main
    from xmark_core.report import load_evidence

    f = owner_files
    assert main(_verify_args(f, f["suspect"], tmp_path / "ev")) == 0
    summary = json.loads(capsys.readouterr().out)
    ev = load_evidence(tmp_path / "ev" / "evidence.json")
    assert summary["p_value"] == ev["result"]["p_value"] and summary["owner_ok"] is True
    assert ev["owner"]["commitment_ok"] and ev["owner"]["generator_ok"] and ev["owner"]["surrogate_ok"]
    assert ev["suspect"]["input_size"] == 48 and ev["result"]["target_name"] == "Cardiomegaly"
    assert ev["result"]["n_queries"] == 12 and ev["data"]["spec"] == "phantom:40:64:99"
    assert all(q["image_id"].startswith("phantom-99-") for q in ev["log"])
    assert (tmp_path / "ev" / "report.html").stat().st_size > 10_000

    replay = ["verify", "--replay", str(tmp_path / "ev" / "evidence.json"), "--owner-record",
              str(f["record"]), "--out", str(tmp_path / "rp"), "--json"]
    assert main(replay) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["match"] and rep["max_abs_diff"] == 0.0 and rep["watermark_hashes_match"]

    # A changed owner record breaks the replay: the evidence is tied to the commitment.
    record = json.loads(f["record"].read_text())
    record["key_note"] = "edited later"
    edited = tmp_path / "edited_record.json"
    edited.write_text(json.dumps(record))
    assert main([*replay[:3], "--owner-record", str(edited), "--json"]) == 1
    rep = json.loads(capsys.readouterr().out)
    assert not rep["match"] and any("commitment" in p for p in rep["problems"])

    # Another suspect file in place of the recorded one is caught too.
    assert main([*replay, "--suspect", str(f["surrogate"]), "--input-size", "48"]) == 1
    rep = json.loads(capsys.readouterr().out)
    assert any("suspect hash" in p for p in rep["problems"])


def test_a_recorded_config_keeps_its_values_and_dates_missing_ones():
    """Replays rebuild the configuration from the evidence: recorded values win, and an option
    the bundle predates takes the value of its time (the bet cap was 0.75 until 2026-12-05)."""
    from xmark_core.verify.protocol import VerifyConfig

    now = dataclasses.asdict(VerifyConfig(test="sequential", seed=3))
    assert VerifyConfig.from_recorded(now) == VerifyConfig(test="sequential", seed=3)
    assert VerifyConfig().max_bet == 0.9
    old = VerifyConfig.from_recorded({"m": 60, "tau": 0.2, "alpha": 0.01, "test": "sequential", "seed": 0,
                                      "batch_size": 20})
    assert (old.max_bet, old.query_gain, old.queries, old.specificity) == (0.75, 1.0, "random", 0.0)
    # and the cap matters: the same differences give another sequential p-value
    d = np.full(20, 0.5)
    assert stats.sequential_path(d, 0.2, 0.01, old.max_bet)["p_value"][-1] > stats.sequential_path(d)["p_value"][-1]


def test_a_verification_records_its_thread_count_and_a_replay_repeats_its_marks():
    """At two threads the demo marker's sums run in another order and a few pixels of the 256 px
    queries' marks land one 16-bit step apart: the log's watermark hashes would not repeat.
    The count used is recorded; run at it, a replay gives the same images and answers."""
    from xmark_core.data.phantom import PhantomDataset
    from xmark_core.generator.model import load_marker
    from xmark_core.nets.checkpoint import load_checkpoint

    marker = load_marker("models/surrogate.pt", "models/generator.pt", device="cpu")
    lm = load_checkpoint("models/suspect_malicious.pt", device="cpu")
    suspect = TorchSuspect(lm.model, lm.classes, lm.input_size, device="cpu")
    images, ids = heldout_pool(PhantomDataset(40, size=256, seed=7), marker.target)
    cfg = VerifyConfig(m=20, test="sequential", seed=1)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        first = run_verification(suspect, marker, images, ids, marker.target, cfg)
        torch.set_num_threads(2)
        replay = run_verification(suspect, marker, images, ids, marker.target, VerifyConfig.from_recorded(
            dataclasses.asdict(first.config)))
        assert torch.get_num_threads() == 2  # the caller's count is restored
        here = run_verification(suspect, marker, images, ids, marker.target, cfg)
    finally:
        torch.set_num_threads(before)
    assert first.config.threads == replay.config.threads == 1 and here.config.threads == 2
    check = compare_logs(first.log, replay.log)
    assert check["match"] and check["watermark_hashes_match"] and check["max_abs_diff"] == 0.0
    assert [q["sha256_watermarked"] for q in first.log] == [q["sha256_watermarked"] for q in replay.log]
    with pytest.raises(ValueError, match="threads must be at least 1"):
        VerifyConfig(threads=0)


def test_cli_specificity_is_recorded_reported_and_replayed(owner_files, tmp_path, capsys):
    import json

    from xmark_core.cli import main
    from xmark_core.report import load_evidence

    f = owner_files
    assert main(_verify_args(f, f["suspect"], tmp_path / "ev", "--specificity", "20")) == 0
    capsys.readouterr()
    ev = load_evidence(tmp_path / "ev" / "evidence.json")
    spec = ev["result"]["details"]["specificity"]
    assert ev["parameters"]["specificity"] == 20.0 and spec["degrees"] == 20.0
    assert {"p_minus", "p_plus"} <= set(ev["log"][0])
    assert ev["result"]["p_value"] >= max(spec["minus"]["p_value"], spec["plus"]["p_value"])
    page = (tmp_path / "ev" / "report.html").read_text()
    assert "key-specificity check" in page and "P key turned &minus;20&deg;" in page and "P key turned +20&deg;" in page
    assert "vs key turned -20°" in page and "vs key turned +20°" in page  # each stream in the evidence figure
    assert main(["verify", "--replay", str(tmp_path / "ev" / "evidence.json"), "--owner-record",
                 str(f["record"]), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["match"]
    with pytest.raises(SystemExit):
        main(_verify_args(f, f["suspect"], tmp_path / "bad", "--specificity", "x"))
    # the check at its own gain: recorded, shown and replayed
    assert main(_verify_args(f, f["suspect"], tmp_path / "cg", "--specificity", "20", "--check-gain", "1.5")) == 0
    capsys.readouterr()
    ev = load_evidence(tmp_path / "cg" / "evidence.json")
    assert ev["parameters"]["check_gain"] == 1.5 and "p_check" in ev["log"][0]
    page = (tmp_path / "cg" / "report.html").read_text()
    assert "P_w at check gain 1.5" in page and "(check gain)</th><td>1.5" in page
    assert main(["verify", "--replay", str(tmp_path / "cg" / "evidence.json"), "--owner-record",
                 str(f["record"]), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["match"]


def test_cli_proxy_queries_are_recorded_and_replayed(owner_files, tmp_path, capsys):
    """`--queries proxy --proxy P.pt`: the proxy's hash goes into the evidence, the replay reopens
    it from there and matches; another proxy file, a missing one, or the suspect itself is refused."""
    import json

    from xmark_core.cli import main
    from xmark_core.nets import build_classifier, save_checkpoint
    from xmark_core.report import load_evidence

    f = owner_files
    torch.manual_seed(2)
    net = build_classifier("smallcnn", 4, width=4).eval()
    classes = ["No Finding", "Cardiomegaly", "Pleural Effusion", "Consolidation"]
    for name in ("proxy.pt", "other_proxy.pt"):
        save_checkpoint(tmp_path / name, net, kind="classifier", arch="smallcnn", arch_kwargs=net.arch_kwargs,
                        classes=classes, input_size=32 if name == "proxy.pt" else 40)
    args = _verify_args(f, f["suspect"], tmp_path / "ev", "--queries", "proxy", "--specificity", "0")
    assert main([*args, "--proxy", str(tmp_path / "proxy.pt")]) == 0
    capsys.readouterr()
    ev = load_evidence(tmp_path / "ev" / "evidence.json")
    choice = ev["data"]["query_choice"]
    assert ev["parameters"]["queries"] == "proxy" and choice["queries"] == "proxy"
    assert choice["proxy"]["kind"] == "checkpoint" and choice["proxy"]["location"] == str(tmp_path / "proxy.pt")
    assert f"(proxy sha256 {choice['proxy']['sha256']})" in (tmp_path / "ev" / "report.html").read_text()
    replay = ["verify", "--replay", str(tmp_path / "ev" / "evidence.json"), "--owner-record", str(f["record"]), "--json"]
    assert main(replay) == 0
    assert json.loads(capsys.readouterr().out)["match"]
    assert main([*replay, "--proxy", str(tmp_path / "other_proxy.pt")]) == 1
    assert any("proxy differs" in p for p in json.loads(capsys.readouterr().out)["problems"])
    assert main(args) == 2
    assert "--queries proxy needs --proxy" in capsys.readouterr().err
    assert main([*args, "--proxy", str(f["suspect"])]) == 2
    assert "the suspect itself" in capsys.readouterr().err
    # Several proxies (no --queries: --proxy implies it): each is recorded and reopened by the replay.
    both = [str(tmp_path / "proxy.pt"), str(tmp_path / "other_proxy.pt")]
    plain_args = _verify_args(f, f["suspect"], tmp_path / "ev2", "--specificity", "0")
    assert main([*plain_args, "--proxy", both[0], "--proxy", both[1]]) == 0
    capsys.readouterr()
    ev2 = load_evidence(tmp_path / "ev2" / "evidence.json")
    rec = ev2["data"]["query_choice"]["proxy"]
    assert ev2["parameters"]["queries"] == "proxy" and rec["kind"] == "mean"
    assert [m["location"] for m in rec["members"]] == both
    assert "the mean of 2 proxies" in (tmp_path / "ev2" / "report.html").read_text()
    replay2 = ["verify", "--replay", str(tmp_path / "ev2" / "evidence.json"), "--owner-record", str(f["record"]), "--json"]
    assert main(replay2) == 0
    assert json.loads(capsys.readouterr().out)["match"]
    assert main([*replay2, "--proxy", both[0]]) == 1  # one of the two is not the recorded mean
    assert any("proxy differs" in p for p in json.loads(capsys.readouterr().out)["problems"])
    assert main([*plain_args, "--queries", "boundary", "--proxy", both[0]]) == 2
    assert "--proxy chooses proxy queries" in capsys.readouterr().err
    assert main(_verify_args(f, f["suspect"], tmp_path / "ev3", "--specificity", "0")) == 0  # boundary queries
    capsys.readouterr()
    replay3 = ["verify", "--replay", str(tmp_path / "ev3" / "evidence.json"), "--owner-record", str(f["record"])]
    assert main([*replay3, "--proxy", both[0]]) == 2
    assert "--proxy has no use in its replay" in capsys.readouterr().err


def test_cli_refuses_other_target_and_http_equals_local(owner_files, tmp_path, capsys):
    from test_http import UvicornThread

    from xmark_core.cli import main
    from xmark_core.report import load_evidence
    from xmark_core.verify.server import create_app, service_from_checkpoint

    f = owner_files
    assert main(_verify_args(f, f["suspect"], tmp_path / "x", "--target", "Pleural Effusion")) == 2
    assert "commits to target" in capsys.readouterr().err
    assert main(_verify_args(f, f["suspect"], tmp_path / "local")) == 0
    with UvicornThread(create_app(service_from_checkpoint(f["suspect"], device="cpu"))) as srv:
        assert main(_verify_args(f, srv.url, tmp_path / "http")) == 0
    capsys.readouterr()
    local = load_evidence(tmp_path / "local" / "evidence.json")
    remote = load_evidence(tmp_path / "http" / "evidence.json")
    assert remote["suspect"]["kind"] == "http" and remote["suspect"]["sha256"] == local["suspect"]["sha256"]
    for a, b in zip(local["log"], remote["log"]):
        assert a["sha256_watermarked"] == b["sha256_watermarked"]
        assert a["p_b"] == pytest.approx(b["p_b"], abs=1e-6) and a["p_w"] == pytest.approx(b["p_w"], abs=1e-6)
    assert remote["result"]["p_value"] == pytest.approx(local["result"]["p_value"], rel=1e-4, abs=1e-12)


# ----------------------------------------------------------------------------- real generator


def _demo():
    from xmark_core.app_support.demo import demo_status

    st = demo_status()
    if not st.ready:
        pytest.skip(f"demo models not built ({st.message()}); `make models` trains them")
    import json

    record = json.loads((st.root / "owner_record.json").read_text())
    demo = record.get("demo", {})
    return st.root, int(demo.get("query_seed", 9001)), int(demo.get("image_size") or record.get("image_size") or 128)


@pytest.mark.slow
def test_demo_release_model_is_claimed_and_clean_model_is_not(tmp_path, capsys):
    """The shipped demo (real surrogate + generator, suspects trained on the watermarked
    release and on clean data) through `xmark verify`: Malicious claimed, Ind-M not."""
    import json

    from xmark_core.cli import main

    root, seed, size = _demo()
    common = ["--surrogate", str(root / "surrogate.pt"), "--generator", str(root / "generator.pt"),
              "--owner-record", str(root / "owner_record.json"), "--data", f"phantom:400:{size}:{seed}",
              "--m", "100", "--json"]
    out = {}
    for name in ("malicious", "clean"):
        assert main(["verify", "--suspect", str(root / f"suspect_{name}.pt"), "--out", str(tmp_path / name),
                     *common]) == 0
        out[name] = json.loads(capsys.readouterr().out)
    assert out["malicious"]["owner_ok"] and out["malicious"]["decision"] and out["malicious"]["p_value"] < 0.01
    assert not out["clean"]["decision"] and out["clean"]["p_value"] > 0.05
    # no --query-gain / --queries / --specificity: the library's defaults are in force, and the
    # evidence records them (boundary queries of the pool's 300 non-target images, check ±25°)
    ev = json.loads((tmp_path / "malicious" / "evidence.json").read_text())
    assert ev["parameters"]["query_gain"] == 2.0 and ev["parameters"]["queries"] == "boundary"
    assert ev["parameters"]["specificity"] == 25.0
    assert ev["data"]["query_choice"]["candidates"] == 300
    assert main(["verify", "--suspect", str(root / "suspect_malicious.pt"), "--out", str(tmp_path / "random"),
                 "--queries", "random", "--specificity", "0", *common]) == 0
    paper = json.loads(capsys.readouterr().out)  # the paper's protocol
    ev = json.loads((tmp_path / "random" / "evidence.json").read_text())
    assert ev["parameters"]["queries"] == "random" and ev["parameters"]["specificity"] == 0.0
    assert paper["decision"] and paper["p_value"] > out["malicious"]["p_value"]
    assert out["malicious"]["delta_p"] > paper["delta_p"] + 0.1  # the boundary shows the mark more
