"""Train the watermark generator against a frozen surrogate classifier.

Objective (DESIGN.md, Method 4), every weight a field of :class:`GeneratorTrainConfig`:

* efficacy: cross-entropy toward the target class through the surrogate, on marked
  non-target images (the mark must carry target-class signal) and on marked target
  images (the release marks those: the mark must be a strong, easy target feature);
* scale-robust efficacy: the same after a random down-and-up resize in [min_scale, 1];
* quality: ``1 - SSIM`` and MSE between the image and its marked copy;
* high-frequency penalty: energy of the perturbation in the finest Laplacian bands;
* sample specificity: perturbations of different images must not correlate above a level;
* carrier: the mark must carry the owner key's carrier grating at a set amplitude
  (``carrier_amp * eps``, inside the gate). Not one of the design's original terms: without
  it no mark within the quality budget is learned by a model trained on the release (see
  docs/architecture.md).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from xmark_core.device import get_device, seed_everything
from xmark_core.generator import losses as L
from xmark_core.generator.model import WatermarkGenerator, build_generator

Progress = Callable[[int, int], None]


@dataclass
class GeneratorTrainConfig:
    """Generator architecture, loss weights and optimisation settings.

    The defaults are the demo recipe (64 px phantom, smallcnn surrogate; measurements in
    docs/architecture.md): the carrier holds 0.75 of the budget, the net shapes the
    rest under strong quality terms; the efficacy terms keep small weights because at
    PSNR >= 42 dB they cannot move a confident clean surrogate and larger weights only
    spend the budget on adversarial noise a suspect does not learn.
    """

    # architecture / perturbation
    eps: float = 0.03
    gate_area: float = 0.25
    gate_temp: float = 0.04
    base: int = 16
    depth: int = 3
    carrier_cycles: float = 10.7  # periods across the image (6 px at 64 px); 0: no carrier
    # loss weights
    w_eff_nontarget: float = 0.1
    w_eff_target: float = 0.05
    w_eff_scale: float = 0.05
    w_ssim: float = 20.0
    w_mse: float = 5.0
    w_highfreq: float = 0.5
    w_specificity: float = 1.0
    w_carrier: float = 20.0
    # loss settings
    eff_margin: float | None = None  # stop pushing once -log p(target) <= margin
    min_scale: float = 0.25
    hf_levels: int = 1
    max_corr: float = 0.5
    carrier_amp: float = 0.75  # the carrier's share of eps (WatermarkGenerator.bounded); the
    # carrier loss keeps the net from cancelling it, so the mark always carries this much
    # optimisation
    epochs: int = 6
    batch_size: int = 32
    lr: float = 1e-3
    key: int = 0
    seed: int = 0
    cam_method: str = "eigencam"
    device: str | None = None

    def arch_kwargs(self) -> dict[str, Any]:
        return {
            "base": self.base, "depth": self.depth, "eps": self.eps,
            "gate_area": self.gate_area, "gate_temp": self.gate_temp, "key": self.key,
            "carrier_cycles": self.carrier_cycles, "carrier_amp": self.carrier_amp,
        }


@dataclass
class GeneratorTrainResult:
    """Trained generator (eval mode), one history dict per epoch, and the settings used."""

    generator: WatermarkGenerator
    history: list[dict[str, float]]
    config: GeneratorTrainConfig
    target: int
    input_size: int
    extra: dict[str, Any] = field(default_factory=dict)


def _surrogate_module(surrogate: Any) -> nn.Module:
    return getattr(surrogate, "model", surrogate)  # a LoadedModel or a bare module


def compute_saliency(
    surrogate: Any, X: np.ndarray, input_size: int, method: str = "eigencam", batch_size: int = 64
) -> np.ndarray:
    """Saliency maps (N, H, W) of a batch (N, 1, H, W) through :mod:`xmark_core.saliency`."""
    from xmark_core.saliency import saliency_maps

    return saliency_maps(
        _surrogate_module(surrogate), X, method=method, input_size=input_size, batch_size=batch_size
    ).astype(np.float32)


def generator_step_losses(
    gen: WatermarkGenerator,
    surrogate: nn.Module,
    x: torch.Tensor,
    s: torch.Tensor,
    is_target: torch.Tensor,
    target: int,
    cfg: GeneratorTrainConfig,
    input_size: int,
    rng: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """All loss terms of one batch (unweighted) plus ``total`` (weighted sum)."""
    # random phases: the net must carry any phase it is given
    c = gen.carrier(x, torch.rand(x.shape[0], generator=rng) * (2 * math.pi))
    delta = gen(x, s, c)
    xw = (x + delta).clamp(0.0, 1.0)
    # One surrogate pass serves both efficacy terms: the second half of the batch goes
    # through a random down-and-up resize (scale-robust efficacy), the first half not.
    h = x.shape[0] // 2 if cfg.w_eff_scale > 0 and x.shape[0] > 1 else x.shape[0]
    z = xw if h == x.shape[0] else torch.cat([xw[:h], L.random_rescale(xw[h:], cfg.min_scale, rng)])
    if z.shape[-1] != input_size:
        z = F.interpolate(z, size=(input_size, input_size), mode="bilinear", antialias=True)
    lw = surrogate(z)
    plain, it = lw[:h], is_target[:h]
    out: dict[str, torch.Tensor] = {
        "eff_nontarget": L.efficacy_loss(plain[~it], target, cfg.eff_margin),
        "eff_target": L.efficacy_loss(plain[it], target, cfg.eff_margin),
        "eff_scale": L.efficacy_loss(lw[h:], target, cfg.eff_margin),
    }
    out["ssim"], out["mse"] = L.quality_loss(x, xw, cfg.eps)
    out["highfreq"] = L.highfreq_loss(delta, cfg.eps, cfg.hf_levels)
    out["specificity"] = L.specificity_loss(delta, cfg.eps, cfg.max_corr)
    out["carrier"] = (L.carrier_loss(delta, c * gen.gate(s), cfg.eps, cfg.carrier_amp) if c is not None
                      else delta.sum() * 0.0)
    out["total"] = (
        cfg.w_eff_nontarget * out["eff_nontarget"] + cfg.w_eff_target * out["eff_target"]
        + cfg.w_eff_scale * out["eff_scale"] + cfg.w_ssim * out["ssim"] + cfg.w_mse * out["mse"]
        + cfg.w_highfreq * out["highfreq"] + cfg.w_specificity * out["specificity"]
        + cfg.w_carrier * out["carrier"]
    )
    # for the epoch statistics (no extra forward pass)
    out["_hits"] = (plain.detach()[~it].argmax(1) == target).sum()
    out["_nontarget"] = (~it).sum()
    out["_sq_err"] = (xw.detach() - x).pow(2).flatten(1).mean(1).sum()
    return out


def train_generator(
    surrogate: Any,
    X: np.ndarray,
    y: np.ndarray,
    target: int,
    cfg: GeneratorTrainConfig | None = None,
    saliency: np.ndarray | None = None,
    input_size: int | None = None,
    progress: Progress | None = None,
) -> GeneratorTrainResult:
    """Train a generator so that marked images read as ``target`` to the surrogate.

    Parameters
    ----------
    surrogate : the owner's classifier (``nn.Module`` or a loaded checkpoint); frozen
    X : (N, 1, S, S) float32 training images in [0, 1] (the generator's training size S)
    y : (N,) labels
    target : index of the target class
    cfg : settings; defaults to :class:`GeneratorTrainConfig`
    saliency : precomputed (N, S, S) maps; computed with ``cfg.cam_method`` if omitted
    input_size : the surrogate's input size (default S)
    progress : called as ``progress(epoch_done, cfg.epochs)``

    Returns
    -------
    GeneratorTrainResult
        ``history`` holds per epoch the mean of every loss term, the surrogate's
        target rate on marked non-target images (``asr``), mean PSNR and SSIM, seconds.
    """
    cfg = cfg or GeneratorTrainConfig()
    X = np.asarray(X, np.float32)
    if X.ndim == 3:
        X = X[:, None]
    y = np.asarray(y, np.int64)
    if X.ndim != 4 or X.shape[1] != 1 or len(X) != len(y):
        raise ValueError(f"expected X (N, 1, S, S) and y (N,), got {X.shape} and {y.shape}")
    if not (y == target).any() or (y == target).all():
        raise ValueError("training data needs both target-class and other images")
    size = X.shape[-1]
    input_size = int(input_size or size)
    device = get_device(cfg.device)
    sur = _surrogate_module(surrogate).to(device).eval()
    for p in sur.parameters():
        p.requires_grad_(False)
    if saliency is None:
        saliency = compute_saliency(sur, X, input_size, cfg.cam_method)
    saliency = np.asarray(saliency, np.float32).reshape(len(X), 1, *X.shape[-2:])

    g = seed_everything(cfg.seed)
    gen = build_generator("unet", **cfg.arch_kwargs()).to(device)
    opt = torch.optim.Adam(gen.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(cfg.epochs, 1))
    xt, st = torch.from_numpy(X), torch.from_numpy(saliency)
    tt = torch.from_numpy(y == target)
    history: list[dict[str, float]] = []
    n = len(X)
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        gen.train()
        perm = torch.randperm(n, generator=g)
        sums: dict[str, float] = {}
        hits = nt_seen = seen = 0
        mse_sum = 0.0
        for b in range(0, n - 1, cfg.batch_size):
            idx = perm[b:b + cfg.batch_size]
            x, s, it = xt[idx].to(device), st[idx].to(device), tt[idx].to(device)
            terms = generator_step_losses(gen, sur, x, s, it, target, cfg, input_size, g)
            opt.zero_grad(set_to_none=True)
            terms["total"].backward()
            opt.step()
            k = len(idx)
            for name, v in terms.items():
                if not name.startswith("_"):
                    sums[name] = sums.get(name, 0.0) + float(v.detach()) * k
            hits += int(terms["_hits"])
            nt_seen += int(terms["_nontarget"])
            mse_sum += float(terms["_sq_err"])
            seen += k
        sched.step()
        rec = {"epoch": epoch, **{k: v / seen for k, v in sums.items()}}
        rec.update(
            asr=hits / max(nt_seen, 1), psnr=L.psnr_from_mse(mse_sum / seen),
            lr=opt.param_groups[0]["lr"], seconds=time.perf_counter() - t0,
        )
        history.append(rec)
        if progress:
            progress(epoch, cfg.epochs)
    gen.eval()
    return GeneratorTrainResult(gen, history, cfg, int(target), input_size)


def save_generator(
    path: str | Path,
    result: GeneratorTrainResult,
    surrogate_sha256: str | None = None,
    classes: list[str] | None = None,
) -> None:
    """Write a ``kind="generator"`` checkpoint that :func:`~xmark_core.generator.model.load_marker` reads.

    Parameters
    ----------
    path : target ``.pt`` file (written atomically)
    result : output of :func:`train_generator`
    surrogate_sha256 : SHA-256 of the surrogate checkpoint file the generator was trained with
    classes : class names of the surrogate (recorded for the owner)
    """
    from xmark_core.nets.checkpoint import save_checkpoint

    cfg = result.config
    save_checkpoint(
        path, result.generator, kind="generator", arch="unet",
        arch_kwargs=result.generator.arch_kwargs(), classes=classes, input_size=result.input_size,
        config=asdict(cfg),
        extra={
            "target": result.target, "surrogate_sha256": surrogate_sha256,
            "input_size": result.input_size, "cam_method": cfg.cam_method,
            "history": result.history, **result.extra,
        },
    )
