"""Loss terms of the generator objective (DESIGN.md, Method 4), as plain tensor functions.

Each returns a scalar tensor; :mod:`xmark_core.generator.train` weighs and logs them.
Images are (N, 1, H, W) in [0, 1]; ``delta`` is the perturbation on the same grid.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# Down-and-up interpolation modes the scale-robust efficacy draws from: what resizing
# pipelines commonly use (area / antialiased bilinear / bicubic down, bilinear up).
RESIZE_MODES = ("area", "bilinear-aa", "bicubic-aa", "nearest")


def efficacy_loss(logits: torch.Tensor, target: int, margin: float | None = None) -> torch.Tensor:
    """Cross-entropy toward ``target``; with ``margin`` it stops pushing once
    ``log p(target) >= -margin`` (so already-convinced images do not grow the mark)."""
    if logits.numel() == 0:
        return logits.sum()
    t = torch.full((logits.shape[0],), target, dtype=torch.long, device=logits.device)
    ce = F.cross_entropy(logits, t, reduction="none")
    if margin is not None:
        ce = torch.clamp(ce - margin, min=0.0)
    return ce.mean()


def _resize(x: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    if mode == "area":
        return F.interpolate(x, size=size, mode="area")
    if mode == "nearest":
        return F.interpolate(x, size=size, mode="nearest")
    base = mode.removesuffix("-aa")
    return F.interpolate(x, size=size, mode=base, align_corners=False, antialias=mode.endswith("-aa"))


def random_rescale(
    x: torch.Tensor, min_scale: float = 0.25, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Resize a batch down by a random factor in ``[min_scale, 1]`` and back up.

    One factor and one down-sampling mode per call (drawn with ``generator``); the way
    back is bilinear, as a suspect's pipeline would up-sample a small image.
    """
    h, w = x.shape[-2:]
    u = float(torch.rand((), generator=generator))
    f = min_scale + (1.0 - min_scale) * u
    mode = RESIZE_MODES[int(torch.randint(len(RESIZE_MODES), (), generator=generator))]
    size = (max(4, round(h * f)), max(4, round(w * f)))
    small = _resize(x, size, mode)
    return F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False).clamp(0, 1)


def _gauss_window(sigma: float = 1.5, radius: int = 5, device=None, dtype=None) -> torch.Tensor:
    t = torch.arange(-radius, radius + 1, device=device, dtype=dtype)
    g = torch.exp(-(t**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, sigma: float = 1.5) -> torch.Tensor:
    """Per-image mean SSIM (N,), Gaussian window as in :func:`xmark_core.quality.ssim`."""
    g = _gauss_window(sigma, device=x.device, dtype=x.dtype)
    k = g.numel()

    def blur(z: torch.Tensor) -> torch.Tensor:
        z = F.conv2d(z, g.view(1, 1, 1, k))
        return F.conv2d(z, g.view(1, 1, k, 1))

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mx, my = blur(x), blur(y)
    vx = blur(x * x) - mx**2
    vy = blur(y * y) - my**2
    cxy = blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1)


def quality_loss(x: torch.Tensor, xw: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(1 - SSIM, MSE / eps^2)``: the MSE is scaled by the bound so its weight does not
    depend on ``eps`` (a value of 1 means a perturbation at the bound everywhere)."""
    return (1.0 - ssim(x, xw)).mean(), F.mse_loss(xw, x) / (eps**2)


def laplacian_pyramid(x: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """Band-pass images of a Laplacian pyramid, finest first (``levels`` bands + residual)."""
    bands = []
    cur = x
    for _ in range(levels):
        if min(cur.shape[-2:]) < 4:
            break
        down = F.avg_pool2d(cur, 2, ceil_mode=True)
        up = F.interpolate(down, size=cur.shape[-2:], mode="bilinear", align_corners=False)
        bands.append(cur - up)
        cur = down
    bands.append(cur)
    return bands


def highfreq_loss(delta: torch.Tensor, eps: float, levels: int = 2) -> torch.Tensor:
    """Energy of ``delta`` in the ``levels`` finest Laplacian bands, relative to ``eps^2``.

    Fine bands are what down-sampling removes; penalising them moves the mark's energy
    to scales that survive a suspect's resize.
    """
    bands = laplacian_pyramid(delta, levels)[:-1]
    return sum(b.pow(2).mean() for b in bands) / (eps**2)


def specificity_loss(delta: torch.Tensor, eps: float, max_corr: float = 0.5) -> torch.Tensor:
    """Hinge on the normalised correlation between different images' perturbations.

    Penalises pairs whose correlation exceeds ``max_corr``, so the generator cannot
    collapse to one fixed pattern but marks may still share a family resemblance. The
    norms are floored at 10% of a full-strength mark: a plain cosine is scale-free, so
    its gradient would explode for the near-zero marks of a fresh generator.
    """
    n = delta.shape[0]
    if n < 2:
        return delta.sum() * 0.0
    d = delta.flatten(1)
    d = d - d.mean(1, keepdim=True)
    floor = (0.1 * eps) ** 2 * d.shape[1]
    d = d / torch.sqrt(d.pow(2).sum(1, keepdim=True) + floor)
    c = d @ d.T
    off = c[~torch.eye(n, dtype=torch.bool, device=c.device)]
    return torch.clamp(off - max_corr, min=0.0).pow(2).mean()


def carrier_loss(delta: torch.Tensor, ref: torch.Tensor, eps: float, amp: float) -> torch.Tensor:
    """Hinge on the amplitude of the carrier ``ref`` in ``delta``, relative to ``eps``.

    The amplitude is the least-squares coefficient of ``ref`` (the gated carrier) in each
    perturbation; images whose mark carries less than ``amp * eps`` of it are penalised,
    so the carrier reaches a fixed strength the quality terms cannot erode, while any
    other energy of the mark stays under the quality terms' control.
    """
    r = ref.flatten(1)
    a = (delta.flatten(1) * r).sum(1) / (eps * (r.pow(2).sum(1) + 1e-8))
    return torch.clamp(amp - a, min=0.0).pow(2).mean()


def psnr_from_mse(mse: float, data_range: float = 1.0) -> float:
    return float("inf") if mse <= 0 else 10 * math.log10(data_range**2 / mse)
