"""Streamlit-cached loaders of the app's heavy resources.

``st.cache_resource`` holds objects shared by all sessions (models, datasets);
``st.cache_data`` holds arrays computed from them (marked images, query sets, quality
tables). Arguments starting with ``_`` are not hashed, so every such call also takes a
hashable key that identifies the object (a path with its modification time, a digest).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from xmark_core.app_support import demo as demo_mod
from xmark_core.app_support import sources


def files_signature(root: Path) -> tuple[tuple[str, float], ...]:
    """(name, mtime) of the files in ``root``: a cache key that changes when models are rebuilt."""
    if not root.is_dir():
        return ()
    return tuple(sorted((p.name, p.stat().st_mtime) for p in root.iterdir() if p.is_file()))


@st.cache_resource(show_spinner="Loading the demo models ...")
def demo_bundle(root: str, signature: tuple) -> demo_mod.DemoBundle:
    """The demo bundle of ``root`` (reloaded when ``signature`` changes)."""
    del signature  # only part of the cache key
    return demo_mod.load_demo(root)


@st.cache_resource(show_spinner=False)
def phantom_dataset(n: int, size: int, seed: int) -> Any:
    """The demo phantom dataset (images are rendered lazily, on access)."""
    from xmark_core.data.phantom import PhantomDataset

    return PhantomDataset(int(n), size=int(size), seed=int(seed))


@st.cache_resource(show_spinner="Opening the dataset ...")
def dataset(spec: str) -> Any:
    """A dataset from a phantom spec, folder or CSV (see :func:`sources.open_spec`)."""
    return sources.open_spec(spec)


@st.cache_resource(show_spinner="Reading the uploaded images ...")
def uploaded_dataset(_files: tuple[tuple[str, bytes], ...], digest: str) -> sources.UploadedDataset:
    del digest
    return sources.dataset_from_uploads(list(_files))


@st.cache_resource(show_spinner="Loading the uploaded checkpoints ...")
def uploaded_marker(_surrogate: tuple[str, bytes], _generator: tuple[str, bytes], digest: str) -> Any:
    del digest
    return sources.load_uploaded_marker(_surrogate, _generator)


@st.cache_resource(show_spinner="Loading the suspect model ...")
def checkpoint_suspect(path: str, mtime: float) -> Any:
    """A :class:`~xmark_core.verify.suspects.CheckpointSuspect` (reloaded when the file changes)."""
    from xmark_core.verify.suspects import CheckpointSuspect

    del mtime
    return CheckpointSuspect(path)


def suspect_at(path: Path) -> Any:
    """:func:`checkpoint_suspect` of a checkpoint file, keyed by its modification time."""
    return checkpoint_suspect(str(path), path.stat().st_mtime)


@st.cache_data(show_spinner="Rendering held-out query images ...", max_entries=8)
def query_images(target: int, m: int, size: int, seed: int) -> tuple[np.ndarray, list[str]]:
    return demo_mod.query_images(target, m, size, seed)


@st.cache_data(show_spinner="Watermarking ...", max_entries=64)
def marked_image(_marker: Any, marker_key: str, image_key: str, image: np.ndarray) -> np.ndarray:
    """``marker.mark(image)`` for one (H, W) image, cached by marker and image identity."""
    del marker_key, image_key
    return _marker.mark(image[None])[0]


@st.cache_data(show_spinner="Computing saliency ...", max_entries=64)
def saliency_map(
    _model: Any, model_key: str, image_key: str, image: np.ndarray, method: str, layer: str,
    input_size: int,
) -> np.ndarray:
    from xmark_core.app_support.saliency_view import saliency_for

    del model_key, image_key
    return saliency_for(_model, image, method=method, layer_name=layer, input_size=input_size)


def marker_key(marker: Any) -> str:
    """Identity of a marker for cache keys (its checkpoint hashes)."""
    info = getattr(marker, "info", {}) or {}
    return f"{info.get('surrogate_sha256', '?')}:{info.get('generator_sha256', id(marker))}"


@st.cache_resource(show_spinner="Loading the segmentation model ...")
def seg_suspect(spec: str, mtime: float) -> Any:
    """A StealthMark suspect from a checkpoint path or URL (reloaded when the file changes)."""
    from xmark_core.stealthmark.suspects import open_seg_suspect

    del mtime
    return open_seg_suspect(spec)


@st.cache_data(show_spinner="Rendering held-out query images ...", max_entries=4)
def seg_query_images(n: int, size: int, seed: int) -> np.ndarray:
    from xmark_core.app_support.seg_view import query_images as _q

    return _q(n, size, seed)
