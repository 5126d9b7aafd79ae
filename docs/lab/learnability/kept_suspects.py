"""Replays on the models a benchmark run kept (``--keep-models DIR``): query choices and the
sequential test's query order, on the run's own suspects, without training them again (lab;
repo root).

For each Malicious suspect ``xmark_{arch}_{size}px_seed{S}.pt`` in DIR (and the clean ones,
``clean_…``, except the surrogate) it verifies as the benchmark does (t-test, the settings'
m, tau, gain and key check) with

* ``proxy``: the run's proxy (the first of ``proxy_seeds``) -- must repeat the run's own numbers;
* ``loo-mean``: the mean of the run's proxy and every *other* Malicious suspect as proxies
  (``MeanSuspect``; for a clean suspect all Malicious ones): does a wider vote lift the weak
  suspects? K=2: only the two Malicious seeds after the suspect's own (cyclically), i.e. an
  owner who trained three proxies;
* ``boundary``: the surrogate's choice;

and replays the anytime-valid sequential claim (the three streams with the key check) over
the proxy-chosen queries in ORDERS random orders (what the benchmark's queries part draws)
and once in *rank order* (the proxy's largest rise first; a fixed order chosen before any
suspect is queried, so the test stays valid). Prints one row per suspect and query choice.
PROXY_SEEDS=7,8,9 replaces ``loo-mean`` with ``proxies``: the mean of proxies with those seeds,
trained on the run's release where DIR lacks them (the release rebuilt from the kept surrogate and
generator; written to DIR), i.e. what ``--set 'proxy_seeds=[7,8,9]'`` would have trained. The
rebuilt release is never hardened: for a run with ``harden``, train the proxies with
hardened_extra.py (``EXTRA=xmark:64:smallcnn:8,...``) first.
ATTACKS=finetune,fineprune also rebuilds the benchmark's model attacks on each Malicious suspect
(the same settings and seed; before f0ecefa fine-tuning's dropout drew from the process's RNG,
so replays differed by up to .02 in ΔP; another thread count or memory layout still rounds
differently) and verifies those too; the query transforms (jpeg, blur, noise, median,
resize_0.5, resize_0.25) are ATTACKS names as well. BA=1 adds each row's clean accuracy on the
run's evaluation set (an attack counts only within 5 points of the suspect's own). THREADS: torch threads (default 1). K=0: no ``loo-mean`` row (it scores the
pool anew for every row, the slow part); ORDERS=0: no sequential replay in random orders.

    PYTHONPATH=. python docs/lab/learnability/kept_suspects.py results/full_att6_models
    ATTACKS=finetune,fineprune PYTHONPATH=. python docs/lab/learnability/kept_suspects.py results/full_att6_models
    BA=1 ATTACKS=finetune,fineprune PYTHONPATH=. python docs/lab/learnability/kept_suspects.py results/full_hard2_models
    PROXY_SEEDS=7,8,9 ATTACKS=finetune PYTHONPATH=. python docs/lab/learnability/kept_suspects.py results/full_att6_models
    PRESET=micro PYTHONPATH=. python docs/lab/learnability/kept_suspects.py /tmp/exp/micro_models
"""
import os
import sys
from pathlib import Path

import numpy as np
import torch
from kept import benchmark_attack, kept_owner, kept_seeds, kept_suspect

from benchmarks.context import BenchContext, Log, MemoMarker
from benchmarks.protocol import XMARK
from benchmarks.settings import preset
from xmark_core.nets.checkpoint import load_checkpoint
from xmark_core.verify.protocol import proxy_scores, run_verification, stream_running_p
from xmark_core.verify.suspects import MeanSuspect, TorchSuspect

torch.set_num_threads(int(os.environ.get("THREADS", 1)))
folder = Path(sys.argv[1])
s = preset(os.environ.get("PRESET", "full"))
orders = int(os.environ.get("ORDERS", 20))
ctx = BenchContext.create(s, Log(quiet=True))
arch, size = s.arch, s.input_size
owner = kept_owner(folder, s)
marker = MemoMarker(owner)  # each pool image marked once (per turn), as in the benchmark
target = s.classes[s.target]


def suspect(path: Path) -> TorchSuspect:
    return kept_suspect(path, s.classes)


def seeds(train_set: str) -> list[int]:
    return kept_seeds(folder, train_set, arch, size)


proxy_seeds = [int(x) for x in os.environ.get("PROXY_SEEDS", "").split(",") if x]
not_suspects = {*s.proxy_seeds, *proxy_seeds}
mal = {seed: suspect(folder / f"xmark_{arch}_{size}px_seed{seed}.pt") for seed in seeds("xmark") if seed not in not_suspects}
attacks = [a for a in os.environ.get("ATTACKS", "").split(",") if a]
k_others = int(os.environ.get("K", 99))
with_ba = os.environ.get("BA", "0") == "1"


clean = {seed: suspect(folder / f"clean_{arch}_{size}px_seed{seed}.pt") for seed in seeds("clean") if seed != s.seed}
proxy = suspect(folder / f"xmark_{arch}_{size}px_seed{s.proxy_seeds[0]}.pt")
missing = [sd for sd in proxy_seeds if not (folder / f"xmark_{arch}_{size}px_seed{sd}.pt").exists()]
if missing:  # the run's release, rebuilt exactly (same surrogate scores, same marks), then the proxies
    # one torch thread and this process, as the run trained its models (the weights depend on
    # the thread count; worker processes would re-run this script)
    ctx.models_dir, threads = folder, torch.get_num_threads()
    torch.set_num_threads(1)
    ctx.set_selection(load_checkpoint(folder / f"clean_{arch}_{size}px_seed{s.seed}.pt", device="cpu").model)
    rel = ctx.add_release(XMARK, owner)
    print(f"release rebuilt: PSNR {rel.psnr:.2f} dB (min {rel.psnr_min:.2f}), SSIM {rel.ssim:.4f}", flush=True)
    for sd in missing:
        ctx.train(XMARK, seed=sd)
    torch.set_num_threads(threads)
extra_proxies = [suspect(folder / f"xmark_{arch}_{size}px_seed{sd}.pt") for sd in proxy_seeds]
cfg = ctx.verify_config()
boundary_scores = owner.target_scores(ctx.pool)
proxy_choice = proxy_scores(proxy, marker, ctx.pool, target, cfg.query_gain)


def stop(log: list[dict], order: np.ndarray) -> int:
    """Queries to the claim (all streams below alpha) in ``order``; m + 1 if never."""
    run = np.max(np.stack(list(stream_running_p([log[i] for i in order], cfg).values())), axis=0)
    hit = np.flatnonzero(run <= cfg.alpha)
    return int(hit[0]) + 1 if len(hit) else len(log) + 1


print(f"{folder}: {len(mal)} Malicious {sorted(mal)}, {len(clean)} clean {sorted(clean)}, proxy seed {s.proxy_seeds[0]}, "
      f"K {min(k_others, len(mal))}")
print("suspect        queries    WSR     dP       p        seq random (median, reached)  seq rank")
# The same voters for every suspect (PROXY_SEEDS): their choice is scored once, as proxy_choice is.
shared_vote = proxy_scores(MeanSuspect(extra_proxies), marker, ctx.pool, target, cfg.query_gain) if extra_proxies else None
pos = {pid: i for i, pid in enumerate(ctx.pool_ids)}
rows = [("mal", seed, sus) for seed, sus in mal.items()]
rows += [(f"mal+{a}", seed, benchmark_attack(sus, a, ctx)) for a in attacks for seed, sus in mal.items()]
rows += [("clean", seed, sus) for seed, sus in clean.items()]
for kind, seed, sus in rows:
    ba = f"  BA {ctx.accuracy(sus):.4f}" if with_ba else ""
    ring = sorted(mal)  # the K Malicious seeds after this one, cyclically (all others by default)
    after = [ring[(ring.index(seed) + j) % len(ring)] for j in range(1, len(ring))] if seed in mal else ring
    others = [mal[sd] for sd in after[:k_others]]
    vote = (("proxies", shared_vote) if shared_vote is not None else
            ("loo-mean", proxy_scores(MeanSuspect([proxy, *others]), marker, ctx.pool, target, cfg.query_gain))
            if k_others > 0 else None)
    for name, scores in [c for c in (("proxy", proxy_choice), vote, ("boundary", None)) if c is not None]:
        c = ctx.verify_config(queries="boundary" if scores is None else "proxy")
        r = run_verification(sus, marker, ctx.pool, ctx.pool_ids, s.target, c,
                             query_scores=boundary_scores if scores is None else scores)
        line = f"{kind:14s} {seed:<4d}  {name:9s}  {r.wsr:.3f}  {r.delta_p:6.3f}  {r.p_value:8.2g}{ba}"
        if scores is not None:
            rank = np.argsort(-np.array([scores[pos[e['image_id']]] for e in r.log]), kind="stable")
            rnd = [stop(r.log, np.random.default_rng(o).permutation(len(r.log))) for o in range(orders)]
            reached = sum(x <= len(r.log) for x in rnd)
            seq = f"{np.median(rnd):6.1f} ({reached:2d}/{orders})" if orders else "     –         "
            line += f"   {seq}          {stop(r.log, rank):4d}"
        print(line, flush=True)
