"""Is the mark bent, or the anatomy uneven, where suspects answer 5-15 degrees off the key? (lab; repo root; seconds)

Two spectra at the carrier's frequency band:

1. the marks themselves: the owner's mark (and turned by +/-10 degrees) minus the image, over 40
   phantoms at 256 px, at 256 px and area-resized to the suspects' 64 px; the orientation of the
   mark's strongest Fourier bin and the energy-weighted mean orientation of its top 0.5 %. If the
   generator or the resize bent the grating, it would show here.
2. the anatomy: mean power of 200 phantoms (at 64 px) between 8.5 and 13 cycles per side (the
   carrier's 10.7), by wave-vector orientation in 10-degree sectors. The guess it served: a suspect
   that learns the mark as a detector *against* the anatomy (a whitened matched filter) tunes away
   from the orientations where the anatomy is strong. It failed its test (lab README, 2026-12-06
   (XX): a carrier at 21.8 degrees is answered most at its own orientation, not above it).

    PYTHONPATH=. python docs/lab/learnability/peak_shift.py [KEPT_DIR]   # default results/full_att6_models_gate05
"""
import sys
from pathlib import Path

import cv2
import numpy as np
import torch
from demo_release import kept_marker

from xmark_core.data.phantom import PhantomDataset
from xmark_core.generator.model import carrier_orientation


def spectrum(images: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean power spectrum (centred) of ``images`` area-resized to ``size``, with each bin's
    radius (cycles per side) and wave-vector orientation (degrees in [0, 180))."""
    x = np.stack([cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA) for im in images])
    power = np.fft.fftshift((np.abs(np.fft.fft2(x - x.mean(axis=(1, 2), keepdims=True))) ** 2).mean(0))
    yy, xx = np.mgrid[-(size // 2):size - size // 2, -(size // 2):size - size // 2]
    return power, np.hypot(xx, yy), np.degrees(np.arctan2(yy, xx)) % 180


def mark_orientation(delta: np.ndarray, size: int) -> tuple[float, float]:
    """(strongest bin's orientation, energy-weighted mean orientation of the top 0.5 % of bins)."""
    power, radius, ang = spectrum(delta, size)
    w = power * (radius > 3)
    top = w > np.quantile(w[radius > 3], 0.995)
    mean = np.degrees(np.angle((w[top] * np.exp(2j * np.radians(ang[top]))).sum())) / 2 % 180
    return float(ang.flat[np.argmax(w)]), float(mean)


def main() -> None:
    torch.set_num_threads(1)
    kept = Path(sys.argv[1] if len(sys.argv) > 1 else "results/full_att6_models_gate05")
    marker = kept_marker(kept)
    ds = PhantomDataset(40, size=256, seed=5)
    x = np.stack([ds[i].image for i in range(len(ds))]).astype(np.float32)
    print(f"key 189's carrier: {np.degrees(carrier_orientation(189)):.1f} deg")
    for turn in (0, -10, 10):
        delta = (marker.turned(turn) if turn else marker).mark(x) - x
        for size in (256, 64):
            peak, mean = mark_orientation(delta, size)
            print(f"mark turned {turn:+d}, at {size} px: strongest bin {peak:.1f} deg, weighted mean {mean:.1f} deg")
    ds = PhantomDataset(200, size=256, seed=5)
    power, radius, ang = spectrum(np.stack([ds[i].image for i in range(len(ds))]).astype(np.float32), 64)
    band = (radius > 8.5) & (radius < 13)
    print("anatomy's power at the carrier's band, by orientation: " + ", ".join(
        f"{a}-{a + 10}: {power[band & ((ang - a) % 180 < 10)].mean():.3g}" for a in range(0, 180, 10)))


if __name__ == "__main__":
    main()
