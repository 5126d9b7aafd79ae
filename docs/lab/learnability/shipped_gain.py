"""The shipped demo's own suspects verified at query gains 1.5 to 4 (lab, 2026-12-04; run from the repo root).

QUERIES=boundary: the surrogate-chosen queries (the default since 2026-12-04 evening); default random."""
import os
import torch
from pathlib import Path
from xmark_core.data.phantom import FINDINGS, PhantomDataset
from xmark_core.generator.model import load_marker
from xmark_core.nets.checkpoint import load_checkpoint
from xmark_core.verify.protocol import VerifyConfig, run_verification
from xmark_core.verify.suspects import TorchSuspect
torch.set_num_threads(1)
R = Path("models"); classes = list(FINDINGS); target = classes.index("Cardiomegaly")
test = PhantomDataset(400, size=128, seed=9001)
marker = load_marker(R / "surrogate.pt", R / "generator.pt")
y = test.labels(); pool = [i for i in range(len(test)) if int(y[i]) != target]
for name in ("suspect_malicious", "suspect_clean"):
    model = load_checkpoint(R / f"{name}.pt").model
    for gain in (1.5, 2.0, 2.5, 3.0, 4.0):
        r = run_verification(TorchSuspect(model, classes, 64), marker, [test[i].image for i in pool],
                             [test[i].image_id for i in pool], target, VerifyConfig(m=100, alpha=0.01, seed=9001, query_gain=gain,
                                                                    queries=os.environ.get("QUERIES", "random"),
                                                                    specificity=0.0))  # the main test alone
        print(f"{name} {r.config.queries} gain {gain}: dP {r.delta_p:.3f} p {r.p_value:.2g} WSR {r.wsr:.2f}", flush=True)
