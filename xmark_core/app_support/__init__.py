"""App-facing glue that computes: demo bundle loading, image rendering, plotly figures,
the reader study, live verification bookkeeping. Importable and tested without a browser;
only :mod:`xmark_core.app_support.cached` and :mod:`xmark_core.app_support.ui` import
Streamlit."""
