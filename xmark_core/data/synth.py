"""Write the phantom to disk as a dataset folder that :class:`FolderDataset` reads back."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from xmark_core.atomic import atomic_write_bytes, atomic_write_text
from xmark_core.data.folder import CLASSES_TXT, LABELS_CSV
from xmark_core.data.io import write_image
from xmark_core.data.phantom import FINDINGS, MASK_KEYS, make_phantom
from xmark_core.errors import DataError


@dataclass
class SynthResult:
    out: str
    n: int
    size: int
    seed: int
    bit_depth: int
    counts: dict[str, int]
    labels_csv: str
    masks: bool


def write_phantom_folder(
    out: str | Path,
    n: int,
    size: int = 256,
    seed: int = 0,
    bit_depth: int = 8,
    masks: bool = False,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> SynthResult:
    """Render ``n`` phantom images into ``out/images/*.png`` with ``labels.csv`` and ``classes.txt``.

    Parameters
    ----------
    out : target folder (created); refused if it already holds files unless ``overwrite``
    n, size, seed : as :class:`PhantomDataset` (image ``i`` is ``make_phantom(seed, i, size)``)
    bit_depth : PNG bit depth, 8 or 16
    masks : also write ``masks/<name>_<key>.png`` (0/255) for lungs, heart and lesion
    progress : called as ``(done, n)``

    Returns
    -------
    SynthResult
    """
    out = Path(out)
    if n < 1:
        raise DataError(f"n must be >= 1, got {n}")
    if bit_depth not in (8, 16):
        raise DataError(f"bit depth must be 8 or 16, got {bit_depth}")
    if out.exists() and not out.is_dir():
        raise DataError("exists and is not a folder", out)
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise DataError("output folder is not empty; choose another or pass --overwrite", out)
    rows = io.StringIO()
    writer = csv.writer(rows, lineterminator="\n")
    writer.writerow(["path", "label"])
    counts = dict.fromkeys(FINDINGS, 0)
    for i in range(n):
        s = make_phantom(seed, i, size)
        name = f"phantom-{seed}-{i:05d}"
        rel = f"images/{name}.png"
        write_image(out / rel, s.image, bit_depth=bit_depth)
        if masks:
            for key in MASK_KEYS:
                ok, buf = cv2.imencode(".png", s.masks[key].astype(np.uint8) * 255)
                atomic_write_bytes(out / "masks" / f"{name}_{key}.png", buf.tobytes())
        writer.writerow([rel, s.finding])
        counts[s.finding] += 1
        if progress:
            progress(i + 1, n)
    # labels last: a folder with labels.csv is complete
    atomic_write_text(out / CLASSES_TXT, "\n".join(FINDINGS) + "\n")
    atomic_write_text(out / LABELS_CSV, rows.getvalue())
    return SynthResult(
        out=str(out), n=n, size=size, seed=seed, bit_depth=bit_depth, counts=counts,
        labels_csv=str(out / LABELS_CSV), masks=masks,
    )


def synth_summary(res: SynthResult) -> dict:
    return asdict(res)
