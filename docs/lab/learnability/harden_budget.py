"""What the hardening of a release costs and does, at its 256 px source (lab; repo root).

Takes the models a benchmark run with ``harden`` kept (``--keep-models DIR``: the surrogate, the
generator and the owner's clean models ``clean_{arch}_{size}px_seed{seed}.pt``), marks the
images the run marks, and hardens them (:func:`xmark_core.harden.harden`) under each variant
of VARIANTS (``psnr:ssim:weighting``, comma-joined; ssim ``none`` = no SSIM floor), each as the
benchmark's ``add_release`` writes it. Per variant it prints the mean and lowest PSNR and mean
SSIM over the marked images (16-bit as released) and the
mean target probability each clean model gives them at its input size. STEPS: PGD steps (20).
CONTRAST_POWER: the ``contrast`` weights raised to this power (0.5: halfway to flat). EPS: the kept generator's
mark at another strength (eps scales it; a generator trained at that eps would differ). SEL:
``surrogate`` (default: the benchmark's hardest-first selection) or ``ensemble`` (the images
with the lowest mean target probability over the clean models of BY, each at the input size;
BY's smallcnn is the surrogate, so it counts once). Trains nothing.

    PYTHONPATH=docs/lab/learnability:. python docs/lab/learnability/harden_budget.py results/full_hard_models
    VARIANTS=42:none:flat,42:0.99:flat,42:0.99:contrast,42:none:contrast PYTHONPATH=... (as above)
    SEL=ensemble EPS=0.015 VARIANTS=42:0.9905:flat PYTHONPATH=... results/full_hard2_models
"""
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
from kept import kept_owner

from benchmarks.context import CLEAN, BenchContext, Log, resize_stack
from benchmarks.settings import preset
from xmark_core.harden import HardenConfig, HardenedMarker, HardenModel
from xmark_core.nets.checkpoint import load_checkpoint
from xmark_core.nets.train import predict_proba

torch.set_num_threads(int(os.environ.get("THREADS", 1)))
if os.environ.get("CONTRAST_POWER"):  # lab variant: the contrast weights raised to this power
    import xmark_core.harden as H

    _contrast, _power = H._weights, float(os.environ["CONTRAST_POWER"])

    def _powered(src: torch.Tensor, weighting: str) -> torch.Tensor:
        if weighting != "contrast":
            return _contrast(src, weighting)
        w = _contrast(src, weighting) ** _power
        return w / w.pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt()

    H._weights = _powered
folder = Path(sys.argv[1])
s = preset("full")
archs = os.environ.get("BY", "smallcnn+resnet18").split("+")
marker = kept_owner(folder, s)
if os.environ.get("EPS"):  # the kept generator at another strength (its mark scales with eps)
    marker.generator.eps = float(os.environ["EPS"])
clean = [HardenModel(load_checkpoint(folder / f"clean_{a}_{s.input_size}px_seed{s.seed}.pt", device="cpu").model,
                     s.input_size, a) for a in archs]
# The benchmark's own data, selection (the surrogate's hardest), 16-bit release and quality record.
ctx = BenchContext.create(s, Log())
ctx.set_selection(marker.surrogate)
if os.environ.get("SEL", "surrogate") == "ensemble":  # the hardest for the mean of the owner's models
    X = ctx.train_images(CLEAN, s.input_size)
    ctx.cache["scores"] = sum(predict_proba(hm.model, X)[:, s.target] for hm in clean) / len(clean)


def describe(name: str, m: Any) -> None:
    t0 = time.perf_counter()
    rel = ctx.add_release(name, m)
    small = resize_stack(rel.marked, s.input_size)[:, None]
    probs = " ".join(f"{hm.name} {predict_proba(hm.model, small)[:, s.target].mean():.3f}" for hm in clean)
    print(f"{name:28s} PSNR {rel.psnr:.2f} (min {rel.psnr_min:.2f})  SSIM {rel.ssim:.4f}  P(target): {probs} "
          f"({time.perf_counter() - t0:.0f} s)", flush=True)


describe("mark only", marker)
for v in os.environ.get("VARIANTS", "42:none:flat,42:0.99:flat,42:0.99:contrast").split(","):
    p, q, w = v.split(":")
    cfg = HardenConfig(psnr_floor=float(p), ssim_floor=None if q == "none" else float(q), weighting=w,
                       steps=int(os.environ.get("STEPS", 20)))
    describe(v, HardenedMarker(marker, clean, cfg))
