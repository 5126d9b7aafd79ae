import streamlit as st

st.title("X-Mark")
st.write(
    "Invisible per-image watermarks for chest X-ray datasets, and black-box tests that "
    "show whether a suspect model was trained on them."
)
