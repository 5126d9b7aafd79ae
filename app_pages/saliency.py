import streamlit as st

from xmark_core.app_support import cached, imaging, saliency_view, ui
from xmark_core.quality import WINDOW_PRESETS

st.title("Saliency")
st.caption(
    "Where the owner's surrogate classifier looks. The watermark generator only writes where "
    "its soft gate on this map is open (outlined in white)."
)
ds = ui.require_dataset()
marker = ui.require_marker()
model, gen = marker.surrogate, marker.generator

idx = ui.image_picker(ds, "sal")
c1, c2, c3, c4 = st.columns(4)
method = c1.radio("Method", ["eigencam", "gradcam"], horizontal=True, key="sal_method",
                  help="EigenCAM is what the generator's gate uses; GradCAM explains the predicted class.")
layer = c2.selectbox("Layer", saliency_view.cam_layers(model), key="sal_layer")
alpha = c3.slider("Opacity", 0.0, 1.0, 0.45, 0.05, key="sal_alpha")
area = c4.slider("Gate area (share of image)", 0.05, 1.0, float(gen.gate_area), 0.05, key="sal_area",
                 help=f"The generator was trained with {gen.gate_area:.2f}; the gate opens on the "
                      "most salient part of the image of this size.")
window = st.radio("Window", list(WINDOW_PRESETS), horizontal=True, key="sal_window")

with ui.guarded("Computing the saliency map"):
    rec = ds[idx]
    sal = cached.saliency_map(model, cached.marker_key(marker), f"{st.session_state.get('xm_dataset_name')}:{rec.image_id}",
                              rec.image, method, layer, marker.input_size)
    gate = saliency_view.gate_for(sal, area, gen.gate_temp)
    region = saliency_view.gate_region(gate)
    a, b = st.columns(2)
    a.image(imaging.overlay_heatmap(rec.image, sal, alpha, outline=region, window=window),
            caption=f"{method} on {layer} · {rec.image_id}", width="stretch")
    b.image(imaging.heatmap_rgb(gate), caption=f"Generator gate m(s) (open on {100 * region.mean():.0f}% of the image)",
            width="stretch")
