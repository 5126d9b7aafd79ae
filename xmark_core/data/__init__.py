"""Data layer: the synthetic phantom, real-data loaders and image I/O (ground floor)."""

from xmark_core.data.base import Record, XrayDataset, resize, stratified_split, to_arrays

__all__ = ["Record", "XrayDataset", "resize", "stratified_split", "to_arrays"]
