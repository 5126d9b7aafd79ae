"""One entry point for every dataset source: ``open_dataset(spec)``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from xmark_core.data.base import XrayDataset
from xmark_core.data.chexpert import CheXpertDataset, is_chexpert_csv
from xmark_core.data.folder import LABELS_CSV, FolderDataset
from xmark_core.data.phantom import PhantomDataset
from xmark_core.errors import DataError

PHANTOM_DEFAULTS = {"n": 400, "size": 256, "seed": 0}


def parse_phantom_spec(spec: str) -> dict[str, int]:
    """``"phantom[:n[:size[:seed]]]"`` -> ``{"n", "size", "seed"}`` (defaults 400, 256, 0)."""
    parts = spec.split(":")
    if parts[0] != "phantom" or len(parts) > 4:
        raise DataError(f"bad phantom spec {spec!r}; use phantom[:n[:size[:seed]]], e.g. phantom:400:64:0")
    out = dict(PHANTOM_DEFAULTS)
    for key, value in zip(("n", "size", "seed"), parts[1:]):
        if value == "":
            continue
        try:
            out[key] = int(value)
        except ValueError:
            raise DataError(f"bad phantom spec {spec!r}: {key} must be an integer, got {value!r}") from None
    if out["n"] < 1 or out["size"] < 16:
        raise DataError(f"bad phantom spec {spec!r}: need n >= 1 and size >= 16")
    return out


def open_dataset(spec: str | Path, **kwargs: Any) -> XrayDataset:
    """Open a dataset from a short description.

    Parameters
    ----------
    spec : one of
        * ``"phantom[:n[:size[:seed]]]"``: the synthetic phantom;
        * a CheXpert CSV file (``.../train.csv``) or a folder holding ``train.csv``;
        * a folder with ``labels.csv`` (path,label) or class subfolders, or that
          ``labels.csv`` itself.
    **kwargs : passed to the dataset class (e.g. ``uncertainty="ones"`` for CheXpert)

    Returns
    -------
    XrayDataset
        Records from files have ``image_id`` = path relative to the root (POSIX).
    """
    text = str(spec)
    if text == "phantom" or text.startswith("phantom:"):
        return PhantomDataset(**parse_phantom_spec(text))
    path = Path(text).expanduser()
    if not path.exists():
        raise DataError("not found (give a folder, a CSV, or phantom[:n[:size[:seed]]])", path)
    if path.is_file():
        if path.suffix.lower() != ".csv":
            raise DataError("a single file is not a dataset; give a folder or a CSV", path)
        if is_chexpert_csv(path):
            return CheXpertDataset(path.parent, csv=path.name, **kwargs)
        if path.name == LABELS_CSV:
            return FolderDataset(path.parent, **kwargs)
        raise DataError(
            f"CSV is neither CheXpert-style (Path, Frontal/Lateral, ...) nor a {LABELS_CSV} (path,label)", path
        )
    if not (path / LABELS_CSV).is_file():
        for name in ("train.csv", "valid.csv"):
            if (path / name).is_file() and is_chexpert_csv(path / name):
                return CheXpertDataset(path, csv=name, **kwargs)
    return FolderDataset(path, **kwargs)
