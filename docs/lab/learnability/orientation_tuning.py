"""How sharply does a suspect's answer depend on the carrier's orientation? (lab; repo root)

Ind-T (another owner's key) only differs from the owner's mark by the key: the carrier's
orientation and the generator's weights. The carrier is 0.75 of the budget, so the owner's
generator with its carrier *rotated* by an offset approximates another key at that
orientation. This sweeps the offset and queries the shipped demo suspects and the cached lab
suspects (/tmp/exp/suspects, from query_choice.py), random and boundary queries, gain 2,
pool 300 (as query_choice.py with POOL=400). Key 1000 (a real independent generator,
ind_t.py) sits at -28.5 degrees from the owner's key 189.

    PYTHONPATH=. OFFS=0,-10,10,-20,20,-30,30,-45,45,90 python docs/lab/learnability/orientation_tuning.py

SIZE=256 queries a phantom pool rendered at 256 px (default 128, the demo's); with SUSPECTS=DIR,
GLOB picks the checkpoints there (default *.ckpt). The 256 px-source suspects of work_size.py:

    SIZE=256 SUSPECTS=/tmp/exp/suspects_ws GLOB='256_none_[0-9]*.ckpt' SAVE=/tmp/exp/tuning_256.npz \
        OFFS=-65,-60,...,65 PYTHONPATH=. python docs/lab/learnability/orientation_tuning.py

SCALES=0.7,0.85,1,1.2,1.4 sweeps the carrier's frequency (times the key's) instead of the
orientation (the printed "offset" is then the scale). Per-query (P_b, P_w) go to SAVE (default /tmp/exp/tuning.npz) for peak_test.py.
"""
import copy
import os
import types
from pathlib import Path

import numpy as np
import torch

from benchmarks.context import MemoMarker
from xmark_core.app_support.demo import query_images
from xmark_core.data.phantom import FINDINGS
from xmark_core.generator.model import carrier_orientation, image_phase, load_marker
from xmark_core.nets.checkpoint import load_checkpoint
from xmark_core.verify.protocol import VerifyConfig, run_verification
from xmark_core.verify.suspects import TorchSuspect

torch.set_num_threads(int(os.environ.get("NT", 1)))
R = Path("models")
classes, target = list(FINDINGS), list(FINDINGS).index("Cardiomegaly")
owner = load_marker(R / "surrogate.pt", os.environ.get("GEN", R / "generator.pt"))  # GEN: another generator
images, ids = query_images(target, 100, int(os.environ.get("SIZE", 128)), 9001, int(os.environ.get("POOL", 400)))  # the non-target images of the phantom set
scores = owner.target_scores(images)


def rotated(offset_deg: float, scale: float = 1.0):
    """The owner's marker with its carrier grating turned by ``offset_deg`` (and its
    frequency times ``scale``)."""
    m = copy.copy(owner)
    gen = copy.deepcopy(owner.generator)
    th = carrier_orientation(gen.key) + np.radians(offset_deg)

    def carrier(self, x, phase=None):
        h, w = x.shape[-2:]
        if phase is None:
            phase = torch.from_numpy(image_phase(x[:, 0].detach().cpu().numpy(), self.key))
        k = 2.0 * np.pi * self.carrier_cycles * scale / max(h, w)
        yy = torch.arange(h, dtype=torch.float32).view(1, 1, h, 1) + 0.5
        xx = torch.arange(w, dtype=torch.float32).view(1, 1, 1, w) + 0.5
        return torch.sin(k * (np.cos(th) * xx + np.sin(th) * yy) + phase.view(-1, 1, 1, 1).float())

    gen.carrier = types.MethodType(carrier, gen)
    m.generator = gen
    return MemoMarker(m)


def model_and_size(path: Path):
    ck = load_checkpoint(path)
    return ck.model, ck.input_size or 64


# name -> (model, input size); SUSPECTS=DIR sweeps only the checkpoints there (e.g. carrier_freq.py's)
suspects = Path(os.environ.get("SUSPECTS", "/tmp/exp/suspects"))
shipped = [] if os.environ.get("SUSPECTS") else [("shipped_mal", R / "suspect_malicious.pt"),
                                                  ("shipped_clean", R / "suspect_clean.pt")]
models = {name: model_and_size(f) for name, f in shipped + [(f.stem, f) for f in sorted(suspects.glob(os.environ.get("GLOB", "*.ckpt")))]}
offsets = [float(o) for o in os.environ.get("OFFS", "0,-10,10,-20,20,-30,30,-45,45,90").split(",")]
scales = [float(f) for f in os.environ.get("SCALES", "1").split(",")]  # frequency sweep instead
if scales != [1.0]:
    offsets = scales
rows = {}
logs = {}  # per-query (p_b, p_w), the same queries at every offset
for off in offsets:
    mk = rotated(0.0, off) if scales != [1.0] else rotated(off)
    for name, (net, size) in models.items():
        for q in ("random", "boundary"):
            r = run_verification(TorchSuspect(net.eval(), classes, size), mk, images, ids, target,
                                 VerifyConfig(m=100, seed=9001, queries=q, specificity=0.0),
                                 query_scores=scores)  # the main test; peak_test.py replays the check
            rows[(name, q, off)] = (r.delta_p, r.p_value)
            logs[f"{name}|{q}|{off:g}"] = np.array([[e["p_b"], e["p_w"]] for e in r.log])
            print(f"offset {off:+6.1f} {name:14s} {q:8s}: dP {r.delta_p:.3f} p {r.p_value:.2g} "
                  f"claimed {bool(r.decision)}", flush=True)
np.savez(os.environ.get("SAVE", "/tmp/exp/tuning.npz"), **logs)
for q in ("random", "boundary"):
    print(f"\n{q}: dP (p) by offset " + " ".join(f"{o:+.0f}" for o in offsets))
    for name in models:
        print(f"{name:14s} " + " ".join(f"{rows[(name, q, o)][0]:.3f}({rows[(name, q, o)][1]:.0e})"
                                        for o in offsets))
