"""Image + mask data for segmentation: the phantom's masks, or a folder of files.

Folder layout (names match by stem, e.g. ``images/case1.png`` <-> ``masks/case1.png``)::

    root/images/<name>.png|.jpg|.dcm
    root/masks/<name>.png                 one mask per image: 0 = background, every other
                                          value is a structure (label map), or any non-zero
                                          value = one structure "foreground" for 0/1 or 0/255
    root/masks/<structure>/<name>.png     or one binary PNG per structure (may overlap)

Channels are multi-label: one boolean mask per structure, overlaps allowed. The phantom's
default channels are ``left_lung``, ``right_lung`` and ``heart`` (the ``lesion`` mask is
empty on half of the findings and is left out unless asked for).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from xmark_core.data.base import resize
from xmark_core.data.io import IMAGE_SUFFIXES, read_image
from xmark_core.data.open import parse_phantom_spec
from xmark_core.data.phantom import make_phantom
from xmark_core.errors import DataError

PHANTOM_CHANNELS: tuple[str, ...] = ("left_lung", "right_lung", "heart")
Progress = Callable[[int, int], None]


@dataclass
class SegData:
    """Images and masks as arrays.

    Attributes
    ----------
    images : float32 (N, H, W) in [0, 1]
    masks : bool (N, C, H, W)
    channels : structure name of each mask channel
    ids : one identifier per image (relative path or ``phantom-<seed>-<index>``)
    """

    images: np.ndarray
    masks: np.ndarray
    channels: list[str]
    ids: list[str]

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, idx: Sequence[int] | np.ndarray) -> SegData:
        idx = np.asarray(idx, dtype=int)
        return SegData(self.images[idx], self.masks[idx], list(self.channels), [self.ids[i] for i in idx])


def phantom_seg_data(n: int, size: int = 128, seed: int = 0, channels: Sequence[str] = PHANTOM_CHANNELS,
                     start: int = 0, progress: Progress | None = None) -> SegData:
    """Render phantom images ``start .. start+n-1`` of ``seed`` with their masks."""
    images = np.empty((n, size, size), np.float32)
    masks = np.empty((n, len(channels), size, size), bool)
    for k in range(n):
        s = make_phantom(seed, start + k, size)
        images[k] = s.image
        try:
            masks[k] = np.stack([s.masks[c] for c in channels])
        except KeyError as e:
            raise DataError(f"the phantom has no mask {e.args[0]!r}; choose from {sorted(s.masks)}") from None
        if progress:
            progress(k + 1, n)
    return SegData(images, masks, list(channels), [f"phantom-{seed}-{start + k}" for k in range(n)])


def _read_mask(path: Path) -> np.ndarray:
    m = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if m is None:
        raise DataError("cannot read this mask; masks must be PNG files", path)
    if m.ndim == 3:
        if not (m[..., :1] == m[..., : min(3, m.shape[2])]).all():
            raise DataError("colour mask; save masks as single-channel PNG (0 = background)", path)
        m = m[..., 0]
    return m


def _resize_mask(m: np.ndarray, size: int) -> np.ndarray:
    if m.shape == (size, size):
        return m
    return cv2.resize(m.astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST).astype(bool)


def load_seg_folder(root: str | Path, size: int = 128, channels: Sequence[str] | None = None,
                    progress: Progress | None = None) -> SegData:
    """Load ``root/images`` + ``root/masks`` (layouts in the module docstring), resized to ``size``.

    Parameters
    ----------
    root : folder holding ``images/`` and ``masks/``
    size : square side the images and masks are resized to (masks: nearest neighbour)
    channels : structures to keep (subfolder names, or ``label_<value>`` for label maps);
        all found by default
    progress : called as (done, total)

    Returns
    -------
    SegData
    """
    root = Path(root)
    img_dir, mask_dir = root / "images", root / "masks"
    if not img_dir.is_dir() or not mask_dir.is_dir():
        raise DataError("expected the subfolders images/ and masks/ (matching file names)", root)
    files = sorted(p for p in img_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError("no images (.png, .jpg, .dcm) found", img_dir)
    subdirs = sorted(p for p in mask_dir.iterdir() if p.is_dir())

    def mask_path(folder: Path, stem: str) -> Path:
        path = folder / f"{stem}.png"
        if not path.exists():
            raise DataError(f"no mask {path.name} for image {stem}", folder)
        return path

    raw: list[np.ndarray] = []
    if subdirs:  # one binary PNG per structure
        names = [p.name for p in subdirs]
        for f in files:
            raw.append(np.stack([_read_mask(mask_path(d, f.stem)) > 0 for d in subdirs]))
    else:  # one label map (or one binary mask) per image
        maps = [_read_mask(mask_path(mask_dir, f.stem)) for f in files]
        values = sorted(set(np.unique(np.concatenate([np.unique(m) for m in maps])).tolist()) - {0})
        if not values:
            raise DataError("every mask is empty (all zero)", mask_dir)
        if values in ([1], [255]):
            names, raw = ["foreground"], [(m > 0)[None] for m in maps]
        else:
            names = [f"label_{v}" for v in values]
            raw = [np.stack([m == v for v in values]) for m in maps]
    keep = list(range(len(names)))
    if channels is not None:
        missing = [c for c in channels if c not in names]
        if missing:
            raise DataError(f"no structure {missing} in the masks; found {names}", mask_dir)
        keep = [names.index(c) for c in channels]
        names = list(channels)

    n = len(files)
    images = np.empty((n, size, size), np.float32)
    masks = np.empty((n, len(keep), size, size), bool)
    for k, f in enumerate(files):
        img = read_image(f).image
        if raw[k].shape[-2:] != img.shape:
            raise DataError(f"mask size {raw[k].shape[-2:]} differs from image size {img.shape}", f)
        images[k] = resize(img, size)
        masks[k] = np.stack([_resize_mask(raw[k][c], size) for c in keep])
        if progress:
            progress(k + 1, n)
    return SegData(images, masks, names, [f.relative_to(root).as_posix() for f in files])


def open_seg_data(spec: str | Path, size: int | None = None, channels: Sequence[str] | None = None,
                  progress: Progress | None = None) -> SegData:
    """``"phantom[:n[:size[:seed]]]"`` or a folder with ``images/`` + ``masks/``.

    ``size`` overrides the phantom spec's size (default 128 for folders).
    """
    text = str(spec)
    if text == "phantom" or text.startswith("phantom:"):
        p = parse_phantom_spec(text)
        parts = text.split(":")
        size_in_spec = len(parts) >= 3 and parts[2] != ""
        p["size"] = size or (p["size"] if size_in_spec else 128)  # our default, not the classifier's 256
        return phantom_seg_data(p["n"], p["size"], p["seed"], channels or PHANTOM_CHANNELS, progress=progress)
    path = Path(text).expanduser()
    if not path.is_dir():
        raise DataError("not a folder with images/ and masks/ (or use phantom[:n[:size[:seed]]])", path)
    return load_seg_folder(path, size or 128, channels, progress)
