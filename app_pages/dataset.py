import streamlit as st

from xmark_core.app_support import figures, imaging, sources, ui
from xmark_core.quality import WINDOW_PRESETS

st.title("Dataset")
ds = ui.require_dataset()
st.caption(st.session_state.get("xm_dataset_name", ""))

left, right = st.columns([2, 3])
with left:
    counts = sources.class_counts(ds.labels(), len(ds.classes))
    st.plotly_chart(figures.class_counts(ds.classes, counts), key="ds_counts")
    window = st.radio("Window", list(WINDOW_PRESETS), horizontal=True, key="ds_window")

with right:
    idx = ui.image_picker(ds, "ds")
    with ui.guarded("Reading the image"):
        rec = ds[idx]
        masks = rec.meta.get("masks") or {}
        if masks:
            c1, c2 = st.columns([3, 1])
            shown = c1.multiselect("Finding / anatomy masks", list(masks), default=list(masks), key="ds_masks")
            alpha = c2.slider("Mask opacity", 0.0, 1.0, 0.3, 0.05, key="ds_alpha")
            pic = imaging.overlay_masks(rec.image, {k: masks[k] for k in shown}, alpha, window=window)
        else:
            pic = imaging.to_uint8(rec.image, window)
        label = ds.classes[rec.label] if 0 <= rec.label < len(ds.classes) else str(rec.label)
        st.image(pic, caption=f"{rec.image_id} · {label} · {rec.image.shape[1]}×{rec.image.shape[0]} px",
                 width=560)

st.subheader("Gallery")
start = st.columns([1, 4])[0].number_input("From image", 0, max(len(ds) - 1, 0), 0, step=8, key="ds_gallery_start")
with ui.guarded("Drawing the gallery"):
    items = list(range(int(start), min(int(start) + 8, len(ds))))
    for col, i in zip(st.columns(8), items):
        r = ds[i]
        name = ds.classes[r.label] if 0 <= r.label < len(ds.classes) else str(r.label)
        col.image(imaging.to_uint8(r.image, window), caption=f"#{i} {name}", width="stretch")
