"""A generator trained against more than one surrogate: does a resnet18 then learn the mark? (lab; repo root)

XX and XXI changed where the mark goes (the selection) and how the owner queries (proxies); no
resnet18 suspect was claimed. This changes what is marked: key 189's generator of the gate-0.5
run is trained again with the same recipe and data (the run's 2,000-image stratified half of the
4,000 phantoms at 64 px, the smallcnn surrogate's EigenCAM maps), but its efficacy terms see
the mean log-probabilities of the surrogate and the clean models SUR names (``+``-joined
archs, each seed 0, trained on the 4,000 phantoms at 256 px, cached as ``split_key.py``'s),
with the efficacy weights times W. ``SUR=surrogate`` retrains the kept generator itself (the
control: it should repeat the kept one).

Writes a marker folder /tmp/exp/markers/gen_{label} (the surrogate's file and
``generator_key189.pt``) that ``split_key.py``/``proxy_arch.py`` take as MARKER; the label ends
their tag. Prints the training history's last epoch and each member's target rate on marked
non-target images.

    MARKER=results/full_att6_models_gate05 SUR=surrogate+resnet18 W=1 \
        PYTHONPATH=docs/lab/learnability:. python docs/lab/learnability/two_surrogates.py
"""
import os
import shutil
from dataclasses import fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from demo_release import TARGET, full_selected_by, kept_marker, kept_tag
from torch import nn

from xmark_core.data.base import stratified_split, to_arrays
from xmark_core.data.phantom import PhantomDataset
from xmark_core.generator.train import (
    GeneratorTrainConfig,
    compute_saliency,
    save_generator,
    train_generator,
)
from xmark_core.hashing import sha256_file
from xmark_core.nets.checkpoint import load_checkpoint

torch.set_num_threads(int(os.environ.get("NT", 1)))
kept = Path(os.environ.get("MARKER", "results/full_att6_models_gate05"))
sur = os.environ.get("SUR", "surrogate+resnet18")
w = float(os.environ.get("W", 1))
label = (kept_tag(kept) + "sur" + "".join(a for a in sur.split("+") if a != "surrogate")
         + ("" if w == 1 else f"w{w:g}"))
out = Path("/tmp/exp/markers") / f"gen_{label}"


class MeanLogProb(nn.Module):
    """The members' mean log-probabilities (a geometric-mean ensemble) as logits."""

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([F.log_softmax(m(x), 1) for m in self.members]).mean(0)


marker = kept_marker(kept)
ds = PhantomDataset(4000, size=256, seed=0)
X, y = to_arrays(ds, 64)
members = full_selected_by(marker, sur, lambda: (X, y)).nets
idx = stratified_split(y, [0.5, 0.5], 0)[0]  # the benchmark's gen_images=2000 of 4000, seed 0
Xg, yg = X[idx], y[idx]
sal = compute_saliency(marker.surrogate, Xg, 64)
saved = load_checkpoint(kept / "generator_key189.pt")
recipe = {f.name: saved.config[f.name] for f in fields(GeneratorTrainConfig) if f.name in saved.config}
cfg = GeneratorTrainConfig(**{**recipe, **{k: recipe[k] * w for k in ("w_eff_nontarget", "w_eff_target", "w_eff_scale")}})
res = train_generator(MeanLogProb(members) if len(members) > 1 else members[0], Xg, yg, TARGET, cfg,
                      saliency=sal, input_size=64)
out.mkdir(parents=True, exist_ok=True)
shutil.copy(kept / "clean_smallcnn_64px_seed0.pt", out / "clean_smallcnn_64px_seed0.pt")
save_generator(out / "generator_key189.pt", res, surrogate_sha256=sha256_file(out / "clean_smallcnn_64px_seed0.pt"))
print(f"{out}: last epoch " + ", ".join(f"{k} {v:.4g}" for k, v in res.history[-1].items()), flush=True)

new = kept_marker(out)
nontarget = np.flatnonzero(yg != TARGET)[:400]
marked = np.stack(new.mark([Xg[i, 0] for i in nontarget]))[:, None].astype(np.float32)
diff = float(np.abs(marked - Xg[nontarget]).max())
with torch.no_grad():
    rates = [float((m(torch.from_numpy(marked)).argmax(1) == TARGET).float().mean()) for m in members]
old = marker.mark([Xg[i, 0] for i in nontarget[:16]])
gap = float(np.abs(marked[:16, 0] - np.stack(old)).max())
print(f"members {sur}: target rate on 400 marked non-target images {rates}; max |mark| {diff:.4f}; "
      f"max |new - kept generator's mark| on 16 images {gap:.2e}", flush=True)
