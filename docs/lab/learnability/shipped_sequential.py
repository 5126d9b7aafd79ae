"""Queries the sequential test needs on the shipped demo suspects, boundary vs random (lab; repo root).

    python docs/lab/learnability/shipped_sequential.py     # 20 query seeds each, batch 5, m <= 100
    SPEC=25 QUERY_CHOICES=boundary python docs/lab/learnability/shipped_sequential.py   # with the key-specificity check
"""
import os

import numpy as np
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
images, ids = [test[i].image for i in pool], [test[i].image_id for i in pool]
for name in ("suspect_malicious", "suspect_clean"):
    sus = TorchSuspect(load_checkpoint(R / f"{name}.pt").model, classes, 64)
    for queries in os.environ.get("QUERY_CHOICES", "boundary,random").split(","):
        rs = [run_verification(sus, marker, images, ids, target, VerifyConfig(test="sequential", batch_size=5, seed=s,
                                                                            queries=queries, specificity=float(os.environ.get("SPEC", 0))))
              for s in range(20)]
        n = [r.n_queries for r in rs if r.decision]
        print(f"{name} {queries} specificity {os.environ.get('SPEC', 0)}: claimed {len(n)} of 20, median queries {np.median(n) if n else '-'}, "
              f"range {min(n) if n else '-'}-{max(n) if n else '-'}", flush=True)
