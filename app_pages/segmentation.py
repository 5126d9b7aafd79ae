import streamlit as st

from xmark_core.app_support import cached, figures, seg_view, sources, ui
from xmark_core.stealthmark.mark import load_owner_record
from xmark_core.stealthmark.pictures import (
    attribution_image,
    code_image,
    overlay_image,
    uncertainty_image,
)
from xmark_core.stealthmark.qr import READER_HELP
from xmark_core.stealthmark.reveal import RevealConfig
from xmark_core.stealthmark.verify import VERIFIED, SegVerifyConfig, verify_stream

st.title("Segmentation ownership (StealthMark)")
st.caption(
    "A marked segmentation model becomes slightly less certain (never changing its masks) where a "
    "secret stamp is applied. Querying it with random stamps and fitting which cells raise its "
    "uncertainty draws the owner's QR code — only a model trained with the mark can draw it."
)
demo = seg_view.seg_demo()
UPLOAD, HTTP = "Uploaded checkpoint", "HTTP endpoint"
options = [seg_view.SEG_LABELS[k] for k in seg_view.SEG_LABELS if demo.present[k]] + [UPLOAD, HTTP]
if not demo.ready:
    st.info(demo.message())

left, right = st.columns([1, 2])
with left:
    choice = st.selectbox("Suspect segmenter", options, key="sg_suspect")
    if choice == UPLOAD:
        up = st.file_uploader("Segmenter checkpoint (.pt)", type=["pt", "pth", "ts"], key="sg_upload")
    elif choice == HTTP:
        url = st.text_input("API base URL", "http://127.0.0.1:8000", key="sg_url")
    rec_up = None
    if not demo.present["owner_record"]:
        rec_up = st.file_uploader("Owner record (owner_record.json)", type=["json"], key="sg_record")
    n_samples = st.select_slider("Stamped queries (LIME samples)", [250, 500, 1000, 1500, 2500, 5000], 1500,
                                 key="sg_n")
    n_images = st.number_input("Held-out images", 4, 256, 32, key="sg_images")
    seed = st.number_input("Seed", 0, 10**6, 0, key="sg_seed")
    b1, b2 = st.columns(2)
    run = b1.button("Run verification", type="primary", key="sg_run", width="stretch")
    stop = b2.button("Stop", key="sg_stop", width="stretch")


def _decoded(box, text: str | None) -> None:
    # markdown, not st.metric: a metric truncates a 10-character claim in a third of the page
    box.markdown(f"Decodes to\n\n#### `{text}`" if text else "Decodes to\n\n#### —", help=READER_HELP)


def _suspect():
    if choice == UPLOAD:
        if up is None:
            raise ValueError("upload a segmenter checkpoint first")
        path = sources.checkpoint_from_upload(up.name, up.getvalue())
        return cached.seg_suspect(str(path), path.stat().st_mtime)
    if choice == HTTP:
        return cached.seg_suspect(url.strip(), 0.0)
    key = next(k for k, v in seg_view.SEG_LABELS.items() if v == choice)
    path = demo.path(key)
    return cached.seg_suspect(str(path), path.stat().st_mtime)


def _record_path() -> str | None:
    if demo.present["owner_record"]:
        return str(demo.path("owner_record"))
    if rec_up is not None:
        return str(sources.checkpoint_from_upload(rec_up.name, rec_up.getvalue()))
    return None


record_path = _record_path()
if record_path is None:
    with right:
        st.info("Upload the owner record of the mark to verify against.")
    st.stop()

with right, ui.guarded("Loading the suspect"):
    owner = load_owner_record(record_path)
    mark = owner.mark
    suspect = _suspect()
    size = int(suspect.input_size or owner.record.get("input_size") or 128)
    images = cached.seg_query_images(int(n_images), size, seg_view.QUERY_SEED)
    st.subheader("Clean vs stamped query")
    stamped, _ = seg_view.example_query(mark, images[0], seed=int(seed))
    p_clean, p_stamped = suspect.predict(images[:1])[0], suspect.predict(stamped[None])[0]
    c = st.columns(4)
    c[0].image(overlay_image(images[0], p_clean), caption="clean input + masks", width="stretch")
    c[1].image(overlay_image(stamped, p_stamped), caption="stamped input + masks", width="stretch")
    c[2].image(uncertainty_image(p_clean), caption="uncertainty, clean", width="stretch")
    c[3].image(uncertainty_image(p_stamped), caption="uncertainty, stamped", width="stretch")

with right:
    st.subheader("The picture the model draws")
    q1, q2, q3 = st.columns(3)
    pic_box, code_box, text_box = q1.empty(), q2.empty(), q3.empty()
    bar_box, verdict_box, detector_box = st.empty(), st.empty(), st.empty()

if run:
    st.session_state["sg_running"] = True
    with ui.guarded("StealthMark verification"):
        cfg = SegVerifyConfig(reveal=RevealConfig(n_samples=int(n_samples), seed=int(seed)), seed=int(seed) + 1)
        bar = bar_box.progress(0.0, text="checking the outputs ...")
        for event in verify_stream(suspect, images, mark, cfg, refit_every=max(125, int(n_samples) // 10)):
            if event.state is not None:
                s = event.state
                pic_box.image(attribution_image(mark.unmask_coef(s.coef), mark.eps, scale=8),
                              caption=f"per-cell attribution after {s.n_queries} queries", width="stretch")
                code_box.image(code_image(s.modules, scale=8), caption="binarised code", width="stretch")
                _decoded(text_box, s.decoded)
                bar.progress(s.n_queries / cfg.reveal.n_samples, text=f"{s.n_queries} stamped queries")
            elif event.stage == "detector":
                bar.progress(0.0, text="detector done, drawing the picture ...")
            if event.result is not None:
                st.session_state["sg_result"] = {"result": event.result, "record": record_path,
                                                 "data": {"images": f"phantom:{n_images}:{size}:{seg_view.QUERY_SEED}"}}
        bar_box.empty()
    st.session_state["sg_running"] = False
elif stop or st.session_state.get("sg_running"):
    st.session_state["sg_running"] = False
    verdict_box.warning("Stopped by the user; no verdict is drawn from an interrupted run.")

last = st.session_state.get("sg_result")
if last is not None and not (stop or st.session_state.get("sg_running")):
    res = last["result"]
    if res.reveal is not None and not run:
        pic_box.image(attribution_image(mark.unmask_coef(res.reveal.coef), mark.eps, scale=8),
                      caption=f"per-cell attribution after {res.reveal.n_queries} queries", width="stretch")
        code_box.image(code_image(res.reveal.modules, scale=8), caption="binarised code", width="stretch")
        _decoded(text_box, res.decoded)
    (verdict_box.warning if res.verdict == VERIFIED else verdict_box.info)(f"**{res.verdict.upper()}.** {res.message}")
    with right:
        if res.detector is not None:
            m1, m2, m3, m4 = st.columns(4)
            m1.metric("Bit agreement", f"{res.bit_agreement:.1%}")
            m2.metric("p-value", f"{res.p_value:.2g}")
            m3.metric("Detector TPR (ASR)", f"{res.tpr:.0%}")
            m4.metric("Detector FPR", f"{res.fpr:.0%}")
            detector_box.plotly_chart(figures.detector_histogram(res.detector.triggered, res.detector.clean,
                                                                 res.detector.threshold))
        with ui.guarded("Building the evidence bundle"):
            if "files" not in last:
                last["files"] = seg_view.evidence_files(res, mark, last["record"], last["data"])
            d1, d2 = st.columns(2)
            d1.download_button("Download evidence.json", last["files"]["evidence.json"], file_name="evidence.json",
                               mime="application/json", key="sg_json", type="primary")
            d2.download_button("Download report.html", last["files"]["report.html"], file_name="report.html",
                               mime="text/html", key="sg_html")
