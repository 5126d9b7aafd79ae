"""Conditional U-Net watermark generator and the :class:`Marker` that applies it.

The generator maps an image ``x`` and its saliency map ``s`` to a residual ``r`` and
returns the perturbation ``delta = eps * u * gate(s)``, ``u = tanh(r)`` or, with the owner
key's carrier grating ``c``, ``u = a * c + (1 - a) * tanh(r)``: bounded by ``eps`` per
pixel and confined by a soft gate to the region the surrogate classifier relies on.
It is fully convolutional (any size; inputs are padded to a multiple of ``2**depth``)
and has no normalisation layer whose statistics span the image, so a large image can
be processed in overlapping tiles that blend into the same result.

This module holds only what applying a trained generator needs; training lives in
:mod:`xmark_core.generator.train` (verification imports this module, never that one).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from xmark_core.device import get_device
from xmark_core.errors import CheckpointError, DataError
from xmark_core.nets.batch import pad_batch

ARCHS = ("unet",)
KEY_DIM = 16


def key_code(key: int, dim: int = KEY_DIM) -> torch.Tensor:
    """Deterministic unit-variance code of an owner key (the same on every machine)."""
    rng = np.random.default_rng([int(key) & 0xFFFFFFFF, 0x584D41524B])
    return torch.from_numpy(rng.standard_normal(dim).astype(np.float32))


def carrier_orientation(key: int) -> float:
    """Orientation (radians, in [0, pi)) of an owner key's carrier grating."""
    rng = np.random.default_rng([int(key) & 0xFFFFFFFF, 0x43415252])
    return float(rng.uniform(0.0, np.pi))


def key_carrier(key: int, cycles: float, h: int, w: int, phase: torch.Tensor,
                turn: float = 0.0) -> torch.Tensor:
    """The key's carrier: a unit sinusoidal grating (N, 1, h, w), one phase per image.

    ``cycles`` counts periods across the longer image side, so the grating keeps its
    place relative to the anatomy at any resolution (a resize maps it onto itself).
    ``turn`` (radians) rotates it away from the key's orientation: the verifier's
    specificity controls (:meth:`Marker.turned`), never a released mark.
    """
    th = carrier_orientation(key) + turn
    k = 2.0 * np.pi * cycles / max(h, w)
    yy = torch.arange(h, dtype=torch.float32, device=phase.device).view(1, 1, h, 1) + 0.5
    xx = torch.arange(w, dtype=torch.float32, device=phase.device).view(1, 1, 1, w) + 0.5
    arg = k * (np.cos(th) * xx + np.sin(th) * yy)
    return torch.sin(arg + phase.view(-1, 1, 1, 1).float())


def image_phase(images: np.ndarray, key: int) -> np.ndarray:
    """Deterministic per-image carrier phase (N,) in [0, 2 pi) from the image content.

    The content is reduced to a coarse 8x8, 4-bit thumbnail before hashing, so the same
    image gives the same phase however it was batched, while different images get
    unrelated phases (their marks then do not correlate pixel by pixel).
    """
    out = np.empty(len(images), np.float64)
    for i, im in enumerate(images):
        thumb = cv2.resize(np.asarray(im, np.float32), (8, 8), interpolation=cv2.INTER_AREA)
        q = np.clip(np.round(thumb * 15), 0, 15).astype(np.uint8).tobytes()
        d = hashlib.blake2b(q, digest_size=8, key=int(key & 0xFFFFFFFF).to_bytes(4, "little")).digest()
        out[i] = int.from_bytes(d, "little") / 2**64 * 2 * np.pi
    return out


def _block(cin: int, cout: int) -> nn.Sequential:
    # No BatchNorm/GroupNorm: statistics over the whole image would make tiles differ
    # from the untiled result.
    # In-place activations: a conv's backward needs its input, not its output.
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1), nn.LeakyReLU(0.1, inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1), nn.LeakyReLU(0.1, inplace=True),
    )


def saliency_gate(s: torch.Tensor, area: float, temp: float) -> torch.Tensor:
    """Soft gate ``sigmoid((s - q) / temp)`` with ``q`` the per-image ``1 - area`` quantile.

    A quantile threshold (not a fixed one) keeps the marked region at about ``area`` of
    the image whatever the spread of the saliency map. The quantile is taken on a
    64x64 average-pooled copy, so it is cheap and identical for tiled application.

    Parameters
    ----------
    s : (N, 1, H, W) saliency in [0, 1]
    area : fraction of the image the gate opens on (0 < area <= 1)
    temp : softness of the edge, in saliency units
    """
    if area >= 1.0:
        return torch.ones_like(s)
    small = F.adaptive_avg_pool2d(s, (min(64, s.shape[-2]), min(64, s.shape[-1])))
    q = torch.quantile(small.flatten(1), 1.0 - area, dim=1).view(-1, 1, 1, 1)
    return torch.sigmoid((s - q) / temp)


class WatermarkGenerator(nn.Module):
    """Conditional U-Net ``G(x, s) -> delta``.

    Parameters
    ----------
    base : channels of the first level (doubled at each level down)
    depth : number of 2x down-samplings
    eps : per-pixel bound of the perturbation (images are on a [0, 1] scale)
    gate_area : share of the image (top saliency) the gate opens on
    gate_temp : softness of the gate edge
    key : owner key; seeds the initial weights and enters the bottleneck as a bias
    carrier_cycles : periods of the key's carrier grating across the image (0: none). The
        carrier is a third input channel and, with ``carrier_amp``, part of the mark: it is
        what a suspect model learns (see :func:`key_carrier` and docs/architecture.md)
    carrier_amp : share of the per-pixel budget the carrier takes (see :meth:`bounded`)
    """

    def __init__(
        self,
        base: int = 16,
        depth: int = 3,
        eps: float = 0.02,
        gate_area: float = 0.25,
        gate_temp: float = 0.04,
        key: int = 0,
        carrier_cycles: float = 0.0,
        carrier_amp: float = 0.0,
    ):
        super().__init__()
        self.base, self.depth, self.key = int(base), int(depth), int(key)
        self.carrier_cycles, self.carrier_amp = float(carrier_cycles), float(carrier_amp)
        self.eps, self.gate_area, self.gate_temp = float(eps), float(gate_area), float(gate_temp)
        chans = [base * 2**i for i in range(depth + 1)]
        # Weights are initialised from the key so two owners never start from the same net.
        fork = torch.random.fork_rng(devices=[])
        with fork:
            torch.manual_seed(0x5EED ^ (self.key & 0x7FFFFFFF))
            self.enc = nn.ModuleList([_block(3 if self.carrier_cycles else 2, chans[0])] + [
                _block(chans[i], chans[i + 1]) for i in range(depth)
            ])
            self.key_proj = nn.Linear(KEY_DIM, chans[-1])
            self.up = nn.ModuleList([
                nn.Conv2d(chans[i + 1], chans[i], 1) for i in reversed(range(depth))
            ])
            self.dec = nn.ModuleList([_block(2 * chans[i], chans[i]) for i in reversed(range(depth))])
            self.head = nn.Conv2d(chans[0], 1, 1)
            # He init keeps activations at unit scale through the plain (norm-free) stack;
            # PyTorch's default would shrink them ~1000x over 14 layers.
            for mod in self.modules():
                if isinstance(mod, nn.Conv2d):
                    nn.init.kaiming_normal_(mod.weight, a=0.1, nonlinearity="leaky_relu")
                    nn.init.zeros_(mod.bias)
            # a small head: the mark starts faint and grows with the efficacy gradient
            self.head.weight.data.mul_(0.1)
            nn.init.zeros_(self.head.bias)
        # Channels-last weights make oneDNN's CPU convolutions ~1.5x faster (outputs equal
        # to ~1e-8); loading a state dict copies values and keeps this layout.
        self.to(memory_format=torch.channels_last)
        self.register_buffer("key_code", key_code(self.key))
        # Rotation (radians) of the carrier away from the key's orientation; not part of the
        # checkpoint: only verification's specificity controls set it (Marker.turned).
        self.carrier_turn = 0.0

    @property
    def multiple(self) -> int:
        return 2**self.depth

    def arch_kwargs(self) -> dict[str, Any]:
        """Constructor arguments, as stored in a checkpoint."""
        return {
            "base": self.base, "depth": self.depth, "eps": self.eps,
            "gate_area": self.gate_area, "gate_temp": self.gate_temp, "key": self.key,
            "carrier_cycles": self.carrier_cycles, "carrier_amp": self.carrier_amp,
        }

    def carrier(self, x: torch.Tensor, phase: torch.Tensor | None = None) -> torch.Tensor | None:
        """The key's carrier for a batch (``None`` without one); ``phase`` (N,) defaults to
        :func:`image_phase` of the images."""
        if not self.carrier_cycles:
            return None
        if phase is None:
            phase = torch.from_numpy(image_phase(x[:, 0].detach().cpu().numpy(), self.key))
        return key_carrier(self.key, self.carrier_cycles, *x.shape[-2:], phase.to(x.device), self.carrier_turn)

    def residual(self, x: torch.Tensor, s: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """Unbounded residual ``r`` (N, 1, H, W); inputs are reflect-padded as needed.
        ``c`` is the carrier of the same grid (computed when omitted)."""
        h, w = x.shape[-2:]
        m = self.multiple
        ph, pw = (-h) % m, (-w) % m
        parts = [x * 2 - 1, s * 2 - 1]
        if self.carrier_cycles:
            parts.append(self.carrier(x) if c is None else c)
        z = torch.cat(parts, dim=1)
        if ph or pw:
            mode = "reflect" if ph < h and pw < w else "replicate"
            z = F.pad(z, (0, pw, 0, ph), mode=mode)
        skips = []
        for i, block in enumerate(self.enc):
            z = block(z if i == 0 else F.avg_pool2d(z, 2))
            skips.append(z)
        z = z + self.key_proj(self.key_code)[None, :, None, None]
        for up, dec, skip in zip(self.up, self.dec, reversed(skips[:-1])):
            # The 1x1 conv and bilinear upsampling are both linear (and bilinear weights sum
            # to 1, so the bias passes through): they commute. Convolving first touches a
            # quarter of the pixels and upsamples half the channels: same output, less work.
            z = F.interpolate(up(z), scale_factor=2.0, mode="bilinear", align_corners=False)
            z = dec(torch.cat([z, skip], dim=1))
        return self.head(z)[..., :h, :w]

    def gate(self, s: torch.Tensor) -> torch.Tensor:
        return saliency_gate(s, self.gate_area, self.gate_temp)

    def bounded(self, r: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        """``u`` in [-1, 1] with ``delta = eps * u * gate``: ``tanh(r)``, or with a carrier
        ``a * c + (1 - a) * tanh(r)`` (``a = carrier_amp``): the carrier is exact and the
        net shapes the rest of the budget."""
        if c is None or not self.carrier_amp:
            return torch.tanh(r)
        return self.carrier_amp * c + (1.0 - self.carrier_amp) * torch.tanh(r)

    def forward(self, x: torch.Tensor, s: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """Perturbation ``delta = eps * u(r, c) * gate(s)`` for (N, 1, H, W) inputs in [0, 1]."""
        if self.carrier_cycles and c is None:
            c = self.carrier(x)
        return self.eps * self.bounded(self.residual(x, s, c), c) * self.gate(s)


def build_generator(arch: str = "unet", **kwargs: Any) -> WatermarkGenerator:
    """Build a watermark generator by name (the loader of ``kind="generator"`` checkpoints).

    Parameters
    ----------
    arch : ``"unet"`` (the only architecture so far)
    **kwargs : :class:`WatermarkGenerator` arguments (base, depth, eps, gate_area, gate_temp, key)
    """
    if arch not in ARCHS:
        raise CheckpointError(f"unknown generator architecture {arch!r}; expected one of {ARCHS}")
    return WatermarkGenerator(**kwargs)


def _ramp(n: int, overlap: int, at_start: bool, at_end: bool) -> np.ndarray:
    """1-D blending weights of a tile: linear ramps over ``overlap`` at inner edges."""
    w = np.ones(n, np.float32)
    if overlap > 0:
        r = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
        if not at_start:
            w[:overlap] = np.minimum(w[:overlap], r)
        if not at_end:
            w[-overlap:] = np.minimum(w[-overlap:], r[::-1])
    return w


def _tile_starts(size: int, tile: int, step: int) -> list[int]:
    if size <= tile:
        return [0]
    return list(range(0, size - tile, step)) + [size - tile]


def tiled_residual(
    gen: WatermarkGenerator, x: torch.Tensor, s: torch.Tensor, tile: int, overlap: int
) -> torch.Tensor:
    """The bounded residual ``u`` (see :meth:`WatermarkGenerator.bounded`) of (N, 1, H, W)
    images computed in overlapping, blended tiles.

    The image is first padded to a multiple of ``2**depth`` exactly as the untiled path
    does, and tile origins sit on that grid, so every tile pools the same cells as the
    whole image would. Tiles overlap by ``overlap`` pixels and are cross-faded linearly:
    no seam, and the result matches the untiled one to within a small tolerance (the
    U-Net's zero padding at a tile edge only affects pixels the ramp down-weights).
    """
    h, w = x.shape[-2:]
    m = gen.multiple
    c = gen.carrier(x)  # of the whole image: tiles cut the same grating
    ph, pw = (-h) % m, (-w) % m
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x, s = F.pad(x, (0, pw, 0, ph), mode=mode), F.pad(s, (0, pw, 0, ph), mode=mode)
        c = F.pad(c, (0, pw, 0, ph), mode=mode) if c is not None else None
    H, W = x.shape[-2:]
    tile = max(m, (tile // m) * m)
    overlap = (min(overlap, tile // 2) // m) * m
    step = tile - overlap
    acc = torch.zeros((x.shape[0], 1, H, W), dtype=x.dtype, device=x.device)
    wsum = torch.zeros((1, 1, H, W), dtype=x.dtype, device=x.device)
    for y0 in _tile_starts(H, tile, step):
        th = min(tile, H - y0)
        wy = _ramp(th, overlap, y0 == 0, y0 + th >= H)
        for x0 in _tile_starts(W, tile, step):
            tw = min(tile, W - x0)
            wx = _ramp(tw, overlap, x0 == 0, x0 + tw >= W)
            wt = torch.from_numpy(np.outer(wy, wx)).to(x)[None, None]
            win = (..., slice(y0, y0 + th), slice(x0, x0 + tw))
            cw = None if c is None else c[win]
            acc[win] += gen.bounded(gen.residual(x[win], s[win], cw), cw) * wt
            wsum[win] += wt
    return (acc / wsum)[..., :h, :w]


def _as_batch(images: np.ndarray) -> np.ndarray:
    a = np.asarray(images)
    if a.ndim == 2:
        a = a[None]
    if a.ndim == 4 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 3:
        raise DataError(f"expected images of shape (N, H, W) or (H, W), got {a.shape}")
    if a.size and (np.nanmin(a) < -1e-6 or np.nanmax(a) > 1 + 1e-6):
        raise DataError("images must be float intensities in [0, 1]; convert with xmark_core.data.io")
    return a.astype(np.float32, copy=False)


def _resize_stack(a: np.ndarray, hw: tuple[int, int], cubic: bool = False) -> np.ndarray:
    """Resize (N, H, W) float arrays: area when shrinking, bicubic when asked (upsampling)."""
    interp = cv2.INTER_CUBIC if cubic else cv2.INTER_AREA
    return np.stack([cv2.resize(m, (hw[1], hw[0]), interpolation=interp) for m in a]).astype(np.float32, copy=False)


GEN_BATCH_PIXELS = 8 * 128 * 128


def _channels_last(module: nn.Module) -> nn.Module:
    """``module`` if its 4-D weights are already channels-last, else a channels-last copy."""
    weights = [p for p in module.parameters() if p.dim() == 4]
    if all(p.is_contiguous(memory_format=torch.channels_last) for p in weights):
        return module
    return copy.deepcopy(module).to(memory_format=torch.channels_last)


@dataclass
class Marker:
    """A surrogate classifier and a trained generator: everything needed to mark images.

    Attributes
    ----------
    surrogate : the owner's classifier (an ``nn.Module`` taking (N, 1, S, S) in [0, 1])
    generator : the trained :class:`WatermarkGenerator`
    input_size : the surrogate's input size S (saliency is computed there, then upsampled)
    target : target class index the generator was trained for
    cam_method : ``"eigencam"`` (design default) or ``"gradcam"``
    tile, overlap : images with a side above ``tile`` are processed in blended tiles
    work_size : if set, images whose longer side exceeds it are marked at that size (their
        saliency computed there too) and the perturbation is upsampled (bicubic) to the
        image: a mark whose scale is relative to the anatomy, and constant cost per image.
        ``None``: native resolution. Measured on the phantom (256 px source, 64 px
        suspects): 128 is learned as well as native, 64 less (README, Results: Speed).
    batch_size : images per forward pass (the generator's: also at most
        :data:`GEN_BATCH_PIXELS` pixels). Every pass has exactly that many, a short one
        padded with copies: oneDNN picks its kernels by batch size, and a mark must not
        depend on which images it was batched with (a release's bytes, a sharded run's
        commitment). 8: a batch of 16 embeds no faster (32 ms per 512 px image at working
        size 128 either way, docs/lab/learnability/embed_profile.py with BATCH), a batch of 4
        ~3 % slower, and every short pass is padded up to this size
    info : provenance (checkpoint hashes, training config) for owner records
    """

    surrogate: nn.Module
    generator: WatermarkGenerator
    input_size: int
    target: int | None = None
    cam_method: str = "eigencam"
    tile: int = 512
    overlap: int = 64
    work_size: int | None = None
    batch_size: int = 8
    device: torch.device | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.device = self.device or get_device()
        self.surrogate = self.surrogate.to(self.device).eval()
        self.generator = self.generator.to(self.device).eval()
        if self.device.type == "cpu":
            # oneDNN's own layout (the generator is built in it): marking is a few per cent
            # faster, and a mark moves by at most ~1e-7, below one 16-bit step
            # (docs/lab/learnability/hot_loop_variants.py). A copy: the caller's surrogate may
            # go on to train other things, whose numbers must not depend on having built a Marker.
            self.surrogate = _channels_last(self.surrogate)

    @property
    def key(self) -> int:
        return self.generator.key

    def saliency(self, images: np.ndarray) -> np.ndarray:
        """Saliency maps (N, H, W) in [0, 1] at the images' own resolution."""
        return self._saliency(_as_batch(images))

    def _saliency(self, batch: np.ndarray) -> np.ndarray:
        from xmark_core.saliency import saliency_maps

        return saliency_maps(
            self.surrogate, batch[:, None], method=self.cam_method,
            input_size=self.input_size, batch_size=self.batch_size, fixed_batch=True,
        ).astype(np.float32, copy=False)

    def perturbation(self, images: np.ndarray, saliency: np.ndarray | None = None) -> np.ndarray:
        """Perturbations ``delta`` (N, H, W) before clipping; deterministic for given weights.

        Parameters
        ----------
        images : (N, H, W) or (H, W) float in [0, 1], any size (all images of one call share it)
        saliency : optional precomputed maps of the same shape (else computed here, at the
            working size when ``work_size`` applies)
        """
        return self._perturbation(_as_batch(images), None if saliency is None else _as_batch(saliency))

    @torch.no_grad()
    def _perturbation(self, batch: np.ndarray, sal: np.ndarray | None) -> np.ndarray:
        """:meth:`perturbation` of checked (N, H, W) float32 arrays (a new array)."""
        h, w = batch.shape[1:]
        if self.work_size and max(h, w) > self.work_size:
            f = self.work_size / max(h, w)
            hw = (max(1, round(h * f)), max(1, round(w * f)))
            small = _resize_stack(batch, hw)
            if sal is None and max(hw) >= self.input_size:
                # Saliency straight at the working size: the surrogate sees the same input
                # either way (both shrunk to its size), and a full-size map would only be
                # shrunk again.
                small_sal = self._saliency(small)
            else:  # a working size below the surrogate's: let it see the full image
                small_sal = _resize_stack(self._saliency(batch) if sal is None else sal, hw)
            up = _resize_stack(self._perturb(small, small_sal), (h, w), cubic=True)
            return np.clip(up, -self.generator.eps, self.generator.eps, out=up)
        return self._perturb(batch, self._saliency(batch) if sal is None else sal)

    def _perturb(self, batch: np.ndarray, sal: np.ndarray) -> np.ndarray:
        gen = self.generator
        out = np.empty_like(batch)
        big = max(batch.shape[1:]) > self.tile
        # At most batch_size images and GEN_BATCH_PIXELS pixels per pass: a batch of large
        # images only adds memory traffic (one 512 px image is already 33 MB per activation).
        step = 1 if big else max(1, min(self.batch_size, GEN_BATCH_PIXELS // int(np.prod(batch.shape[1:]))))
        for i in range(0, len(batch), step):
            x = torch.from_numpy(np.ascontiguousarray(batch[i:i + step, None])).to(self.device)
            s = torch.from_numpy(np.ascontiguousarray(sal[i:i + step, None])).to(self.device)
            n = len(x)
            x, s = pad_batch(x, step), pad_batch(s, step)  # every pass the same size
            if big:
                d = gen.eps * tiled_residual(gen, x, s, self.tile, self.overlap) * gen.gate(s)
            else:
                d = gen(x, s)
            out[i:i + n] = d[:n, 0].cpu().numpy()
        return out

    def turned(self, degrees: float) -> Marker:
        """This marker with its key carrier rotated by ``degrees``: a control mark of the
        same strength and placement as the owner's, at another orientation (what another
        key would carry). Verification's specificity check queries the suspect with the
        owner's mark turned both ways (:class:`~xmark_core.verify.protocol.VerifyConfig`).

        Raises
        ------
        DataError
            if the generator has no carrier (nothing to turn).
        """
        if not self.generator.carrier_cycles or not self.generator.carrier_amp:
            raise DataError("this generator has no key carrier to turn; the specificity check "
                            "needs one (set specificity to 0)")
        gen = copy.deepcopy(self.generator)
        gen.carrier_turn = self.generator.carrier_turn + float(np.radians(degrees))
        return dataclasses.replace(self, generator=gen, info={**self.info, "carrier_turn_deg": self.info.get("carrier_turn_deg", 0.0) + float(degrees)})

    def mark(self, images: np.ndarray, saliency: np.ndarray | None = None) -> np.ndarray:
        """Watermarked images ``clip(x + delta, 0, 1)``, same shape as the input batch."""
        batch = _as_batch(images)
        marked = self._perturbation(batch, None if saliency is None else _as_batch(saliency))
        marked += batch
        return np.clip(marked, 0.0, 1.0, out=marked).reshape(np.shape(images))

    def target_scores(self, images: Any, target: int | None = None, batch_size: int = 64) -> np.ndarray:
        """The surrogate's probability of the target class for each image (the embedder's
        "hardest" selection, boundary queries).

        Parameters
        ----------
        images : a sequence of (H, W) float images in [0, 1], sizes may differ; each is
            resized to ``input_size`` as in training (loaded one batch at a time)
        target : class index; default :attr:`target`

        Returns
        -------
        np.ndarray
            (N,) float64 probabilities.
        """
        from xmark_core.data.base import resize
        from xmark_core.nets.train import predict_proba

        target = self.target if target is None else target
        if target is None:
            raise DataError("this marker does not know its target class; it cannot score images "
                            "(use queries='random' / selection='random')")
        out = []
        for i in range(0, len(images), batch_size):
            chunk = [resize(np.asarray(images[j], np.float32), self.input_size)
                     for j in range(i, min(i + batch_size, len(images)))]
            out.append(predict_proba(self.surrogate, np.stack(chunk)[:, None])[:, int(target)])
        return np.concatenate(out).astype(np.float64) if out else np.zeros(0)

    def identity(self) -> dict[str, Any]:
        """What an owner record stores about this marker."""
        return {
            "key": self.key, "target": self.target, "input_size": self.input_size,
            "cam_method": self.cam_method, "work_size": self.work_size,
            "generator": self.generator.arch_kwargs(), **self.info,
        }


def load_marker(
    surrogate_ckpt: str | Path,
    generator_ckpt: str | Path,
    device: torch.device | str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Marker:
    """Load a :class:`Marker` from a surrogate and a generator checkpoint.

    Raises :class:`CheckpointError` if the generator was trained with another surrogate
    (its saliency would not match) or a file holds the wrong kind of model.
    """
    from xmark_core.nets.checkpoint import load_checkpoint

    dev = get_device(str(device)) if device is not None else get_device()
    sur = load_checkpoint(surrogate_ckpt, device=dev)
    gen = load_checkpoint(generator_ckpt, device=dev)
    if sur.kind != "classifier":
        raise CheckpointError(f"{surrogate_ckpt}: expected a classifier checkpoint, got kind {sur.kind!r}")
    if gen.kind != "generator":
        raise CheckpointError(f"{generator_ckpt}: expected a generator checkpoint, got kind {gen.kind!r}")
    extra = gen.extra or {}
    want = extra.get("surrogate_sha256")
    if want and want != sur.sha256:
        raise CheckpointError(
            f"{generator_ckpt}: trained with surrogate {want[:12]}..., but {surrogate_ckpt} is "
            f"{sur.sha256[:12]}...; pass the surrogate the generator was trained with"
        )
    input_size = int(sur.input_size or extra.get("input_size") or 64)
    return Marker(
        surrogate=sur.model, generator=gen.model, input_size=input_size,
        target=extra.get("target"), cam_method=extra.get("cam_method", "eigencam"), device=dev,
        info={"generator_sha256": gen.sha256, "surrogate_sha256": sur.sha256,
              "classes": sur.classes},
    )
