"""Saliency for the app's Saliency page: layer menu, one-image CAM, the generator's gate."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

DEFAULT_LAYER = "default (last conv block)"


def cam_layers(model: nn.Module) -> list[str]:
    """Layers a CAM can read: :data:`DEFAULT_LAYER` first, then the dotted name of every
    block whose direct children include a convolution (shallow to deep)."""
    names = [DEFAULT_LAYER]
    for name, mod in model.named_modules():
        if name and any(isinstance(k, nn.Conv2d) for k in mod.children()):
            names.append(name)
    return names


def saliency_for(
    model: nn.Module, image: np.ndarray, method: str = "eigencam", layer_name: str = DEFAULT_LAYER,
    input_size: int | None = None,
) -> np.ndarray:
    """Saliency map (H, W) in [0, 1] of one (H, W) image via :func:`xmark_core.saliency.saliency_maps`."""
    from xmark_core.saliency import saliency_maps

    layer = None if layer_name == DEFAULT_LAYER else layer_name
    maps = saliency_maps(model, np.asarray(image, np.float32)[None, None], method=method,
                         layer=layer, input_size=input_size)
    return np.asarray(maps[0], np.float32)


def gate_for(saliency: np.ndarray, area: float, temp: float) -> np.ndarray:
    """The generator's soft gate ``m(s)`` on a saliency map (see ``saliency_gate``), (H, W) in [0, 1]."""
    from xmark_core.generator.model import saliency_gate

    s = torch.from_numpy(np.asarray(saliency, np.float32))[None, None]
    return saliency_gate(s, float(area), float(temp))[0, 0].numpy()


def gate_region(gate: np.ndarray, level: float = 0.5) -> np.ndarray:
    """Where the gate is at least ``level`` open (bool (H, W)) — the marked region's outline."""
    return np.asarray(gate) >= level
