"""Variants of the embedder's hot loop that were measured and dropped, and what the kept ones
changed (lab; repo root; ~1 min, one thread). Times are medians of CPU time, which a busy
machine disturbs less than wall time (set WALL=1 for wall time on a quiet machine).

1. Saliency at the working size (kept, 2026-12-05 (VI)): the shipped marker at working size 128
   on 8 phantom images of 512 px, the mark with its saliency computed at 128 px (the library)
   against the old path (a 512 px map, shrunk): RMS difference over RMS mark, and the largest
   difference as a share of eps.
2. SSIM's arithmetic in place (dropped): the same floats as the five-blur block (the library's
   until 2026-12-05 (VII)), timed inside ``quality.ssim`` on those images' 16-bit marked copies,
   where the blocks are views; beside it the library's block, which blurs the two squares as one
   sum (kept, 2026-12-05 (VII)), and how far its SSIM moves.
3. PSNR on the same pairs: the library's (OpenCV's squared norm, kept 2026-12-05 (VII)), the
   previous one (skimage's, with an identity check) and one float64 NumPy pass (dropped).
4. The surrogate in channels-last layout (kept, 2026-12-05 (VII): ``Marker`` sets it on CPU)
   against the contiguous one: ``mark()`` of the 8 images, time, largest difference and how many
   16-bit values it moves.

    PYTHONPATH=. python docs/lab/learnability/hot_loop_variants.py
"""
import copy
import dataclasses
import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio

import xmark_core.quality as q
from benchmarks.speed import write_phantom_folder
from xmark_core.data.folder import FolderDataset
from xmark_core.data.io import write_image
from xmark_core.generator.model import load_marker

torch.set_num_threads(1)


clock = time.perf_counter if os.environ.get("WALL") == "1" else time.process_time


def median_ms(fn, reps: int = 30) -> float:
    fn()
    ts = []
    for _ in range(reps):
        t = clock()
        fn()
        ts.append(clock() - t)
    return float(np.median(ts)) * 1000


def blur(a):
    """The library block's window: Gaussian, sigma 1.5, cropped by its radius."""
    r, k = q.SSIM_RADIUS, 2 * q.SSIM_RADIUS + 1
    return cv2.GaussianBlur(a, (k, k), q.SSIM_SIGMA, sigmaY=q.SSIM_SIGMA)[r:-r, r:-r]


def ssim_block_five_blurs(xp, yp, c, data_range):
    ux, uy = blur(xp), blur(yp)
    vx, vy, vxy = blur(xp * xp) - ux * ux, blur(yp * yp) - uy * uy, blur(xp * yp) - ux * uy
    ux += c
    uy += c
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    return ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))


def ssim_block_in_place(xp, yp, c, data_range):
    ux, uy = blur(xp), blur(yp)
    vx, vy, vxy = blur(xp * xp), blur(yp * yp), blur(xp * yp)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    t = ux * ux
    vx -= t
    vy -= np.multiply(uy, uy, out=t)
    vxy -= np.multiply(ux, uy, out=t)
    ux += c
    uy += c
    num = np.multiply(ux, 2, out=t)
    num *= uy
    num += c1
    vxy *= 2
    vxy += c2
    num *= vxy
    ux *= ux
    ux += np.multiply(uy, uy, out=uy)
    ux += c1
    vx += vy
    vx += c2
    ux *= vx
    num /= ux
    return num


def psnr_skimage(a, b, data_range=1.0):
    if np.array_equal(a, b):
        return float("inf")
    return float(peak_signal_noise_ratio(a, b, data_range=data_range))


def psnr_float64(a, b, data_range=1.0):
    d = np.subtract(b, a, dtype=np.float64).ravel()
    mse = float(np.dot(d, d)) / d.size
    return float("inf") if mse == 0 else float(10 * np.log10(data_range**2 / mse))


m = dataclasses.replace(load_marker("models/surrogate.pt", "models/generator.pt", device="cpu"), work_size=128)
with tempfile.TemporaryDirectory() as tmp:
    ds = FolderDataset(write_phantom_folder(Path(tmp) / "src", 8, 512, 5, m.target, m.info["classes"]))
    x = np.stack([ds[i].image for i in range(8)]).astype(np.float32)
    new = m.perturbation(x)
    old = m.perturbation(x, m.saliency(x))
    print(f"1. saliency at the working size: RMS difference / RMS mark {np.sqrt(np.mean((new - old) ** 2) / np.mean(old ** 2)):.4f}, "
          f"max |difference| / eps {np.abs(new - old).max() / m.generator.eps:.4f}")
    backs = [write_image(Path(tmp) / "m.png", im, bit_depth=16) for im in m.mark(x)]
    kept = q._ssim_block

    def timed_ssim(block) -> tuple[float, list[float]]:
        q._ssim_block = block
        try:
            return median_ms(lambda: [q.ssim(a, b) for a, b in zip(x, backs)]) / 8, [q.ssim(a, b) for a, b in zip(x, backs)]
        finally:
            q._ssim_block = kept

    t_kept, v_kept = timed_ssim(kept)
    t_five, v_five = timed_ssim(ssim_block_five_blurs)
    t_in_place, v_in_place = timed_ssim(ssim_block_in_place)
    print(f"2. SSIM per 512 px pair: library (four blurs) {t_kept:.2f} ms, five blurs {t_five:.2f} ms, five in place "
          f"{t_in_place:.2f} ms (same values as five: {v_in_place == v_five}); four against five: largest SSIM "
          f"difference {max(abs(a - b) for a, b in zip(v_kept, v_five)):.1e}")
    t_lib, t_sk, t_f64 = (median_ms(lambda f=f: [f(a, b) for a, b in zip(x, backs)], 100) / 8
                          for f in (q.psnr, psnr_skimage, psnr_float64))
    gap = max(abs(q.psnr(a, b) - psnr_skimage(a, b)) for a, b in zip(x, backs))
    print(f"3. PSNR per 512 px pair: library (OpenCV) {t_lib:.3f} ms, skimage + identity check {t_sk:.3f} ms, "
          f"one float64 pass {t_f64:.3f} ms; library against skimage: largest difference {gap:.1e} dB")
    plain = copy.copy(m)  # the same nets; only the surrogate's copy is laid out contiguously
    plain.surrogate = copy.deepcopy(m.surrogate).to(memory_format=torch.contiguous_format)
    t_cl, t_plain = (median_ms(lambda mk=mk: mk.mark(x), 10) / 8 for mk in (m, plain))
    a, b = m.mark(x), plain.mark(x)
    steps = np.round(a * 65535) != np.round(b * 65535)
    print(f"4. mark() per 512 px image (working size 128): surrogate channels-last {t_cl:.2f} ms, contiguous "
          f"{t_plain:.2f} ms; largest difference {np.abs(a - b).max():.1e}; stored at 16 bits, "
          f"{int(steps.sum())} of {steps.size} values differ")
