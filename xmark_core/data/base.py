"""The one dataset API every source (phantom, folder, CheXpert, DICOM) implements."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import cv2
import numpy as np


@dataclass
class Record:
    """One image of a dataset.

    Attributes
    ----------
    image : float32 array (H, W) in [0, 1]
    label : class index into the dataset's ``classes``
    image_id : stable identifier (relative path for files, ``phantom-<seed>-<index>``)
    path : source file, if any
    meta : source-specific extras (bit depth, DICOM tags, phantom masks, ...)
    """

    image: np.ndarray
    label: int
    image_id: str
    path: Path | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class XrayDataset(Protocol):
    """Sequence of :class:`Record` with class names."""

    classes: list[str]

    def __len__(self) -> int: ...

    def __getitem__(self, i: int) -> Record: ...

    def labels(self) -> np.ndarray:
        """All labels as an int array, without decoding images."""
        ...


def resize(image: np.ndarray, size: int) -> np.ndarray:
    """Resize a (H, W) float image to (size, size); area when shrinking, cubic when growing."""
    if image.shape == (size, size):
        return image.astype(np.float32, copy=False)
    interp = cv2.INTER_AREA if size < max(image.shape) else cv2.INTER_CUBIC
    out = cv2.resize(image.astype(np.float32), (size, size), interpolation=interp)
    return np.clip(out, 0.0, 1.0)


def to_arrays(
    ds: XrayDataset,
    size: int,
    indices: Sequence[int] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Stack (a subset of) a dataset as ``X`` float32 (N, 1, size, size) and ``y`` int64 (N,)."""
    idx = list(range(len(ds))) if indices is None else list(indices)
    X = np.empty((len(idx), 1, size, size), np.float32)
    y = np.empty(len(idx), np.int64)
    for k, i in enumerate(idx):
        r = ds[i]
        X[k, 0] = resize(r.image, size)
        y[k] = r.label
        if progress:
            progress(k + 1, len(idx))
    return X, y


def stratified_split(
    labels: np.ndarray, fractions: Sequence[float], seed: int
) -> list[np.ndarray]:
    """Split indices into parts with the given fractions, class by class, deterministically."""
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[] for _ in fractions]
    cum = np.cumsum(fractions) / np.sum(fractions)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        cuts = np.round(cum * len(idx)).astype(int)
        start = 0
        for p, end in enumerate(cuts):
            parts[p].extend(idx[start:end].tolist())
            start = end
    return [np.sort(np.array(p, dtype=np.int64)) for p in parts]
