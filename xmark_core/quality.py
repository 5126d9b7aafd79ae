"""Image-quality measures between an original and its watermarked copy.

Plain functions on (H, W) float arrays with an explicit ``data_range``, as in
scikit-image, plus the display helpers a radiologist uses to inspect a mark
(window/level presets, amplified difference).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Window:
    """A display window: intensities in [center - width/2, center + width/2] map to [0, 1]."""

    center: float
    width: float


# Presets on the [0, 1] intensity scale of our images (no Hounsfield units in plain
# radiographs): lung emphasises the dark fields, mediastinum the mid-greys, bone the brights.
WINDOW_PRESETS: dict[str, Window] = {
    "full": Window(0.5, 1.0),
    "lung": Window(0.35, 0.5),
    "mediastinum": Window(0.6, 0.4),
    "bone": Window(0.75, 0.35),
}


def _check_pair(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}; resize one to the other first")
    if a.ndim != 2:
        raise ValueError(f"expected (H, W) grayscale images, got shape {a.shape}")


def psnr(reference: np.ndarray, test: np.ndarray, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB (``inf`` for identical images).

    Parameters
    ----------
    reference, test : (H, W) arrays on the same scale
    data_range : span of possible values (1.0 for our float images)
    """
    _check_pair(reference, test)
    a, b = np.ascontiguousarray(reference), np.ascontiguousarray(test)
    if not a.dtype == b.dtype == np.float32:
        a, b = a.astype(np.float64), b.astype(np.float64)
    # OpenCV sums the squared differences in double, in one pass without temporaries: the
    # embedder's per-image record, ~5x faster than skimage's and equal to it within 1e-6 dB.
    squared_error = cv2.norm(a, b, cv2.NORM_L2SQR)
    if squared_error == 0:
        return float("inf")
    return float(10 * np.log10(data_range**2 * a.size / squared_error))


SSIM_SIGMA = 1.5
SSIM_RADIUS = int(3.5 * SSIM_SIGMA + 0.5)  # skimage's truncate=3.5: an 11 x 11 window


def _centred_padded(reference: np.ndarray, test: np.ndarray) -> tuple[np.float32, np.ndarray, np.ndarray]:
    """Both images in float32 less one constant, reflect-padded by the window radius.

    Centring: the variances are differences of blurred squares, which lose digits in float32
    when the means are large; the constant cancels in them. The padding is scipy's "reflect"
    (OpenCV's BORDER_REFLECT), so any block of the map can be computed from its own crop.
    """
    c = np.float32(np.mean(reference, dtype=np.float64))
    r = SSIM_RADIUS
    pad = [cv2.copyMakeBorder(np.asarray(a, np.float32) - c, r, r, r, r, cv2.BORDER_REFLECT)
           for a in (reference, test)]
    return c, pad[0], pad[1]


def _ssim_block(xp: np.ndarray, yp: np.ndarray, c: np.float32, data_range: float) -> np.ndarray:
    """SSIM map of a block from its padded crops (each ``2 * SSIM_RADIUS`` larger a side)."""
    r, k = SSIM_RADIUS, 2 * SSIM_RADIUS + 1

    def blur(a: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(a, (k, k), SSIM_SIGMA, sigmaY=SSIM_SIGMA)[r:-r, r:-r]

    ux, uy = blur(xp), blur(yp)
    # Only the sum of the two variances enters the map, so the two squares are summed before
    # they are blurred: four blurs instead of five.
    vxy = blur(xp * yp) - ux * uy
    vsum = blur(xp * xp + yp * yp) - ux * ux - uy * uy
    ux += c
    uy += c
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    return ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vsum + c2))


def _check_ssim_pair(reference: np.ndarray, test: np.ndarray) -> None:
    _check_pair(reference, test)
    k = 2 * SSIM_RADIUS + 1
    if min(reference.shape) < k:
        raise ValueError(f"SSIM needs images at least {k} pixels a side, got {reference.shape}")


def _dilate_1d(flags: np.ndarray, r: int) -> np.ndarray:
    return np.convolve(flags.astype(np.int32), np.ones(2 * r + 1, np.int32), mode="same") > 0


SSIM_STRIP = 64  # rows per block of the changed-region mean (see :func:`ssim`)


def ssim(reference: np.ndarray, test: np.ndarray, data_range: float = 1.0) -> float:
    """Mean structural similarity (Gaussian window, sigma 1.5, as Wang et al. 2004).

    As ``skimage.metrics.structural_similarity`` computes it with ``gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False`` (the mean over the map less a window radius
    at each border), with OpenCV's separable Gaussian in float32, which is much faster;
    equal to skimage within 1e-5 (tested). Where the two images agree over a whole window
    the local SSIM is exactly 1, so only the blocks within a window radius of a changed
    pixel are computed: the saliency gate leaves much of a marked image untouched, and
    this is the embedder's per-image quality record.

    Parameters
    ----------
    reference, test : (H, W) arrays on the same scale, at least 11 pixels a side
    data_range : span of possible values (1.0 for our float images)
    """
    _check_ssim_pair(reference, test)
    r, (h, w) = SSIM_RADIUS, reference.shape
    changed = np.asarray(reference) != np.asarray(test)
    need_rows = _dilate_1d(changed.any(axis=1), r)
    if not need_rows.any():
        return 1.0
    c, xp, yp = _centred_padded(reference, test)
    total, n_done = 0.0, 0
    for y0 in range(r, h - r, SSIM_STRIP):  # blocks of the mean's region [r, h-r) x [r, w-r)
        y1 = min(y0 + SSIM_STRIP, h - r)
        if not need_rows[y0:y1].any():
            continue
        cols = np.flatnonzero(_dilate_1d(changed[max(0, y0 - r):y1 + r].any(axis=0), r)[r:w - r]) + r
        if not len(cols):
            continue
        x0, x1 = int(cols[0]), int(cols[-1]) + 1
        block = _ssim_block(xp[y0:y1 + 2 * r, x0:x1 + 2 * r], yp[y0:y1 + 2 * r, x0:x1 + 2 * r], c, data_range)
        total += float(block.sum(dtype=np.float64))
        n_done += block.size
    n = (h - 2 * r) * (w - 2 * r)
    return (total + (n - n_done)) / n


def ssim_map(reference: np.ndarray, test: np.ndarray, data_range: float = 1.0) -> np.ndarray:
    """Local SSIM map (float32), same shape as the images (1 = identical neighbourhood)."""
    _check_ssim_pair(reference, test)
    c, xp, yp = _centred_padded(reference, test)
    return _ssim_block(xp, yp, c, data_range)


def apply_window(image: np.ndarray, window: Window | str) -> np.ndarray:
    """Map intensities through a display window to [0, 1] (clipped)."""
    w = WINDOW_PRESETS[window] if isinstance(window, str) else window
    if w.width <= 0:
        raise ValueError("window width must be positive")
    lo = w.center - w.width / 2
    return np.clip((image - lo) / w.width, 0.0, 1.0).astype(np.float32)


def amplified_difference(reference: np.ndarray, test: np.ndarray, gain: float = 10.0) -> np.ndarray:
    """Signed difference ``gain * (test - reference)`` shifted to mid-grey and clipped to [0, 1]."""
    _check_pair(reference, test)
    return np.clip(0.5 + gain * (test - reference), 0.0, 1.0).astype(np.float32)


@dataclass
class PairQuality:
    psnr: float
    ssim: float
    max_abs: float


def pair_quality(reference: np.ndarray, test: np.ndarray, data_range: float = 1.0) -> PairQuality:
    """PSNR, SSIM and the largest absolute change of one watermarked image."""
    return PairQuality(
        psnr=psnr(reference, test, data_range),
        ssim=ssim(reference, test, data_range),
        max_abs=float(np.max(np.abs(test.astype(np.float64) - reference))),
    )
