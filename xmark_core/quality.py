"""Image-quality measures between an original and its watermarked copy.

Plain functions on (H, W) float arrays with an explicit ``data_range``, as in
scikit-image, plus the display helpers a radiologist uses to inspect a mark
(window/level presets, amplified difference).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from skimage.metrics import peak_signal_noise_ratio


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
    if np.array_equal(reference, test):
        return float("inf")
    return float(peak_signal_noise_ratio(reference, test, data_range=data_range))


SSIM_SIGMA = 1.5
SSIM_RADIUS = int(3.5 * SSIM_SIGMA + 0.5)  # skimage's truncate=3.5: an 11 x 11 window


def _ssim_full(reference: np.ndarray, test: np.ndarray, data_range: float) -> tuple[float, np.ndarray]:
    """Mean SSIM and its map, as ``skimage.metrics.structural_similarity`` computes them
    with ``gaussian_weights=True, sigma=1.5, use_sample_covariance=False`` (the mean over
    the map less a window radius at each border), with OpenCV's separable Gaussian in
    float32, which is much faster; equal to skimage within 1e-5 (tested)."""
    _check_pair(reference, test)
    k = 2 * SSIM_RADIUS + 1
    if min(reference.shape) < k:
        raise ValueError(f"SSIM needs images at least {k} pixels a side, got {reference.shape}")
    # Centre both on one constant: the variances below are differences of blurred squares,
    # which lose digits in float32 when the means are large; the constant cancels in them.
    c = np.float32(np.mean(reference, dtype=np.float64))
    x, y = np.asarray(reference, np.float32) - c, np.asarray(test, np.float32) - c

    def blur(a: np.ndarray) -> np.ndarray:  # scipy's mode "reflect" is OpenCV's BORDER_REFLECT
        return cv2.GaussianBlur(a, (k, k), SSIM_SIGMA, sigmaY=SSIM_SIGMA, borderType=cv2.BORDER_REFLECT)

    ux, uy = blur(x), blur(y)
    vx, vy, vxy = blur(x * x) - ux * ux, blur(y * y) - uy * uy, blur(x * y) - ux * uy
    ux += c
    uy += c
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    smap = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    r = SSIM_RADIUS
    return float(smap[r:-r, r:-r].mean(dtype=np.float64)), smap


def ssim(reference: np.ndarray, test: np.ndarray, data_range: float = 1.0) -> float:
    """Mean structural similarity (Gaussian window, sigma 1.5, as Wang et al. 2004).

    Parameters
    ----------
    reference, test : (H, W) arrays on the same scale, at least 11 pixels a side
    data_range : span of possible values (1.0 for our float images)
    """
    return _ssim_full(reference, test, data_range)[0]


def ssim_map(reference: np.ndarray, test: np.ndarray, data_range: float = 1.0) -> np.ndarray:
    """Local SSIM map, same shape as the images (1 = identical neighbourhood)."""
    return _ssim_full(reference, test, data_range)[1]  # float32 already


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
