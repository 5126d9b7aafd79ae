"""The pictures a reviewer looks at: attribution map, binarised code, uncertainty maps.

Plain functions returning uint8 arrays (for Streamlit, PNG files and the HTML report) or
matplotlib figures; no numerics beyond display scaling.
"""

from __future__ import annotations

import base64

import cv2
import numpy as np

from xmark_core.stealthmark.qr import QUIET_ZONE, render_code


def attribution_image(coef: np.ndarray, eps: float, scale: int = 12, border: int = QUIET_ZONE) -> np.ndarray:
    """RGB uint8 picture of per-cell coefficients: white = 0, black = ``eps`` or more,
    red = negative; a light quiet zone is drawn around it like around a QR code."""
    c = np.asarray(coef, dtype=np.float64) / eps
    grey = np.clip(1.0 - c, 0.0, 1.0)
    rgb = np.stack([grey, grey, grey], axis=-1)
    neg = np.clip(-c, 0.0, 1.0)  # red tint where stamping *lowered* the uncertainty
    rgb[..., 1] -= 0.6 * neg
    rgb[..., 2] -= 0.6 * neg
    rgb = np.pad(rgb, ((border, border), (border, border), (0, 0)), constant_values=1.0)
    img = (np.clip(rgb, 0, 1) * 255).astype(np.uint8)
    return cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)


def code_image(bits: np.ndarray, scale: int = 12) -> np.ndarray:
    """RGB uint8 picture of a module matrix (True = dark) with its quiet zone."""
    g = render_code(bits, scale=scale)
    return np.repeat(g[..., None], 3, axis=-1)


def uncertainty_image(probs: np.ndarray) -> np.ndarray:
    """Grey uint8 (H, W) of the mean uncertainty ``min(p, 1-p)`` of one (C, H, W) map, 0.5 = white."""
    p = np.asarray(probs, dtype=np.float64)
    u = np.minimum(p, 1.0 - p).mean(axis=0)
    return (np.clip(u / 0.5, 0.0, 1.0) * 255).astype(np.uint8)


def overlay_image(image: np.ndarray, probs: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """RGB uint8: the radiograph with each channel's thresholded mask outlined in its colour."""
    colours = [(230, 80, 60), (60, 140, 230), (250, 200, 40), (120, 200, 90), (200, 90, 200)]
    grey = (np.clip(image, 0, 1) * 255).astype(np.uint8)
    rgb = np.repeat(grey[..., None], 3, axis=-1).copy()
    for c, p in enumerate(np.asarray(probs)):
        m = (p > threshold).astype(np.uint8)
        contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(rgb, contours, -1, colours[c % len(colours)], 1)
    return rgb


def png_data_uri(img: np.ndarray) -> str:
    """``data:image/png;base64,...`` of a uint8 grey or RGB array (for self-contained HTML)."""
    arr = np.asarray(img)
    if arr.ndim == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", arr)
    if not ok:
        raise ValueError("could not encode the picture as PNG")
    return "data:image/png;base64," + base64.b64encode(buf.tobytes()).decode("ascii")


def detector_figure(triggered: np.ndarray, clean: np.ndarray, threshold: float):
    """Histogram of detector scores (stamped vs clean queries) with the fixed threshold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3))
    lo = min(np.min(clean), np.min(triggered), 0.0)
    hi = max(np.max(clean), np.max(triggered), threshold * 2)
    bins = np.linspace(lo, hi, 40)
    ax.hist(clean, bins=bins, alpha=0.6, label="clean queries", color="#4c72b0")
    ax.hist(triggered, bins=bins, alpha=0.6, label="stamped queries", color="#c44e52")
    ax.axvline(threshold, color="k", ls="--", lw=1, label="threshold (fixed in advance)")
    ax.set_xlabel("detector score (uncertainty on dark-bit cells minus light-bit cells)")
    ax.set_ylabel("queries")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
