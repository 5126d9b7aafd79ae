"""Saliency maps of a classifier: EigenCAM (sign-fixed) and GradCAM via ``pytorch_grad_cam``.

Images of any resolution are resized to the model's input size, the CAM is computed there
and upsampled back, so one call serves a 64 px phantom and a 3000 px DICOM alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch
from pytorch_grad_cam import EigenCAM, GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from xmark_core.nets.batch import as_batch, pad_batch, resize_batch
from xmark_core.nets.classifiers import default_cam_layer

METHODS = ("eigencam", "gradcam")


def oriented_eigen_projection(activations: np.ndarray) -> np.ndarray:
    """Projection of each image's activations on their first principal component, sign fixed.

    EigenCAM (Muhammad & Yeasin, 2020) projects the centred (positions x channels)
    activation matrix on its first right singular vector. A singular vector is only
    defined up to sign, so the raw map may be the *negative* of what the model uses;
    after the usual clipping at zero that would keep the background and drop the anatomy.
    We orient the projection so that it correlates positively with the mean positive
    activation over channels: after a ReLU (or the ReLU that follows the layer), where
    features fire strongly is what the pooled classifier head reads. This is a property
    of the model, unlike pytorch-grad-cam's |min| > |max| heuristic, which depends on the
    skew of the map.

    Parameters
    ----------
    activations : (B, C, h, w) activations of the CAM layer

    Returns
    -------
    np.ndarray
        (B, h, w) float32 signed projections (not yet clipped or normalised).
    """
    a = torch.nan_to_num(torch.as_tensor(activations, dtype=torch.float32))
    b, c, h, w = a.shape
    flat = a.reshape(b, c, h * w).transpose(1, 2)  # (B, positions, channels)
    centred = flat - flat.mean(1, keepdim=True)
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)  # batched, thin
    proj = (centred @ vh[:, 0, :, None])[..., 0]  # (B, positions)
    energy = flat.clamp_min(0).mean(2)
    agreement = (proj * (energy - energy.mean(1, keepdim=True))).sum(1)
    sign = torch.where(agreement < 0, -1.0, 1.0)[:, None]
    return (proj * sign).reshape(b, h, w).numpy()


class OrientedEigenCAM(EigenCAM):
    """pytorch-grad-cam's EigenCAM (gradient-free) with :func:`oriented_eigen_projection`."""

    def get_cam_image(self, input_tensor, target_layer, targets, activations, grads, eigen_smooth):
        return oriented_eigen_projection(activations)


def _resolve_layer(model: nn.Module, layer: nn.Module | str | None) -> nn.Module:
    if layer is None:
        return default_cam_layer(model)
    if isinstance(layer, str):
        try:
            return model.get_submodule(layer)
        except AttributeError as e:
            raise ValueError(f"model has no layer named {layer!r}") from e
    return layer


def _targets(target: int | Sequence[int] | None, n: int) -> list[ClassifierOutputTarget] | None:
    if target is None:
        return None  # the predicted class of each image
    if isinstance(target, (int, np.integer)):
        return [ClassifierOutputTarget(int(target))] * n
    target = list(target)
    if len(target) != n:
        raise ValueError(f"{len(target)} targets for {n} images")
    return [ClassifierOutputTarget(int(t)) for t in target]


def _clipped_minmax(m: np.ndarray) -> np.ndarray:
    """``m`` clipped at 0, then scaled to [0, 1] (zeros if flat); in place when float32."""
    m = np.clip(m, 0.0, None, out=m if m.dtype == np.float32 and m.flags.writeable else None)
    m = m.astype(np.float32, copy=False)
    lo, hi = float(m.min()), float(m.max())
    if hi <= lo:
        return np.zeros_like(m)
    np.subtract(m, np.float32(lo), out=m)
    return np.divide(m, np.float32(hi - lo), out=m)


def saliency_maps(
    model: nn.Module,
    images: np.ndarray | torch.Tensor | Sequence[np.ndarray],
    method: str = "eigencam",
    layer: nn.Module | str | None = None,
    input_size: int | None = None,
    batch_size: int = 32,
    target: int | Sequence[int] | None = None,
    fixed_batch: bool = False,
) -> np.ndarray | list[np.ndarray]:
    """Saliency maps in [0, 1] at each image's own resolution.

    Parameters
    ----------
    model : classifier (``nn.Module``) or a ``LoadedModel`` (its ``input_size`` is used)
    images : (N, 1, H, W) or (N, H, W) array/tensor in [0, 1], or a list of (H, W)
        arrays of different sizes
    method : "eigencam" (gradient-free, class-agnostic; the watermark gate) or "gradcam"
    layer : CAM layer, as a module or a dotted name (``"body.layer4"``); default
        :func:`~xmark_core.nets.classifiers.default_cam_layer`
    input_size : side the model expects; default the ``LoadedModel``'s, else each
        batch's own size (no resize)
    batch_size : images per forward pass
    target : GradCAM class (one int, or one per image); default the predicted class.
        Ignored by EigenCAM.
    fixed_batch : run every forward pass on exactly ``batch_size`` images (a short chunk is
        padded with copies), so an image's map is the same bit for bit however many images
        came with it: oneDNN picks its kernels by batch size, and their float round-off
        differs. The marker uses this; its marks must not depend on the batching.

    Returns
    -------
    np.ndarray or list of np.ndarray
        (N, H, W) float32, each map min-max normalised to [0, 1] (all zeros if flat);
        a list of (H, W) maps when ``images`` was a list.
    """
    if method not in METHODS:
        raise ValueError(f"unknown saliency method {method!r}; choose one of {', '.join(METHODS)}")
    if input_size is None:
        input_size = getattr(model, "input_size", None)
    model = getattr(model, "model", model)  # unwrap a LoadedModel
    if isinstance(model, torch.jit.ScriptModule):
        raise ValueError("saliency needs an eager PyTorch model; TorchScript hides its layers")
    as_list = isinstance(images, (list, tuple))
    imgs = [np.asarray(im, dtype=np.float32) for im in images] if as_list else as_batch(images)
    n = len(imgs)
    tgt = _targets(target, n) if method == "gradcam" else None
    cam_layer = _resolve_layer(model, layer)

    was_training = model.training
    cam = (OrientedEigenCAM if method == "eigencam" else GradCAM)(model, [cam_layer])
    if method == "gradcam":
        # Frozen surrogates have no trainable weights: let the gradient flow from the input.
        cam.compute_input_gradient = True
    out: list[np.ndarray] = []
    try:
        for s in range(0, n, batch_size):
            if as_list:
                chunk = imgs[s : s + batch_size]
                size = input_size or max(chunk[0].shape)
                xb = torch.cat([resize_batch(as_batch(im), size) for im in chunk])
                shapes = [im.shape for im in chunk]
            else:
                chunk = imgs[s : s + batch_size]
                xb = resize_batch(chunk, input_size) if input_size else chunk
                shapes = [tuple(chunk.shape[-2:])] * len(chunk)
            bt = None if tgt is None else tgt[s : s + batch_size]
            n_chunk = len(xb)
            if fixed_batch and n_chunk < batch_size:
                xb = pad_batch(xb, batch_size)
                bt = None if bt is None else bt + bt[:1] * (batch_size - n_chunk)
            if method == "eigencam":
                with torch.no_grad():  # EigenCAM needs no backward pass
                    maps = cam(xb, targets=None)
            else:
                with torch.enable_grad():
                    maps = cam(xb, targets=bt)
            maps = maps[:n_chunk]
            for m, (h, w) in zip(maps, shapes):
                if m.shape != (h, w):
                    m = cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR)
                out.append(_clipped_minmax(m))
    finally:
        cam.activations_and_grads.release()
        if was_training:  # the CAM put it in eval mode
            model.train()
    if as_list:
        return out
    return np.stack(out) if out else np.zeros((0, *imgs.shape[-2:]), np.float32)


def overlay(image: np.ndarray, saliency: np.ndarray, alpha: float = 0.4, cmap: int = cv2.COLORMAP_JET) -> np.ndarray:
    """Colour-mapped saliency blended over a grey image.

    Parameters
    ----------
    image : (H, W) float in [0, 1]
    saliency : (H, W) float in [0, 1]
    alpha : weight of the heat map
    cmap : an OpenCV colormap id

    Returns
    -------
    np.ndarray
        (H, W, 3) uint8 RGB.
    """
    grey = np.repeat((np.clip(image, 0, 1) * 255).astype(np.uint8)[..., None], 3, axis=2)
    heat = cv2.applyColorMap((np.clip(saliency, 0, 1) * 255).astype(np.uint8), cmap)[..., ::-1]
    return cv2.addWeighted(heat, alpha, grey, 1.0 - alpha, 0.0)
