"""Batch augmentation suited to chest radiographs, on tensors (CPU or GPU).

Small geometric jitter (patient positioning) and exposure jitter (brightness, contrast,
gamma). No horizontal flip by default: the heart is on the patient's left, and a flip
changes the anatomy a classifier should learn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class AugmentConfig:
    """Ranges of the random transforms (each drawn uniformly in ``[-r, r]``)."""

    rotate_deg: float = 7.0
    shift: float = 0.05  # fraction of the image side
    scale: float = 0.08  # relative zoom
    brightness: float = 0.06  # additive, in [0, 1] intensity units
    contrast: float = 0.15  # relative, around the image mean
    gamma: float = 0.15  # log-gamma range
    hflip: bool = False


def _uniform(n: int, r: float, g: torch.Generator | None) -> torch.Tensor:
    return (torch.rand(n, generator=g) * 2.0 - 1.0) * r


def augment_batch(
    x: torch.Tensor, cfg: AugmentConfig | None = None, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Randomly transform a batch of images.

    Parameters
    ----------
    x : (N, 1, H, W) tensor in [0, 1], on any device
    cfg : ranges; defaults to :class:`AugmentConfig`
    generator : CPU generator for the random draws (makes the result reproducible)

    Returns
    -------
    torch.Tensor
        (N, 1, H, W) in [0, 1] on ``x``'s device.
    """
    cfg = cfg or AugmentConfig()
    n, dev = x.shape[0], x.device
    ang = _uniform(n, math.radians(cfg.rotate_deg), generator)
    scale = 1.0 + _uniform(n, cfg.scale, generator)
    tx, ty = _uniform(n, 2 * cfg.shift, generator), _uniform(n, 2 * cfg.shift, generator)
    flip = (torch.rand(n, generator=generator) < 0.5) if cfg.hflip else torch.zeros(n, dtype=torch.bool)
    contrast = 1.0 + _uniform(n, cfg.contrast, generator)
    bright = _uniform(n, cfg.brightness, generator)
    gamma = torch.exp(_uniform(n, cfg.gamma, generator))

    # affine_grid maps output to input coordinates: dividing by the scale zooms in.
    cos, sin = torch.cos(ang) / scale, torch.sin(ang) / scale
    sx = torch.where(flip, -1.0, 1.0)
    theta = torch.stack(
        [torch.stack([cos * sx, -sin, tx], 1), torch.stack([sin * sx, cos, ty], 1)], 1
    ).to(dev, x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    # "border" repeats the edge instead of inventing a black frame the model could key on.
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    view = (n, 1, 1, 1)
    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    out = (out - mean) * contrast.to(dev).view(view) + mean + bright.to(dev).view(view)
    return out.clamp(0.0, 1.0).pow(gamma.to(dev).view(view))
