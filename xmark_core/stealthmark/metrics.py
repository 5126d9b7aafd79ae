"""Segmentation quality: per-image Dice, IoU, HD95 and pixel AUC.

Plain functions on boolean arrays. Every overlap measure sums over the *spatial* axes of
one image (never per row or column); batches (N, C, H, W) give one value per image and
channel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from sklearn.metrics import roc_auc_score


def _pair(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, truth = np.asarray(pred, dtype=bool), np.asarray(truth, dtype=bool)
    if pred.shape != truth.shape:
        raise ValueError(f"prediction {pred.shape} and truth {truth.shape} differ in shape")
    if pred.ndim < 2:
        raise ValueError(f"expected (..., H, W) masks, got shape {pred.shape}")
    return pred, truth


def dice(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Dice ``2|A and B| / (|A| + |B|)`` per mask over the last two axes (1.0 when both are empty)."""
    pred, truth = _pair(pred, truth)
    inter = (pred & truth).sum(axis=(-2, -1))
    total = pred.sum(axis=(-2, -1)) + truth.sum(axis=(-2, -1))
    return np.where(total > 0, 2.0 * inter / np.maximum(total, 1), 1.0)


def iou(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Intersection over union per mask over the last two axes (1.0 when both are empty)."""
    pred, truth = _pair(pred, truth)
    inter = (pred & truth).sum(axis=(-2, -1))
    union = (pred | truth).sum(axis=(-2, -1))
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def _border(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def _hd95_one(pred: np.ndarray, truth: np.ndarray, spacing: float) -> float:
    if not pred.any() and not truth.any():
        return 0.0
    if not pred.any() or not truth.any():
        return float("nan")  # undefined, as in MONAI: one mask is empty
    bp, bt = _border(pred), _border(truth)
    # distance of every pixel to the nearest border pixel of the other mask
    to_truth = ndimage.distance_transform_edt(~bt, sampling=spacing)
    to_pred = ndimage.distance_transform_edt(~bp, sampling=spacing)
    return float(max(np.percentile(to_truth[bp], 95), np.percentile(to_pred[bt], 95)))


def hd95(pred: np.ndarray, truth: np.ndarray, spacing: float = 1.0) -> np.ndarray:
    """95th-percentile symmetric Hausdorff distance between mask borders, per mask.

    The larger of the two directed 95th percentiles (MONAI's convention). 0 when both
    masks are empty, NaN when exactly one is.

    Parameters
    ----------
    pred, truth : bool (..., H, W)
    spacing : pixel size (distances come out in its unit)

    Returns
    -------
    float array of shape ``pred.shape[:-2]``
    """
    pred, truth = _pair(pred, truth)
    lead = pred.shape[:-2]
    p2 = pred.reshape((-1,) + pred.shape[-2:])
    t2 = truth.reshape((-1,) + truth.shape[-2:])
    out = np.array([_hd95_one(a, b, spacing) for a, b in zip(p2, t2)], dtype=np.float64)
    return out.reshape(lead)


def pixel_auc(probs: np.ndarray, truth: np.ndarray) -> float:
    """ROC AUC of pixel probabilities against the truth, pooled over all given pixels
    (NaN when the truth has a single class)."""
    y = np.asarray(truth, dtype=bool).ravel()
    if y.all() or not y.any():
        return float("nan")
    return float(roc_auc_score(y, np.asarray(probs, dtype=np.float64).ravel()))


@dataclass
class SegScores:
    """Mean scores per channel and overall (mean over channels).

    Attributes
    ----------
    channels : structure names
    dice, iou, hd95, auc : per channel (HD95 in pixels, mean over images where defined)
    per_image_dice : (N, C) Dice of every image and channel
    """

    channels: list[str]
    dice: list[float]
    iou: list[float]
    hd95: list[float]
    auc: list[float]
    per_image_dice: np.ndarray

    @property
    def mean_dice(self) -> float:
        return float(np.mean(self.dice))

    @property
    def mean_auc(self) -> float:
        return float(np.nanmean(self.auc))

    def summary(self) -> dict[str, float | dict[str, float]]:
        """Plain numbers for JSON output."""
        return {
            "dice": self.mean_dice, "iou": float(np.mean(self.iou)),
            "hd95": float(np.nanmean(self.hd95)), "auc": self.mean_auc,
            "per_channel": {c: {"dice": d, "iou": j, "hd95": h, "auc": a}
                            for c, d, j, h, a in zip(self.channels, self.dice, self.iou, self.hd95, self.auc)},
        }


def score_segmentation(probs: np.ndarray, truth: np.ndarray, channels: list[str] | None = None,
                       threshold: float = 0.5) -> SegScores:
    """Dice, IoU, HD95 (thresholded at ``threshold``) and pixel AUC of (N, C, H, W) maps."""
    probs = np.asarray(probs)
    truth = np.asarray(truth, dtype=bool)
    if probs.shape != truth.shape or probs.ndim != 4:
        raise ValueError(f"expected matching (N, C, H, W) arrays, got {probs.shape} and {truth.shape}")
    pred = probs > threshold
    d, j, h = dice(pred, truth), iou(pred, truth), hd95(pred, truth)
    n_ch = probs.shape[1]
    names = list(channels) if channels is not None else [f"channel_{c}" for c in range(n_ch)]
    with np.errstate(all="ignore"):
        hd = [float(np.nanmean(h[:, c])) if np.isfinite(h[:, c]).any() else float("nan") for c in range(n_ch)]
    return SegScores(
        channels=names,
        dice=[float(d[:, c].mean()) for c in range(n_ch)],
        iou=[float(j[:, c].mean()) for c in range(n_ch)],
        hd95=hd,
        auc=[pixel_auc(probs[:, c], truth[:, c]) for c in range(n_ch)],
        per_image_dice=d,
    )
