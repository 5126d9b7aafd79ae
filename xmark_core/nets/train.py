"""The one training loop for classifiers: augmentation, early stopping, seed control."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from xmark_core.data.base import stratified_split
from xmark_core.device import get_device, seed_everything
from xmark_core.nets.augment import AugmentConfig, augment_batch
from xmark_core.nets.batch import as_batch, resize_batch
from xmark_core.nets.classifiers import build_classifier
from xmark_core.nets.metrics import Metrics, classification_metrics

Progress = Callable[[int, int], None]


@dataclass
class TrainConfig:
    """Classifier training settings. ``device=None`` picks CUDA when present, else CPU."""

    arch: str = "smallcnn"
    input_size: int = 64
    epochs: int = 20
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    optimizer: str = "adamw"  # "adamw" | "sgd" (momentum 0.9, nesterov)
    augment: bool = True
    val_fraction: float = 0.15
    patience: int = 5  # epochs without a lower validation loss before stopping
    seed: int = 0
    device: str | None = None
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    aug: AugmentConfig = field(default_factory=AugmentConfig)
    label_smoothing: float = 0.0
    balanced: bool = False  # weight the loss by inverse class frequency
    bn_batches: int = 16  # batches for re-estimating BatchNorm statistics each epoch (0: off)


@dataclass
class TrainResult:
    """Trained model (best validation epoch, eval mode), per-epoch history, validation metrics."""

    model: nn.Module
    history: list[dict[str, float]]
    metrics: Metrics
    best_epoch: int


@contextmanager
def _deterministic_cudnn():
    old = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = old


def _model_device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


@torch.no_grad()
def predict_proba(
    model: nn.Module,
    X: np.ndarray | torch.Tensor,
    batch_size: int = 256,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Class probabilities of a classifier.

    Parameters
    ----------
    model : classifier returning logits
    X : (N, 1, S, S) images in [0, 1] at the model's input size
    batch_size : images per forward pass
    device : where to run; default: where the model's weights are

    Returns
    -------
    np.ndarray
        (N, K) float32 softmax probabilities.
    """
    dev = torch.device(device) if device is not None else _model_device(model)
    model = model.to(dev)
    was_training = model.training
    model.eval()
    x = as_batch(X)
    out = [F.softmax(model(x[i : i + batch_size].to(dev)).float(), 1).cpu() for i in range(0, len(x), batch_size)]
    model.train(was_training)
    if not out:
        return np.zeros((0, 0), np.float32)
    return torch.cat(out).numpy()


def evaluate(
    model: nn.Module, X: np.ndarray | torch.Tensor, y: np.ndarray, batch_size: int = 256
) -> Metrics:
    """Accuracy, macro one-vs-rest AUC and confusion matrix of ``model`` on ``(X, y)``.

    Parameters
    ----------
    model : classifier returning logits
    X : (N, 1, S, S) images in [0, 1] at the model's input size
    y : (N,) class indices

    Returns
    -------
    Metrics
    """
    return classification_metrics(predict_proba(model, X, batch_size), np.asarray(y))


def _check_inputs(X: Any, y: Any, k: int, name: str) -> tuple[torch.Tensor, np.ndarray]:
    x = as_batch(X)
    y = np.asarray(y, dtype=np.int64)
    if len(x) != len(y):
        raise ValueError(f"{name}: {len(x)} images but {len(y)} labels")
    if len(y) and (y.min() < 0 or y.max() >= k):
        raise ValueError(f"{name}: labels must lie in [0, {k}), got [{y.min()}, {y.max()}]")
    return x, y


@torch.no_grad()
def recalibrate_batchnorm(
    model: nn.Module, x: torch.Tensor, batch_size: int, max_batches: int, generator: torch.Generator
) -> None:
    """Re-estimate BatchNorm running statistics with the current weights ("precise BN").

    The running averages lag behind the weights by ~1/momentum steps; with a few steps
    per epoch (small datasets) eval-mode predictions then collapse to one class for
    several epochs and early stopping stops on noise. A pass over clean training
    images with a cumulative average makes validation reflect the current weights.

    Parameters
    ----------
    model : the network (its other state is untouched)
    x : (N, 1, S, S) training images (not augmented: the statistics should match inference)
    batch_size : images per forward pass
    max_batches : at most this many random batches are used
    generator : CPU generator choosing the images
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns or max_batches <= 0:
        return
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the batches below
    was_training = model.training
    model.train()
    idx = torch.randperm(len(x), generator=generator)[: max_batches * batch_size]
    dev = _model_device(model)
    for s in range(0, len(idx), batch_size):
        chunk = idx[s : s + batch_size]
        if len(chunk) > 1:
            model(x[chunk.to(x.device)].to(dev))
    for bn, m in zip(bns, momenta):
        bn.momentum = m
    model.train(was_training)


def _optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(), lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay
        )
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}; use 'adamw' or 'sgd'")


def train_classifier(
    X: np.ndarray | torch.Tensor,
    y: np.ndarray,
    classes: list[str],
    cfg: TrainConfig | None = None,
    progress: Progress | None = None,
    X_val: np.ndarray | torch.Tensor | None = None,
    y_val: np.ndarray | None = None,
) -> TrainResult:
    """Train a classifier with early stopping on a validation split.

    Parameters
    ----------
    X : (N, 1, S, S) float32 images in [0, 1]; resized to ``cfg.input_size`` if S differs
    y : (N,) class indices into ``classes``
    classes : class names (K = len(classes))
    cfg : settings; defaults to :class:`TrainConfig`
    progress : called as ``progress(epoch_done, cfg.epochs)`` after each epoch
    X_val, y_val : validation set; if omitted, a stratified ``cfg.val_fraction`` of
        ``(X, y)`` is held out (``val_fraction=0``: no early stopping, metrics on the
        training set)

    Returns
    -------
    TrainResult
        The weights of the epoch with the lowest validation loss. ``history`` has one
        dict per epoch: epoch, lr, train_loss, train_acc, val_loss, val_acc,
        val_auc, seconds. Bitwise reproducible for a seed on CPU.
    """
    cfg = cfg or TrainConfig()
    k = len(classes)
    x, y = _check_inputs(X, y, k, "training set")
    x = resize_batch(x, cfg.input_size)
    if X_val is not None:
        if y_val is None:
            raise ValueError("X_val given without y_val")
        xv, yv = _check_inputs(X_val, y_val, k, "validation set")
        xv = resize_batch(xv, cfg.input_size)
    elif cfg.val_fraction > 0:
        tr, va = stratified_split(y, [1.0 - cfg.val_fraction, cfg.val_fraction], cfg.seed)
        x, xv, y, yv = x[tr], x[va], y[tr], y[va]
    else:
        xv, yv = x, y
    if len(x) < 2:
        raise ValueError(f"need at least 2 training images, got {len(x)}")
    early_stop = len(xv) > 0 and (X_val is not None or cfg.val_fraction > 0)
    if len(xv) == 0:  # too few images to hold any out: judge on the training set
        xv, yv = x, y

    device = get_device(cfg.device)
    g = seed_everything(cfg.seed)
    model = build_classifier(cfg.arch, k, **cfg.arch_kwargs).to(device)
    opt = _optimizer(model, cfg)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(cfg.epochs, 1))
    weight = None
    if cfg.balanced:
        counts = np.bincount(y, minlength=k).astype(np.float64)
        weight = torch.tensor(len(y) / (k * np.maximum(counts, 1)), dtype=torch.float32, device=device)
    loss_fn = nn.CrossEntropyLoss(weight=weight, label_smoothing=cfg.label_smoothing)

    # Small sets live on the device: no per-batch copies.
    if x.numel() * 4 < 2**31:
        x = x.to(device)
    y_t = torch.from_numpy(y).to(device)
    history: list[dict[str, float]] = []
    best_loss, best_epoch, best_state, bad = float("inf"), 0, None, 0
    with _deterministic_cudnn():
        for epoch in range(1, cfg.epochs + 1):
            t0 = time.perf_counter()
            model.train()
            perm = torch.randperm(len(x), generator=g)
            # A last batch of one would break BatchNorm in training mode: fold it away.
            starts = list(range(0, len(x) - 1, cfg.batch_size))
            tot_loss, tot_correct, seen = 0.0, 0, 0
            for s in starts:
                idx = perm[s : s + cfg.batch_size]
                xb, yb = x[idx.to(x.device)].to(device), y_t[idx.to(device)]
                if cfg.augment:
                    xb = augment_batch(xb, cfg.aug, g)
                logits = model(xb)
                loss = loss_fn(logits, yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                tot_loss += float(loss.detach()) * len(yb)
                tot_correct += int((logits.detach().argmax(1) == yb).sum())
                seen += len(yb)
            lr = opt.param_groups[0]["lr"]
            sched.step()
            recalibrate_batchnorm(model, x, cfg.batch_size, cfg.bn_batches, g)

            proba = predict_proba(model, xv)
            val_loss = float(F.nll_loss(torch.log(torch.from_numpy(proba).clamp_min(1e-12)), torch.from_numpy(yv)))
            m = classification_metrics(proba, yv)
            history.append(
                {
                    "epoch": epoch,
                    "lr": lr,
                    "train_loss": tot_loss / max(seen, 1),
                    "train_acc": tot_correct / max(seen, 1),
                    "val_loss": val_loss,
                    "val_acc": m.accuracy,
                    "val_auc": m.macro_auc,
                    "seconds": time.perf_counter() - t0,
                }
            )
            if val_loss < best_loss - 1e-6 or not early_stop:
                best_loss, best_epoch, bad = val_loss, epoch, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                bad += 1
            if progress:
                progress(epoch, cfg.epochs)
            if early_stop and bad >= cfg.patience:
                break

    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return TrainResult(model=model, history=history, metrics=evaluate(model, xv, yv), best_epoch=best_epoch)
