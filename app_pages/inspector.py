import streamlit as st

from xmark_core.app_support import cached, figures, imaging, ui
from xmark_core.quality import WINDOW_PRESETS, Window, amplified_difference, pair_quality, ssim_map

st.title("Watermark inspector")
st.caption("Original and watermarked copy of one image. Zoom or pan one panel: the others follow.")
ds = ui.require_dataset()
marker = ui.require_marker()


def _apply_preset() -> None:
    w = WINDOW_PRESETS[st.session_state["insp_preset"]]
    st.session_state["insp_center"], st.session_state["insp_width"] = float(w.center), float(w.width)


st.session_state.setdefault("insp_center", WINDOW_PRESETS["full"].center)
st.session_state.setdefault("insp_width", WINDOW_PRESETS["full"].width)

idx = ui.image_picker(ds, "insp")
c1, c2, c3, c4 = st.columns([2, 1, 1, 1])
c1.radio("Window preset", list(WINDOW_PRESETS), horizontal=True, key="insp_preset", on_change=_apply_preset)
center = c2.slider("Level (center)", 0.0, 1.0, step=0.01, key="insp_center")
width = c3.slider("Width", 0.05, 1.0, step=0.01, key="insp_width")
gain = c4.slider("Difference gain ×k", 1, 200, 10, key="insp_gain")
window = Window(center, width)

with ui.guarded("Watermarking the image"):
    rec = ds[idx]
    x = rec.image
    xw = cached.marked_image(marker, cached.marker_key(marker), f"{st.session_state.get('xm_dataset_name')}:{rec.image_id}", x)
    q = pair_quality(x, xw)
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("PSNR", f"{q.psnr:.2f} dB")
    m2.metric("SSIM", f"{q.ssim:.4f}")
    m3.metric("Largest change", f"{q.max_abs * 255:.1f} / 255")
    m4.metric("Image", f"{x.shape[1]}×{x.shape[0]} px")

    orig8, wm8 = imaging.to_uint8(x, window), imaging.to_uint8(xw, window)
    smap = ssim_map(x, xw)
    mode = st.radio("Comparison", ["Linked panels", "Swipe", "Blink"], horizontal=True, key="insp_mode")
    if mode == "Linked panels":
        fig = figures.linked_images(
            [orig8, wm8, imaging.to_uint8(amplified_difference(x, xw, gain)), imaging.ssim_loss_rgb(smap)],
            ["Original", "Watermarked", f"Difference ×{gain} (grey = 0)", "1 − local SSIM (blue 0 … red ≥ 0.05)"],
            cols=2, height=430,
        )
        st.plotly_chart(fig, key="insp_linked", config={"scrollZoom": True, "displaylogo": False})
    elif mode == "Swipe":
        pos = st.slider("Swipe: original ◀ ▶ watermarked", 0.0, 1.0, 0.5, 0.01, key="insp_swipe")
        st.image(imaging.swipe_composite(orig8, wm8, pos), caption="left of the line: original · right: watermarked",
                 width="stretch")
    else:
        auto = st.toggle("Blink automatically (every 0.8 s)", key="insp_autoblink")

        @st.fragment(run_every=0.8 if auto else None)
        def _blink() -> None:
            if auto:
                st.session_state["insp_show_wm"] = not st.session_state.get("insp_show_wm", False)
                show = st.session_state["insp_show_wm"]
            else:
                show = st.toggle("Show watermarked", key="insp_show_wm")
            st.image(wm8 if show else orig8, caption="WATERMARKED" if show else "ORIGINAL", width="stretch")

        _blink()
