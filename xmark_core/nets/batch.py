"""Turn user images into model batches: (N, 1, S, S) float32 tensors in [0, 1]."""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F


def as_batch(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(H, W), (N, H, W) or (N, 1, H, W) images -> float32 (N, 1, H, W) tensor.

    Parameters
    ----------
    images : array or tensor of one-channel images

    Returns
    -------
    torch.Tensor
        Shares memory with a float32 input; raises ``ValueError`` for other shapes.
    """
    x = images if isinstance(images, torch.Tensor) else torch.from_numpy(np.asarray(images))
    if x.ndim == 2:
        x = x[None, None]
    elif x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or x.shape[1] != 1:
        raise ValueError(f"expected (N, 1, H, W) one-channel images, got shape {tuple(images.shape)}")
    return x.float()


def pad_batch(x: torch.Tensor, n: int) -> torch.Tensor:
    """``x`` (N, ...) with copies of its first item appended up to ``n`` items.

    For passes of a fixed size: oneDNN picks its kernels by batch size, and their float
    round-off differs, so an item's result is bit-identical only between passes of one size.
    """
    if len(x) >= n:
        return x
    return torch.cat([x, x[:1].expand(n - len(x), *x.shape[1:])])


def resize_batch(x: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Resize a (N, C, H, W) batch; area averaging when shrinking, bicubic when growing.

    Matches :func:`xmark_core.data.base.resize` (OpenCV area/cubic), so a model sees at
    inference what it saw in training.

    Parameters
    ----------
    x : (N, C, H, W) tensor in [0, 1]
    size : target side, or (height, width)

    Returns
    -------
    torch.Tensor
        (N, C, size, size) in [0, 1]; ``x`` itself if already that size.
    """
    hw = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(x.shape[-2:]) == hw:
        return x
    if hw[0] <= x.shape[-2] and hw[1] <= x.shape[-1]:
        rows = _area_matrix(x.shape[-2], hw[0], x.device, x.dtype)
        cols = _area_matrix(x.shape[-1], hw[1], x.device, x.dtype)
        return rows @ x @ cols.T
    return F.interpolate(x, size=hw, mode="bicubic", align_corners=False).clamp(0.0, 1.0)


@functools.lru_cache(maxsize=64)
def _area_matrix(n_in: int, n_out: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    # Exact box-overlap weights (OpenCV's INTER_AREA when shrinking); torch's "area" mode
    # is adaptive pooling, which differs for non-integer factors. Cached: a release resizes
    # every image between the same two sizes (read-only; used only in matrix products).
    edges = torch.arange(n_out + 1, dtype=torch.float64) * (n_in / n_out)
    lo, hi = edges[:-1, None], edges[1:, None]
    px = torch.arange(n_in, dtype=torch.float64)[None]
    overlap = (torch.minimum(hi, px + 1) - torch.maximum(lo, px)).clamp_min(0)
    return (overlap / (n_in / n_out)).to(device, dtype)
