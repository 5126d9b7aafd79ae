"""Is a narrower generator's release learned as well? (lab; repo root)

The speed target (embedding at 512 px within 3x the I/O floor) is missed because the
generator's U-Net (base 16: ~0.56 GMAC per 128 px image) dominates; its convolutions already
run near one core's peak, so the next factor needs fewer MACs. Base 8 is ~4x fewer. The
carrier is 0.75 of the budget and exact, so the net shapes only the rest: does its width
matter to what a suspect learns? This trains the demo's generator at BASE (shipped surrogate,
key 189, the library's recipe otherwise), releases the demo set (2400 phantoms at 128 px,
rho 0.1), trains 64 px suspects (SEEDS; cached in /tmp/exp/suspects_width) and verifies each
with the defaults (boundary queries, the +/-25 degree check). Base 16 reference, same seeds and
defaults (attack_sample.log): dP 0.505, 0.785, 0.572, all claimed.

    BASE=8 SEEDS=1,11,12 PYTHONPATH=. python docs/lab/learnability/generator_width.py
    BASE=8 AMP=0.9 SEEDS=1,11,12,13,14 PYTHONPATH=. python docs/lab/learnability/generator_width.py

AMP: the carrier's share of the per-pixel budget (``carrier_amp``; default the library's 0.75);
EPS: the budget itself (``eps``; default 0.03).
"""
import os
import time
from pathlib import Path

import torch
from demo_release import CLASSES, TARGET, demo_generator, release_suspects

from xmark_core.app_support.demo import query_images
from xmark_core.nets.checkpoint import load_checkpoint
from xmark_core.verify.protocol import VerifyConfig, run_verification
from xmark_core.verify.suspects import TorchSuspect

torch.set_num_threads(int(os.environ.get("NT", 1)))
base = int(os.environ.get("BASE", 8))
seeds = [int(s) for s in os.environ.get("SEEDS", "1,11,12").split(",")]
amp = os.environ.get("AMP")  # the carrier's share of the budget (library default 0.75)
eps = os.environ.get("EPS")  # the per-pixel budget (library default 0.03)
overrides = {"base": base, **({"carrier_amp": float(amp)} if amp else {}), **({"eps": float(eps)} if eps else {})}
tag = f"base{base}" + (f"_amp{amp}" if amp else "") + (f"_eps{eps}" if eps else "")
t = time.time()
marker = demo_generator(Path(f"/tmp/exp/gens/{tag}.pt"), **overrides)
print(f"{tag}: generator ready in {time.time() - t:.0f} s", flush=True)
x = torch.rand(8, 1, 128, 128)
with torch.inference_mode():
    marker.generator(x, x)
    t = time.perf_counter()
    marker.generator(x, x)
print(f"base {base}: {(time.perf_counter() - t) / 8 * 1000:.1f} ms per 128 px image (one thread)", flush=True)
images, ids = query_images(TARGET, 100, 128, 9001, 400)
scores = marker.target_scores(images)
for seed, f in release_suspects(marker, seeds, Path("/tmp/exp/suspects_width"), tag, overrides):
    sus = TorchSuspect(load_checkpoint(f).model.eval(), CLASSES, 64)
    r = run_verification(sus, marker, images, ids, TARGET, VerifyConfig(seed=9001), query_scores=scores)
    print(f"{tag} seed {seed}: defaults dP {r.delta_p:.3f} p {r.p_value:.2g} WSR {r.wsr:.2f} "
          f"claimed {bool(r.decision)}", flush=True)
