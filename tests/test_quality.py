"""Image-quality measures: our fast SSIM is scikit-image's SSIM, numerically."""

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from xmark_core.data.phantom import make_phantom
from xmark_core.quality import psnr, ssim, ssim_map


def _pair(h: int, w: int, sd: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    a = make_phantom(seed, 1, max(h, w)).image[:h, :w].astype(np.float32)
    noise = np.random.default_rng(seed).normal(0, sd, a.shape).astype(np.float32)
    return a, np.clip(a + noise, 0, 1)


def _skimage(a, b, data_range=1.0):
    return structural_similarity(a, b, data_range=data_range, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False, full=True)


@pytest.mark.parametrize("shape, sd", [((64, 64), 0.02), ((97, 130), 0.005), ((512, 512), 0.003), ((11, 40), 0.05)])
def test_ssim_equals_skimage(shape, sd):
    a, b = _pair(*shape, sd)
    ref, ref_map = _skimage(a, b)
    assert ssim(a, b) == pytest.approx(ref, abs=1e-5)
    smap = ssim_map(a, b)
    assert smap.shape == a.shape and smap.dtype == np.float32
    assert np.abs(smap - ref_map).max() < 2e-3  # float32 round-off of the local variances


@pytest.mark.parametrize("shape", [(512, 512), (200, 75), (11, 40)])
def test_ssim_of_a_local_change_computes_only_near_it(shape):
    """ssim() computes the map only within a window radius of changed pixels (elsewhere it
    is exactly 1): the mean must equal the full map's and skimage's."""
    a, noisy = _pair(*shape, 0.01, seed=3)
    b = a.copy()
    h, w = shape
    for y, x in [(0, 0), (h // 3, w // 2), (h - 1, w - 1), (h // 2, 3)]:  # borders included
        b[y:y + 9, x:x + 13] = noisy[y:y + 9, x:x + 13]
    ref, _ = _skimage(a, b)
    full = float(ssim_map(a, b)[5:-5, 5:-5].mean(dtype=np.float64))
    assert ssim(a, b) == pytest.approx(full, abs=1e-7)
    assert ssim(a, b) == pytest.approx(ref, abs=1e-5)
    assert ssim(a, b) < 1.0
    assert ssim(a, a.copy()) == 1.0


def test_ssim_scale_and_identity():
    a, b = _pair(64, 64, 0.01)
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-6)
    assert ssim(a * 255, b * 255, data_range=255.0) == pytest.approx(ssim(a, b), abs=1e-5)
    assert ssim(a, b) < ssim(a, np.clip(a + (b - a) / 4, 0, 1)) < 1.0  # less noise, more similar
    assert psnr(a, a) == float("inf")


@pytest.mark.parametrize("dtype, data_range", [(np.float32, 1.0), (np.float64, 1.0), (np.uint16, 65535.0),
                                               (np.uint8, 255.0)])
def test_psnr_equals_skimage(dtype, data_range):
    a, b = _pair(97, 130, 0.01)
    a, b = (np.round(x * data_range).astype(dtype) if dtype in (np.uint8, np.uint16) else x.astype(dtype)
            for x in (a, b))
    ref = peak_signal_noise_ratio(a, b, data_range=data_range)
    assert psnr(a, b, data_range=data_range) == pytest.approx(ref, abs=1e-6)
    one = a.copy()
    one[5, 7] = b[5, 7] if b[5, 7] != a[5, 7] else a[5, 7] + 1
    assert np.isfinite(psnr(a, one, data_range=data_range))  # one changed pixel is not "identical"
    assert psnr(a[:, ::2], a[:, ::2].copy(), data_range=data_range) == float("inf")  # views work


def test_psnr_of_a_one_level_change_equals_skimage():
    """The smallest change a 16-bit release can carry: one sample, one level."""
    a, _ = _pair(96, 80, 0.01)
    q = (np.round(a * 65535) / 65535).astype(np.float32)
    r = q.copy()
    r[3, 4] += np.float32(1 / 65535)
    assert psnr(q, r) == pytest.approx(peak_signal_noise_ratio(q, r, data_range=1.0), abs=1e-6)
    assert psnr(q * 255, r * 255, data_range=255.0) == pytest.approx(psnr(q, r), abs=1e-5)


def test_ssim_rejects_bad_pairs():
    a, _ = _pair(64, 64, 0.01)
    with pytest.raises(ValueError, match="differ in shape"):
        ssim(a, a[:32])
    with pytest.raises(ValueError, match="at least 11 pixels"):
        ssim(a[:8, :8], a[:8, :8])
