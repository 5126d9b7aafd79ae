"""X-Mark investigation app (Streamlit). Pages lay out widgets and call xmark_core.

Run: ``make run`` (or ``streamlit run app.py``). The sidebar picks the dataset and the
watermark models once for every page.

The page scripts live in ``app_pages/``, not ``pages/``: Streamlit treats a ``pages/``
folder as a legacy (v1) multipage app until ``st.navigation`` has run once, so a first
visitor's deep link (and every AppTest rerun) would execute a page without this file's
sidebar.
"""

import streamlit as st

st.set_page_config(page_title="X-Mark", page_icon="🩻", layout="wide")

from xmark_core.app_support import ui  # noqa: E402 - set_page_config must come first

ui.sidebar()

pages = {
    "": [st.Page("app_pages/home.py", title="Overview", icon=":material/home:", default=True)],
    "Data": [
        st.Page("app_pages/dataset.py", title="Dataset", icon=":material/photo_library:"),
        st.Page("app_pages/saliency.py", title="Saliency", icon=":material/local_fire_department:"),
    ],
    "Watermark": [
        st.Page("app_pages/inspector.py", title="Watermark inspector", icon=":material/compare:"),
        st.Page("app_pages/quality.py", title="Quality", icon=":material/visibility:"),
    ],
    "Ownership": [
        st.Page("app_pages/verify.py", title="Verify", icon=":material/gavel:"),
        st.Page("app_pages/evidence.py", title="Evidence", icon=":material/description:"),
        st.Page("app_pages/robustness.py", title="Robustness", icon=":material/shield:"),
    ],
    "Segmentation models": [
        st.Page("app_pages/segmentation.py", title="Segmentation ownership", icon=":material/qr_code_2:"),
    ],
}
st.navigation(pages).run()
