"""Datasets and checkpoints the user picks in the app's sidebar.

Thin adapters from "what the user gave" (a phantom spec, a folder path, a CheXpert CSV,
uploaded image files, uploaded checkpoint bytes) to the core's objects. Every failure
is an :class:`~xmark_core.errors.XMarkError` subclass with a message for the user.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xmark_core.data.base import Record
from xmark_core.errors import CheckpointError, DataError

SOURCES = ("Demo phantom", "Folder", "CheXpert CSV", "Uploaded files")
UPLOAD_TYPES = ["png", "jpg", "jpeg", "dcm", "dicom"]
UNLABELLED = "unlabelled"


def upload_dir() -> Path:
    """Per-process scratch folder for uploaded files (removed with the OS temp dir)."""
    d = Path(tempfile.gettempdir()) / "xmark-app-uploads"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _stash(name: str, data: bytes) -> Path:
    """Write uploaded bytes to a content-addressed file that keeps the original suffix."""
    digest = hashlib.sha256(data).hexdigest()[:16]
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in Path(name).name) or "upload"
    path = upload_dir() / f"{digest}-{safe}"
    if not path.exists():
        path.write_bytes(data)
    return path


def open_spec(spec: str) -> Any:
    """Open a phantom spec, a folder or a CheXpert CSV as an ``XrayDataset``.

    Raises
    ------
    DataError
        The path does not exist or does not hold a dataset (message says what is expected).
    """
    spec = str(spec).strip()
    if not spec:
        raise DataError("no dataset given: enter a folder path or a CheXpert CSV path")
    if not spec.startswith("phantom") and not Path(spec).exists():
        raise DataError("no such file or folder", spec)
    from xmark_core.data.open import open_dataset

    return open_dataset(spec)


@dataclass
class UploadedDataset:
    """Images uploaded in the app (PNG/JPEG/DICOM), without labels.

    Every image is read through :func:`xmark_core.data.io.read_image`; files that cannot
    be read are listed in ``errors`` (name -> message) instead of failing the whole set.
    """

    records: list[Record]
    errors: dict[str, str]
    classes: list[str]

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> Record:
        return self.records[i]

    def labels(self) -> np.ndarray:
        return np.array([r.label for r in self.records], dtype=np.int64)


def dataset_from_uploads(files: Sequence[tuple[str, bytes]]) -> UploadedDataset:
    """Read uploaded ``(file name, bytes)`` pairs into an unlabelled dataset.

    Raises
    ------
    DataError
        If no file could be read (the message lists each file's problem).
    """
    from xmark_core.data.io import read_image

    records: list[Record] = []
    errors: dict[str, str] = {}
    for name, data in files:
        try:
            loaded = read_image(_stash(name, data))
        except DataError as e:
            errors[name] = str(e).split(": ", 1)[-1]
            continue
        records.append(Record(image=loaded.image, label=0, image_id=name, path=loaded.path,
                              meta={"bit_depth": loaded.bit_depth, "format": loaded.fmt}))
    if not records and files:
        detail = "; ".join(f"{k}: {v}" for k, v in errors.items())
        raise DataError(f"none of the uploaded files is a readable PNG, JPEG or DICOM image ({detail})")
    return UploadedDataset(records=records, errors=errors, classes=[UNLABELLED])


def checkpoint_from_upload(name: str, data: bytes) -> Path:
    """Save an uploaded checkpoint to a scratch file and return its path (loading is separate).

    Raises
    ------
    CheckpointError
        On an empty upload.
    """
    if not data:
        raise CheckpointError(f"{name}: the uploaded file is empty")
    return _stash(name, data)


def load_uploaded_marker(surrogate: tuple[str, bytes], generator: tuple[str, bytes]) -> Any:
    """A :class:`~xmark_core.generator.model.Marker` from uploaded surrogate + generator files."""
    from xmark_core.generator.model import load_marker

    return load_marker(checkpoint_from_upload(*surrogate), checkpoint_from_upload(*generator))


def non_target_indices(labels: np.ndarray, target: int, m: int, seed: int = 0) -> np.ndarray:
    """Up to ``m`` indices whose label is not ``target``, in a seeded random order (sorted)."""
    idx = np.flatnonzero(np.asarray(labels) != target)
    rng = np.random.default_rng(seed)
    return np.sort(rng.permutation(idx)[: int(m)])


def indices_of_class(labels: np.ndarray, cls: int | None) -> np.ndarray:
    """Indices with label ``cls`` (all indices when ``cls`` is None)."""
    labels = np.asarray(labels)
    return np.arange(len(labels)) if cls is None else np.flatnonzero(labels == cls)


def class_counts(labels: np.ndarray, n_classes: int) -> list[int]:
    """Images per class index ``0 .. n_classes - 1``."""
    return np.bincount(np.asarray(labels, dtype=np.int64), minlength=n_classes)[:n_classes].tolist()


def parse_classes(text: str) -> list[str] | None:
    """Class names from a comma-separated field (None when empty)."""
    names = [c.strip() for c in str(text).split(",") if c.strip()]
    return names or None


def open_uploaded_suspect(name: str, data: bytes, classes: list[str] | None = None,
                          input_size: int | None = None) -> Any:
    """A :class:`~xmark_core.verify.suspects.CheckpointSuspect` from an uploaded file."""
    from xmark_core.verify.suspects import CheckpointSuspect

    return CheckpointSuspect(checkpoint_from_upload(name, data), classes=classes, input_size=input_size)


def open_http_suspect(url: str, classes: list[str] | None = None, input_size: int | None = None,
                      timeout: float = 10.0) -> Any:
    """An :class:`~xmark_core.verify.http_client.HttpSuspect`; unreachable servers raise SuspectError."""
    from xmark_core.errors import SuspectError
    from xmark_core.verify.http_client import HttpSuspect

    url = str(url).strip()
    if not url.startswith(("http://", "https://")):
        raise SuspectError(f"{url!r} is not an http(s):// URL of a model API")
    return HttpSuspect(url, input_size=input_size, classes=classes, timeout=timeout, retries=1)
