from pathlib import Path

import streamlit as st

from xmark_core.app_support import (
    cached,
    figures,
    imaging,
    quality_table,
    reader_study,
    sources,
    ui,
)
from xmark_core.quality import amplified_difference

st.title("Quality")
ds = ui.require_dataset()
marker = ui.require_marker()
target = ui.target_of(marker)
data_name = st.session_state.get("xm_dataset_name", "")

tab_release, tab_reader = st.tabs(["Release quality (SSIM / PSNR)", "Blinded reader study"])

with tab_release:
    c1, c2, c3, c4 = st.columns(4)
    subset = c1.radio("Images", ["target class (as released)", "all classes"], key="q_subset",
                      disabled=target is None)
    n_max = c2.number_input("At most", 4, 2000, 32, step=4, key="q_n")
    ssim_min = c3.number_input("SSIM threshold", 0.5, 1.0, 0.98, 0.005, format="%.3f", key="q_ssim_min")
    psnr_min = c4.number_input("PSNR threshold (dB)", 20.0, 80.0, 40.0, 0.5, key="q_psnr_min")
    cls = target if subset.startswith("target") and target is not None else None
    pool = sources.indices_of_class(ds.labels(), cls)[: int(n_max)]
    run_key = (cached.marker_key(marker), data_name, tuple(pool.tolist()))
    if st.button(f"Watermark and measure {len(pool)} images", type="primary", key="q_run"):
        with ui.guarded("Measuring the release"):
            bar = st.progress(0.0, text="watermarking ...")
            recs = [ds[int(i)] for i in pool]
            marked = quality_table.mark_many(
                marker, [r.image for r in recs],
                progress=lambda d, t: bar.progress(d / t, text=f"watermarked {d}/{t}"))
            df = quality_table.quality_table([r.image for r in recs], marked, [r.image_id for r in recs])
            bar.empty()
            st.session_state["q_result"] = {"key": run_key, "df": df, "orig": [r.image for r in recs],
                                            "marked": marked}
    res = st.session_state.get("q_result")
    if res is None or res["key"] != run_key:
        st.info("Press the button to watermark these images and measure SSIM and PSNR.")
    else:
        df = res["df"]
        s = quality_table.quality_summary(df, ssim_min, psnr_min)
        m1, m2, m3, m4 = st.columns(4)
        m1.metric("Images", s["n"])
        m2.metric("Below a threshold", s["n_fail"])
        m3.metric("SSIM median", f"{s['ssim_median']:.4f}")
        m4.metric("PSNR median", f"{s['psnr_median']:.2f} dB")
        st.caption(f"Worst image: SSIM {s['ssim_min']:.4f}, PSNR {s['psnr_min']:.2f} dB. Thresholds: SSIM ≥ "
                   f"{ssim_min:.3f} and PSNR ≥ {psnr_min:.1f} dB.")
        h1, h2 = st.columns(2)
        h1.plotly_chart(figures.histogram(df["ssim"], "SSIM per image", "SSIM", ssim_min), key="q_hist_ssim")
        h2.plotly_chart(figures.histogram(df["psnr"], "PSNR per image", "PSNR (dB)", psnr_min), key="q_hist_psnr")
        st.subheader("Worst cases first")
        st.dataframe(df.drop(columns=["item"]), hide_index=True, height=240, key="q_table", column_config={
            "ssim": st.column_config.NumberColumn("SSIM", format="%.4f"),
            "psnr": st.column_config.NumberColumn("PSNR (dB)", format="%.2f"),
            "max_abs": st.column_config.NumberColumn("largest change (of 1)", format="%.4f"),
        })
        worst = df.head(3)
        cols = st.columns(len(worst))
        for col, (_, row) in zip(cols, worst.iterrows()):
            i = int(row["item"])
            col.image(imaging.to_uint8(amplified_difference(res["orig"][i], res["marked"][i], 10.0)),
                      caption=f"{row['image']}: difference ×10, SSIM {row['ssim']:.4f}", width="stretch")

with tab_reader:
    st.write(
        "Each trial shows an original and its watermarked copy, sides at random. Pick the one you "
        "think carries the watermark, and optionally rate the diagnostic quality of each (1 = "
        "non-diagnostic, 5 = excellent). An exact binomial test says whether readers beat chance."
    )
    c1, c2, c3 = st.columns(3)
    reader = c1.text_input("Reader", "reader-1", key="rs_reader")
    n_trials = c2.number_input("Trials", 2, 200, 10, key="rs_n")
    seed = c3.number_input("Randomisation seed", 0, 10**6, 0, key="rs_seed")
    csv_path = st.text_input("Save answers to (CSV, written atomically after each answer)",
                             "results/reader_study.csv", key="rs_csv")
    window = st.radio("Window", ["full", "lung", "mediastinum", "bone"], horizontal=True, key="rs_window")
    cls = target if target is not None else None
    pool = sources.indices_of_class(ds.labels(), cls)
    if st.button("Start a new session", key="rs_start"):
        ids = [f"{int(i)}" for i in pool]
        st.session_state["rs_trials"] = reader_study.make_trials(ids, int(n_trials), int(seed))
        st.session_state["rs_responses"] = []
    trials = st.session_state.get("rs_trials")
    responses = st.session_state.get("rs_responses", [])
    if trials is None:
        st.info("Press 'Start a new session' to begin.")
    elif len(responses) < len(trials):
        t = trials[len(responses)]
        st.progress(len(responses) / len(trials), text=f"trial {len(responses) + 1} of {len(trials)}")
        with ui.guarded("Preparing the trial"):
            rec = ds[int(t.image_id)]
            xw = cached.marked_image(marker, cached.marker_key(marker), f"{data_name}:{rec.image_id}", rec.image)
            left, right = (xw, rec.image) if t.watermarked_side == "left" else (rec.image, xw)
            a, b = st.columns(2)
            a.image(imaging.to_uint8(left, window), caption="A (left)", width="stretch")
            b.image(imaging.to_uint8(right, window), caption="B (right)", width="stretch")
            with st.form(f"rs_form_{t.order}", clear_on_submit=True):
                choice = st.radio("Which image is watermarked?", ["A (left)", "B (right)"], index=None,
                                  horizontal=True, key=f"rs_choice_{t.order}")
                r1, r2 = st.columns(2)
                ra = r1.select_slider("Diagnostic quality of A", [0, 1, 2, 3, 4, 5], value=0,
                                      help="0 = not rated")
                rb = r2.select_slider("Diagnostic quality of B", [0, 1, 2, 3, 4, 5], value=0,
                                      help="0 = not rated")
                if st.form_submit_button("Submit answer", type="primary"):
                    if choice is None:
                        st.warning("Pick A or B first.")
                    else:
                        side = "left" if choice.startswith("A") else "right"
                        responses.append(reader_study.respond(t, reader, side, ra, rb, image_id=rec.image_id))
                        st.session_state["rs_responses"] = responses
                        reader_study.save_responses(Path(csv_path), responses)
                        st.rerun()
    if responses:
        summary = reader_study.summarize(responses)
        (st.warning if summary.beats_chance else st.success)(summary.sentence())
        if summary.n_rated:
            st.write(
                f"Mean diagnostic quality: original {summary.mean_rating_original:.2f}, watermarked "
                f"{summary.mean_rating_watermarked:.2f} ({summary.n_rated} rated pairs; Wilcoxon p = "
                f"{summary.rating_p_value:.3g})."
            )
        st.download_button("Download answers (CSV)", reader_study.responses_csv(responses),
                           file_name="reader_study.csv", mime="text/csv", key="rs_download")
