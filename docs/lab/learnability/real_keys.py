"""Ind-T with real independent keys' generators against a kept run's suspects, per check angle
(lab; repo root).

proxy_centred_check.py measures the rival zone with the owner's own mark *turned*; a real
independent owner has its own generator (its key code and residual, not only its carrier's
orientation). This script trains the generators of the benchmark's independent keys
(``s.key(i)``, i < N, default the run's ``n_ind_keys``) with the run's recipe plus GEN, as the
benchmark's false_accusations part does, in JOBS worker processes, and keeps them in DIR as
``generator_key{K}.pt`` (loaded, not trained again, when there). It then verifies every Malicious
suspect in DIR and in the MORE folders with each key, as false_accusations does (the owner's proxy
queries), and with the owner's key beside, at each check angle DS (default 0,15,20,25; 0 = no
check), as the benchmark's ``also_checks`` does (``false_accusations.ind_t_rows`` and ``by_check``). Prints, per
angle, the owners claimed and each Ind-T pair claimed.

    GEN='{"gate_area": 0.5, "eps": 0.0189}' PYTHONPATH=. python docs/lab/learnability/real_keys.py results/full_att6_models_gate05
    PYTHONPATH=. python docs/lab/learnability/real_keys.py results/full_att6_models results/full_att6_models_more
"""
import dataclasses
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch
from kept import kept_malicious, kept_marker, preload

from benchmarks.context import CLEAN, BenchContext, Log, MemoMarker
from benchmarks.false_accusations import by_check, ind_t_rows
from benchmarks.protocol import XMARK, prefetch_generators, train_xmark
from benchmarks.settings import preset
from xmark_core.generator.model import carrier_orientation


def main() -> None:
    folder, more = Path(sys.argv[1]), [Path(a) for a in sys.argv[2:]]
    overrides = json.loads(os.environ.get("GEN", "{}"))
    base = preset(os.environ.get("PRESET", "full"))
    ds = [float(d) for d in os.environ.get("DS", "0,15,20,25").split(",")]
    s = dataclasses.replace(base, gen_overrides={**base.gen_overrides, **overrides}, also_checks=tuple(ds),
                            n_ind_keys=int(os.environ.get("N", base.n_ind_keys)),
                            jobs=int(os.environ.get("JOBS", 2)), threads=1)
    torch.set_num_threads(int(os.environ.get("THREADS", 2)))
    ctx = BenchContext.create(s, Log())  # no models_dir yet: re-saving the surrogate would change its hash
    for sd in (s.seed, *s.proxy_seeds):  # the surrogate and the owner's proxies, as the run kept them
        if not preload(ctx, (CLEAN if sd == s.seed else XMARK, s.arch, s.input_size, sd), [folder]):
            raise SystemExit(f"{folder} holds no classifier of seed {sd} (the run's surrogate and proxies)")
    surrogate = ctx.train(CLEAN, seed=s.seed)
    ctx.set_selection(surrogate.model)
    ctx.models_dir = folder  # new generators are kept beside the surrogate they are paired with
    keys = [s.owner_key] + [s.key(i) for i in range(s.n_ind_keys)]
    done = ctx.cache.setdefault("generators", {})
    for k in keys:
        if (folder / f"generator_key{k}.pt").exists():
            done[k] = (kept_marker(folder, s, k).generator, [])
    if s.owner_key not in done:
        raise SystemExit(f"{folder} holds no generator_key{s.owner_key}.pt (the owner's)")
    prefetch_generators(ctx, surrogate, keys)
    owner = train_xmark(ctx, surrogate, s.owner_key)[0]
    ctx.owners[XMARK] = MemoMarker(owner)
    others = [MemoMarker(train_xmark(ctx, surrogate, k)[0]) for k in keys[1:]]
    turn = {k: (np.degrees(carrier_orientation(k) - carrier_orientation(s.owner_key)) + 90) % 180 - 90 for k in keys}
    suspects = {int(x.name.rsplit("seed", 1)[1]): x for x in kept_malicious([folder, *more], s)}
    print(f"{len(suspects)} suspects (seeds {', '.join(map(str, suspects))}); keys "
          + ", ".join(f"{k} ({turn[k]:+.1f} deg)" for k in keys), flush=True)
    rows = ind_t_rows(ctx, XMARK, suspects, others, keyed=True)  # the benchmark's own verification
    for d, r in by_check(ctx, XMARK, ctx.owners[XMARK], suspects, rows).items():
        o, it = r["owner"], r["ind_t"]
        print(f"check +/-{d}: owner claims {o['claimed']} of {o['n']} (p "
              + " ".join(f"{q:.2g}" for q in o["p"]) + f"); Ind-T claims {it['claimed']} of {it['n']}: "
              + (", ".join(f"key {c['key']} ({turn[c['key']]:+.1f}) on {c['suspect_seed']} (dP {c['delta_p']:.3f}, "
                           f"p {c['p']:.2g})" for c in it["claims"]) or "none"), flush=True)


if __name__ == "__main__":
    main()
