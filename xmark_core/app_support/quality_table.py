"""Image quality of a watermarked set: one row per image, worst first."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from xmark_core.quality import pair_quality


def mark_many(
    marker: Any, images: Sequence[np.ndarray], batch_size: int = 8,
    progress: Callable[[int, int], None] | None = None,
) -> list[np.ndarray]:
    """``marker.mark`` over a list of (H, W) images in batches of equal-shaped images."""
    out: list[np.ndarray] = []
    for i in range(0, len(images), batch_size):
        chunk = [np.asarray(im, np.float32) for im in images[i:i + batch_size]]
        if len({c.shape for c in chunk}) == 1:
            out.extend(np.asarray(marker.mark(np.stack(chunk))))
        else:
            out.extend(np.asarray(marker.mark(c[None]))[0] for c in chunk)
        if progress:
            progress(len(out), len(images))
    return out


def quality_table(
    originals: Sequence[np.ndarray], marked: Sequence[np.ndarray], image_ids: Sequence[str],
    progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """PSNR, SSIM and max |change| per image pair, sorted worst (lowest SSIM) first.

    Returns
    -------
    DataFrame with columns ``image``, ``ssim``, ``psnr`` (dB; ``inf`` if unchanged), ``max_abs``
    and ``item`` (position in the inputs).
    """
    if not len(originals) == len(marked) == len(image_ids):
        raise ValueError("originals, marked and image_ids must have the same length")
    rows = []
    for i, (a, b) in enumerate(zip(originals, marked)):
        q = pair_quality(np.asarray(a, np.float32), np.asarray(b, np.float32))
        rows.append({"image": str(image_ids[i]), "ssim": q.ssim, "psnr": q.psnr, "max_abs": q.max_abs, "item": i})
        if progress:
            progress(i + 1, len(originals))
    df = pd.DataFrame(rows, columns=["image", "ssim", "psnr", "max_abs", "item"])
    return df.sort_values(["ssim", "psnr"], kind="stable").reset_index(drop=True)


def quality_summary(df: pd.DataFrame, ssim_min: float, psnr_min: float) -> dict[str, Any]:
    """Counts and medians against the thresholds (``n_fail``: images below either one)."""
    fail = (df["ssim"] < ssim_min) | (df["psnr"] < psnr_min)
    finite_psnr = df["psnr"][np.isfinite(df["psnr"])]
    return {
        "n": int(len(df)),
        "n_fail": int(fail.sum()),
        "ssim_median": float(df["ssim"].median()) if len(df) else float("nan"),
        "ssim_min": float(df["ssim"].min()) if len(df) else float("nan"),
        "psnr_median": float(finite_psnr.median()) if len(finite_psnr) else float("inf"),
        "psnr_min": float(df["psnr"].min()) if len(df) else float("nan"),
    }

