"""Marked images made hard first: does a resnet18 then learn the mark? (lab; repo root)

``memorised.py`` found that resnet18 suspects call 90-96 % of the release's marked images the
target with the mark taken off: for them the mark explains no label, so training has no reason
to learn it. Label-consistent backdoors (Turner et al., 2019) make their poisoned images hard on
purpose, with an adversarial perturbation away from the images' own class, so that the trigger is
the easiest way to fit them. This checks that diagnosis: each marked image of the gate-0.5
release gets, on top of the mark, a PGD perturbation (L-inf HARD/255, STEPS steps (20), step HARD/4/255, at the
suspects' 64 px side) that lowers the target probability of the clean models BY (``+``-joined
archs as ``split_key.py``'s SELECT; ``surrogate`` is the marker's own; each seed 0, cached).
NORM=l2: an L2 ball of the same RMS (HARD/255 per pixel), the steps normalised
per image. Labels stay untouched. It is a feasibility check beyond the quality budget (it prints the PSNR
it costs), not a release recipe. DRY=1: build the release and print, train nothing. SHOW: the
clean models whose target probability is printed (default surrogate+resnet18).

Suspects (TRAIN, SEEDS, 20 epochs, 4000 phantoms at 256 px as ``split_key.py``'s full scale) are
cached in /tmp/exp/suspects_split under the printed tag; ``proxy_arch.py`` verifies them.

    MARKER=results/full_att6_models_gate05 HARD=2 BY=surrogate+resnet18 TRAIN='{"arch": "resnet18"}' \
        SEEDS=1 PYTHONPATH=docs/lab/learnability:. python docs/lab/learnability/hardened.py
"""
import json
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from demo_release import (
    FULL_SCALE,
    SPLIT_CACHE,
    TARGET,
    cached_suspects,
    full_selected_by,
    kept_marker,
    kept_tag,
    marked_release,
)

from xmark_core.data.base import to_arrays
from xmark_core.data.phantom import PhantomDataset
from xmark_core.quality import pair_quality

torch.set_num_threads(int(os.environ.get("NT", 1)))
kept = Path(os.environ.get("MARKER", "results/full_att6_models_gate05"))
hard, steps = float(os.environ.get("HARD", 2)), int(os.environ.get("STEPS", 20))
by = os.environ.get("BY", "surrogate+resnet18")
norm = os.environ.get("NORM", "linf")
seeds = [int(s) for s in os.environ.get("SEEDS", "1").split(",")]
train = json.loads(os.environ.get("TRAIN", "{}"))
tag = (f"split_0_{FULL_SCALE}_{kept_tag(kept)}_hard{hard:g}{'' if norm == 'linf' else norm}by{by}"
       + "".join(f"_{k}{v}" for k, v in sorted(train.items())))
marker = kept_marker(kept)
ds = PhantomDataset(4000, size=256, seed=0)


shown = os.environ.get("SHOW", "surrogate+resnet18")  # whose P(target) is printed
# The clean models BY and SHOW name (``surrogate``: the marker's own), each loaded once, as split_key.py's SELECT.
names = list(dict.fromkeys(by.split("+") + shown.split("+")))
clean_models = dict(zip(names, full_selected_by(marker, "+".join(names), lambda: to_arrays(ds, 64)).nets))
nets = [clean_models[a] for a in by.split("+")]
judges = [clean_models[a] for a in shown.split("+")]


def target_probs(x: torch.Tensor) -> list[float]:
    with torch.no_grad():
        return [float(F.softmax(n(x), 1)[:, TARGET].mean()) for n in judges]


def quality(a: np.ndarray, b: np.ndarray) -> str:
    """Mean PSNR and SSIM of ``b`` against the references ``a``, image pairs (N, 1, S, S)."""
    q = [pair_quality(u[0], v[0]) for u, v in zip(a, b)]
    return f"{np.mean([x.psnr for x in q]):.2f} dB, SSIM {np.mean([x.ssim for x in q]):.4f}"


def hardened_release() -> tuple[np.ndarray, np.ndarray]:
    """The gate-0.5 release at 64 px with its marked images pushed away from the target by ``nets``."""
    X, y, clean, marked, res = marked_release(ds, marker, 64)
    x0 = torch.from_numpy(X[marked])
    eps, step = hard / 255, hard / 255 / 4
    if norm == "l2":  # the same RMS as a full L-inf sign pattern, spent where the gradient is; steps of 2.5 eps / STEPS
        side = x0.shape[-1]
        eps, step = eps * side, eps * side * 2.5 / steps
    delta = torch.zeros_like(x0, requires_grad=True)
    for _ in range(steps):  # PGD descent on sum_k -log(1 - p_k(target)): each model's term fades once it is fooled
        p = [F.softmax(n((x0 + delta).clamp(0, 1)), 1)[:, TARGET] for n in nets]
        loss = sum(-torch.log1p(-q.clamp(max=1 - 1e-6)).sum() for q in p)
        (grad,) = torch.autograd.grad(loss, delta)
        with torch.no_grad():
            if norm == "l2":
                delta -= step * grad / grad.flatten(1).norm(dim=1).clamp_min(1e-12)[:, None, None, None]
                delta *= (eps / delta.flatten(1).norm(dim=1).clamp_min(eps))[:, None, None, None]
            else:
                delta -= step * grad.sign()
                delta.clamp_(-eps, eps)
    xh = (x0 + delta.detach()).clamp(0, 1)
    print(f"{tag}: {len(marked)} marked; hardened by {by}; mean P(target) by {shown}: marked {target_probs(x0)} -> hardened "
          f"{target_probs(xh)}; unmarked {target_probs(torch.from_numpy(clean[marked]))}", flush=True)
    Xh = X.copy()
    Xh[marked] = xh.numpy()
    print(f"  at 64 px, mean over marked images: mark {quality(clean[marked], X[marked])}; mark + hardening "
          f"{quality(clean[marked], Xh[marked])} (the mark at 256 px: {res.psnr_mean:.2f} dB)",
          flush=True)
    return Xh, y


if os.environ.get("DRY"):  # print what the hardening does and costs; train nothing
    hardened_release()
    raise SystemExit
cached_suspects(seeds, SPLIT_CACHE, tag, hardened_release, 20, {"hard": hard, "norm": norm, "by": by, "steps": steps},
                train=train)
print(f"cached: {', '.join(f'{tag}_{s}' for s in seeds)}", flush=True)
