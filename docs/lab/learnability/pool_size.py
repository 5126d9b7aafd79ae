"""Does a larger held-out pool make boundary queries stronger? (lab; repo root)

Boundary queries are the m = 100 pool images the owner's surrogate gives the highest
probability of the target; a larger pool offers images nearer the boundary (scoring is capped
at BOUNDARY_CANDIDATES * m = 1000 images, a seeded draw beyond). This verifies the shipped
demo suspects and the cached lab suspects (/tmp/exp/suspects, query_choice.py) with the
library's defaults (boundary queries, the +/-25 degree check) at several pool sizes (phantom
items, seed 9001; about 3/4 are non-target), and runs the sequential test with SEQ query
seeds per Malicious suspect (batch 5, as the benchmark).

    POOLS=400,1200,2400,4000 SEQ=5 PYTHONPATH=. python docs/lab/learnability/pool_size.py
"""
import os
from pathlib import Path

import numpy as np
import torch

from benchmarks.context import MemoMarker
from benchmarks.queries import queries_needed
from xmark_core.app_support.demo import query_images
from xmark_core.data.phantom import FINDINGS
from xmark_core.generator.model import load_marker
from xmark_core.nets.checkpoint import load_checkpoint
from xmark_core.verify.protocol import VerifyConfig, run_verification
from xmark_core.verify.suspects import TorchSuspect

torch.set_num_threads(int(os.environ.get("NT", 1)))
R = Path("models")
classes, target = list(FINDINGS), list(FINDINGS).index("Cardiomegaly")
owner = MemoMarker(load_marker(R / "surrogate.pt", R / "generator.pt"))
suspects = Path(os.environ.get("SUSPECTS", "/tmp/exp/suspects"))
files = [("shipped_mal", R / "suspect_malicious.pt"), ("shipped_clean", R / "suspect_clean.pt")]
files += [(f.stem, f) for f in sorted(suspects.glob("*.ckpt"))]
models = {}
for name, f in files:
    ck = load_checkpoint(f)
    models[name] = TorchSuspect(ck.model.eval(), classes, ck.input_size or 64)
n_seq = int(os.environ.get("SEQ", 5))

summary = []
for n_pool in map(int, os.environ.get("POOLS", "400,1200,2400,4000").split(",")):
    images, ids = query_images(target, 100, 128, 9001, n_pool)  # the non-target images of the phantom set
    scores = owner.inner.target_scores(images)
    mal_dp, mal_claimed, clean_dp, clean_p, seq = [], 0, [], [], []
    for name, suspect in models.items():
        r = run_verification(suspect, owner, images, ids, target, VerifyConfig(seed=9001), query_scores=scores)
        malicious = "mal" in name
        if malicious:
            mal_dp.append(r.delta_p)
            mal_claimed += bool(r.decision)
            for k in range(n_seq):
                s = run_verification(suspect, owner, images, ids, target,
                                     VerifyConfig(seed=9001 + 1 + k, test="sequential", batch_size=5),
                                     query_scores=scores)
                seq.append(queries_needed(s.running_p, 0.01) or np.inf)
        else:
            clean_dp.append(r.delta_p)
            clean_p.append(r.p_value)
        print(f"pool {n_pool} ({len(images)} non-target) {name:14s}: dP {r.delta_p:.3f} p {r.p_value:.2g} "
              f"WSR {r.wsr:.2f} claimed {bool(r.decision)} min score chosen "
              f"{r.pool.get('min_score_chosen', float('nan')):.3g}", flush=True)
    row = (f"pool {n_pool}: Malicious claimed {mal_claimed}/{len(mal_dp)}, dP mean {np.mean(mal_dp):.3f} "
           f"(min {np.min(mal_dp):.3f}, max {np.max(mal_dp):.3f}); sequential median "
           f"{np.median(seq):.0f} queries over {len(seq)} runs ({np.sum(np.isfinite(seq))} reached); "
           f"clean max dP {np.max(clean_dp):.3f}, min p {np.min(clean_p):.2g}")
    summary.append(row)
    print(row, flush=True)
print("\n" + "\n".join(summary))
