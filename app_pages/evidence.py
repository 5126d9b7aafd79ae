import streamlit as st

from xmark_core.app_support import evidence_view, figures, live, ui

st.title("Evidence")
st.caption("Everything a reviewer needs to check the last verification, and the files to keep.")
last = st.session_state.get("xm_verification")
if last is None:
    st.info("No verification yet: run one on the **Verify** page first.")
    st.page_link("app_pages/verify.py", label="Go to Verify", icon=":material/gavel:")
    st.stop()
res = last["result"]

(st.warning if res.decision else st.info)(("**Ownership claimed.** " if res.decision else "**No claim.** ") + res.verdict)

c1, c2 = st.columns(2)
with c1:
    st.subheader("Commitment")
    check = evidence_view.last_commitment(last)
    (st.success if check.ok else st.warning)(check.message)
    st.subheader("Parameters")
    st.dataframe(evidence_view.parameter_rows(res, last), hide_index=True, key="ev_params")
with c2:
    st.subheader("Models")
    for i, (model, rows) in enumerate(evidence_view.model_tables(last["suspect"], last.get("marker")).items()):
        st.caption(model)
        st.dataframe(rows, hide_index=True, key=f"ev_models_{i}",
                     column_config={"value": st.column_config.TextColumn(width="large")})
    with st.expander("The same, as recorded in evidence.json"):
        st.json({"suspect": last["suspect"], "watermark generator": last.get("marker")}, expanded=2)
    st.subheader("Supporting tests (information only)")
    st.dataframe(evidence_view.supporting_rows(res), hide_index=True, key="ev_support")

s = live.live_series(res)
st.plotly_chart(figures.verification_figure(s.p_b, s.p_w, s.running_p, s.running_wsr, res.config.tau,
                                            res.config.alpha, res.config.m, p_label="anytime-valid p-value",
                                            streams=s.streams, degrees=res.config.specificity),
                key="ev_fig")
st.subheader("Query log")
st.dataframe(live.log_table(res, last["suspect"].get("classes")), hide_index=True, height=300, key="ev_log")

st.subheader("Download")
st.caption("All three files are rendered from the same evidence record; its SHA-256 is inside evidence.json.")
with ui.guarded("Building the evidence bundle"):
    if "evidence" not in last:  # built once per verification, so every download agrees
        last["evidence"] = evidence_view.evidence_dict(last)
    ev = last["evidence"]
    d1, d2, d3 = st.columns(3)
    d1.download_button("Download evidence.json", evidence_view.json_bytes(ev), file_name="evidence.json",
                       mime="application/json", key="ev_json", type="primary")
    # HTML and PDF are rendered only when clicked (their figures take a moment).
    d2.download_button("Download report.html", lambda: evidence_view.html_bytes(ev), file_name="report.html",
                       mime="text/html", key="ev_html")
    d3.download_button("Download report.pdf", lambda: evidence_view.pdf_bytes(ev), file_name="report.pdf",
                       mime="application/pdf", key="ev_pdf")
