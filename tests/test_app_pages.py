"""Every page of the Streamlit app, driven headless with streamlit.testing.v1.AppTest.

Pages that need the demo models (``make models``) are checked for a clear message when
models/ is empty, and fully exercised (including a verification that must claim the
Malicious suspect and clear the clean one) when it is complete.
"""

from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from xmark_core.app_support import demo, evidence_view

APP = str(Path(__file__).resolve().parents[1] / "app.py")
DEMO = demo.demo_status()
needs_demo = pytest.mark.skipif(not DEMO.ready, reason=f"demo models not built: {DEMO.message()}")


def _texts(at, kind):
    return [e.value for e in getattr(at, kind)]


def _ok(at):
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, _texts(at, "error")


def open_app(n=16, size=128):
    """The app with a small demo phantom picked in the sidebar."""
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    _ok(at)
    at.sidebar.number_input(key="xm_ph_n").set_value(n)
    at.sidebar.selectbox(key="xm_ph_size").set_value(size)
    at.run()
    _ok(at)
    return at


def page(at, name):
    at.switch_page(f"app_pages/{name}.py")
    at.run()
    return at


@pytest.fixture(scope="module")
def app():
    return open_app()


def test_overview_and_sidebar(app):
    at = page(app, "home")
    _ok(at)
    assert at.title[0].value == "X-Mark"
    assert len(at.get("page_link")) == 8
    assert at.sidebar.selectbox(key="xm_source").value == "Demo phantom"
    assert "16 images" in " ".join(_texts(at.sidebar, "caption"))
    if not DEMO.ready:
        assert any("make models" in t for t in _texts(at, "info"))


def test_dataset_page_browses_images_masks_and_counts(app):
    at = page(app, "dataset")
    _ok(at)
    assert at.title[0].value == "Dataset"
    assert len(at.get("plotly_chart")) == 1
    assert len(at.get("image")) >= 1
    assert set(at.multiselect(key="ds_masks").value) == {"left_lung", "right_lung", "heart", "lesion"}
    at.selectbox(key="ds_cls").set_value("Cardiomegaly").run()
    _ok(at)
    assert at.slider(key="ds_idx").max == 4  # 16 phantoms, one finding in four
    at.radio(key="ds_window").set_value("bone").run()
    _ok(at)


def _png(value=128, size=48):
    import cv2

    ok, buf = cv2.imencode(".png", np.full((size, size), value, np.uint8))
    return buf.tobytes()


def test_folder_and_uploaded_images_open_in_the_dataset_page(tmp_path):
    for cls in ("normal", "effusion"):
        (tmp_path / cls).mkdir()
        for i in range(2):
            (tmp_path / cls / f"{i}.png").write_bytes(_png(60 + 40 * i))
    at = open_app()
    at.sidebar.selectbox(key="xm_source").set_value("Folder").run()
    at.sidebar.text_input(key="xm_path_Folder").input(str(tmp_path)).run()
    _ok(at)
    assert len(at.session_state["xm_dataset"]) == 4
    at = page(at, "dataset")
    _ok(at)
    assert at.selectbox(key="ds_cls").options[1:] == at.session_state["xm_dataset"].classes

    at.sidebar.selectbox(key="xm_source").set_value("Uploaded files").run()
    at.sidebar.file_uploader(key="xm_uploads").set_value(
        [("a.png", _png(), "image/png"), ("b.png", _png(200), "image/png")]).run()
    _ok(at)
    assert [r.image_id for r in at.session_state["xm_dataset"].records] == ["a.png", "b.png"]
    assert "2 uploaded image(s)" == at.session_state["xm_dataset_name"]


def test_bad_paths_and_uploads_give_messages_not_tracebacks():
    at = open_app()
    at.sidebar.selectbox(key="xm_source").set_value("Folder").run()
    at.sidebar.text_input(key="xm_path_Folder").input("/no/such/folder").run()
    assert not at.exception
    assert any("no such file or folder" in e for e in _texts(at.sidebar, "error"))
    at = page(at, "dataset")
    assert not at.exception and any("Pick a dataset" in t for t in _texts(at, "info"))
    at.sidebar.selectbox(key="xm_source").set_value("Uploaded files").run()
    at.sidebar.file_uploader(key="xm_uploads").set_value(("scan.png", b"not a png", "image/png")).run()
    assert not at.exception
    assert any("scan.png" in e for e in _texts(at.sidebar, "error"))


@pytest.mark.parametrize("name", ["saliency", "inspector", "quality", "verify", "robustness", "segmentation"])
def test_model_pages_without_models_say_how_to_get_them(name, monkeypatch, tmp_path):
    monkeypatch.setenv("XMARK_MODELS", str(tmp_path))
    at = page(open_app(), name)
    assert not at.exception
    assert any("make models" in t for t in _texts(at, "info"))


def test_evidence_page_without_a_run_points_to_verify(app):
    at = page(app, "evidence")
    _ok(at)
    assert any("Verify" in t for t in _texts(at, "info"))


@needs_demo
def test_saliency_page(app):
    at = page(app, "saliency")
    _ok(at)
    assert len(at.get("image")) == 2
    assert at.selectbox(key="sal_layer").options[0].startswith("default")
    at.radio(key="sal_method").set_value("gradcam").run()
    _ok(at)
    at.slider(key="sal_area").set_value(0.5).run()
    _ok(at)
    assert "open on 5" in " ".join(_texts(at, "caption")) or len(at.get("image")) == 2


@needs_demo
def test_inspector_page_metrics_and_comparisons(app):
    at = page(app, "inspector")
    _ok(at)
    metrics = {m.label: m.value for m in at.metric}
    assert float(metrics["PSNR"].split()[0]) > 30
    assert 0.9 < float(metrics["SSIM"]) <= 1.0
    assert len(at.get("plotly_chart")) == 1
    at.radio(key="insp_preset").set_value("lung").run()
    assert at.slider(key="insp_center").value == pytest.approx(0.35)
    at.radio(key="insp_mode").set_value("Swipe").run()
    _ok(at)
    assert at.slider(key="insp_swipe").value == 0.5
    at.radio(key="insp_mode").set_value("Blink").run()
    _ok(at)
    assert at.toggle(key="insp_show_wm").value is False


@needs_demo
def test_quality_page_measures_and_runs_a_reader_study(app, tmp_path):
    at = page(app, "quality")
    _ok(at)
    at.number_input(key="q_n").set_value(4).run()
    at.button(key="q_run").click().run()
    _ok(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Images"] == "4"
    assert len(at.get("plotly_chart")) == 2

    csv = tmp_path / "study.csv"
    at.text_input(key="rs_csv").input(str(csv)).run()
    at.number_input(key="rs_n").set_value(2).run()
    at.button(key="rs_start").click().run()
    for k in range(2):
        at.radio(key=f"rs_choice_{k}").set_value("A (left)")
        at.get("form_submit_button")[0].click()
        at.run()
        _ok(at)
    assert csv.is_file() and len(csv.read_text().splitlines()) == 3
    assert any("of 2 trials" in t for t in _texts(at, "success") + _texts(at, "warning"))


def _verify(at, suspect_key, test="Fixed m: paired t-test (DVBW)", m=40, queries="random", specificity=0.0,
            check_gain=0.0):
    at = page(at, "verify")
    _ok(at)
    at.selectbox(key="v_suspect").set_value(demo.SUSPECT_LABELS[suspect_key])
    at.selectbox(key="v_queries").set_value(queries)
    at.number_input(key="v_spec").set_value(specificity)
    at.number_input(key="v_check_gain").set_value(check_gain)
    at.radio(key="v_test").set_value(test)
    at.number_input(key="v_m").set_value(m)
    at.run()
    at.button(key="v_run").click().run()
    _ok(at)
    return at


@needs_demo
def test_verify_claims_the_malicious_suspect_and_evidence_downloads(app):
    at = _verify(app, "malicious", m=100)  # the demo's m, random queries
    assert any("Ownership is claimed" in t for t in _texts(at, "warning")), _texts(at, "info")
    res = at.session_state["xm_verification"]["result"]
    assert res.decision and res.p_value < 0.01 and res.n_queries == 100
    at = page(at, "evidence")
    _ok(at)
    labels = [b.label for b in at.get("download_button")]
    assert "Download evidence.json" in labels and "Download report.html" in labels
    assert len(at.get("arrow_data_frame")) >= 5 or len(at.dataframe) >= 5
    tables = evidence_view.model_tables(at.session_state["xm_verification"]["suspect"],
                                        at.session_state["xm_verification"]["marker"])
    shown = {(r["property"], r["value"]) for rows in tables.values() for r in rows}
    assert ("reached as", "checkpoint file") in shown and ("target class", "1 (Cardiomegaly)") in shown


@needs_demo
def test_verify_query_choice_is_used_and_recorded(app):
    """Boundary queries come from the surrogate's top of a 300-image pool and show the shipped
    Malicious suspect's mark more strongly than random ones."""
    boundary = _verify(app, "malicious", m=100, queries="boundary").session_state["xm_verification"]["result"]
    rand = _verify(app, "malicious", m=100, queries="random").session_state["xm_verification"]["result"]
    assert boundary.config.queries == "boundary" and rand.config.queries == "random"
    assert boundary.pool["size"] == rand.pool["size"] == 300 and boundary.pool["queries"] == "boundary"
    assert boundary.delta_p > rand.delta_p + 0.1 and boundary.p_value < rand.p_value
    assert {q["image_id"] for q in boundary.log} != {q["image_id"] for q in rand.log}


@needs_demo
def test_verify_preselects_proxy_queries_on_the_demo():
    """A fresh session on the demo opens the Verify page on proxy queries, chosen by the shipped
    proxy, which the caption names; running with the page's preselections claims the Malicious
    suspect with them."""
    at = page(open_app(), "verify")
    _ok(at)
    assert at.selectbox(key="v_queries").value == "proxy"
    assert any("demo owner's proxy" in c.value for c in at.caption)
    at.selectbox(key="v_suspect").set_value(demo.SUSPECT_LABELS["malicious"])
    at.button(key="v_run").click().run()
    _ok(at)
    res = at.session_state["xm_verification"]["result"]
    assert res.config.queries == "proxy" and res.pool["queries"] == "proxy" and res.decision


@needs_demo
def test_verify_proxy_queries_ask_for_the_owners_proxy(app):
    """Proxy queries need a model the owner trained on its release: the page shows an uploader
    for it, and running without one (and no demo proxy) says what to do instead of verifying."""
    at = page(app, "verify")
    bundle = at.session_state["xm_bundle"] if "xm_bundle" in at.session_state else None
    shipped = bundle.proxy if bundle is not None else None
    try:
        if bundle is not None:
            bundle.proxy = None  # as a bundle built before the proxy was shipped
        at.selectbox(key="v_queries").set_value("proxy")
        at.run()
        assert any(u.label.startswith("Proxy checkpoint") for u in at.get("file_uploader"))
        at.session_state["xm_verification"] = None
        at.button(key="v_run").click().run()
        assert any("proxy queries need the owner's proxy" in e.value for e in at.error)
        assert at.session_state["xm_verification"] is None
    finally:
        if bundle is not None:
            bundle.proxy = shipped


@needs_demo
def test_verify_proxy_queries_on_the_demo_use_the_shipped_proxy(app):
    """Without an upload the demo owner's proxy (models/proxy.pt) chooses the queries: the
    shipped Malicious suspect answers them more than boundary queries, the clean one not at
    all, and the evidence names the proxy by its hash."""
    from xmark_core.hashing import sha256_file

    proxy = DEMO.root / demo.PROXY_FILE
    assert proxy.is_file(), "the demo ships the owner's proxy: `xmark models build --part proxy`"
    boundary = _verify(app, "malicious", m=100, queries="boundary", specificity=25.0)
    base = boundary.session_state["xm_verification"]["result"]
    at = _verify(app, "malicious", m=100, queries="proxy", specificity=25.0)
    assert any("demo owner's proxy" in c.value for c in at.caption)
    res = at.session_state["xm_verification"]["result"]
    assert res.decision and res.p_value < 1e-6
    assert res.delta_p > base.delta_p + 0.05 and res.wsr > base.wsr
    assert res.pool["queries"] == "proxy" and res.pool["proxy"]["sha256"] == sha256_file(proxy)
    rows = evidence_view.parameter_rows(res, at.session_state["xm_verification"])
    assert {"parameter": "proxy (sha256)", "value": sha256_file(proxy)} in rows
    clean = _verify(app, "clean", m=100, queries="proxy", specificity=25.0).session_state["xm_verification"]["result"]
    assert not clean.decision and clean.p_value > 0.5 and clean.delta_p < 0.05


@needs_demo
def test_verify_key_specificity_check_claims_the_owner_and_is_recorded(app):
    """Boundary queries with the key-specificity check (±25°): the shipped Malicious suspect
    answers the owner's own carrier more than the turned ones; the clean one is not claimed."""
    at = _verify(app, "malicious", m=100, queries="boundary", specificity=25.0)
    res = at.session_state["xm_verification"]["result"]
    spec = res.details["specificity"]
    assert res.decision and res.p_value < 1e-6 and res.config.specificity == 25.0
    assert spec["minus"]["delta_p"] > 0.1 and spec["plus"]["delta_p"] > 0.1
    assert "turned by 25 degrees" in res.verdict
    at = page(at, "evidence")
    _ok(at)
    rows = evidence_view.parameter_rows(res, at.session_state["xm_verification"])
    assert {"parameter": "key specificity ±°", "value": "25.0"} in rows
    assert {"parameter": "check gain (key check)", "value": "2.0"} in rows  # the query gain's
    logs = [d.value for d in at.dataframe if "P key turned -25°" in d.value.columns]
    assert len(logs) == 1 and "P key turned +25°" in logs[0].columns and len(logs[0]) == 100
    low = _verify(app, "malicious", m=100, queries="boundary", specificity=25.0, check_gain=1.0)
    res_low = low.session_state["xm_verification"]["result"]
    assert res_low.config.check_gain == 1.0 and res_low.decision and "p_check" in res_low.log[0]
    assert [q["p_w"] for q in res_low.log] == [q["p_w"] for q in res.log]  # the main test is unchanged
    low = page(low, "evidence")
    assert {"parameter": "check gain (key check)", "value": "1.0"} in evidence_view.parameter_rows(
        res_low, low.session_state["xm_verification"])
    assert any("P_w at check gain 1" in d.value.columns for d in low.dataframe)
    clean = _verify(app, "clean", m=100, queries="boundary", specificity=25.0).session_state["xm_verification"]["result"]
    assert not clean.decision and clean.p_value > 0.5


@needs_demo
def test_verify_sequential_stop_is_shown_in_the_queries_metric(app):
    at = _verify(app, "malicious", test="Sequential (anytime-valid, stops once the evidence suffices)", m=100)
    res = at.session_state["xm_verification"]["result"]
    assert res.decision and res.stopped_early and res.n_queries < 100
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Queries, stopped early"] == str(res.n_queries)  # the number alone: never cut off


@needs_demo
def test_verify_does_not_claim_the_clean_suspect(app):
    at = _verify(app, "clean", test="Sequential (anytime-valid, stops once the evidence suffices)")
    res = at.session_state["xm_verification"]["result"]
    assert not res.decision
    assert any("No claim" in t for t in _texts(at, "info"))


@needs_demo
def test_verify_unreachable_endpoint_is_an_error_message(app):
    at = page(app, "verify")
    at.selectbox(key="v_suspect").set_value("HTTP endpoint").run()
    at.text_input(key="v_url").input("http://127.0.0.1:9").run()
    at.button(key="v_run").click().run()
    assert not at.exception
    assert any("Verification failed" in e for e in _texts(at, "error"))


@needs_demo
def test_robustness_page_attacks_and_reverifies(app):
    """JPEG at query time, verified with the Verify page's preselected queries (on the demo the
    shipped proxy's): the Malicious suspect stays claimed, the clean one is not claimed."""
    at = page(app, "robustness")
    _ok(at)
    assert any("Queries: proxy" in c.value and "demo owner's proxy" in c.value for c in at.caption)
    at.selectbox(key="r_attack").set_value("jpeg").run()
    at.number_input(key="r_m").set_value(40).run()
    for key, claim in (("malicious", "yes"), ("clean", "no")):
        at.selectbox(key="r_suspect").set_value(demo.SUSPECT_LABELS[key]).run()
        at.button(key="r_run").click().run()
        _ok(at)
        last = at.session_state["r_history"][-1]
        assert (last["suspect"], last["attack"], last["queries"]) == (key, "jpeg(quality=75)", "proxy")
        assert last["claim"] == claim and np.isfinite(last["ΔP"])


@pytest.fixture(scope="module")
def seg_models(tmp_path_factory):
    """A StealthMark layout with two tiny random (never trained) segmenters and an owner record."""
    import torch

    from xmark_core.nets.checkpoint import save_checkpoint
    from xmark_core.stealthmark.mark import SegMark, save_owner_record
    from xmark_core.stealthmark.model import build_segmenter

    root = tmp_path_factory.mktemp("seg_models")
    torch.manual_seed(0)
    kw = {"out_channels": 3, "base": 4, "depth": 2}
    for name in ("seg_marked.pt", "seg_innocent.pt"):
        save_checkpoint(root / name, build_segmenter("unet", **kw), kind="segmenter", arch="unet",
                        arch_kwargs=kw, classes=["left_lung", "right_lung", "heart"], input_size=64)
    save_owner_record(root / "seg_owner_record.json", SegMark(claim="XMARK:test", key="k"), extra={"input_size": 64})
    return root


def test_segmentation_page_runs_a_live_verification(seg_models, monkeypatch):
    monkeypatch.setenv("XMARK_MODELS", str(seg_models))
    at = page(open_app(), "segmentation")
    _ok(at)
    assert at.selectbox(key="sg_suspect").options[:2] == [
        "Demo segmenter marked with the owner's claim", "Demo segmenter trained without the mark (innocent)"]
    assert len(at.get("image")) == 4  # clean / stamped inputs and their uncertainty maps
    at.select_slider(key="sg_n").set_value(250)
    at.number_input(key="sg_images").set_value(4)
    at.run()
    at.button(key="sg_run").click().run()
    _ok(at)
    res = at.session_state["sg_result"]["result"]
    # An untrained network cannot draw the owner's code: no verification.
    assert res.verdict in ("not verified", "unverifiable") and not res.match
    if res.verdict == "not verified":
        assert res.n_queries == 250 and 0.2 < res.bit_agreement < 0.8
        labels = [b.label for b in at.get("download_button")]
        assert labels == ["Download evidence.json", "Download report.html"]
