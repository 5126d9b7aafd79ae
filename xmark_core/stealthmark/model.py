"""Segmentation networks for StealthMark: a small U-Net with coordinate channels.

``forward`` takes raw [0, 1] images (N, 1, H, W) of any size and returns logits
(N, C, H, W), one sigmoid channel per structure (multi-label: channels may overlap).
Input normalisation and the coordinate channels live inside ``forward``, so the
black-box interface is just "image in, probability maps out".

Coordinate channels (CoordConv, with *learned* coordinates): a small trainable map of
``pos_channels x pos_grid x pos_grid`` values is resized to the image and concatenated
to the input and to the last decoder stage. A plain (x, y) ramp would force the net to
compute a 625-bit pattern from two numbers; a learned map lets it store where things are
(anatomy priors for any model, plus the owner's module pattern for a marked one).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from xmark_core.device import get_device

ARCHS = ("unet", "monai-unet")


NORMS = ("batch", "group")


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(min(4, channels), channels)
    raise ValueError(f"norm must be one of {NORMS}, got {kind!r}")


def _block(cin: int, cout: int, norm: str = "batch") -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        _norm(norm, cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        _norm(norm, cout),
        nn.ReLU(inplace=True),
    )


class PositionMap(nn.Module):
    """Learned coordinate channels resized to any image size.

    ``mode="nearest"`` maps pixel row ``i`` to map row ``floor(i * grid / H)``, the same rule
    as the module grid of :mod:`~xmark_core.stealthmark.trigger`.
    """

    def __init__(self, channels: int, grid: int, mode: str = "bilinear", init_std: float = 1.0):
        super().__init__()
        if mode not in ("bilinear", "nearest"):
            raise ValueError("pos_mode must be 'bilinear' or 'nearest'")
        self.channels, self.mode = channels, mode
        self.weight = nn.Parameter(init_std * torch.randn(1, channels, grid, grid))

    def forward(self, n: int, h: int, w: int) -> torch.Tensor:
        if self.mode == "nearest":
            pos = F.interpolate(self.weight, size=(h, w), mode="nearest")
        else:
            pos = F.interpolate(self.weight, size=(h, w), mode="bilinear", align_corners=False)
        return pos.expand(n, -1, -1, -1)


class SegUNet(nn.Module):
    """U-Net (conv-BN-ReLU blocks, max-pool down, bilinear up) with coordinate channels.

    Parameters
    ----------
    out_channels : number of structures (sigmoid channels)
    base : channels of the first level (doubles per level)
    depth : number of down-sampling steps
    pos_channels, pos_grid, pos_mode, pos_init : learned coordinate map (0 channels
        switches it off), its resize mode and the std of its random initial values
    norm : "batch" (default) or "group" normalisation. GroupNorm has no running statistics
        for a fine-tune to replace, but at the demo's budget it learned the mark worse
        (bit agreement 0.81, Dice 0.938 vs 1.00 and 0.959; docs/lab/stealthmark_ft)
    """

    def __init__(self, out_channels: int = 3, base: int = 16, depth: int = 3,
                 pos_channels: int = 4, pos_grid: int = 32, pos_mode: str = "bilinear",
                 pos_init: float = 1.0, norm: str = "batch"):
        super().__init__()
        self.depth = depth
        self.pos = PositionMap(pos_channels, pos_grid, pos_mode, pos_init) if pos_channels else None
        p = pos_channels
        chans = [base * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList([_block(1 + p, chans[0], norm)]
                                  + [_block(chans[i - 1], chans[i], norm) for i in range(1, depth + 1)])
        self.up = nn.ModuleList([_block(chans[i + 1] + chans[i], chans[i], norm) for i in reversed(range(depth))])
        self.head = nn.Sequential(
            nn.Conv2d(chans[0] + p, chans[0], 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(chans[0], out_channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        mult = 2**self.depth
        ph, pw = (-h) % mult, (-w) % mult  # pad to a multiple of 2**depth, crop back at the end
        z = (x - 0.5) / 0.25
        pos = self.pos(n, h, w) if self.pos is not None else None
        if pos is not None:
            z = torch.cat([z, pos], 1)
        z = F.pad(z, (0, pw, 0, ph), mode="replicate")
        skips = []
        for i, block in enumerate(self.down):
            z = block(z if i == 0 else F.max_pool2d(z, 2))
            skips.append(z)
        for block, skip in zip(self.up, reversed(skips[:-1])):
            z = F.interpolate(z, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            z = block(torch.cat([z, skip], 1))
        z = z[..., :h, :w]
        if pos is not None:
            z = torch.cat([z, pos], 1)
        return self.head(z)


class MonaiSegUNet(nn.Module):
    """MONAI's residual ``UNet`` behind the same interface (normalisation and coordinate
    channels inside ``forward``); input sizes must be multiples of ``2**len(strides)``."""

    def __init__(self, out_channels: int = 3, channels: tuple[int, ...] = (16, 32, 64, 128),
                 num_res_units: int = 1, pos_channels: int = 4, pos_grid: int = 32,
                 pos_mode: str = "bilinear", pos_init: float = 1.0):
        super().__init__()
        from monai.networks.nets import UNet

        self.pos = PositionMap(pos_channels, pos_grid, pos_mode, pos_init) if pos_channels else None
        self.net = UNet(spatial_dims=2, in_channels=1 + pos_channels, out_channels=out_channels,
                        channels=tuple(channels), strides=(2,) * (len(channels) - 1),
                        num_res_units=num_res_units)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        z = (x - 0.5) / 0.25
        if self.pos is not None:
            z = torch.cat([z, self.pos(n, h, w)], 1)
        return self.net(z)


def build_segmenter(arch: str = "unet", **kwargs) -> nn.Module:
    """Build a randomly initialised segmenter.

    Parameters
    ----------
    arch : "unet" (:class:`SegUNet`) or "monai-unet" (:class:`MonaiSegUNet`)
    **kwargs : constructor arguments (``out_channels``, ``base``, ``depth``, ...)

    Returns
    -------
    nn.Module mapping (N, 1, H, W) [0, 1] images to (N, C, H, W) logits
    """
    if arch == "unet":
        return SegUNet(**kwargs)
    if arch == "monai-unet":
        return MonaiSegUNet(**kwargs)
    raise ValueError(f"unknown segmenter arch {arch!r}; choose one of {ARCHS}")


@torch.no_grad()
def predict_proba(model: nn.Module, images: np.ndarray, batch_size: int = 32,
                  device: torch.device | str | None = None) -> np.ndarray:
    """Sigmoid probability maps of ``images`` (N, H, W) or (N, 1, H, W) -> float32 (N, C, H, W)."""
    device = get_device(None if device is None else str(device))
    model.eval().to(device)
    x = np.asarray(images, dtype=np.float32)
    if x.ndim == 3:
        x = x[:, None]
    out = []
    for i in range(0, len(x), batch_size):
        xb = torch.from_numpy(x[i:i + batch_size]).to(device)
        out.append(torch.sigmoid(model(xb)).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0) + x.shape[-2:], np.float32)
