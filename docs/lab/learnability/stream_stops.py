"""Which stream of the sequential test decides last? (lab; repo root)

For kept Malicious suspects (SEEDS of DIR, a benchmark run's ``--keep-models`` folder) verified
with the run's proxy (seed 7) and with the mean of proxies 7, 8 and 9 (as ``proxy_seeds``), each
stream of the anytime-valid test (``main``: ownership; ``minus``/``plus``: the key check against
the mark turned by -/+ the check angle) is replayed over ORDERS (default 20) random orders of the
queries, and the median first query at which it reaches alpha printed (m + 1: never).

    SEEDS=100,103,104 PYTHONPATH=. python docs/lab/learnability/stream_stops.py results/full_hard2_models
"""
import os
import sys
from pathlib import Path

import numpy as np
import torch
from kept import kept_owner, kept_suspect

from benchmarks.context import BenchContext, Log, MemoMarker
from benchmarks.settings import preset
from xmark_core.verify.protocol import proxy_scores, run_verification, stream_running_p
from xmark_core.verify.suspects import MeanSuspect

torch.set_num_threads(1)
folder = Path(sys.argv[1])
s = preset(os.environ.get("PRESET", "full"))
orders = int(os.environ.get("ORDERS", 20))
ctx = BenchContext.create(s, Log(quiet=True))
owner = MemoMarker(kept_owner(folder, s))
target = s.classes[s.target]
cfg = ctx.verify_config(queries="proxy")


def suspect(seed: int):
    return kept_suspect(folder / f"xmark_{s.arch}_{s.input_size}px_seed{seed}.pt", s.classes)


for label, voters in (("proxy 7", [suspect(7)]), ("proxies 7,8,9", [suspect(7), suspect(8), suspect(9)])):
    scores = proxy_scores(MeanSuspect(voters), owner, ctx.pool, target, cfg.query_gain)
    for seed in [int(x) for x in os.environ.get("SEEDS", "100").split(",")]:
        r = run_verification(suspect(seed), owner, ctx.pool, ctx.pool_ids, s.target, cfg, query_scores=scores)
        stops: dict[str, list[int]] = {}
        for o in range(orders):
            order = np.random.default_rng(o).permutation(len(r.log))
            for name, run in stream_running_p([r.log[i] for i in order], cfg).items():
                hit = np.flatnonzero(np.asarray(run) <= cfg.alpha)
                stops.setdefault(name, []).append(int(hit[0]) + 1 if len(hit) else len(r.log) + 1)
        print(folder.name, label, seed, {k: float(np.median(v)) for k, v in stops.items()}, flush=True)
