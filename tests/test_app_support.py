"""App glue that computes (xmark_core.app_support): values checked without a browser."""

import base64
import io

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats

from xmark_core.app_support import (
    demo,
    figures,
    imaging,
    live,
    quality_table,
    reader_study,
    sources,
)
from xmark_core.errors import CheckpointError

# ----------------------------------------------------------------------------- reader study


def test_trials_are_seeded_random_and_cover_both_sides():
    ids = [f"img{i}" for i in range(40)]
    a = reader_study.make_trials(ids, 30, seed=1)
    assert a == reader_study.make_trials(ids, 30, seed=1)
    assert a != reader_study.make_trials(ids, 30, seed=2)
    assert len(a) == 30 and len({t.item for t in a}) == 30
    assert [t.order for t in a] == list(range(30))
    assert all(t.image_id == ids[t.item] for t in a)
    sides = [t.watermarked_side for t in a]
    assert 5 < sides.count("left") < 25
    assert [t.item for t in a] != sorted(t.item for t in a)  # not in dataset order
    with pytest.raises(ValueError):
        reader_study.make_trials([], 3)


def _answers(n_correct, n, ratings=None):
    trials = reader_study.make_trials([str(i) for i in range(n)], n, seed=0)
    out = []
    for k, t in enumerate(trials):
        wrong = "right" if t.watermarked_side == "left" else "left"
        ra, rb = ratings[k] if ratings else (0, 0)
        out.append(reader_study.respond(t, "r1", t.watermarked_side if k < n_correct else wrong, ra, rb))
    return out


def test_binomial_test_of_the_picks():
    s = reader_study.summarize(_answers(9, 10))
    assert (s.n, s.correct) == (10, 9)
    assert s.p_value == pytest.approx(11 / 1024)  # P(X >= 9), X ~ Bin(10, 1/2)
    assert s.beats_chance and "DO tell" in s.sentence()
    chance = reader_study.summarize(_answers(5, 10))
    assert chance.p_value == pytest.approx(stats.binom.sf(4, 10, 0.5))
    assert not chance.beats_chance and "no evidence" in chance.sentence()
    assert chance.ci_low < 0.5 < chance.ci_high
    assert reader_study.summarize([]).sentence() == "No answers yet."


def test_ratings_are_paired_by_image_not_by_side():
    # Watermarked always rated 3, original 5, wherever they sit.
    trials = reader_study.make_trials([str(i) for i in range(8)], 8, seed=0)
    res = [reader_study.respond(t, "r", "left", *((3, 5) if t.watermarked_side == "left" else (5, 3)))
           for t in trials]
    s = reader_study.summarize(res)
    assert s.n_rated == 8 and s.mean_rating_watermarked == 3 and s.mean_rating_original == 5
    assert s.rating_p_value < 0.01
    with pytest.raises(ValueError):
        reader_study.respond(trials[0], "r", "middle")
    with pytest.raises(ValueError):
        reader_study.respond(trials[0], "r", "left", rating_left=7)


def test_responses_csv_roundtrip(tmp_path):
    res = _answers(3, 4, ratings=[(1, 2), (3, 4), (5, 5), (0, 0)])
    path = tmp_path / "sub" / "study.csv"
    reader_study.save_responses(path, res)
    back = reader_study.load_responses(path)
    assert [(r.image_id, r.choice, r.rating_left, r.rating_right, r.correct) for r in back] == \
        [(r.image_id, r.choice, r.rating_left, r.rating_right, r.correct) for r in res]
    assert list(tmp_path.joinpath("sub").iterdir()) == [path]  # no temp file left behind
    assert path.read_text().splitlines()[0].endswith(",correct")
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(Exception, match="bad.csv"):
        reader_study.load_responses(tmp_path / "bad.csv")


# ----------------------------------------------------------------------------- imaging


def test_window_rendering_and_overlays():
    ramp = np.linspace(0, 1, 256, dtype=np.float32)[None].repeat(4, 0)
    full = imaging.to_uint8(ramp)
    assert full[0, 0] == 0 and full[0, -1] == 255
    lung = imaging.to_uint8(ramp, "lung")  # center 0.35, width 0.5: 0.1 -> 0, 0.6 -> 255
    assert lung[0, 20] == 0 and lung[0, 160] == 255 and 100 < lung[0, 90] < 160
    w = imaging.window_of("bone", width=0.2)
    assert (w.center, w.width) == (0.75, 0.2)

    img = np.full((32, 32), 0.5, np.float32)
    mask = np.zeros((32, 32), bool)
    mask[8:24, 8:24] = True
    rgb = imaging.overlay_masks(img, {"heart": mask}, alpha=1.0, outline=False)
    assert tuple(rgb[16, 16]) == imaging.MASK_COLORS["heart"] and tuple(rgb[0, 0]) == (128, 128, 128)
    with pytest.raises(ValueError):
        imaging.overlay_masks(img, {"heart": mask[:10]})

    heat = imaging.overlay_heatmap(img, mask.astype(np.float32), alpha=0.5, outline=mask)
    assert heat.shape == (32, 32, 3) and tuple(heat[8, 8]) == (255, 255, 255)  # outline drawn


def test_swipe_and_png_uri():
    a, b = np.zeros((10, 20), np.uint8), np.full((10, 20), 200, np.uint8)
    s = imaging.swipe_composite(a, b, 0.25)
    assert (s[:, :5] == 0).all() and (s[:, 6:] == 200).all() and (s[:, 5] == 255).all()
    assert (imaging.swipe_composite(a, b, 1.0, line=False) == 0).all()
    uri = imaging.png_data_uri(s)
    back = np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))))
    np.testing.assert_array_equal(back, s)
    loss = imaging.ssim_loss_rgb(np.array([[1.0, 0.9]], np.float32))
    assert loss[0, 0, 2] > 100 and loss[0, 1, 0] > 100  # identical -> blue, large loss -> red


# ----------------------------------------------------------------------------- figures


def test_linked_images_share_zoom():
    pics = [np.zeros((16, 24), np.uint8)] * 4
    fig = figures.linked_images(pics, ["a", "b", "c", "d"], cols=2)
    assert len(fig.data) == 4 and all(t.type == "image" for t in fig.data)
    xs = [fig.layout[k] for k in fig.layout if k.startswith("xaxis")]
    ys = [fig.layout[k] for k in fig.layout if k.startswith("yaxis")]
    assert len(xs) == 4 and all(ax.matches == "x" for ax in xs) and all(ax.matches == "y" for ax in ys)
    assert list(ys[0].range) == [15.5, -0.5]  # image rows go down
    with pytest.raises(ValueError):
        figures.linked_images([np.zeros((4, 4), np.uint8), np.zeros((5, 4), np.uint8)], ["a", "b"])


def test_verification_figure_has_log_p_axis_and_alpha_line():
    p_b = np.array([0.1, 0.2, 0.1])
    fig = figures.verification_figure(p_b, p_b + 0.5, np.array([0.5, 0.1, 0.001]), np.array([0, 0.5, 2 / 3]),
                                      tau=0.2, alpha=0.01, m=100)
    assert fig.layout.yaxis3.type == "log"
    alpha_line = [t for t in fig.data if t.name == "α = 0.01"][0]
    assert list(alpha_line.y) == [0.01, 0.01] and list(alpha_line.x) == [1, 100]
    assert fig.layout.xaxis3.range[1] == 101  # planned m fixes the x range during a live run


# ----------------------------------------------------------------------------- data glue


def test_demo_status_names_missing_files(tmp_path):
    st = demo.demo_status(tmp_path)
    assert not st.ready and not st.has_marker
    assert "make models" in st.message() and "generator.pt" in st.message()
    for f in demo.DEMO_FILES.values():
        (tmp_path / f).write_bytes(b"x")
    assert demo.demo_status(tmp_path).ready and demo.demo_status(tmp_path).message() == ""
    with pytest.raises(CheckpointError, match="make models"):
        demo.load_demo(tmp_path / "empty")


def test_query_images_are_held_out_non_target_and_deterministic():
    imgs, ids = demo.query_images(target=1, m=6, size=64, seed=9001, pool=20)
    assert imgs.shape == (15, 64, 64) and imgs.dtype == np.float32  # the 15 non-target of 20
    assert len(set(ids)) == 15 and all(i.startswith("phantom-9001-") for i in ids)
    assert all(int(i.rsplit("-", 1)[1]) % 4 != 1 for i in ids)  # phantom label = index % 4
    again, _ = demo.query_images(target=1, m=6, size=64, seed=9001, pool=20)
    np.testing.assert_array_equal(imgs, again)
    big, _ = demo.query_images(target=1, m=30, size=64, seed=9001, pool=20)
    assert len(big) >= 30  # the pool grows to hold m queries
    assert len(demo.query_images(target=1, m=6, size=32)[1]) == 300  # the demo's own pool


def test_source_helpers():
    assert sources.parse_classes(" a, b ,,c ") == ["a", "b", "c"] and sources.parse_classes("  ") is None
    labels = np.array([0, 1, 2, 1, 0, 3, 1])
    idx = sources.non_target_indices(labels, 1, 3, seed=0)
    assert len(idx) == 3 and not np.isin(idx, [1, 3, 6]).any()
    assert sources.class_counts(labels, 4) == [2, 3, 1, 1]
    np.testing.assert_array_equal(sources.indices_of_class(labels, 1), [1, 3, 6])
    with pytest.raises(CheckpointError):
        sources.checkpoint_from_upload("x.pt", b"")


def test_quality_table_worst_first():
    rng = np.random.default_rng(0)
    a = [rng.random((32, 32)).astype(np.float32) for _ in range(3)]
    b = [a[0].copy(), np.clip(a[1] + 0.1, 0, 1), np.clip(a[2] + 0.01, 0, 1)]
    df = quality_table.quality_table(a, b, ["same", "far", "near"])
    assert list(df["image"]) == ["far", "near", "same"]
    assert df.loc[2, "ssim"] == pytest.approx(1.0) and np.isinf(df.loc[2, "psnr"])
    s = quality_table.quality_summary(df, ssim_min=0.99, psnr_min=30)
    assert s["n"] == 3 and s["n_fail"] == 1

    class Add:
        def mark(self, x):
            return np.clip(np.asarray(x) + 0.5, 0, 1)

    done = []
    out = quality_table.mark_many(Add(), [a[0], a[1], np.zeros((8, 8), np.float32)], batch_size=2,
                                  progress=lambda d, t: done.append(d))
    assert done == [2, 3] and out[2].shape == (8, 8) and (out[2] == 0.5).all()


def test_live_series_from_a_partial_result():
    from xmark_core.verify.protocol import VerifyConfig

    class R:
        target = 1
        config = VerifyConfig(specificity=0.0)
        running_p = [1.0, 0.5, 0.2]
        log = [{"index": i, "image_id": f"i{i}", "p_b": 0.1, "p_w": 0.1 + 0.3 * i, "label_b": 0,
                "label_w": 1 if i else 0} for i in range(3)]

    s = live.live_series(R())
    assert s.n == 3
    np.testing.assert_allclose(s.running_wsr, [0, 0.5, 2 / 3])
    np.testing.assert_allclose(s.p_w - s.p_b, [0, 0.3, 0.6])
    rows = live.log_table(R(), ["no", "yes"])
    assert rows[2]["label (watermarked)"] == "yes" and rows[2]["P_w - P_b"] == 0.6


def test_live_series_and_figure_show_each_stream_of_a_checked_claim():
    """With the key check the running p-value is the largest of three streams; the live plot
    draws each, so one sees which the claim waits for (here the +25 degree control)."""
    from xmark_core.verify.protocol import VerifyConfig, evaluate_log

    rng = np.random.default_rng(0)
    log = [{"index": i, "image_id": f"i{i}", "p_b": 0.05, "p_w": 0.9, "p_minus": 0.1,
            "p_plus": float(rng.choice([0.1, 0.95])), "label_b": 0, "label_w": 1, "label_minus": 0,
            "label_plus": 0} for i in range(40)]
    res = evaluate_log(log, VerifyConfig(test="sequential", specificity=25.0), "proba", 1, "b", True, {})
    s = live.live_series(res)
    assert set(s.streams) == {"main", "minus", "plus"}
    np.testing.assert_allclose(np.max(np.stack(list(s.streams.values())), axis=0), s.running_p)
    assert s.streams["plus"][-1] > s.streams["main"][-1]  # the half-answered control is the slowest
    fig = figures.verification_figure(s.p_b, s.p_w, s.running_p, s.running_wsr, 0.2, 0.01, 100,
                                      streams=s.streams, degrees=25.0)
    names = [t.name for t in fig.data]
    assert {"owner's mark vs original", "owner's mark vs key turned -25°", "owner's mark vs key turned +25°"} <= set(names)
    off = live.live_series(evaluate_log(log, VerifyConfig(test="sequential", specificity=0.0), "proba", 1, "b", True, {}))
    assert off.streams == {}


def test_evidence_files_of_a_verification(tmp_path):
    from xmark_core.app_support import evidence_view
    from xmark_core.report import load_evidence
    from xmark_core.verify.protocol import VerifyConfig, run_verification

    class Bright:
        """Target probability = mean intensity: reacts to a brightening marker."""

        classes, input_size, output = ["a", "b"], None, "proba"

        def predict(self, images):
            m = np.array([np.mean(x) for x in images])
            return np.stack([1 - m, m], axis=1)

        def identity(self):
            return {"kind": "toy"}

    class Brighten:
        def mark(self, x):
            return np.clip(np.asarray(x) + 0.4, 0, 1)

    rng = np.random.default_rng(0)
    images = [rng.uniform(0.1, 0.3, (8, 8)).astype(np.float32) for _ in range(20)]
    res = run_verification(Bright(), Brighten(), images, [f"i{k}" for k in range(20)], 1, VerifyConfig(m=20, queries="random", specificity=0.0))
    assert res.decision
    last = {"result": res, "suspect": {"kind": "toy"}, "marker": {"key": 0}, "queries": "toy",
            "owner_files": None, "created_utc": "2026-01-01T00:00:00+00:00"}
    check = evidence_view.commitment_check(None)
    assert not check.ok and "not tied" in check.message
    shipped = evidence_view.commitment_check({"record": "models/owner_record.json", "generator": "models/generator.pt",
                                              "surrogate": "models/surrogate.pt"})
    assert shipped.ok and ("It records a share of 0.1 of the 'Cardiomegaly' images marked under key 189; "
                           "hardening: none: the released images carry the mark alone.") in shipped.message
    ev = evidence_view.evidence_dict(last)
    assert evidence_view.last_commitment(last) is last["commitment"] and not last["commitment"].ok  # once per run
    (tmp_path / "evidence.json").write_bytes(evidence_view.json_bytes(ev))
    assert load_evidence(tmp_path / "evidence.json")["decision"] is True  # hash verifies
    assert ev["marker"] == {"identity": {"key": 0}}  # the CLI's shape: files (none known here), identity
    page = evidence_view.html_bytes(ev)
    assert b"Ownership is claimed" in page and b"<th>owner key</th><td>0</td>" in page
    assert evidence_view.pdf_bytes(ev)[:4] == b"%PDF"
    rows = {r["parameter"]: r["value"] for r in evidence_view.parameter_rows(res, last)}
    assert rows["queries made"] == "20" and rows["margin τ"] == "0.2" and rows["query gain"] == "2.0"
    assert rows["query choice"] == "random" and rows["largest bet (sequential test)"] == "0.9"
    assert rows["check gain (key check)"] == "off"  # no key check here: no gain to state
    assert rows["CPU threads (marking)"] == str(torch.get_num_threads())  # recorded: a replay marks alike
    used = [r["test"] for r in evidence_view.supporting_rows(res) if r["used for the decision"] == "yes"]
    assert used == ["ttest"]


def test_evidence_model_tables_in_a_reviewers_words():
    from xmark_core.app_support.evidence_view import model_tables

    suspect = {"kind": "http", "location": "http://127.0.0.1:8765", "sha256": "ab" * 32,
               "sha256_source": "reported by the API (/info)", "classes": ["No Finding", "Cardiomegaly"],
               "input_size": 64, "output": "proba", "labels_only": True, "extra_field": 3}
    marker = {"key": 189, "target": 1, "classes": ["No Finding", "Cardiomegaly"], "cam_method": "eigencam",
              "work_size": None, "generator": {"depth": 3, "base": 16}}
    tables = model_tables(suspect, marker)
    assert list(tables) == ["Suspect", "Watermark generator"]
    sus = {r["property"]: r["value"] for r in tables["Suspect"]}
    gen = {r["property"]: r["value"] for r in tables["Watermark generator"]}
    assert sus["reached as"] == "HTTP API (black box)" and sus["answers with"] == "class probabilities"
    assert sus["classes"] == "No Finding, Cardiomegaly"
    assert sus["top label only"] == "yes" and sus["extra field"] == "3"
    assert gen["target class"] == "1 (Cardiomegaly)" and gen["owner key"] == "189"
    assert gen["saliency method"] == "EigenCAM" and gen["marking size (px)"] == "each image's own size"
    assert gen["generator settings"] == "base 16, depth 3"
    assert (len(sus), len(gen)) == (len(suspect), len(marker))  # every recorded field is shown
    assert [r["property"] for r in tables["Suspect"]][:2] == ["reached as", "file or address"]  # fixed order
    assert model_tables({"kind": "toy"}, None)["Watermark generator"] == []


def test_robustness_applies_input_and_model_attacks():
    import torch

    from xmark_core.app_support import robustness
    from xmark_core.attacks import TransformedSuspect
    from xmark_core.verify.suspects import TorchSuspect

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                              torch.nn.Flatten(), torch.nn.Linear(8, 2))
    suspect = TorchSuspect(net, ["a", "b"], 16, device="cpu")
    assert robustness.apply_attack(suspect, "none", {}).suspect is suspect
    jp = robustness.apply_attack(suspect, "jpeg", {"quality": 40})
    assert isinstance(jp.suspect, TransformedSuspect) and jp.description == "jpeg(quality=40)"
    assert jp.suspect.predict(np.full((2, 16, 16), 0.5, np.float32)).shape == (2, 2)

    rng = np.random.default_rng(0)
    y = np.arange(40) % 2
    X = (0.3 + 0.4 * y[:, None, None, None] + rng.normal(0, 0.05, (40, 1, 16, 16))).clip(0, 1).astype(np.float32)
    pr = robustness.apply_attack(suspect, "fine-prune", {"fraction": 0.5, "finetune_epochs": 0}, clean=(X, y))
    assert pr.pruned == 4 and 0 <= pr.accuracy_after <= 1 and pr.accuracy_before is not None
    assert pr.suspect.predict(X[:3, 0]).shape == (3, 2)
    with pytest.raises(ValueError, match="clean data"):
        robustness.apply_attack(suspect, "fine-tune", {"epochs": 1})
    with pytest.raises(ValueError, match="unknown attack"):
        robustness.apply_attack(suspect, "melt", {})


def test_query_choice_is_proxy_only_where_the_demo_proxy_fits_the_marker(tmp_path):
    from xmark_core.app_support.demo import DemoBundle, default_query_choice

    proxy = tmp_path / "proxy.pt"
    owner, other = object(), object()
    bundle = DemoBundle(root=tmp_path, marker=owner, classes=["a", "b"], target=1, owner_record={}, proxy=proxy)
    assert bundle.proxy_for(owner) == proxy and bundle.proxy_for(other) is None
    assert default_query_choice(bundle.proxy_for(owner)) == "proxy"
    assert default_query_choice(bundle.proxy_for(other)) == "boundary"  # the library's default
    bundle.proxy = None  # a bundle built before the proxy was shipped
    assert default_query_choice(bundle.proxy_for(owner)) == "boundary"
