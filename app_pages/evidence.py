import json

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

(st.error if res.decision else st.info)(("**Ownership claimed.** " if res.decision else "**No claim.** ") + res.verdict)

c1, c2 = st.columns(2)
with c1:
    st.subheader("Commitment")
    check = evidence_view.commitment_check(last.get("owner_files"))
    (st.success if check.ok else st.warning)(check.message)
    st.subheader("Parameters")
    st.dataframe(evidence_view.parameter_rows(res, last), hide_index=True, key="ev_params")
with c2:
    st.subheader("Models")
    st.json({"suspect": last["suspect"], "watermark generator": last["marker"]}, expanded=False)
    st.subheader("Supporting tests (information only)")
    st.dataframe(evidence_view.supporting_rows(res), hide_index=True, key="ev_support")

s = live.live_series(res)
st.plotly_chart(figures.verification_figure(s.p_b, s.p_w, s.running_p, s.running_wsr, res.config.tau,
                                            res.config.alpha, res.config.m, p_label="anytime-valid p-value"),
                key="ev_fig")
st.subheader("Query log")
st.dataframe(live.log_table(res, last["suspect"].get("classes")), hide_index=True, height=300, key="ev_log")

st.subheader("Download")
with ui.guarded("Building the evidence bundle"):
    if "files" not in last:  # built once per verification (the PDF takes a moment)
        with st.spinner("Writing evidence.json, report.html and report.pdf ..."):
            last["files"] = evidence_view.evidence_files(last)
    files = last["files"]
    if files is None:
        ui.not_available("The evidence report (evidence.json + report.html)", "xmark_core.report")
        st.download_button("Download the raw result (JSON)", json.dumps(res.to_dict(), default=str, indent=2),
                           file_name="verification_result.json", mime="application/json", key="ev_raw")
    else:
        d1, d2, d3 = st.columns(3)
        d1.download_button("Download evidence.json", files["evidence.json"], file_name="evidence.json",
                           mime="application/json", key="ev_json", type="primary")
        d2.download_button("Download report.html", files["report.html"], file_name="report.html",
                           mime="text/html", key="ev_html")
        if "report.pdf" in files:
            d3.download_button("Download report.pdf", files["report.pdf"], file_name="report.pdf",
                               mime="application/pdf", key="ev_pdf")
