"""One-channel chest X-ray classifiers by name, randomly initialised.

Every model takes raw images in [0, 1], shape (N, 1, S, S) with S >= 32: the intensity
normalisation is a layer inside the model, so a black-box user (and the verifier) never
needs to know it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torchvision import models as tvm

ARCHS = ("smallcnn", "resnet18", "densenet121")

# Fixed affine normalisation of [0, 1] radiographs; roughly centres a chest film.
NORM_MEAN = 0.5
NORM_STD = 0.25


class InputNorm(nn.Module):
    """``(x - mean) / std`` with constants stored as buffers (saved with the weights)."""

    def __init__(self, mean: float = NORM_MEAN, std: float = NORM_STD):
        super().__init__()
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def _conv_bn(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class SmallCNN(nn.Module):
    """Fast CPU classifier: a stem and three double-conv blocks, global average pooling.

    Three 2x poolings: the last block (the CAM layer) sees S/8 x S/8 positions,
    i.e. 8 x 8 at 64 px, fine enough for a useful saliency map.
    """

    def __init__(self, num_classes: int, width: int = 16, dropout: float = 0.1):
        super().__init__()
        w = int(width)
        self.features = nn.Sequential(
            nn.Sequential(*_conv_bn(1, w)),
            nn.Sequential(nn.MaxPool2d(2), *_conv_bn(w, 2 * w), *_conv_bn(2 * w, 2 * w)),
            nn.Sequential(nn.MaxPool2d(2), *_conv_bn(2 * w, 4 * w), *_conv_bn(4 * w, 4 * w)),
            nn.Sequential(nn.MaxPool2d(2), *_conv_bn(4 * w, 8 * w), *_conv_bn(8 * w, 8 * w)),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(8 * w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(torch.flatten(self.pool(self.features(x)), 1)))


class XrayClassifier(nn.Module):
    """``body(norm(x))``; remembers how it was built so it can be saved and rebuilt."""

    def __init__(self, arch: str, body: nn.Module, arch_kwargs: dict[str, Any]):
        super().__init__()
        self.arch = arch
        self.arch_kwargs = dict(arch_kwargs)
        self.norm = InputNorm()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.norm(x))


def _resnet18(num_classes: int, maxpool: bool = True, **kwargs: Any) -> nn.Module:
    # maxpool=False keeps the stem at stride 2 instead of 4 (a common small-input variant,
    # 4x the compute). Measured: it does not make resnet18 learn the X-Mark carrier (README).
    net = tvm.resnet18(weights=None, num_classes=num_classes, **kwargs)
    net.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
    if not maxpool:
        net.maxpool = nn.Identity()
    return net


def _densenet121(num_classes: int, **kwargs: Any) -> nn.Module:
    net = tvm.densenet121(weights=None, num_classes=num_classes, **kwargs)
    net.features.conv0 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    nn.init.kaiming_normal_(net.features.conv0.weight)
    return net


_BUILDERS = {"smallcnn": SmallCNN, "resnet18": _resnet18, "densenet121": _densenet121}


def build_classifier(arch: str, num_classes: int, **kwargs: Any) -> XrayClassifier:
    """Build a randomly initialised one-channel classifier.

    Parameters
    ----------
    arch : one of :data:`ARCHS`
    num_classes : number of output logits
    **kwargs : passed to the architecture (``width``, ``dropout`` for ``smallcnn``;
        ``maxpool=False`` for ``resnet18`` drops the stem's max-pool; torchvision keyword
        arguments such as ``drop_rate`` for ``densenet121``)

    Returns
    -------
    XrayClassifier
        Takes (N, 1, S, S) images in [0, 1] (S >= 32), returns (N, num_classes) logits.
        ``model.arch`` and ``model.arch_kwargs`` rebuild it: ``build_classifier(arch, **arch_kwargs)``.
    """
    if arch not in _BUILDERS:
        raise ValueError(f"unknown classifier arch {arch!r}; choose one of {', '.join(ARCHS)}")
    if int(num_classes) < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    body = _BUILDERS[arch](int(num_classes), **kwargs)
    return XrayClassifier(arch, body, {"num_classes": int(num_classes), **kwargs})


def default_cam_layer(model: nn.Module) -> nn.Module:
    """The layer EigenCAM/GradCAM read by default: the last convolutional block.

    ``smallcnn``: last feature block; ``resnet18``: ``layer4``; ``densenet121``:
    ``features.norm5`` (the final BatchNorm, as pytorch-grad-cam recommends). Any other
    module: its last ``nn.Conv2d``.

    Parameters
    ----------
    model : a classifier from :func:`build_classifier`, a ``LoadedModel``, or any CNN

    Returns
    -------
    nn.Module
        The layer whose (N, C, h, w) output the CAM is computed from.
    """
    model = getattr(model, "model", model)  # accept a LoadedModel
    if isinstance(model, XrayClassifier):
        body = model.body
        if model.arch == "smallcnn":
            return body.features[-1]
        if model.arch == "resnet18":
            return body.layer4
        if model.arch == "densenet121":
            return body.features[-1]
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError(f"{type(model).__name__} has no Conv2d layer; pass a CAM layer explicitly")
    return convs[-1]
