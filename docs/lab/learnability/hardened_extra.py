"""More suspects on a benchmark run's (hardened) release: other seeds, sizes and architectures
than the run trained (lab; repo root).

Rebuilds the run's context from its ``run.json`` settings with ``--reuse-models`` on the run's
kept folder (the protocol's models load instead of training; the release, hardening included,
is made again from the kept generator), then trains each suspect of EXTRA
(``set:size:arch:seed``, comma-joined; ``set`` is ``xmark`` or ``clean``), keeps it in the same
folder, and verifies it as the benchmark does, with each of the run's query choices. SET: a JSON
object of settings for a run whose run.json predates them (e.g. ``{"harden_ssim": null}`` for a
hardened run made before the SSIM floor existed).

    EXTRA=xmark:64:resnet18:101,xmark:128:resnet18:100 PYTHONPATH=docs/lab/learnability:. python \
        docs/lab/learnability/hardened_extra.py results/full_hard results/full_hard_models
"""
import json
import os
import sys

import torch
from kept import run_settings

from benchmarks import protocol
from benchmarks.context import BenchContext, Log, brief

torch.set_num_threads(int(os.environ.get("THREADS", 1)))
run_dir, kept = sys.argv[1], sys.argv[2]
s = run_settings(run_dir, **json.loads(os.environ.get("SET", "{}")))  # a run made before a setting existed: its value then
ctx = BenchContext.create(s, Log(), models_dir=kept, reuse_dir=kept)
methods, _ = protocol.run(ctx)
for spec in os.environ.get("EXTRA", "xmark:64:resnet18:101").split(","):
    train_set, size, arch, seed = spec.split(":")
    tr = ctx.train(train_set, size=int(size), arch=arch, seed=int(seed))
    for q in s.query_choices:
        r = brief(ctx.verify(ctx.suspect(tr), methods["xmark"].marker, "xmark", queries=q))
        print(f"{spec} ({q} queries): acc {tr.accuracy:.4f} WSR {r['wsr']:.3f} dP {r['delta_p']:.3f} "
              f"p {r['p']:.3g} claimed {r['decision']}", flush=True)
