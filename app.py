"""X-Mark investigation app (Streamlit). Pages lay out widgets and call xmark_core."""

import streamlit as st

st.set_page_config(page_title="X-Mark", page_icon="🩻", layout="wide")

pages = [st.Page("pages/home.py", title="Home", icon="🏠", default=True)]
st.navigation(pages).run()
