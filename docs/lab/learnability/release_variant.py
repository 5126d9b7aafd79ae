"""Another X-Mark release of a kept benchmark run, with the run's own suspect seeds (lab; repo root).

A benchmark run kept with ``--keep-models DIR`` holds its surrogate. This script trains a new
generator against it with the run's recipe plus GEN (JSON overrides of
``GeneratorTrainConfig``, e.g. ``{"gate_area": 0.5, "eps": 0.0189}``), embeds the full preset's
release with it (the same hardest-first images), trains Malicious suspects with SEEDS (default
the run's six, 100-105) and the proxy (seed 7) on it, JOBS at a time in worker processes, and
verifies each as the benchmark does (proxy queries, key check; boundary queries beside). Same
data, same seeds, same training: only the release differs, so each seed pairs with the run's own
suspect (kept_suspects.py prints those). The new models go to OUT (default
``DIR_<TAG>``) as the benchmark's ``--keep-models`` would write them; models already there are
loaded, not trained again; so is a generator OUT already holds, and without GEN the run's own
(the release is then the run's, and new SEEDS extend the run's suspects). THREADS: torch threads
of this process (default torch's; the gate05 generator was trained with 2, on the 2-core machine of
2026-12-06 (XVII)); with JOBS=1 the suspects train here too.

    GEN='{"gate_area": 0.5, "eps": 0.0189}' TAG=gate05 PYTHONPATH=. python docs/lab/learnability/release_variant.py results/full_att6_models
    SEEDS=106,107,108,109,110,111 JOBS=1 THREADS=1 TAG=more PYTHONPATH=. python docs/lab/learnability/release_variant.py results/full_att6_models
"""
import dataclasses
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch
from kept import kept_owner, preload

from benchmarks.context import CLEAN, BenchContext, Log, brief, model_file
from benchmarks.protocol import XMARK, xmark_method
from benchmarks.settings import preset
from xmark_core.nets.checkpoint import load_checkpoint


def main() -> None:
    if "THREADS" in os.environ:
        torch.set_num_threads(int(os.environ["THREADS"]))
    folder = Path(sys.argv[1])
    overrides = json.loads(os.environ.get("GEN", "{}"))
    tag = os.environ.get("TAG", "variant")
    out = Path(os.environ.get("OUT", f"{folder}_{tag}"))
    out.mkdir(parents=True, exist_ok=True)
    base = preset(os.environ.get("PRESET", "full"))
    s = dataclasses.replace(base, gen_overrides={**base.gen_overrides, **overrides},
                            jobs=int(os.environ.get("JOBS", 2)), threads=1)
    seeds = [int(x) for x in os.environ.get("SEEDS", "100,101,102,103,104,105").split(",")]
    ctx = BenchContext.create(s, Log(), models_dir=out)
    # The run's surrogate and anything already trained for this variant, loaded instead of trained.
    # (without GEN the release is the run's, so are its models in DIR)
    own = [out] + ([folder] if not overrides else [])
    for srcs, key in [([folder], (CLEAN, s.arch, s.input_size, s.seed))] + [
            (own, (XMARK, s.arch, s.input_size, sd)) for sd in (*seeds, *s.proxy_seeds)]:
        preload(ctx, key, srcs)
    surrogate = ctx.train(CLEAN, seed=s.seed)
    ctx.set_selection(surrogate.model)
    # A generator this variant already trained (in OUT), or without GEN the run's own: loaded.
    gen_file = f"generator_key{s.owner_key}.pt"
    for src in own:
        if (src / gen_file).exists():
            ctx.cache.setdefault("generators", {})[s.owner_key] = (kept_owner(src, s).generator, [])
            print(f"generator loaded from {src / gen_file}", flush=True)
            break
    meth = xmark_method(ctx, surrogate)
    ctx.owners[XMARK] = meth.marker
    ctx.train_many([(XMARK, None, None, sd) for sd in (*seeds, *s.proxy_seeds)])
    rows: dict[str, list[dict]] = {"proxy": [], "boundary": []}
    for sd in seeds:
        tr = ctx.train(XMARK, seed=sd)
        ref = folder / model_file((CLEAN, s.arch, s.input_size, sd))  # the run's clean model of this seed
        ba_clean = ctx.accuracy(ctx.suspect(load_checkpoint(ref, device="cpu").model)) if ref.exists() else float("nan")
        for q, done in rows.items():
            r = brief(ctx.verify(ctx.suspect(tr), meth.marker, XMARK, queries=q))
            done.append(r)
            print(f"{tag} seed {sd} {q:8s}: WSR {r['wsr']:.2f} dP {r['delta_p']:.3f} p {r['p']:.2g} "
                  f"(ownership {r['p_ownership']:.2g}) BA {tr.accuracy:.4f} drop {100 * (ba_clean - tr.accuracy):+.2f} pt",
                  flush=True)
    for q, done in rows.items():
        dps = np.array([r["delta_p"] for r in done])
        print(f"{tag} {q}: claimed {sum(r['p'] < s.alpha for r in done)} of {len(done)}, meet targets "
              f"{sum(r['wsr'] >= 0.95 and r['delta_p'] >= 0.8 and r['p'] < 1e-3 for r in done)}, dP mean "
              f"{dps.mean():.3f} min {dps.min():.3f}", flush=True)


if __name__ == "__main__":
    main()
