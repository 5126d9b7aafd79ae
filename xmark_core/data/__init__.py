"""Data layer: the synthetic phantom, real-data loaders and image I/O (ground floor)."""

from xmark_core.data.base import Record, XrayDataset, resize, stratified_split, to_arrays
from xmark_core.data.chexpert import CheXpertDataset
from xmark_core.data.folder import FolderDataset
from xmark_core.data.io import ImageWarning, LoadedImage, read_image, write_image
from xmark_core.data.open import open_dataset
from xmark_core.data.phantom import (
    FINDINGS,
    PhantomDataset,
    PhantomSample,
    cardiothoracic_ratio,
    make_phantom,
)

__all__ = [
    "FINDINGS",
    "CheXpertDataset",
    "FolderDataset",
    "ImageWarning",
    "LoadedImage",
    "PhantomDataset",
    "PhantomSample",
    "Record",
    "XrayDataset",
    "cardiothoracic_ratio",
    "make_phantom",
    "open_dataset",
    "read_image",
    "resize",
    "stratified_split",
    "to_arrays",
    "write_image",
]
