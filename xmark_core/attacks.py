"""Adaptive attacks on a watermark: what an adversary may do to defeat verification.

Two families, both plain functions:

* **Input transforms** on (N, H, W) float images in [0, 1] — resize down and back,
  JPEG, Gaussian blur, Gaussian noise, median filter. They model an adversary who
  pre-processes every query before the model sees it (or who trained on transformed
  images: the same functions apply to the training set). :class:`TransformedSuspect`
  wraps a suspect so that its queries go through a transform.
* **Model attacks** on a classifier ``nn.Module`` — fine-tuning on clean data, and
  fine-pruning (Liu et al. 2018: drop the last block's least active channels on clean
  data, then optionally fine-tune). Both return a new model and leave the input intact.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import torch
from scipy import ndimage
from torch import nn

from xmark_core.device import get_device

ImageTransform = Callable[[np.ndarray], np.ndarray]


def _as_stack(images: np.ndarray) -> tuple[np.ndarray, tuple[int, ...]]:
    """(H, W) / (N, H, W) / (N, 1, H, W) -> float32 (N, H, W) plus the input shape."""
    a = np.asarray(images, dtype=np.float32)
    shape = a.shape
    if a.ndim == 2:
        a = a[None]
    elif a.ndim == 4 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 3:
        raise ValueError(f"expected (N, H, W) grayscale images, got shape {shape}")
    return a, shape


def _back(stack: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return np.clip(stack, 0.0, 1.0).astype(np.float32).reshape(shape)


# --------------------------------------------------------------------------- inputs


def resize_roundtrip(images: np.ndarray, factor: float = 0.5) -> np.ndarray:
    """Shrink by ``factor`` (area averaging) and enlarge back (bilinear) to the input size.

    Parameters
    ----------
    images : (N, H, W) or (H, W) float in [0, 1]
    factor : scale in (0, 1]; 0.5 and 0.25 are the standard settings

    Returns
    -------
    Images of the input shape, clipped to [0, 1].
    """
    if not 0.0 < factor <= 1.0:
        raise ValueError(f"resize factor must be in (0, 1], got {factor}")
    stack, shape = _as_stack(images)
    h, w = stack.shape[1:]
    sh, sw = max(1, round(h * factor)), max(1, round(w * factor))
    out = np.empty_like(stack)
    for i, im in enumerate(stack):
        small = cv2.resize(im, (sw, sh), interpolation=cv2.INTER_AREA)
        out[i] = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    return _back(out, shape)


def jpeg(images: np.ndarray, quality: int = 75) -> np.ndarray:
    """Encode each image as 8-bit JPEG at ``quality`` (1-100) and decode it again."""
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {quality}")
    stack, shape = _as_stack(images)
    out = np.empty_like(stack)
    params = [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)]
    for i, im in enumerate(stack):
        ok, buf = cv2.imencode(".jpg", np.round(np.clip(im, 0, 1) * 255).astype(np.uint8), params)
        if not ok:  # pragma: no cover - OpenCV always encodes a valid uint8 image
            raise RuntimeError("OpenCV failed to JPEG-encode an image")
        out[i] = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255.0
    return _back(out, shape)


def gaussian_blur(images: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """Gaussian low-pass filter with standard deviation ``sigma`` pixels (reflect borders)."""
    if sigma < 0:
        raise ValueError(f"blur sigma must be >= 0, got {sigma}")
    stack, shape = _as_stack(images)
    if sigma == 0:
        return _back(stack, shape)
    out = ndimage.gaussian_filter(stack, sigma=(0, sigma, sigma), mode="reflect")
    return _back(out, shape)


def gaussian_noise(images: np.ndarray, sigma: float = 0.02, seed: int = 0) -> np.ndarray:
    """Add i.i.d. Gaussian noise of standard deviation ``sigma`` (intensity units), then clip.

    Deterministic for a given ``seed``.
    """
    if sigma < 0:
        raise ValueError(f"noise sigma must be >= 0, got {sigma}")
    stack, shape = _as_stack(images)
    rng = np.random.default_rng(seed)
    return _back(stack + rng.normal(0.0, sigma, stack.shape).astype(np.float32), shape)


def median_filter(images: np.ndarray, size: int = 3) -> np.ndarray:
    """Median filter over a ``size`` x ``size`` neighbourhood (odd size >= 1)."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"median filter size must be odd and >= 1, got {size}")
    stack, shape = _as_stack(images)
    out = ndimage.median_filter(stack, size=(1, size, size), mode="reflect")
    return _back(out, shape)


@dataclass(frozen=True)
class InputAttack:
    """A named input transform with its default parameters (for menus and benchmarks)."""

    name: str
    fn: Callable[..., np.ndarray]
    params: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    def __call__(self, images: np.ndarray, **overrides: Any) -> np.ndarray:
        return self.fn(images, **{**self.params, **overrides})


INPUT_ATTACKS: dict[str, InputAttack] = {
    a.name: a
    for a in (
        InputAttack("resize_0.5", resize_roundtrip, {"factor": 0.5}, "shrink to 1/2 and back"),
        InputAttack("resize_0.25", resize_roundtrip, {"factor": 0.25}, "shrink to 1/4 and back"),
        InputAttack("jpeg", jpeg, {"quality": 75}, "JPEG re-encoding"),
        InputAttack("blur", gaussian_blur, {"sigma": 1.0}, "Gaussian blur"),
        InputAttack("noise", gaussian_noise, {"sigma": 0.02, "seed": 0}, "additive Gaussian noise"),
        InputAttack("median", median_filter, {"size": 3}, "median filter"),
    )
}


def input_attack(name: str, **params: Any) -> ImageTransform:
    """The transform ``images -> images`` of a registered attack with ``params`` overriding defaults.

    Parameters
    ----------
    name : a key of :data:`INPUT_ATTACKS` (``"resize_0.5"``, ``"jpeg"``, ...)
    **params : keyword arguments of the underlying function (e.g. ``quality=50``)
    """
    if name not in INPUT_ATTACKS:
        raise ValueError(f"unknown input attack {name!r}; choose one of {', '.join(INPUT_ATTACKS)}")
    attack = INPUT_ATTACKS[name]

    def transform(images: np.ndarray) -> np.ndarray:
        return attack(images, **params)

    return transform


class TransformedSuspect:
    """A suspect whose every query is first passed through ``transform``.

    Models an adversary who pre-processes inputs (e.g. downsizes or JPEG-compresses
    them) before inference. Everything else is delegated to the wrapped suspect.
    """

    def __init__(self, suspect: Any, transform: ImageTransform, name: str = "transform"):
        self.suspect = suspect
        self.transform = transform
        self.name = name

    def __getattr__(self, item: str) -> Any:
        # Delegate classes, input_size, output, ... to the wrapped suspect.
        return getattr(self.suspect, item)

    def predict(self, images: np.ndarray) -> np.ndarray:
        return self.suspect.predict(self.transform(images))

    def identity(self) -> dict[str, Any]:
        return {**self.suspect.identity(), "input_attack": self.name}


# --------------------------------------------------------------------------- models


def _final_linear(model: nn.Module, channels: int) -> nn.Linear:
    """The last ``nn.Linear`` reading ``channels`` features (the head after global pooling)."""
    heads = [m for m in model.modules() if isinstance(m, nn.Linear) and m.in_features == channels]
    if not heads:
        raise ValueError(
            f"{type(model).__name__}: no Linear layer reads the {channels} channels of the last "
            "block; fine-pruning needs a 'last block -> global pooling -> linear' head"
        )
    return heads[-1]


@torch.no_grad()
def channel_activity(
    model: nn.Module, X: np.ndarray, layer: nn.Module | None = None, batch_size: int = 64,
    device: torch.device | None = None,
) -> np.ndarray:
    """Mean activation of each channel of ``layer`` (default: the last conv block) on ``X``.

    Parameters
    ----------
    X : (N, 1, S, S) float images in [0, 1] at the model's input size

    Returns
    -------
    float64 array (C,)
    """
    from xmark_core.nets.classifiers import default_cam_layer

    layer = layer if layer is not None else default_cam_layer(model)
    dev = device or next(model.parameters()).device
    acts: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda _m, _i, out: acts.append(out.mean(dim=(2, 3))))
    was_training = model.training
    model.eval()
    try:
        for i in range(0, len(X), batch_size):
            model(torch.as_tensor(np.asarray(X[i:i + batch_size]), dtype=torch.float32, device=dev))
    finally:
        handle.remove()
        model.train(was_training)
    return torch.cat(acts).mean(dim=0).double().cpu().numpy()


def fine_tune(
    model: nn.Module, X: np.ndarray, y: np.ndarray, epochs: int = 2, lr: float = 1e-4,
    batch_size: int = 64, weight_decay: float = 1e-4, seed: int = 0,
    device: torch.device | None = None, progress: Callable[[int, int], None] | None = None,
    _after_step: Callable[[nn.Module], None] | None = None,
) -> nn.Module:
    """Fine-tune a copy of a classifier on (clean) labelled data with AdamW and cross-entropy.

    Parameters
    ----------
    model : classifier taking (N, 1, S, S) images in [0, 1]; left unchanged
    X : (N, 1, S, S) float32 images at the model's input size
    y : (N,) int class indices
    epochs, lr, batch_size, weight_decay : optimiser settings (a small lr keeps accuracy)
    seed : seeds the shuffling and the random draws of training (dropout), inside a forked RNG:
        the result depends on ``seed`` alone, not on what the process drew before, and the
        caller's global RNG is left as it was (deterministic on CPU)
    progress : called as (step, total_steps)

    Returns
    -------
    The fine-tuned copy, in eval mode.
    """
    if len(X) != len(y) or len(X) == 0:
        raise ValueError(f"fine-tuning needs matching, non-empty X and y (got {len(X)} and {len(y)})")
    dev = device or get_device()
    net = copy.deepcopy(model).to(dev).train()
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    Xt = torch.as_tensor(np.asarray(X), dtype=torch.float32)
    yt = torch.as_tensor(np.asarray(y), dtype=torch.long)
    gen = torch.Generator().manual_seed(int(seed))
    steps_per_epoch = (len(Xt) + batch_size - 1) // batch_size
    total, done = epochs * steps_per_epoch, 0
    # Dropout draws from the global RNG: without a fork of our own, the same seed gave other
    # weights after other random work in the process (a second attack in the app, a lab replay).
    with torch.random.fork_rng(devices=_rng_devices(dev)):
        torch.manual_seed(int(seed))
        for _ in range(epochs):
            order = torch.randperm(len(Xt), generator=gen)
            for i in range(0, len(Xt), batch_size):
                idx = order[i:i + batch_size]
                if len(idx) < 2:  # BatchNorm cannot train on a single sample
                    continue
                loss = nn.functional.cross_entropy(net(Xt[idx].to(dev)), yt[idx].to(dev))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if _after_step is not None:
                    _after_step(net)
                done += 1
                if progress:
                    progress(done, total)
    return net.eval()


def _rng_devices(dev: torch.device) -> list[int]:
    """The CUDA devices whose RNG a run on ``dev`` draws from (none on CPU)."""
    if dev.type != "cuda":
        return []
    return [dev.index if dev.index is not None else torch.cuda.current_device()]


def fine_prune(
    model: nn.Module, X: np.ndarray, fraction: float = 0.2, y: np.ndarray | None = None,
    finetune_epochs: int = 0, lr: float = 1e-4, batch_size: int = 64, seed: int = 0,
    device: torch.device | None = None, progress: Callable[[int, int], None] | None = None,
) -> tuple[nn.Module, np.ndarray]:
    """Fine-pruning: remove the last block's least active channels, optionally fine-tune.

    Channels are ranked by mean activation on the clean images ``X`` (the backdoor is
    assumed to live in channels that clean data leaves dormant). A channel is removed by
    zeroing the head's weights that read it; since the head reads the channel only
    through global average pooling, this is exactly equivalent to zeroing the channel,
    and the model keeps its architecture (its checkpoint still loads). During the
    optional fine-tuning the removed channels stay removed.

    Parameters
    ----------
    model : classifier with a "last conv block -> global pooling -> Linear" head; unchanged
    X : (N, 1, S, S) clean images at the model's input size
    fraction : share of the last block's channels to remove, in [0, 1)
    y : labels of ``X``, required when ``finetune_epochs > 0``
    finetune_epochs, lr, batch_size, seed : fine-tuning after pruning (0 epochs: prune only)

    Returns
    -------
    (pruned model in eval mode, indices of the removed channels)
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"prune fraction must be in [0, 1), got {fraction}")
    dev = device or get_device()
    net = copy.deepcopy(model).to(dev).eval()
    activity = channel_activity(net, X, batch_size=batch_size, device=dev)
    n_prune = int(round(fraction * len(activity)))
    pruned = np.sort(np.argsort(activity, kind="stable")[:n_prune])
    _final_linear(net, len(activity))  # fail early if the head is not prunable
    keep = torch.ones(len(activity), device=dev)
    keep[torch.as_tensor(pruned, dtype=torch.long)] = 0.0

    def apply_mask(m: nn.Module) -> None:
        with torch.no_grad():
            _final_linear(m, len(activity)).weight.mul_(keep)

    apply_mask(net)
    if finetune_epochs > 0:
        if y is None:
            raise ValueError("fine-tuning after pruning needs the labels y")
        net = fine_tune(
            net, X, y, epochs=finetune_epochs, lr=lr, batch_size=batch_size, seed=seed,
            device=dev, progress=progress, _after_step=apply_mask,
        )
    return net.eval(), pruned
