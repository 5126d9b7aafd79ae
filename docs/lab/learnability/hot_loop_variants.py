"""Variants of the embedder's hot loop that were measured and dropped, and what the kept one
changed (lab; repo root; ~1 min, one thread, quiet machine for the timings).

1. Saliency at the working size (kept, 2026-12-05 (VI)): the shipped marker at working size 128
   on 8 phantom images of 512 px, the mark with its saliency computed at 128 px (the library)
   against the old path (a 512 px map, shrunk): RMS difference over RMS mark, and the largest
   difference as a share of eps.
2. SSIM's arithmetic in place (dropped): the same floats as ``quality._ssim_block``, timed inside
   ``quality.ssim`` on those images' 16-bit marked copies, where the blocks are views.
3. PSNR in one float64 pass (dropped) against ``quality.psnr`` (skimage's, with the identity
   check), on the same pairs.

    PYTHONPATH=. python docs/lab/learnability/hot_loop_variants.py
"""
import dataclasses
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

import xmark_core.quality as q
from benchmarks.speed import write_phantom_folder
from xmark_core.data.folder import FolderDataset
from xmark_core.data.io import write_image
from xmark_core.generator.model import load_marker

torch.set_num_threads(1)


def median_ms(fn, reps: int = 30) -> float:
    fn()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts)) * 1000


def ssim_block_in_place(xp, yp, c, data_range):
    r, k = q.SSIM_RADIUS, 2 * q.SSIM_RADIUS + 1

    def blur(a):
        return cv2.GaussianBlur(a, (k, k), q.SSIM_SIGMA, sigmaY=q.SSIM_SIGMA)[r:-r, r:-r]

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
    t_kept = median_ms(lambda: [q.ssim(a, b) for a, b in zip(x, backs)]) / 8
    q._ssim_block = ssim_block_in_place
    vals_in_place = [q.ssim(a, b) for a, b in zip(x, backs)]
    t_in_place = median_ms(lambda: [q.ssim(a, b) for a, b in zip(x, backs)]) / 8
    q._ssim_block = kept
    equal = vals_in_place == [q.ssim(a, b) for a, b in zip(x, backs)]
    print(f"2. SSIM per 512 px pair: library {t_kept:.2f} ms, in place {t_in_place:.2f} ms (same values: {equal})")
    t_lib = median_ms(lambda: [q.psnr(a, b) for a, b in zip(x, backs)], 100) / 8
    t_f64 = median_ms(lambda: [psnr_float64(a, b) for a, b in zip(x, backs)], 100) / 8
    print(f"3. PSNR per 512 px pair: library (skimage + identity check) {t_lib:.3f} ms, one float64 pass {t_f64:.3f} ms")
