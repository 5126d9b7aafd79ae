"""Streamlit glue shared by the pages: the sidebar pickers, "require" guards, error display.

Pages call :func:`require_dataset` / :func:`require_marker` to get what the sidebar
picked; when it is missing they show why (an ``st.info``) and stop the page cleanly.
"""

from __future__ import annotations

import hashlib
import logging
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import streamlit as st

from xmark_core.app_support import cached, sources
from xmark_core.app_support import demo as demo_mod
from xmark_core.errors import XMarkError

log = logging.getLogger("xmark.app")

MODEL_SOURCES = ("Demo bundle (models/)", "Upload checkpoints")
# Errors a user can cause (bad file, bad path, unreachable server) and fix themselves.
USER_ERRORS = (XMarkError, ValueError, OSError, ConnectionError, TimeoutError)


@contextmanager
def guarded(what: str) -> Iterator[None]:
    """Show an exception raised inside the block as an ``st.error`` message, not a traceback.

    User errors get their message; anything else (a bug) gets its type and message, and
    the traceback goes to the server log. Streamlit's own control flow (reruns, stops)
    derives from BaseException and passes through.
    """
    try:
        yield
    except USER_ERRORS as e:
        st.error(f"{what} failed: {e}")
    except Exception as e:  # noqa: BLE001 - the app must never show a traceback to a user
        log.error("%s failed:\n%s", what, traceback.format_exc())
        st.error(f"{what} failed with an unexpected {type(e).__name__}: {e}")


def _digest(files: list[tuple[str, bytes]]) -> str:
    h = hashlib.sha256()
    for name, data in files:
        h.update(name.encode())
        h.update(hashlib.sha256(data).digest())
    return h.hexdigest()


# --------------------------------------------------------------------------- sidebar


def _dataset_picker() -> None:
    st.header("Dataset")
    source = st.selectbox("Source", sources.SOURCES, key="xm_source")
    ds, name = None, ""
    with guarded("Opening the dataset"):
        if source == "Demo phantom":
            c1, c2 = st.columns(2)
            n = c1.number_input("Images", 8, 5000, 64, step=8, key="xm_ph_n")
            size = c2.selectbox("Pixels", [128, 256, 512], index=1, key="xm_ph_size")
            seed = st.number_input("Seed", 0, 1_000_000, 0, key="xm_ph_seed",
                                   help="Each seed draws other patients; the demo models trained on seed 0.")
            ds, name = cached.phantom_dataset(n, size, seed), f"phantom, {n} images, {size} px, seed {seed}"
        elif source in ("Folder", "CheXpert CSV"):
            hint = "/data/xrays (labels.csv or class sub-folders)" if source == "Folder" else "/data/CheXpert-v1.0-small/train.csv"
            path = st.text_input(f"{source} path", key=f"xm_path_{source}", placeholder=hint)
            if path.strip():
                ds, name = cached.dataset(path.strip()), path.strip()
        else:
            files = st.file_uploader("PNG, JPEG or DICOM files", type=sources.UPLOAD_TYPES,
                                     accept_multiple_files=True, key="xm_uploads")
            if files:
                pairs = tuple((f.name, f.getvalue()) for f in files)
                ds = cached.uploaded_dataset(pairs, _digest(list(pairs)))
                name = f"{len(ds)} uploaded image(s)"
                for fname, msg in ds.errors.items():
                    st.warning(f"{fname} skipped: {msg}")
    if ds is not None and len(ds) == 0:
        st.warning("The dataset is empty.")
        ds = None
    st.session_state["xm_dataset"] = ds
    st.session_state["xm_dataset_name"] = name
    if ds is not None:
        st.caption(f"{len(ds)} images · classes: {', '.join(ds.classes)}")


def _model_picker() -> None:
    st.header("Models")
    choice = st.radio("Watermark generator", MODEL_SOURCES, key="xm_model_source")
    bundle, marker = None, None
    if choice == MODEL_SOURCES[0]:
        status = demo_mod.demo_status()
        if not status.has_marker:
            st.info(f"No demo models in `{status.root}` yet: build them with `make models`, or upload checkpoints.")
        else:
            with guarded("Loading the demo models"):
                bundle = cached.demo_bundle(str(status.root), cached.files_signature(status.root))
                marker = bundle.marker
                st.caption(f"Demo: target class '{bundle.classes[bundle.target]}' · "
                           f"generator key {marker.key}")
    else:
        sur = st.file_uploader("Surrogate classifier (.pt)", type=["pt", "pth"], key="xm_up_sur")
        gen = st.file_uploader("Generator (.pt)", type=["pt", "pth"], key="xm_up_gen")
        if sur and gen:
            with guarded("Loading the uploaded checkpoints"):
                s, g = (sur.name, sur.getvalue()), (gen.name, gen.getvalue())
                marker = cached.uploaded_marker(s, g, _digest([s, g]))
                st.caption(f"Uploaded marker: target {marker.target}, key {marker.key}")
        else:
            st.caption("Upload both the surrogate and the generator checkpoint.")
    st.session_state["xm_bundle"] = bundle
    st.session_state["xm_marker"] = marker


def sidebar() -> None:
    """Draw the shared sidebar and store the picks in ``st.session_state``."""
    with st.sidebar:
        _dataset_picker()
        _model_picker()


# --------------------------------------------------------------------------- accessors


def require_dataset() -> Any:
    """The dataset picked in the sidebar, or an info message and a clean stop of the page."""
    ds = st.session_state.get("xm_dataset")
    if ds is None:
        st.info("Pick a dataset in the sidebar (the demo phantom needs nothing else).")
        st.stop()
    return ds


def require_marker() -> Any:
    """The watermark marker picked in the sidebar, or an info message and a clean stop."""
    marker = st.session_state.get("xm_marker")
    if marker is None:
        status = demo_mod.demo_status()
        st.info(status.message() if st.session_state.get("xm_model_source", MODEL_SOURCES[0]) == MODEL_SOURCES[0]
                and not status.has_marker else "Pick or upload a watermark generator in the sidebar.")
        st.stop()
    return marker


def demo_bundle() -> demo_mod.DemoBundle | None:
    return st.session_state.get("xm_bundle")


def target_of(marker: Any) -> int | None:
    """The marker's target class (the demo record's, if the demo is loaded)."""
    bundle = demo_bundle()
    if bundle is not None and bundle.marker is marker:
        return bundle.target
    return getattr(marker, "target", None)


def image_picker(ds: Any, key: str, label: str = "Image") -> int:
    """A class filter plus an index slider over a dataset; returns the chosen index."""
    labels = ds.labels()
    classes = ["all classes"] + list(ds.classes)
    c1, c2 = st.columns([1, 2])
    cls = c1.selectbox("Class", classes, key=f"{key}_cls")
    pool = sources.indices_of_class(labels, None if cls == classes[0] else classes.index(cls) - 1)
    if len(pool) == 0:
        st.info(f"No image of class '{cls}' in this dataset.")
        st.stop()
    k = c2.slider(label, 1, len(pool), 1, key=f"{key}_idx") if len(pool) > 1 else 1
    return int(pool[k - 1])
