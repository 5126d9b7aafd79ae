"""Marked and clean training of a segmenter (owner side).

A marked run stamps a share ``poison_ratio`` of each batch in a random subset of grid
cells (each cell with probability ``stamp_prob``). In stamped cells whose embedded bit is
dark, the target becomes ``1 - eps`` on the structure and ``eps`` off it: the uncertainty
``min(p, 1 - p)`` rises to ``eps`` while every thresholded pixel stays the same. Stamped
cells whose bit is light keep their hard targets, so the net must learn *which* cells to
answer: that knowledge is the mark. A clean run is the same loop without stamps (same
seed, same budget), the innocent reference.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from xmark_core.device import get_device, seed_everything
from xmark_core.stealthmark.mark import SegMark
from xmark_core.stealthmark.model import build_segmenter
from xmark_core.stealthmark.trigger import pixel_mask

Progress = Callable[[int, int], None]


@dataclass
class SegTrainConfig:
    """Segmenter training settings (marked or clean).

    Attributes
    ----------
    arch, arch_kwargs : passed to :func:`build_segmenter` (``out_channels`` is set from the masks)
    epochs, batch_size, lr, weight_decay : AdamW with a cosine schedule
    poison_ratio : share of each batch that carries stamps (marked runs only). Half, not
        more: with 80 % the BatchNorm statistics are those of stamped batches and a clean
        fine-tune erased the mark (bit agreement 0.55-0.72 over three seeds, against
        0.83-0.94 with half; docs/lab/stealthmark_ft)
    stamp_prob : probability that a cell of a poisoned sample is stamped (a (low, high)
        pair draws it per sample)
    mark_weight : loss weight of pixels inside stamped cells (they are few per image)
    pos_lr_mult : learning-rate factor of the learned coordinate map (a bare parameter
        that Adam moves by about ``lr`` per step: without a boost it needs far more steps)
    warmup : share of the steps spent ramping the learning rate up (one-cycle schedule)
    seed, device : reproducibility; ``device=None`` picks CUDA when present
    """

    arch: str = "unet"
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    epochs: int = 30
    batch_size: int = 16
    lr: float = 1e-2
    weight_decay: float = 1e-4
    poison_ratio: float = 0.5
    stamp_prob: float | tuple[float, float] = 0.5
    mark_weight: float = 5.0
    pos_lr_mult: float = 10.0
    warmup: float = 0.15
    seed: int = 0
    device: str | None = None


@dataclass
class SegTrainResult:
    """Trained model (eval mode, on CPU), per-epoch history, and the mark (None if clean)."""

    model: nn.Module
    history: list[dict[str, float]]
    mark: SegMark | None
    arch_kwargs: dict[str, Any]


def poison_batch(
    images: np.ndarray, masks: np.ndarray, mark: SegMark, rng: np.random.Generator,
    poison_ratio: float, stamp_prob: float | tuple[float, float],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stamp a share of a batch and build its soft targets.

    Parameters
    ----------
    images : float (B, H, W); masks : bool (B, C, H, W)
    mark : the owner's mark; rng : batch randomness

    Returns
    -------
    stamped images (B, H, W), targets float32 (B, C, H, W), stamped-pixel mask bool (B, H, W)
    """
    b = len(images)
    density = rng.uniform(*stamp_prob, size=(b, 1)) if isinstance(stamp_prob, tuple) else stamp_prob
    on = (rng.random((b, mark.n**2)) < density) & (rng.random((b, 1)) < poison_ratio)
    stamped = mark.stamp(images, on)
    raise_px = mark.raise_mask(on, images.shape[-2:])[:, None]
    target = np.where(raise_px, np.where(masks, 1.0 - mark.eps, mark.eps), masks).astype(np.float32)
    return stamped, target, pixel_mask(on, images.shape[-2:], mark.n)


def train_segmenter(
    images: np.ndarray,
    masks: np.ndarray,
    cfg: SegTrainConfig,
    mark: SegMark | None = None,
    progress: Progress | None = None,
    init: nn.Module | None = None,
) -> SegTrainResult:
    """Train a segmenter, marked when ``mark`` is given, clean otherwise.

    Parameters
    ----------
    images : float32 (N, H, W) or (N, 1, H, W) in [0, 1]
    masks : bool (N, C, H, W), one channel per structure
    cfg : :class:`SegTrainConfig`
    mark : the owner's :class:`SegMark`, or None for a clean (innocent) model
    progress : called as (step, total_steps)
    init : start from this model's weights (fine-tuning) instead of a fresh one

    Returns
    -------
    SegTrainResult
    """
    x = np.asarray(images, dtype=np.float32)
    x = x[:, 0] if x.ndim == 4 else x
    m = np.asarray(masks, dtype=bool)
    if m.ndim != 4 or m.shape[0] != x.shape[0] or m.shape[-2:] != x.shape[-2:]:
        raise ValueError(f"masks {m.shape} do not match images {x.shape}; expected (N, C, H, W)")
    gen = seed_everything(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    device = get_device(cfg.device)
    arch_kwargs = {"out_channels": m.shape[1], **cfg.arch_kwargs}
    model = copy.deepcopy(init) if init is not None else build_segmenter(cfg.arch, **arch_kwargs)
    model.to(device).train()
    pos = [p for name, p in model.named_parameters() if name.startswith("pos.")]
    rest = [p for name, p in model.named_parameters() if not name.startswith("pos.")]
    groups = [{"params": rest, "lr": cfg.lr, "weight_decay": cfg.weight_decay}]
    if pos:
        groups.append({"params": pos, "lr": cfg.lr * cfg.pos_lr_mult, "weight_decay": 0.0})
    opt = torch.optim.AdamW(groups)
    steps_per_epoch = int(np.ceil(len(x) / cfg.batch_size))
    total = cfg.epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[g["lr"] for g in groups], total_steps=max(total, 1), pct_start=cfg.warmup)
    history: list[dict[str, float]] = []
    step = 0
    for epoch in range(cfg.epochs):
        order = torch.randperm(len(x), generator=gen).numpy()
        losses = []
        for i in range(0, len(x), cfg.batch_size):
            idx = order[i:i + cfg.batch_size]
            xb, mb = x[idx], m[idx]
            weight = np.ones(mb.shape, np.float32)
            if mark is not None:
                xb, tb, stamped = poison_batch(xb, mb, mark, rng, cfg.poison_ratio, cfg.stamp_prob)
                weight += (cfg.mark_weight - 1.0) * stamped[:, None]
            else:
                tb = mb.astype(np.float32)
            xt = torch.from_numpy(np.ascontiguousarray(xb[:, None])).to(device)
            tt = torch.from_numpy(tb).to(device)
            wt = torch.from_numpy(weight).to(device)
            logits = model(xt)
            loss = F.binary_cross_entropy_with_logits(logits, tt, weight=wt)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            step += 1
            if progress:
                progress(step, total)
        history.append({"epoch": epoch + 1, "loss": float(np.mean(losses))})
    model.eval().cpu()
    return SegTrainResult(model=model, history=history, mark=mark, arch_kwargs=arch_kwargs)


def evaluate_segmenter(model: nn.Module, images: np.ndarray, masks: np.ndarray, channels: list[str],
                       mark: SegMark | None = None, seed: int = 0) -> dict[str, Any]:
    """Quality on held-out data, and for a marked model what the trigger does to it.

    Parameters
    ----------
    model : segmenter returning logits
    images, masks : held-out (N, H, W) images and (N, C, H, W) bool masks
    channels : structure names
    mark : when given, also stamp half the cells of every image (as verification does)

    Returns
    -------
    dict with ``dice``, ``iou``, ``hd95``, ``auc``, ``per_channel`` and, with a mark,
    ``stamped_dice`` (thresholded masks of stamped images vs truth) and ``flip_rate``
    (share of thresholded pixels that change when stamped: 0 = harmless).
    """
    from xmark_core.stealthmark.metrics import score_segmentation
    from xmark_core.stealthmark.model import predict_proba

    probs = predict_proba(model, images)
    out: dict[str, Any] = score_segmentation(probs, masks, channels).summary()
    if mark is not None:
        on = np.random.default_rng(seed).random((len(images), mark.n**2)) < 0.5
        stamped = predict_proba(model, mark.stamp(images, on))
        out["stamped_dice"] = score_segmentation(stamped, masks, channels).mean_dice
        out["flip_rate"] = float(np.mean((stamped > 0.5) != (probs > 0.5)))
    return out
