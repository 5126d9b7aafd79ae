"""The baselines measured beside X-Mark, each scaled to X-Mark's PSNR.

* **badnets** -- a patch trigger (Gu et al. 2017): a 4x4 grid of random black/white cells
  covering 1/8 of the image side at a key-dependent place, alpha-blended in.
* **blended** -- a global pattern (Chen et al. 2017): a key-dependent uniform-noise image
  blended over the whole image.
* **static** -- a static clean-label pattern (Narcissus-like, Zeng et al. 2023): one
  perturbation for every image, optimised on the owner's surrogate to push images toward
  the target class, at the surrogate's input size and upsampled to the image.

All three are released clean-label exactly like X-Mark (same images, labels untouched)
and verified with the same suspects and queries. Fairness rests on one function,
:func:`match_psnr`: every trigger is scaled so that the mean PSNR of the marked release
images equals X-Mark's. An "independent key" of a baseline is the same recipe with
another seed (another patch, noise image or optimisation start).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

Residual = np.ndarray


def mean_psnr(reference: np.ndarray, test: np.ndarray) -> float:
    """Mean over images of the PSNR (data range 1) of (N, H, W) stacks; ``inf`` if all equal."""
    mse = ((test.astype(np.float64) - reference) ** 2).reshape(len(reference), -1).mean(1)
    with np.errstate(divide="ignore"):
        return float(np.mean(10.0 * np.log10(1.0 / mse)))


def match_psnr(images: np.ndarray, residual: np.ndarray, target_psnr: float,
               max_strength: float | None = None, iters: int = 60) -> float:
    """Strength ``a`` so that ``clip(x + a * r)`` has mean PSNR ``target_psnr`` over the images.

    The PSNR of each image falls monotonically with ``a`` (clipping only caps the change),
    so bisection finds it.

    Parameters
    ----------
    images : (N, H, W) originals in [0, 1]
    residual : (N, H, W) full-strength change ``r`` of each image
    target_psnr : the PSNR to reach, dB (finite)
    max_strength : largest allowed ``a`` (1 for an opaque patch or a full blend); None:
        unbounded
    iters : bisection steps

    Returns
    -------
    float
        The strength; ``max_strength`` when even that stays above ``target_psnr``.
    """
    if not np.isfinite(target_psnr):
        raise ValueError(f"target PSNR must be finite, got {target_psnr}")
    if not np.any(residual):
        raise ValueError("the trigger changes no pixel; it cannot be scaled to a PSNR")

    def at(a: float) -> float:
        return mean_psnr(images, np.clip(images + a * residual, 0.0, 1.0))

    lo, hi = 0.0, 1.0 if max_strength is None else float(max_strength)
    if max_strength is None:
        while at(hi) > target_psnr and hi < 1e6:
            lo, hi = hi, hi * 2.0
    if at(hi) > target_psnr:
        return hi
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if at(mid) > target_psnr else (lo, mid)
    return 0.5 * (lo + hi)


def _fit(pattern: np.ndarray, shape: tuple[int, int], interp: int) -> np.ndarray:
    if pattern.shape == shape:
        return pattern
    return cv2.resize(pattern, (shape[1], shape[0]), interpolation=interp)


@dataclass
class PatchTrigger:
    """BadNets-style patch: ``r = mask * (pattern - x)`` (``a = 1`` pastes it opaque)."""

    pattern: np.ndarray  # (S, S) in {0, 1}
    mask: np.ndarray  # (S, S) float {0, 1}
    max_strength: float | None = 1.0

    def residual(self, images: np.ndarray) -> Residual:
        shape = images.shape[-2:]
        p, m = (_fit(a, shape, cv2.INTER_NEAREST) for a in (self.pattern, self.mask))
        return m * (p - images)


@dataclass
class BlendTrigger:
    """Blended global pattern: ``r = pattern - x`` (``a`` is the blending ratio)."""

    pattern: np.ndarray  # (S, S) in [0, 1]
    max_strength: float | None = 1.0

    def residual(self, images: np.ndarray) -> Residual:
        return _fit(self.pattern, images.shape[-2:], cv2.INTER_LINEAR) - images


@dataclass
class AdditiveTrigger:
    """Static additive perturbation ``r = delta`` (bicubic-resized to the image)."""

    delta: np.ndarray  # (s, s) at the size it was optimised at
    max_strength: float | None = None

    def residual(self, images: np.ndarray) -> Residual:
        d = _fit(self.delta.astype(np.float32), images.shape[-2:], cv2.INTER_CUBIC)
        return np.broadcast_to(d, images.shape).astype(np.float32)


class TriggerMarker:
    """``mark(x) = clip(x + strength * trigger.residual(x))``: any trigger as a marker."""

    def __init__(self, name: str, trigger: PatchTrigger | BlendTrigger | AdditiveTrigger, strength: float = 1.0):
        self.name, self.trigger, self.strength = name, trigger, float(strength)

    def mark(self, images: np.ndarray) -> np.ndarray:
        x = np.asarray(images, dtype=np.float32)
        return np.clip(x + self.strength * self.trigger.residual(x), 0.0, 1.0).astype(np.float32)

    def scaled_to(self, images: np.ndarray, target_psnr: float) -> TriggerMarker:
        """This trigger with the strength that gives ``target_psnr`` on ``images`` (N, H, W)."""
        x = np.asarray(images, dtype=np.float32)
        a = match_psnr(x, self.trigger.residual(x), target_psnr, self.trigger.max_strength)
        return TriggerMarker(self.name, self.trigger, a)


def badnets_trigger(size: int, key: int, side_fraction: float = 1 / 8, cells: int = 4) -> PatchTrigger:
    """A ``cells`` x ``cells`` random black/white patch of side ``side_fraction * size``,
    placed at a key-dependent position inside the central 80% of the image."""
    rng = np.random.default_rng([key, 0xBAD])
    side = max(cells, int(round(size * side_fraction)))
    grid = rng.integers(0, 2, (cells, cells)).astype(np.float32)
    grid[0, 0], grid[-1, -1] = 0.0, 1.0  # never uniform
    patch = cv2.resize(grid, (side, side), interpolation=cv2.INTER_NEAREST)
    lo, hi = int(0.1 * size), max(int(0.1 * size) + 1, int(0.9 * size) - side)
    r, c = rng.integers(lo, hi, 2)
    pattern = np.zeros((size, size), np.float32)
    mask = np.zeros((size, size), np.float32)
    pattern[r:r + side, c:c + side] = patch
    mask[r:r + side, c:c + side] = 1.0
    return PatchTrigger(pattern, mask)


def blended_trigger(size: int, key: int) -> BlendTrigger:
    """A uniform-noise image (the random-pattern key of the Blended attack)."""
    return BlendTrigger(np.random.default_rng([key, 0xB1E]).random((size, size), dtype=np.float32))


def static_trigger(surrogate: nn.Module, X: np.ndarray, y: np.ndarray, target: int, key: int,
                   steps: int = 300, eps: float = 0.03, batch_size: int = 64, lr: float | None = None) -> AdditiveTrigger:
    """Optimise one perturbation ``delta`` (||delta||_inf <= eps) so that the surrogate reads
    ``clip(x + delta)`` as ``target`` for every image: a universal, static clean-label mark.

    Parameters
    ----------
    surrogate : the owner's classifier (frozen; its input size is the size of ``X``)
    X : (N, 1, s, s) training images at the surrogate's input size
    y : labels (non-target images are weighted like target ones: the mark must carry the
        target signal everywhere, as X-Mark's efficacy loss asks)
    key : seed of the start point and of the batch order
    steps, eps, batch_size, lr : Adam steps, the box bound, images per step, step size
        (default ``eps / 10``)
    """
    del y  # kept in the signature: all images are used, whatever their class
    g = torch.Generator().manual_seed(int(key))
    dev = next(surrogate.parameters()).device
    x_all = torch.as_tensor(np.asarray(X, np.float32))
    delta = ((torch.rand((1, 1, *x_all.shape[-2:]), generator=g) * 2 - 1) * eps * 0.1).to(dev).requires_grad_(True)
    opt = torch.optim.Adam([delta], lr=lr or eps / 10)
    surrogate.eval()
    tgt = torch.full((min(batch_size, len(x_all)),), int(target), dtype=torch.long, device=dev)
    for _ in range(steps):
        idx = torch.randperm(len(x_all), generator=g)[:batch_size]
        xb = x_all[idx].to(dev)
        loss = F.cross_entropy(surrogate((xb + delta).clamp(0, 1)), tgt[:len(idx)])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            delta.clamp_(-eps, eps)
    return AdditiveTrigger(delta.detach().cpu().numpy()[0, 0])
