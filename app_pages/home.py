import streamlit as st

from xmark_core.app_support import demo

st.title("X-Mark")
st.write(
    "Invisible per-image watermarks for chest X-ray datasets, and black-box tests that "
    "show whether a suspect model was trained on them."
)

status = demo.demo_status()
if status.ready:
    st.success(f"Demo models loaded from `{status.root}`: pick a page on the left.")
else:
    st.info(status.message())

st.subheader("Tour")
c1, c2, c3 = st.columns(3)
with c1:
    st.markdown("**1 · Data**")
    st.page_link("app_pages/dataset.py", label="Browse images, labels and finding masks")
    st.page_link("app_pages/saliency.py", label="Where the surrogate looks (EigenCAM / GradCAM)")
with c2:
    st.markdown("**2 · Watermark**")
    st.page_link("app_pages/inspector.py", label="Original vs watermarked, window/level, difference")
    st.page_link("app_pages/quality.py", label="SSIM / PSNR over the release, blinded reader study")
with c3:
    st.markdown("**3 · Ownership**")
    st.page_link("app_pages/verify.py", label="Query a suspect model and test it, live")
    st.page_link("app_pages/evidence.py", label="Evidence bundle for a reviewer")
    st.page_link("app_pages/robustness.py", label="Attack the suspect and re-verify")
    st.page_link("app_pages/segmentation.py", label="StealthMark: ownership of a segmentation model")

marker = st.session_state.get("xm_marker")
st.caption(
    f"Dataset: {st.session_state.get('xm_dataset_name') or 'none'} · "
    f"Watermark generator: {'loaded' if marker is not None else 'none'}"
)
