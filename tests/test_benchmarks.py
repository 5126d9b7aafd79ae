"""The benchmark runner end to end on a micro configuration (numbers meaningless, shape and
ranges checked), the PSNR matching the baselines' fairness rests on, and the StealthMark hook.

Runtime: ~30-40 s on 2 busy cores (the micro run; the rest is instantaneous)."""

import io
import json
import math
import os
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

# `benchmarks` is a top-level folder, not part of the installed package: make it
# importable when pytest is run as `pytest` rather than `python -m pytest`.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import report
from benchmarks.baselines import (
    TriggerMarker,
    badnets_trigger,
    blended_trigger,
    match_psnr,
    mean_psnr,
)
from benchmarks.context import CLEAN, BenchContext, Log, quantize16
from benchmarks.protocol import prefetch_generators, train_xmark
from benchmarks.run import ALL_PARTS, StealthMarkPart, run_benchmark, run_stealthmark
from benchmarks.settings import BASELINES, BenchSettings, preset
from xmark_core.embed import n_marked
from xmark_core.generator.model import load_marker
from xmark_core.nets.checkpoint import load_checkpoint


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("bench")
    settings = preset("micro")
    parts = [p for p in ALL_PARTS if p != "stealthmark"]  # StealthMark's helper tests its own part
    summary, problems = run_benchmark(settings, out, parts, Log(quiet=True))
    return settings, out, summary, problems


def test_micro_run_writes_the_summary_shape(micro):
    settings, out, summary, problems = micro
    assert problems == []
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk == summary
    assert set(summary) == set(report.TOP_KEYS)
    assert summary["quick"] is True and isinstance(summary["commit"], str) and summary["commit"]
    assert set(summary["baselines"]) == set(BASELINES)
    for block in [summary["xmark"], *summary["baselines"].values()]:
        assert set(block) == set(report.METHOD_KEYS)
        assert set(block["malicious"]) == {"wsr", "delta_p", "p"}
        assert 0 <= block["malicious"]["p"] <= 1 and 0 <= block["malicious"]["wsr"] <= 1
        assert -1 <= block["malicious"]["delta_p"] <= 1
        assert block["ind_m"]["n"] == settings.n_ind_models
        assert block["ind_t"]["n"] == settings.n_ind_keys * settings.malicious_seeds  # each key, each suspect
        assert 0 <= block["ind_m"]["min_p"] <= 1 and 0 <= block["ind_t"]["min_p"] <= 1
        assert 0 <= block["ba_clean"] <= 1 and -1 <= block["ba_drop"] <= 1
        assert math.isfinite(block["psnr"]) and 0 < block["ssim"] <= 1
    # Every baseline is scaled to X-Mark's PSNR (after 16-bit quantisation of the release).
    for name in BASELINES:
        assert summary["baselines"][name]["psnr"] == pytest.approx(summary["xmark"]["psnr"], abs=0.05)
    assert set(summary["resolution"]) == {"0.5", "0.25", "other_arch"}
    assert all(0 <= r["p"] <= 1 for r in summary["resolution"].values())
    assert set(summary["attacks"]) == {"finetune", "prune", "fineprune", *settings.input_attacks}
    assert all(set(a) == {"wsr", "delta_p", "p", "ba"} and 0 <= a["ba"] <= 1 for a in summary["attacks"].values())
    med = summary["sequential"]["median_queries"]
    assert med is None or 1 <= med <= settings.m
    assert set(summary["speed"]) == set(report.SPEED_KEYS)
    assert all(v > 0 and math.isfinite(v) for v in summary["speed"].values())


def test_micro_run_details_carry_commit_and_settings(micro):
    settings, out, summary, _ = micro
    run = json.loads((out / "run.json").read_text())
    assert run["commit"] == summary["commit"] and run["settings"]["preset"] == "micro"
    # results are bitwise reproducible on one kind of CPU only, so the kind is recorded
    assert run["machine"]["cpu"] and run["machine"]["cpu"] != "unknown"
    assert run["machine"]["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    for part in ("protocol", "resolution", "false_accusations", "attacks", "queries", "speed"):
        d = json.loads((out / "details" / f"{part}.json").read_text())
        assert d["commit"] == summary["commit"] and d["settings"] == run["settings"]
    proto = json.loads((out / "details" / "protocol.json").read_text())["results"]
    xmark_marked = proto["xmark"]["n_marked"]
    assert xmark_marked == round(settings.rho * settings.n_images / 4) and proto["static"]["n_marked"] == xmark_marked
    table = (out / "table.md").read_text()
    assert "| X-Mark |" in table
    cpu = f"{run['machine']['cpu']}, {run['machine']['torch_cpu_capability']})"
    assert table.splitlines()[0].endswith(cpu)  # the heading names the kind of CPU
    rows = json.loads((out / "details" / "speed.json").read_text())["results"]["sizes"].values()
    for r in rows:  # the release-like pass marks rho of the images, the worst case all of them
        assert r["embed_marked"] == r["n"] and r["release_marked"] == n_marked(r["n"], settings.rho)
        assert r["release_marked"] < r["n"] and r["release_io_ratio"] > 0
        assert 0 < r["warmup_s"] < 60  # each size is warmed up before it is timed
        secs = r["seconds"]  # interleaved repeats, medians reported
        assert all(len(v) == settings.speed_repeats == 2 for v in secs.values())
        assert r["io_floor_ratio"] == pytest.approx(np.median(secs["embed"]) / np.median(secs["io"]))
    assert "| release (ρ) / I/O time | first run s |" in (out / "table.md").read_text()
    assert run["settings"]["query_gain"] == settings.query_gain == 2.0
    assert (f"query gain {settings.query_gain}, proxy queries, key-specificity check ±20° (X-Mark)"
            in (out / "table.md").read_text())


def test_benchmark_queries_use_the_settings_query_gain():
    from benchmarks.context import BenchContext

    ctx = BenchContext.__new__(BenchContext)  # verify_config reads only the settings
    ctx.s = preset("micro", query_gain=1.5)
    assert ctx.verify_config().query_gain == 1.5 and ctx.verify_config(query_gain=3.0).query_gain == 3.0


def test_a_release_has_the_same_bits_at_any_thread_count():
    # At two threads the demo marker's sums run in another order: on 16 phantoms at 256 px a few
    # pixels of a few images come out one 16-bit step apart, unless the release is made at one.
    from xmark_core.data.phantom import make_phantom

    marker = load_marker("models/surrogate.pt", "models/generator.pt", device="cpu")
    ctx = BenchContext.__new__(BenchContext)  # add_release reads the settings, data and cache
    ctx.s, ctx.log, ctx.cache, ctx.releases = preset("micro", rho=1.0), Log(quiet=True), {}, {}
    ctx.X = np.stack([make_phantom(5, i, size=256, finding=ctx.s.target).image for i in range(16)]).astype(np.float32)
    ctx.y = np.full(len(ctx.X), ctx.s.target)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        alone = quantize16(np.asarray(marker.mark(ctx.X), np.float32))
        torch.set_num_threads(2)
        released = ctx.add_release("xmark", marker)
        assert torch.get_num_threads() == 2  # the run's count is restored
    finally:
        torch.set_num_threads(before)
    assert len(released.index) == 16 and np.array_equal(released.marked, alone[released.index])


def test_shape_check_catches_departures(micro):
    summary = micro[2]
    broken = json.loads(json.dumps(summary))
    del broken["xmark"]["ind_t"]["min_p"]
    broken["attacks"]["jpeg"]["p"] = float("nan")
    broken["speed"]["extra"] = 1.0
    problems = report.shape_problems(broken)
    assert any("xmark.ind_t: missing ['min_p']" in p for p in problems)
    assert any("attacks.jpeg.p" in p for p in problems)
    assert any("unexpected ['extra']" in p for p in problems)


def test_match_psnr_hits_the_target_for_each_trigger():
    rng = np.random.default_rng(0)
    x = np.clip(0.5 + 0.2 * rng.standard_normal((6, 64, 64)), 0, 1).astype(np.float32)
    for trig in (badnets_trigger(64, 3), blended_trigger(64, 3)):
        m = TriggerMarker("t", trig).scaled_to(x, 42.0)
        assert 0 < m.strength < 1
        assert mean_psnr(x, m.mark(x)) == pytest.approx(42.0, abs=1e-3)
    r = np.full_like(x, 1e-4)  # a weak additive pattern needs a strength far above 1
    a = match_psnr(x, r, 40.0)
    assert a > 1 and mean_psnr(x, np.clip(x + a * r, 0, 1)) == pytest.approx(40.0, abs=1e-3)
    assert match_psnr(x, r, 40.0, max_strength=2.0) == 2.0  # capped: cannot reach the target


def test_stealthmark_hook_passes_what_run_accepts(monkeypatch, tmp_path):
    seen = {}

    def fake_run(quick, out, log=None):
        seen.update(quick=quick, out=out)
        return {"asr": 1.0}

    monkeypatch.setitem(sys.modules, "benchmarks.stealthmark", types.SimpleNamespace(run=fake_run))
    assert run_stealthmark(preset("quick"), tmp_path, Log(quiet=True)) == {"asr": 1.0}
    assert seen == {"quick": True, "out": tmp_path}


def _stealthmark_stand_in(settings, out, log):
    log("stand-in ran")
    if settings.seed < 0:
        raise RuntimeError("stand-in failed")
    return {"pid": os.getpid(), "out": str(out)}


@pytest.mark.parametrize("jobs", [1, 2])
def test_stealthmark_part_runs_beside_with_jobs_and_keeps_its_errors(tmp_path, jobs):
    seconds, problems = {}, []
    part = StealthMarkPart(preset("micro", jobs=jobs), tmp_path, Log(quiet=True), _stealthmark_stand_in)
    sm = part.collect(seconds, problems)
    assert (sm["pid"] != os.getpid()) == (jobs > 1)  # a worker process only with jobs >= 2
    assert sm["out"] == str(tmp_path) and seconds["stealthmark"] > 0 and problems == []
    failing = StealthMarkPart(preset("micro", jobs=jobs, seed=-1), tmp_path, Log(quiet=True), _stealthmark_stand_in)
    assert failing.collect(seconds, problems) == {"error": "RuntimeError: stand-in failed"}
    assert problems == ["stealthmark: RuntimeError: stand-in failed"]


def test_micro_run_reports_malicious_suspects_over_seeds(micro):
    settings, out, _, _ = micro
    proto = json.loads((out / "details" / "protocol.json").read_text())["results"]
    refs = proto["clean_references"]
    assert [r["seed"] for r in refs] == [settings.suspect_seed(i) for i in range(settings.malicious_seeds)]
    assert refs[0] == proto["clean_reference"] and all(r["train_set"] == CLEAN for r in refs)
    for name in ("xmark", *BASELINES):
        block = proto[name]["malicious_seeds"]
        assert block["n"] == settings.malicious_seeds == 2 and len(block["p"]) == 2
        assert block["p"][0] == pytest.approx(proto[name]["malicious"]["p"])  # the first is the main suspect
        assert block["delta_p"][0] == pytest.approx(proto[name]["malicious"]["delta_p"])
        assert 0 <= block["share_p_below_alpha"] <= 1
        # BA drop per seed against the clean model of the same seed; the first is the summary's
        ba = proto[name]["ba_seeds"]
        assert ba["ba_clean"] == [ref["accuracy"] for ref in refs]
        assert ba["ba_drop"] == pytest.approx([ref["accuracy"] - b for ref, b in zip(refs, ba["ba"])])
        assert (ba["ba_drop"][0], ba["ba"][0]) == pytest.approx((proto[name]["ba_drop"], proto[name]["ba"]))
    table = (out / "table.md").read_text()
    assert "**Malicious suspects over training seeds**" in table
    drops = ", ".join(f"{100 * d:+.2f}" for d in proto["xmark"]["ba_seeds"]["ba_drop"])
    assert f"| {drops} |" in table.split("**Malicious suspects over training seeds**")[1].split("\n\n")[1]
    k = round(proto["xmark"]["malicious_seeds"]["share_p_below_alpha"] * 2)
    lo, hi = report.claim_share_ci(k, 2)
    assert f"| xmark | {k} of 2 | {100 * lo:.0f}–{100 * hi:.0f} % |" in table
    # p is the largest of the ownership test and the key check's (micro: the check at ±20°)
    own = proto["xmark"]["malicious_seeds"]["p_ownership"]
    assert len(own) == 2 and all(o <= p for o, p in zip(own, proto["xmark"]["malicious_seeds"]["p"]))
    assert set(proto["xmark"]["malicious"]["p_turned"]) == {"minus", "plus"}
    assert proto["xmark"]["malicious"]["p"] == max(proto["xmark"]["malicious"]["p_ownership"],
                                                   *proto["xmark"]["malicious"]["p_turned"].values())
    assert proto["badnets"]["malicious"]["p_turned"] == {}  # no key carrier to turn
    assert proto["badnets"]["malicious"]["p_ownership"] == proto["badnets"]["malicious"]["p"]


def test_claim_share_ci_is_the_exact_binomial_interval():
    # Clopper-Pearson: 6 of 10 -> [0.262, 0.878]; 0 of 10 -> [0, 1 - 0.025 ** 0.1]; n of n mirrors it.
    assert report.claim_share_ci(6, 10) == pytest.approx((0.2624, 0.8784), abs=1e-4)
    assert report.claim_share_ci(0, 10) == pytest.approx((0.0, 1 - 0.025 ** 0.1), abs=1e-9)
    assert report.claim_share_ci(10, 10) == pytest.approx((0.025 ** 0.1, 1.0), abs=1e-9)
    lo, hi = report.claim_share_ci(1, 3)
    assert lo < 0.01 and hi > 0.9  # three seeds say almost nothing


def test_micro_run_attacks_sequential_and_ind_t_cover_every_malicious_suspect(micro):
    settings, out, summary, _ = micro
    fa = json.loads((out / "details" / "false_accusations.json").read_text())["results"]
    seeds = [settings.suspect_seed(i) for i in range(settings.malicious_seeds)]
    for row in fa.values():
        assert row["ind_t"]["suspect_seeds"] == seeds and len(row["ind_t"]["p"]) == settings.n_ind_keys * len(seeds)
    assert fa["xmark"]["ind_t_no_check"]["n"] == settings.n_ind_keys * len(seeds)
    for row in fa.values():  # claims name each pair with p < alpha (rows are suspect-major)
        pairs = [(sd, settings.key(i)) for sd in seeds for i in range(settings.n_ind_keys)]
        assert row["ind_t"]["claims"] == [{"suspect_seed": sd, "key": k, "p": q, "delta_p": d}
                                          for (sd, k), q, d in zip(pairs, row["ind_t"]["p"], row["ind_t"]["delta_p"])
                                          if q < settings.alpha]
    att = json.loads((out / "details" / "attacks.json").read_text())["results"]
    proto = json.loads((out / "details" / "protocol.json").read_text())["results"]
    for row in att.values():
        o = row["over_seeds"]
        assert o["n"] == settings.malicious_seeds == 2 and len(o["p"]) == 2
        assert o["p"][0] == pytest.approx(row["p"])  # the rows are the first suspect's
        assert 0 <= o["claimed_within_ba"] <= min(o["claimed"], o["within_ba"]) <= 2
    # Unattacked, each suspect is the protocol's Malicious suspect of that seed.
    assert att["none"]["over_seeds"]["p"] == pytest.approx(proto["xmark"]["malicious_seeds"]["p"])
    assert att["none"]["over_seeds"]["ba_drop"] == [0.0, 0.0]
    seq = json.loads((out / "details" / "queries.json").read_text())["results"]
    pooled = seq["over_seeds"]
    assert len(pooled["per_suspect"]) == 2 and pooled["per_suspect"][0] == seq["per_repeat"]
    assert pooled["runs"] == 2 * settings.seq_repeats
    assert summary["sequential"]["median_queries"] == seq["median_queries"]
    assert set(seq["streams"]) == {"main", "minus", "plus"}  # micro runs the key check
    table = (out / "table.md").read_text()
    assert "claimed over suspects (within 5 BA pt)" in table and "over all 2 Malicious suspects" in table
    assert "each stream's median (the claim waits for the slowest): owner's mark vs original –" in table


def test_false_accusation_table_names_each_ind_t_claim():
    from benchmarks.report import _false_accusations_table
    # run XIV's X-Mark row (results/full_fa_seeds): 3 of 30 key-suspect pairs claimed
    claims = [{"suspect_seed": 100, "key": 1005, "p": 2.41e-4, "delta_p": 0.908},
              {"suspect_seed": 101, "key": 1002, "p": 6.43e-4, "delta_p": 0.329},
              {"suspect_seed": 101, "key": 1005, "p": 2.0e-7, "delta_p": 0.393}]
    fa = {"xmark": {"ind_m": {"share_p_below_alpha": 0.0, "n": 10},
                    "ind_t": {"share_p_below_alpha": 0.1, "n": 30, "claims": claims}},
          "static": {"ind_m": {"share_p_below_alpha": 0.0, "n": 10},
                     "ind_t": {"share_p_below_alpha": 0.0, "n": 30, "claims": []}}}
    text = "\n".join(_false_accusations_table(fa))
    assert "| xmark | 0.0% of 10 | 10.0% of 30 |" in text and "| static | 0.0% of 10 | 0.0% of 30 |" in text
    assert ("xmark key 1005 on suspect seed 100 (ΔP 0.908, p 0.00024); "
            "xmark key 1002 on suspect seed 101 (ΔP 0.329, p 0.00064)") in text
    assert text.endswith("xmark key 1002 on suspect seed 101 (ΔP 0.329, p 0.00064); "
                         "xmark key 1005 on suspect seed 101 (ΔP 0.393, p 2e-07).")
    fa["xmark"]["ind_t"]["claims"] = []
    assert "Ind-T claims" not in "\n".join(_false_accusations_table(fa)) and _false_accusations_table({}) == []


def test_micro_run_verifies_owner_and_ind_t_at_every_check_angle(micro):
    settings, out, _, _ = micro
    fa = json.loads((out / "details" / "false_accusations.json").read_text())["results"]
    proto = json.loads((out / "details" / "protocol.json").read_text())["results"]
    by_c = fa["xmark"]["by_check"]
    assert list(by_c) == ["0", "10", "20"]  # micro's also_checks (0, 10) and its specificity 20, ascending
    assert all("by_check" not in fa[b] for b in settings.baselines)  # no key carrier to turn
    seeds = [settings.suspect_seed(i) for i in range(settings.malicious_seeds)]
    n = settings.n_ind_keys * len(seeds)
    # The run's angle is the run's verification: the Ind-T claims and the protocol's owner p-values.
    assert by_c["20"]["ind_t"]["claims"] == fa["xmark"]["ind_t"]["claims"]
    assert by_c["20"]["owner"]["p"] == pytest.approx(proto["xmark"]["malicious_seeds"]["p"])
    assert by_c["20"]["owner"]["p_turned"][0] == pytest.approx(proto["xmark"]["malicious"]["p_turned"])
    assert by_c["0"]["owner"]["p_turned"] == [{}, {}]  # no check, no turned marks
    assert by_c["10"]["owner"]["p_turned"][0] != by_c["20"]["owner"]["p_turned"][0]  # each angle's own
    assert by_c["20"]["ind_t"]["p"] == fa["xmark"]["ind_t"]["p"]
    assert all(t == {} for t in by_c["0"]["ind_t"]["p_turned"])
    assert by_c["10"]["ind_t"]["p_turned"] != by_c["20"]["ind_t"]["p_turned"]
    assert by_c["0"]["ind_t"]["claimed"] == round(fa["xmark"]["ind_t_no_check"]["share_p_below_alpha"] * n)
    # A check only adds tests (the claim's p is the largest): never a smaller p, never a new claim.
    unchecked = {(c["suspect_seed"], c["key"]) for c in by_c["0"]["ind_t"]["claims"]}
    for r in by_c.values():
        assert r["ind_t"]["n"] == n and r["owner"]["n"] == len(seeds) and r["owner"]["suspect_seeds"] == seeds
        assert r["owner"]["claimed"] == sum(q < settings.alpha for q in r["owner"]["p"])
        assert all(q >= q0 for q, q0 in zip(r["owner"]["p"], by_c["0"]["owner"]["p"]))
        assert all(q >= q0 for q, q0 in zip(r["ind_t"]["p"], by_c["0"]["ind_t"]["p"], strict=True))
        assert {(c["suspect_seed"], c["key"]) for c in r["ind_t"]["claims"]} <= unchecked
    assert "| xmark | none | " in (out / "table.md").read_text()


def test_by_check_table_marks_the_runs_angle_and_names_each_claimed_pair():
    from benchmarks.report import _by_check_table
    # lab XVIII's gate-0.5 suspects (real_keys.py): 11 of 12 owners at every angle, Ind-T 1 / 8 of 120
    def row(claimed, claims):
        return {"owner": {"claimed": 11, "n": 12}, "ind_t": {
            "claimed": claimed, "n": 120, "claims": [{"suspect_seed": sd, "key": 1005} for sd in claims]}}
    fa = {"xmark": {"by_check": {"25": row(8, [100, 103, 104, 105, 107, 108, 109, 110]), "0": row(38, []),
                                 "15": row(1, [108])}},
          "badnets": {"ind_m": {}, "ind_t": {}}}
    text = _by_check_table(fa, 25.0)
    assert [ln.split(" | ")[1] for ln in text[-3:]] == ["none", "±15°", "±25° (the run's)"]
    assert text[-2] == "| xmark | ±15° | 11 of 12 | 1 of 120 | 1005 on 108 |"
    assert text[-3].endswith("| 38 of 120 | – |")
    assert _by_check_table({"badnets": {"ind_m": {}}}) == [] and _by_check_table({}) == []
    assert preset("micro", also_checks=[25, 15, 20.0]).check_angles == (15.0, 20.0, 25.0)  # the run's 20 once
    assert preset("micro", also_checks=[]).check_angles == (20.0,)
    with pytest.raises(ValueError, match="check angles must be 0"):
        preset("micro", also_checks=[-15])
    with pytest.raises(ValueError, match="check_gain must be in"):
        preset("micro", check_gain=0)
    assert preset("micro").check_gain is None and preset("micro", check_gain=1.5).check_gain == 1.5


def test_attack_over_seeds_counts_claims_within_the_ba_budget():
    from benchmarks.attacks import over_seeds
    rows = [{"p": 1e-4, "delta_p": 0.5, "ba": 0.90},   # claimed, drop 2 pt
            {"p": 0.3, "delta_p": 0.1, "ba": 0.80},    # not claimed, drop 12 pt (not deployable)
            {"p": 0.02, "delta_p": 0.2, "ba": 0.91},   # not claimed at alpha 0.01, drop 4 pt
            {"p": 1e-6, "delta_p": 0.6, "ba": 0.87}]   # claimed, drop exactly 5 pt
    o = over_seeds(rows, [0.92, 0.92, 0.95, 0.92], alpha=0.01)
    assert (o["n"], o["claimed"], o["within_ba"], o["claimed_within_ba"]) == (4, 2, 3, 2)
    assert o["ba_drop"] == pytest.approx([0.02, 0.12, 0.04, 0.05])


def test_sequential_medians_are_printed_with_their_half_query():
    """A median of an even number of runs may end in .5; the table keeps it (18.5 was printed as 18)."""
    from benchmarks import report

    streams = report._stream_queries({"main": 12.0, "minus": 16.0, "plus": 18.5}, 25)
    assert streams.endswith("original 12, owner's mark vs key turned -25° 16, owner's mark vs key turned +25° 18.5")
    pooled = report._pooled_queries({"per_suspect": [[30], [37]], "median_queries": 33.5, "reached": 2, "runs": 2})
    assert pooled == "; over all 2 Malicious suspects: 33.5 (2/2 runs)"


def test_median_queries_counts_unreached_runs_as_infinite():
    from benchmarks.queries import median_needed
    assert median_needed([10, 20, None]) == 20
    assert median_needed([10, None, None]) is None
    assert median_needed([]) is None


def test_baselines_setting_runs_x_mark_alone_and_keeps_the_summary_shape(tmp_path):
    torch.set_num_threads(1)
    settings = preset("micro", baselines=[], malicious_seeds=1)
    summary, problems = run_benchmark(settings, tmp_path, ["protocol"], Log(quiet=True), tmp_path / "models")
    assert problems == []
    assert set(summary["baselines"]) == set(BASELINES)
    size, seed = settings.input_size, settings.suspect_seed(0)
    assert sorted(f.name for f in (tmp_path / "models").iterdir()) == sorted([  # --keep-models
        f"clean_smallcnn_{size}px_seed0.pt", f"clean_smallcnn_{size}px_seed{seed}.pt",
        f"xmark_smallcnn_{size}px_seed{seed}.pt", f"xmark_smallcnn_{size}px_seed{settings.proxy_seeds[0]}.pt",
        f"generator_key{settings.owner_key}.pt"])
    kept = load_checkpoint(tmp_path / "models" / f"xmark_smallcnn_{size}px_seed{seed}.pt")
    run = json.loads((tmp_path / "run.json").read_text())
    assert kept.extra["benchmark"] == next(m for m in run["models"] if m["train_set"] == "xmark" and m["seed"] == seed)
    assert all(b["malicious"]["p"] is None and b["psnr"] is None for b in summary["baselines"].values())
    assert summary["xmark"]["malicious"]["p"] is not None
    proto = json.loads((tmp_path / "details" / "protocol.json").read_text())
    assert set(proto["results"]) == {"surrogate", "clean_reference", "clean_references", "xmark"}
    table = (tmp_path / "table.md").read_text()
    assert "| X-Mark |" in table and not any(f"| {b} |" in table for b in BASELINES)
    with pytest.raises(ValueError, match="unknown baselines"):
        preset("micro", baselines=["patch"])


def test_hardened_preset_is_the_full_scale_with_the_strongest_recipe() -> None:
    full, hard = preset("full"), preset("hardened")
    changed = {f for f in BenchSettings.__dataclass_fields__ if getattr(full, f) != getattr(hard, f)}
    assert changed == {"preset", "harden", "harden_ssim", "gen_overrides", "proxy_seeds"}
    assert (hard.harden, hard.harden_ssim, hard.proxy_seeds) == (("smallcnn", "resnet18"), 0.9905, (7, 8, 9))
    assert hard.gen_overrides == {"gate_area": 0.5, "eps": 0.015}
    # summary.json's "quick": false at the issue's scale only
    assert [preset(n).quick for n in ("full", "hardened", "demo", "quick", "micro")] == [False, False, True, True, True]
    assert preset("hardened", proxy_seeds=[7]).proxy_seeds == [7]  # still a preset like the others
    with pytest.raises(ValueError, match="choose full, hardened, demo"):
        preset("huge")


def test_harden_setting_hardens_the_x_mark_release_alone_within_its_floor(tmp_path):
    torch.set_num_threads(1)
    plain, problems = run_benchmark(preset("micro", baselines=["blended"], malicious_seeds=1), tmp_path / "p",
                                    ["protocol"], Log(quiet=True))
    settings = preset("micro", baselines=["blended"], malicious_seeds=1, harden=["smallcnn", "resnet18"])
    hard, problems_h = run_benchmark(settings, tmp_path / "h", ["protocol"], Log(quiet=True), tmp_path / "models")
    assert problems == problems_h == []
    # the owner's clean resnet18 (seed 0, like the surrogate) is trained and kept; the surrogate serves as smallcnn
    assert (tmp_path / "models" / f"clean_resnet18_{settings.input_size}px_seed{settings.seed}.pt").is_file()
    proto = json.loads((tmp_path / "h" / "details" / "protocol.json").read_text())["results"]
    assert proto["xmark"]["info"]["harden"] == ["smallcnn", "resnet18"]
    assert proto["xmark"]["info"]["n_hardened"] == proto["xmark"]["n_marked"]  # every image had room
    x, x0 = hard["xmark"], plain["xmark"]
    assert x0["psnr"] - 0.2 > x["psnr"] >= settings.harden_psnr - 1e-3  # the budget the mark left is spent
    assert proto["xmark"]["psnr_min"] >= settings.harden_psnr - 1e-3
    # the baseline is scaled to X-Mark's (now hardened) PSNR: equal visibility still
    assert hard["baselines"]["blended"]["psnr"] == pytest.approx(x["psnr"], abs=0.05)
    with pytest.raises(ValueError, match="unknown harden"):
        preset("micro", harden=["vit"])


def test_speed_times_the_hardened_embedding_beside_the_plain_one(tmp_path):
    """With ``harden`` set the speed part also times the release's own marker (mark, then
    harden): slower than the mark alone, within the hardening's PSNR floor, and in the table."""
    from benchmarks import protocol as P
    from benchmarks import speed

    torch.set_num_threads(1)
    ctx = BenchContext.create(preset("micro", baselines=[], malicious_seeds=1, harden=["smallcnn"],
                                     speed_images=3, speed_repeats=1), Log(quiet=True))
    methods, _ = P.run(ctx)
    inner = methods["xmark"].marker.inner
    plain = speed.size_row(ctx, inner, 64, tmp_path / "plain")
    hard = methods["xmark"].release_marker  # the one that wrote the release
    assert hard is not None and hard.inner is inner and hard.n_hardened > 0
    row = speed.size_row(ctx, inner, 64, tmp_path / "hard", hard)
    assert "embed_hardened_ips" not in plain
    assert 0 < row["embed_hardened_ips"] < row["embed_ips"]  # 20 PGD steps through the clean model
    assert row["hardened_io_ratio"] > row["io_floor_ratio"]
    assert ctx.s.harden_psnr - 1e-3 <= row["hardened_psnr"] < row["embed_psnr"]
    parts = {"speed": {"sizes": {"64": row}}}
    text = report.markdown(report.build_summary("x" * 40, True, parts, BASELINES), parts, ctx.s.to_dict(), 1.0)
    assert f"64 px {row['embed_hardened_ips']:.2f} img/s" in text


def test_a_refused_kept_model_names_another_thread_count_as_the_likely_cause(tmp_path):
    """Models trained at another thread count have other weights, so what is trained on them
    gets other fingerprints: the log line names the count when the kept file records another,
    and only then."""
    from benchmarks.reuse import load_same
    from xmark_core.nets.checkpoint import save_checkpoint
    from xmark_core.nets.classifiers import build_classifier

    model = build_classifier("smallcnn", 4, width=4)
    save_checkpoint(tmp_path / "m.pt", model, kind="classifier", arch="smallcnn", arch_kwargs={"width": 4},
                    classes=["a", "b", "c", "d"], input_size=32, extra={"fingerprint": "kept", "threads": 1})
    lines: list[str] = []
    assert load_same(tmp_path, "m.pt", lambda: "other", lines.append, threads=2) is None
    assert load_same(tmp_path, "m.pt", lambda: "other", lines.append, threads=1) is None
    assert "kept by a run at 1 torch threads and this one uses 2" in lines[0]
    assert "torch threads" not in lines[1] and "training it again" in lines[1]
    assert load_same(tmp_path, "m.pt", lambda: "kept", lines.append, threads=2) is not None  # the count alone never refuses


def test_reuse_models_trains_nothing_the_folder_holds_and_repeats_the_run(tmp_path, monkeypatch):
    """`--reuse-models` on a run's `--keep-models` folder loads every classifier and generator
    instead of training it and gives the same numbers; a setting that changes the generator's
    recipe retrains it and, since the release changes, the suspects trained on it, but reuses
    the clean models; a file that is not a checkpoint is trained again, not trusted."""
    import benchmarks.context as C
    import benchmarks.protocol as P

    torch.set_num_threads(1)
    parts, kept = ["protocol", "false_accusations"], tmp_path / "models"
    settings = preset("micro", baselines=[], malicious_seeds=1, n_ind_models=1)
    first, problems = run_benchmark(settings, tmp_path / "a", parts, Log(quiet=True), kept)
    assert problems == [] and first["xmark"]["malicious"]["p"] is not None

    def no_training(*args, **kwargs):
        raise AssertionError("trained a model the folder holds")

    with monkeypatch.context() as mp:
        mp.setattr(C, "_fit_classifier", no_training)
        mp.setattr(P, "_fit_generator", no_training)
        lines = io.StringIO()
        second, problems = run_benchmark(settings, tmp_path / "b", parts, Log(stream=lines), kept, kept)
    assert problems == [] and json.dumps(second) == json.dumps(first)
    for detail in ("protocol.json", "false_accusations.json"):  # the same, but where each model came from
        a, b = (json.loads((tmp_path / r / "details" / detail).read_text(),
                           object_hook=lambda d: {k: v for k, v in d.items() if k != "reused_from"}) for r in "ab")
        assert a["results"] == b["results"]
    run = json.loads((tmp_path / "b" / "run.json").read_text())
    assert run["reuse_models"] == str(kept) and len(run["models"]) == 4  # surrogate, clean (reference, Ind-M), suspect, proxy
    assert all(m["reused_from"] == str(kept / f"{m['train_set']}_{m['arch']}_{m['input_size']}px_seed{m['seed']}.pt")
               for m in run["models"])
    keys = [settings.owner_key] + [settings.key(i) for i in range(settings.n_ind_keys)]
    assert all(f"reuse {kept / f'generator_key{k}.pt'} as generator key {k}" in lines.getvalue() for k in keys)

    (kept / f"clean_smallcnn_32px_seed{settings.suspect_seed(0)}.pt").write_bytes(b"not a checkpoint")  # damaged
    other = preset("micro", baselines=[], malicious_seeds=1, n_ind_models=1,
                   gen_overrides={**settings.gen_overrides, "eps": 0.02})
    lines = io.StringIO()
    run_benchmark(other, tmp_path / "c", ["protocol"], Log(stream=lines), None, kept)
    run = json.loads((tmp_path / "c" / "run.json").read_text())
    reused = {(m["train_set"], m["seed"]): m["reused_from"] is not None for m in run["models"]}
    assert reused == {("clean", settings.seed): True, ("clean", settings.suspect_seed(0)): False,
                      ("xmark", settings.suspect_seed(0)): False, ("xmark", settings.proxy_seeds[0]): False}
    log = lines.getvalue()
    assert log.count(f"not reusing {kept / f'generator_key{settings.owner_key}.pt'}: made from other data") == 1
    assert log.count(f"not reusing {kept / f'xmark_smallcnn_32px_seed{settings.suspect_seed(0)}.pt'}: made from") == 1
    bad = kept / f"clean_smallcnn_32px_seed{settings.suspect_seed(0)}.pt"
    assert log.count(f"not reusing a kept model: {bad}: not a PyTorch checkpoint") == 1  # refused once a run


def test_suspect_epochs_train_the_suspects_longer_beside_the_recipes_models(tmp_path, monkeypatch):
    """``suspect_epochs`` changes the suspects' training (Malicious and their clean references),
    not the owner's models: a run reusing a recipe run's folder retrains only the suspects,
    and keeps them beside the recipe's files instead of over them."""
    import benchmarks.context as C

    torch.set_num_threads(1)
    kept, base = tmp_path / "models", preset("micro", baselines=[], malicious_seeds=1)
    run_benchmark(base, tmp_path / "a", ["protocol"], Log(quiet=True), kept)
    before = {f.name: f.read_bytes() for f in kept.iterdir()}
    epochs: dict[int, int] = {}
    real = C._fit_classifier

    def recording(X, y, classes, cfg, progress=None):
        epochs[cfg.seed] = cfg.epochs
        return real(X, y, classes, cfg, progress)

    monkeypatch.setattr(C, "_fit_classifier", recording)
    longer = preset("micro", baselines=[], malicious_seeds=1, suspect_epochs=3)
    assert longer.epochs == 1 and longer.epochs_for(longer.seed) == 1
    assert longer.epochs_for(longer.proxy_seeds[0]) == 1 and longer.epochs_for(longer.suspect_seed(0)) == 3
    assert longer.other_epochs(longer.seed) is None and longer.other_epochs(longer.suspect_seed(0)) == 3
    assert preset("micro", suspect_epochs=1).other_epochs(longer.suspect_seed(0)) is None  # the recipe's own
    summary, problems = run_benchmark(longer, tmp_path / "b", ["protocol"], Log(quiet=True), kept, kept)
    assert problems == [] and summary["xmark"]["malicious"]["p"] is not None
    seed, size = longer.suspect_seed(0), longer.input_size
    assert epochs == {seed: 3}  # one clean reference and one Malicious suspect, both seed 0's
    added = sorted(f.name for f in kept.iterdir() if f.name not in before)
    assert added == [f"clean_smallcnn_{size}px_seed{seed}_ep3.pt", f"xmark_smallcnn_{size}px_seed{seed}_ep3.pt"]
    assert all((kept / name).read_bytes() == data for name, data in before.items())  # the recipe's files untouched
    assert load_checkpoint(kept / added[1]).config["epochs"] == 3
    run = json.loads((tmp_path / "b" / "run.json").read_text())
    assert {(m["train_set"], m["seed"]): m["reused_from"] is not None for m in run["models"]} == {
        ("clean", longer.seed): True, ("xmark", longer.proxy_seeds[0]): True,
        ("clean", seed): False, ("xmark", seed): False}
    assert f"at {size} px, trained 3 epochs (the owner's models 1); m = " in (tmp_path / "b" / "table.md").read_text()
    epochs.clear()  # and a second run reuses the longer suspects from their own files
    again, _ = run_benchmark(longer, tmp_path / "c", ["protocol"], Log(quiet=True), None, kept)
    assert epochs == {} and json.dumps(again) == json.dumps(summary)
    with pytest.raises(ValueError, match="suspect_epochs must be at least 1"):
        preset("micro", suspect_epochs=0)


def test_brief_keeps_each_test_of_a_claim():
    from benchmarks.context import brief

    spec = {"degrees": 25.0, "main": {"p_value": 1e-9}, "minus": {"p_value": 0.3}, "plus": {"p_value": 1e-4}}
    r = types.SimpleNamespace(wsr=0.5, delta_p=0.4, p_value=0.3, decision=False, supporting={},
                              clean_target_rate=0.0, n_queries=100, details={"specificity": spec})
    b = brief(r)  # a claim withheld by the key check: the ownership test alone would claim
    assert b["p"] == 0.3 and b["p_ownership"] == 1e-9 and b["p_turned"] == {"minus": 0.3, "plus": 1e-4}
    r.details = {}  # no check: the ownership test is the claim
    assert brief(r)["p_ownership"] == 0.3 and brief(r)["p_turned"] == {}


def test_train_many_in_processes_gives_the_weights_train_gives():
    """`jobs` must change the wall time only: models trained in worker processes are bitwise
    those the serial path trains, so every benchmark number is the same for any `jobs`."""
    torch.set_num_threads(1)
    lines = io.StringIO()
    parallel = BenchContext.create(preset("micro", jobs=2), Log(stream=lines))
    specs = [(CLEAN, None, None, 100), (CLEAN, None, None, 101), (CLEAN, 48, None, 100)]
    finished: list = []
    parallel.train_many(specs, on_trained=finished.append)
    assert "training 3 models in 2 processes" in lines.getvalue()
    # each model reaches the callback once, as it finishes (resolution verifies it there)
    assert len(finished) == 3 and {id(t) for t in finished} == {id(t) for t in parallel.models.values()}
    serial = BenchContext.create(preset("micro"), Log(quiet=True))
    serial.train_many(specs)  # jobs 1: nothing happens here
    assert serial.models == {}
    for spec in specs:
        a, b = parallel.train(*spec), serial.train(*spec)
        assert (a.input_size, a.seed, a.accuracy, a.best_epoch) == (b.input_size, b.seed, b.accuracy, b.best_epoch)
        sa, sb = a.model.state_dict(), b.model.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert len(parallel.models) == 3  # nothing retrained on the serial path
    with pytest.raises(ValueError, match="jobs and threads"):
        preset("micro", jobs=0)
    with pytest.raises(ValueError, match="resolution_seeds must be at least 1"):
        preset("micro", resolution_seeds=0)


def test_resolution_rows_are_verified_with_every_query_choice(micro):
    """Each resolution suspect is verified with `also_queries` beside `queries`: the micro ¼
    case is the protocol's Malicious suspect, so its boundary numbers are the protocol's; the
    table shows them in their own column."""
    settings, out, _, _ = micro
    assert settings.query_choices == ("proxy", "boundary")
    res = json.loads((out / "details" / "resolution.json").read_text())["results"]["xmark"]
    proto = json.loads((out / "details" / "protocol.json").read_text())["results"]["xmark"]
    for k in ("0.5", "0.25", "other_arch"):
        assert set(res[k]["by_queries"]) == {"boundary"}
        assert 0 <= res[k]["by_queries"]["boundary"]["p"] <= 1
    quarter, mal = res["0.25"], proto["by_queries"]
    assert quarter["delta_p"] == mal["proxy"]["malicious"]["delta_p"][0]
    assert quarter["by_queries"]["boundary"]["delta_p"] == mal["boundary"]["malicious"]["delta_p"][0]
    assert quarter["by_queries"]["boundary"]["delta_p"] != quarter["delta_p"]
    table = (out / "table.md").read_text()
    assert "ΔP, p (boundary queries) |" in table and "(WSR, ΔP, p with proxy queries)" in table


def test_resolution_part_verifies_each_suspect_as_it_finishes(micro, tmp_path):
    """With `jobs` 2 the resolution suspects train at once; each is verified and logged right
    after its training (a stopped run keeps what it finished), with the numbers `jobs` 1 gives.
    With `resolution_seeds` 2 each X-Mark factor has a suspect per Malicious seed: the 32 px
    factor's are the protocol's Malicious suspects themselves."""
    torch.set_num_threads(1)
    lines = io.StringIO()
    out = tmp_path / "out"
    summary, problems = run_benchmark(preset("micro", jobs=2, baselines=[], resolution_seeds=2), out,
                                      ["protocol", "resolution"], Log(stream=lines))
    assert problems == []
    log = [line.split("] ", 1)[1] for line in lines.getvalue().splitlines() if "] " in line]
    trained = [i for i, line in enumerate(log) if line.startswith("train ") and "on xmark: accuracy" in line
               and i > log.index("--- resolution")]
    assert len(trained) == 3  # ½ at seeds 100 and 101, resnet18; the 32 px cases are the protocol's
    assert sum(line.startswith("resolution xmark ") and " seed " in line for line in log) == 5
    for i in trained:  # "train resnet18@32px seed 100 on xmark: ..." then "resolution xmark resnet18@32px seed 100: ..."
        name, seed = log[i].split()[1], log[i].split()[3]
        assert log[i + 1].startswith(f"resolution xmark {name} seed {seed}:")
    assert summary["resolution"] == micro[2]["resolution"]  # the rows are the first seed's
    res = json.loads((out / "details" / "resolution.json").read_text())["results"]["xmark"]
    mal = json.loads((out / "details" / "protocol.json").read_text())["results"]["xmark"]["malicious_seeds"]
    quarter, half = res["0.25"]["over_seeds"], res["0.5"]["over_seeds"]
    assert quarter["seeds"] == half["seeds"] == [100, 101] and "over_seeds" not in res["other_arch"]
    assert quarter["delta_p"] == mal["delta_p"] and quarter["p"] == mal["p"]
    assert half["delta_p"][0] == res["0.5"]["delta_p"] and half["n"] == 2 and len(half["ba"]) == 2
    table = (out / "table.md").read_text()
    assert "**Resolution transfer over training seeds**" in table
    assert "| ×0.5 of source (64 px) | 100, 101 | " in table


def test_proxy_queries_are_chosen_by_each_methods_own_proxy():
    """With `queries=proxy` every method's queries are the pool images on which its proxy (a
    model trained on its release with `proxy_seeds`) answers its mark most; Ind-T reuses the
    owner's; a verification that does not say whose queries it runs is refused."""
    from benchmarks import protocol
    from xmark_core.verify.protocol import boundary_candidates, boundary_queries, proxy_scores

    torch.set_num_threads(1)
    lines = io.StringIO()
    ctx = BenchContext.create(preset("micro", queries="proxy", baselines=["badnets"], malicious_seeds=1),
                              Log(stream=lines))
    methods, results = protocol.run(ctx)
    s = ctx.s
    assert [tr["seed"] for tr in results["xmark"]["proxies"]] == list(s.proxy_seeds) == [7]
    assert results["xmark"]["proxies"][0]["train_set"] == "xmark" and results["badnets"]["proxies"][0]["train_set"] == "badnets"
    assert "proxy queries for xmark: chosen by smallcnn@32px seed 7 on xmark" in lines.getvalue()
    asked = {}
    for name, meth in methods.items():
        proxy = ctx.suspect(ctx.train(name, seed=s.proxy_seeds[0]))
        want = proxy_scores(proxy, meth.marker, ctx.pool, s.classes[s.target], s.query_gain)
        np.testing.assert_array_equal(ctx.query_scores(name), want)
        r = ctx.verify(ctx.suspect(ctx.train(name)), meth.marker, name)
        cand = boundary_candidates(len(ctx.pool), s.m, s.verify_seed)
        top = cand[boundary_queries(want[cand], s.m, s.verify_seed)]
        asked[name] = [q["image_id"] for q in r.log]
        assert r.pool["queries"] == "proxy" and asked[name] == [ctx.pool_ids[i] for i in top]
    assert not np.array_equal(ctx.query_scores("xmark"), ctx.query_scores("badnets"))
    ind_t = ctx.verify(ctx.suspect(ctx.train("xmark")), methods["xmark"].independent(0), "xmark")
    assert [q["image_id"] for q in ind_t.log] == asked["xmark"]  # the owner's proxy queries
    with pytest.raises(ValueError, match="owner method"):
        ctx.verify(ctx.suspect(ctx.train("xmark")), methods["xmark"].marker)


def test_several_proxies_choose_the_queries_by_their_mean_probability():
    """`proxy_seeds` with more than one seed: each is trained on the method's release and the
    queries are chosen by the rise of their mean probability (MeanSuspect, as the CLI's repeated
    --proxy); a proxy seed that a Malicious suspect uses, or none, is refused."""
    from benchmarks import protocol
    from xmark_core.verify.protocol import proxy_scores
    from xmark_core.verify.suspects import MeanSuspect

    torch.set_num_threads(1)
    lines = io.StringIO()
    ctx = BenchContext.create(preset("micro", proxy_seeds=[7, 8], baselines=[], malicious_seeds=1), Log(stream=lines))
    methods, results = protocol.run(ctx)
    s = ctx.s
    assert [(tr["seed"], tr["train_set"]) for tr in results["xmark"]["proxies"]] == [(7, "xmark"), (8, "xmark")]
    members = [ctx.suspect(ctx.train("xmark", seed=seed)) for seed in (7, 8)]
    want = proxy_scores(MeanSuspect(members), methods["xmark"].marker, ctx.pool, s.classes[s.target], s.query_gain)
    np.testing.assert_array_equal(ctx.query_scores("xmark"), want)
    alone = proxy_scores(members[0], methods["xmark"].marker, ctx.pool, s.classes[s.target], s.query_gain)
    assert not np.array_equal(want, alone)
    assert ("proxy queries for xmark: chosen by smallcnn@32px seed 7 on xmark and smallcnn@32px seed 8 on xmark "
            "(mean probability)") in lines.getvalue()
    for bad in ([], [7, s.suspect_seed(0)]):
        with pytest.raises(ValueError, match="proxy_seeds must be"):
            preset("micro", proxy_seeds=bad)


def test_micro_run_defaults_to_proxy_queries_with_boundary_beside(micro):
    """The benchmark verifies with proxy queries by default (each method's own proxy, the speed
    part's timings included) and reports the library's boundary queries beside them on the same
    Malicious suspects and clean reference; a query choice it does not know is refused."""
    settings, out, summary, _ = micro
    assert (settings.queries, settings.query_choices) == ("proxy", ("proxy", "boundary"))
    assert json.loads((out / "run.json").read_text())["settings"]["queries"] == "proxy"
    proto = json.loads((out / "details" / "protocol.json").read_text())["results"]
    for name in ("xmark", *settings.baselines):
        assert [(tr["seed"], tr["train_set"]) for tr in proto[name]["proxies"]] == [(settings.proxy_seeds[0], name)]
        assert sorted(proto[name]["by_queries"]) == ["boundary", "proxy"]
        assert proto[name]["by_queries"]["proxy"]["malicious"] == proto[name]["malicious_seeds"]
    assert proto["xmark"]["by_queries"]["boundary"]["malicious"] != proto["xmark"]["malicious_seeds"]
    assert summary["speed"]["verify_s_per_100"] > 0 and set(summary["resolution"]) == {"0.5", "0.25", "other_arch"}
    assert "| xmark | boundary |" in (out / "table.md").read_text()
    with pytest.raises(ValueError, match="unknown queries"):
        preset("micro", queries="nearest")


def test_prefetched_generators_are_the_ones_trained_in_turn(tmp_path):
    """Ind-T's independent generators trained in worker processes (`jobs` 2) are bitwise those
    `train_xmark` trains one at a time; with a models folder (`--keep-models`) each path writes
    its generators and the surrogate as checkpoints the library loads back to the same weights."""
    torch.set_num_threads(1)
    lines = io.StringIO()
    parallel = BenchContext.create(preset("micro", jobs=2), Log(stream=lines), models_dir=tmp_path / "p")
    serial = BenchContext.create(preset("micro"), Log(quiet=True), models_dir=tmp_path / "s")
    keys = [parallel.s.key(0), parallel.s.key(1)]
    sur_p, sur_s = parallel.train(CLEAN, seed=0), serial.train(CLEAN, seed=0)
    prefetch_generators(parallel, sur_p, keys)
    assert f"train generators of keys {keys} in 2 processes" in lines.getvalue()
    prefetch_generators(serial, sur_s, keys)  # jobs 1: nothing happens here
    assert serial.cache["generators"] == {}
    for key in keys:
        a = train_xmark(parallel, sur_p, key)[0].generator.state_dict()
        b = train_xmark(serial, sur_s, key)[0].generator.state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        for kept in ("p", "s"):  # written by prefetch_generators and by train_xmark
            folder = tmp_path / kept
            sur = folder / f"clean_{sur_p.arch}_{sur_p.input_size}px_seed0.pt"
            loaded = load_marker(sur, folder / f"generator_key{key}.pt")  # checks the pairing
            assert load_checkpoint(folder / f"generator_key{key}.pt").extra["surrogate_sha256"] == loaded.info["surrogate_sha256"]
            c = loaded.generator.state_dict()
            assert c.keys() == a.keys() and all(torch.equal(a[k], c[k]) for k in a)
            s = loaded.surrogate.state_dict()
            assert all(torch.equal(v, sur_p.model.state_dict()[k]) for k, v in s.items())
    assert "train generator key" not in lines.getvalue()  # the parallel context trained none in turn


def test_also_queries_verify_the_same_suspects_under_each_choice():
    """`also_queries` verifies every Malicious suspect and the clean reference again under the
    other query choices: the same models (no retraining), each choice's own queries, and a
    table row per choice; the main choice's rows are those of the protocol."""
    from benchmarks import protocol

    torch.set_num_threads(1)
    lines = io.StringIO()
    ctx = BenchContext.create(preset("micro", queries="boundary", also_queries=["proxy", "random", "boundary"],
                                     baselines=[]),
                              Log(stream=lines))
    methods, results = protocol.run(ctx)
    s, marker = ctx.s, methods["xmark"].marker
    bq = results["xmark"]["by_queries"]
    assert list(bq) == ["boundary", "proxy", "random"] and s.malicious_seeds == 2
    assert bq["boundary"]["malicious"] == results["xmark"]["malicious_seeds"]
    second = ctx.suspect(ctx.train("xmark", seed=s.suspect_seed(1)))
    for q in ("proxy", "random"):
        r = ctx.verify(second, marker, "xmark", queries=q)
        assert r.pool["queries"] == q
        assert bq[q]["malicious"]["delta_p"][1] == pytest.approx(r.delta_p)
        clean = ctx.verify(ctx.suspect(ctx.train(CLEAN)), marker, "xmark", queries=q)
        assert bq[q]["clean_reference"]["p"] == pytest.approx(clean.p_value)
    asked = {q: [e["image_id"] for e in ctx.verify(second, marker, "xmark", queries=q).log] for q in bq}
    assert len({tuple(a) for a in asked.values()}) == 3  # three different query sets
    assert lines.getvalue().count("train smallcnn@32px seed 101 on xmark: accuracy") == 1  # verified, not retrained
    table = report._by_queries_table(results)
    assert [row.split(" | ")[1] for row in table if row.startswith("| xmark |")] == ["boundary", "proxy", "random"]
    with pytest.raises(ValueError, match="unknown also_queries"):
        preset("micro", also_queries=["nearest"])


def test_malicious_targets_are_the_issues():
    assert report.meets_malicious_targets(0.95, 0.8, 9.9e-4)
    assert not report.meets_malicious_targets(0.94, 0.9, 1e-9)
    assert not report.meets_malicious_targets(1.0, 0.79, 1e-9)
    assert not report.meets_malicious_targets(1.0, 0.9, 1e-3)
