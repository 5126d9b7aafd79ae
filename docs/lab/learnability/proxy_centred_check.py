"""The key check centred where the owner's proxies answer most, on a benchmark run's kept models
(lab; repo root).

calibrated_check.py (XI) centred the check on a *leave-one-out suspect's* peak, on boundary
queries of lab suspects. Here the owner's real proxies (the run's ``proxy_seeds``, and more
proxies trained with seeds 8, 9 where DIR has them: kept_suspects.py PROXY_SEEDS=7,8,9 writes
them) choose the queries, as the benchmark does, and then find the orientation offset c at
which their mean answer peaks. The owner then verifies with its mark turned by c and the check
at c -/+ d. A rival key is claimed at the same offsets whatever the centre, so the zone's size
per d is the Ind-T side; the owners claimed at 0 and at c are the power side.

Sweeps every suspect, clean model and proxy over OFFS (default every 5 degrees within +/-60) on
the proxy-chosen queries (gain 2, as the benchmark), saves the per-query (P_b, P_w) to SAVE
(default /tmp/exp/kept_sweep.npz, keys ``name|kind|offset``; reused when it exists), and
prints per d: each suspect's claimed zone, whether it is claimed at the key and at c. ATTACKS=
finetune,fineprune adds the benchmark's model attacks on each Malicious suspect (as
kept_suspects.py rebuilds them). One torch thread unless THREADS.

    PYTHONPATH=. python docs/lab/learnability/proxy_centred_check.py results/full_att6_models
"""
import os
import sys
from pathlib import Path

import numpy as np
import torch
from check_replay import claim, claimed_zone
from kept import benchmark_attack, kept_owner, kept_seeds, kept_suspect, proxy_query_images

from benchmarks.context import BenchContext, Log
from benchmarks.settings import preset
from xmark_core.verify.protocol import _mark, boundary_candidates
from xmark_core.verify.suspects import TorchSuspect

torch.set_num_threads(int(os.environ.get("THREADS", 1)))
folder = Path(sys.argv[1])
s = preset(os.environ.get("PRESET", "full"))
OFFS = [int(x) for x in os.environ.get("OFFS", ",".join(str(o) for o in range(-60, 61, 5))).split(",")]
SAVE = Path(os.environ.get("SAVE", "/tmp/exp/kept_sweep.npz"))
ALPHA, DS = s.alpha, (15, 20, 25, 30)
ctx = BenchContext.create(s, Log(quiet=True))
arch, size = s.arch, s.input_size
owner = kept_owner(folder, s)
target = s.classes[s.target]
cfg = ctx.verify_config()


def suspect(path: Path) -> TorchSuspect:
    return kept_suspect(path, s.classes)


def seeds(train_set: str) -> list[int]:
    return kept_seeds(folder, train_set, arch, size)


proxy_seeds = [sd for sd in (*s.proxy_seeds, 8, 9) if (folder / f"xmark_{arch}_{size}px_seed{sd}.pt").exists()]
proxies = {f"proxy{sd}": suspect(folder / f"xmark_{arch}_{size}px_seed{sd}.pt") for sd in proxy_seeds}
models = {f"mal{sd}": suspect(folder / f"xmark_{arch}_{size}px_seed{sd}.pt") for sd in seeds("xmark")
          if sd not in proxy_seeds}
for a in [a for a in os.environ.get("ATTACKS", "").split(",") if a]:
    for name in [n for n in models if n.startswith("mal") and "+" not in n]:
        models[f"{name}+{a}"] = benchmark_attack(models[name], a, ctx)
models |= {f"clean{sd}": suspect(folder / f"clean_{arch}_{size}px_seed{sd}.pt") for sd in seeds("clean")
           if sd != s.seed}
models |= proxies

# The benchmark's query choice: its first proxy's rise on the candidates.
queries = proxy_query_images(owner, proxies[f"proxy{s.proxy_seeds[0]}"], ctx)
print(f"{folder}: {len(queries)} queries of {len(boundary_candidates(len(ctx.pool), cfg.m, cfg.seed))} candidates; "
      f"models {', '.join(models)}", flush=True)

saved = dict(np.load(SAVE)) if SAVE.exists() else {}
p_b = {name: np.asarray(sus.predict(queries))[:, s.target] for name, sus in models.items()}
for off in OFFS:  # each offset's marks once, for every model
    todo = [name for name in models if f"{name}|sweep|{off}" not in saved]
    if not todo:
        continue
    marked = _mark(owner.turned(off) if off else owner, queries, cfg.query_gain)
    for name in todo:
        saved[f"{name}|sweep|{off}"] = np.stack([p_b[name], np.asarray(models[name].predict(marked))[:, s.target]], 1)
    SAVE.parent.mkdir(parents=True, exist_ok=True)
    np.savez(SAVE, **saved)
    print(f"swept {off:+d}", flush=True)

sweep = {name: {off: saved[f"{name}|sweep|{off}"] for off in OFFS} for name in models}
dp = {n: {o: float(np.mean(v[:, 1] - v[:, 0])) for o, v in a.items()} for n, a in sweep.items()}
inner = [o for o in OFFS if abs(o) <= 45]
centres = {p: max(inner, key=dp[p].get) for p in proxies}
centres["mean"] = max(inner, key=lambda o: np.mean([dp[p][o] for p in proxies]))
print("proxy peaks: " + ", ".join(f"{p} {c:+d}" for p, c in centres.items()))
for n in models:
    peak = max(inner, key=dp[n].get)
    print(f"  {n:20s} peak {peak:+3d} (dP {dp[n][peak]:.3f}); dP at 0 {dp[n][0]:.3f}, at the mean centre "
          f"{dp[n][centres['mean']]:.3f}")
judged = [n for n in models if n not in proxies]
for d in DS:
    print(f"check +/-{d}:")
    for n in judged:
        zone = sorted(claimed_zone(sweep[n], d, ALPHA))
        at = {c: claim(sweep[n], c, d) for c in {0, *centres.values()}}
        cells = "  ".join(f"at {c:+d}: p {max(ps):.2g}" if ps else f"at {c:+d}: off the sweep" for c, ps in sorted(at.items()))
        print(f"  {n:20s} zone {5 * len(zone):3d} deg ({5 * len(zone) / 180:4.0%})  {cells}")
    zones = [5 * len(claimed_zone(sweep[n], d, ALPHA)) for n in judged if n.startswith("mal") and "+" not in n]
    for c in sorted({0, *centres.values()}):
        won = [n for n in judged if n.startswith("mal") and (ps := claim(sweep[n], c, d)) and max(ps) < ALPHA]
        print(f"    centre {c:+d}: claimed {', '.join(won) or 'none'}")
    print(f"    Malicious zone mean {np.mean(zones):.1f} deg ({np.mean(zones) / 180:.1%} of random keys)", flush=True)
