import streamlit as st

from xmark_core.app_support import cached, evidence_view, figures, live, sources, ui
from xmark_core.app_support.demo import SUSPECT_LABELS, default_query_choice
from xmark_core.verify.protocol import QUERY_CHOICES, VerifyConfig, heldout_pool, run_verification
from xmark_core.verify.suspects import mean_or_one

st.title("Verify a suspect model")
st.caption(
    "Query the suspect with held-out images and their watermarked copies; if it learned the "
    "watermark, its score for the target class rises on the watermarked copies. A one-sided "
    "test decides at a level α fixed in advance."
)
marker = ui.require_marker()
bundle = ui.demo_bundle()
target = ui.target_of(marker)
if target is None:
    st.error("The watermark generator does not name its target class; it cannot be verified.")
    st.stop()

UPLOAD, HTTP = "Uploaded checkpoint", "HTTP endpoint"
TESTS = {
    "Sequential (anytime-valid, stops once the evidence suffices)": "sequential",
    "Fixed m: paired t-test (DVBW)": "ttest",
    "Label-only (exact test on target labels)": "label",
}
options = [SUSPECT_LABELS[k] for k in (bundle.suspects if bundle else {})] + [UPLOAD, HTTP]

left, right = st.columns([1, 2])
with left:
    choice = st.selectbox("Suspect", options, key="v_suspect")
    if choice == UPLOAD:
        up = st.file_uploader("Suspect checkpoint (.pt, TorchScript)", type=["pt", "pth", "ts"], key="v_upload")
        classes_txt = st.text_input("Class names, comma-separated (if the file lacks them)", key="v_up_classes")
        up_size = st.number_input("Input size (0 = from the file)", 0, 4096, 0, key="v_up_size")
    elif choice == HTTP:
        url = st.text_input("API base URL", "http://127.0.0.1:8000", key="v_url",
                            help="A server speaking the `xmark serve-model` API (/info, /predict).")
        classes_txt = st.text_input("Expected class names (optional)", key="v_http_classes")
    query_sources = (["Held-out demo phantom"] if bundle else []) + ["Current dataset (non-target images)"]
    qsrc = st.radio("Query images", query_sources, key="v_qsrc")
    test_label = st.radio("Test", list(TESTS), key="v_test")
    c1, c2 = st.columns(2)
    m = c1.number_input("Queries m", 10, 1000, 100, step=10, key="v_m")
    seed = c2.number_input("Seed", 0, 10**6, 0, key="v_seed")
    tau = c1.number_input("Margin τ", 0.0, 0.9, 0.2, 0.05, key="v_tau")
    alpha = c2.number_input("Level α", 0.0001, 0.2, 0.01, 0.005, format="%.4f", key="v_alpha")
    gain = c1.number_input("Query gain", 0.5, 8.0, VerifyConfig.query_gain, 0.5, key="v_gain",
                           help="Strength of the mark on the query images (never released). "
                                "A model that did not learn the mark does not respond at any gain.")
    demo_proxy = bundle.proxy_for(marker) if bundle is not None else None
    queries = c2.selectbox("Query choice", QUERY_CHOICES, QUERY_CHOICES.index(default_query_choice(demo_proxy)),
                           key="v_queries",
                           help="proxy (preselected where the demo owner's proxy is at hand): the m on which "
                                "the owner's proxy, a model the owner trained on its own release, answers the "
                                "mark most; the strongest choice measured (docs/architecture.md, 6). boundary "
                                "(the default without a proxy): the m pool images the owner's surrogate scores "
                                "closest to the target class; a learned mark shows there, but so does a nearby "
                                "key's (docs/architecture.md, 4). random: a seeded draw of the pool (the paper's protocol).")
    if queries == "proxy":
        proxy_up = st.file_uploader("Proxy checkpoints: classifiers you trained on your own release, not the "
                                    "suspect", type=["pt", "pth", "ts"], key="v_proxy", accept_multiple_files=True,
                                    help="One, or several (e.g. trained at different input sizes): the queries "
                                         "are then chosen by their mean rise (docs/architecture.md, 6).")
        if demo_proxy is not None:
            st.caption(f"Without an upload, the demo owner's proxy is used (`{demo_proxy.name}`, trained on the "
                       "demo release; models/MODEL_CARD.md).")
    spec = c1.number_input("Key specificity ±°", 0.0, 90.0, VerifyConfig.specificity, 5.0, key="v_spec",
                           help="0 = off. Also query the owner's mark with its key carrier turned by ± this "
                                "many degrees, and claim only if the owner's own mark is answered more "
                                "strongly than both: a model that learned a nearby key is then refused. "
                                "Default 25, measured with boundary queries (docs/architecture.md, 5).")
    check_gain = c2.number_input("Check gain", 0.0, 8.0, 0.0, 0.25, key="v_check_gain",
                                 help="0 = the query gain. Strength of the marks in the key check (the owner's "
                                      "and the turned ones); below the query gain their answers are off the "
                                      "ceiling, and the sequential test decides sooner (README, Results).")
    b1, b2 = st.columns(2)
    run = b1.button("Run verification", type="primary", key="v_run", width="stretch")
    stop = b2.button("Stop", key="v_stop", width="stretch",
                     help="Stops a running verification (the partial log is kept).")

with right:
    status_box = st.empty()
    bar_box = st.empty()
    chart_box = st.empty()
    verdict_box = st.empty()


def _suspect():
    if choice == UPLOAD:
        if up is None:
            raise ValueError("upload a suspect checkpoint first")
        return sources.open_uploaded_suspect(up.name, up.getvalue(), sources.parse_classes(classes_txt),
                                             int(up_size) or None)
    if choice == HTTP:
        return sources.open_http_suspect(url, sources.parse_classes(classes_txt))
    key = next(k for k, v in SUSPECT_LABELS.items() if v == choice)
    path = bundle.suspects[key]
    return cached.suspect_at(path)


def _proxy():
    if queries != "proxy":
        return None
    if not proxy_up and demo_proxy is not None:
        return cached.suspect_at(demo_proxy)
    if not proxy_up:
        raise ValueError("proxy queries need the owner's proxy: upload a classifier trained on your own "
                         "release (`xmark train-classifier --data RELEASE`), or choose boundary queries")
    return mean_or_one([sources.open_uploaded_suspect(f.name, f.getvalue(), None, None) for f in proxy_up])


def _pool(m_: int):
    if qsrc == "Held-out demo phantom":
        return cached.query_images(target, m_, bundle.image_size, bundle.query_seed), "held-out demo phantom"
    ds = ui.require_dataset()
    images, ids = heldout_pool(ds, target)
    return (images, ids), st.session_state.get("xm_dataset_name", "current dataset")


def _draw(res) -> None:
    s = live.live_series(res)
    fig = figures.verification_figure(s.p_b, s.p_w, s.running_p, s.running_wsr, res.config.tau,
                                      res.config.alpha, res.config.m, p_label="anytime-valid p-value",
                                      streams=s.streams, degrees=res.config.specificity)
    chart_box.plotly_chart(fig)


show_last = True
if run:
    st.session_state["v_running"] = True
    st.session_state["v_partial"] = None
    show_last = False
    with ui.guarded("Verification"):
        with status_box.status("Preparing the suspect and the queries ...", expanded=False) as status:
            suspect = _suspect()
            (images, ids), pool_name = _pool(int(m))
            cfg = VerifyConfig(m=int(m), tau=float(tau), alpha=float(alpha), test=TESTS[test_label],
                               seed=int(seed), query_gain=float(gain), queries=queries,
                               specificity=float(spec), check_gain=float(check_gain) or None,
                               batch_size=max(5, min(10, int(m) // 20)))
            status.update(label=f"Querying the suspect with {cfg.m} image pairs ...", state="running")
            bar = bar_box.progress(0.0, text="0 queries")

            def on_query(res) -> None:
                st.session_state["v_partial"] = res
                _draw(res)

            result = run_verification(
                suspect, marker, images, ids, target, cfg, on_query=on_query, proxy=_proxy(),
                progress=lambda d, t: bar.progress(min(d / t, 1.0), text=f"{d} of {t} queries"),
            )
            status.update(label=f"Done: {result.n_queries} queries", state="complete")
        st.session_state["xm_verification"] = {
            "result": result, "suspect": suspect.identity(), "suspect_label": choice,
            "marker": marker.identity(), "queries": pool_name,
            "owner_files": evidence_view.owner_files(bundle) if bundle and marker is bundle.marker else None,
            "created_utc": evidence_view.now_utc(),
        }
        show_last = True
    st.session_state["v_running"] = False
elif stop or st.session_state.get("v_running"):
    # A click on Stop (or on any widget) while a run was going interrupts it; keep what was logged.
    partial = st.session_state.get("v_partial")
    st.session_state["v_running"] = False
    if partial is not None and not partial.complete:
        show_last = False
        _draw(partial)
        verdict_box.warning(
            f"Stopped by the user after {partial.n_queries} of {partial.config.m} queries. "
            + ("The sequential test's running p-value is valid at any stopping time: "
               f"{partial.running_p[-1]:.3g} (α = {partial.config.alpha:g})."
               if partial.config.test == "sequential" else
               "A fixed-m test draws no conclusion from an interrupted run: run it again to completion.")
        )

last = st.session_state.get("xm_verification")
if show_last and last is not None:
    res = last["result"]
    if not run:  # a run just now has drawn its final state already
        _draw(res)
    (verdict_box.warning if res.decision else verdict_box.info)(
        ("**Ownership claimed.** " if res.decision else "**No claim.** ") + res.verdict
    )
    with right:
        k1, k2, k3, k4 = st.columns(4)
        k1.metric("ΔP = mean(P_w − P_b)", f"{res.delta_p:.3f}")
        k2.metric(f"p-value ({res.test})", f"{res.p_value:.2g}")
        k3.metric("WSR", f"{res.wsr:.0%}")
        # the note goes in the label: a value wider than the column is cut off ("40 (sto...")
        k4.metric("Queries, stopped early" if res.stopped_early else "Queries", f"{res.n_queries}")
        st.caption(f"Suspect: {last['suspect_label']} · queries: {last['queries']} · details on the Evidence page.")
elif last is None and not run and show_last:
    status_box.info("Choose a suspect and press **Run verification**.")
