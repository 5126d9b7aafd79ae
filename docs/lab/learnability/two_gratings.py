"""Is a two-grating key learned, and is it more specific than one grating? (lab; repo root)

The single-grating key has room for few owners: a suspect answers a grating within ~15-30
degrees of the one it learned, so a random rival key is claimed ~10 % of the time (docs/architecture.md,
5). A richer key is the lever named there. This tries the simplest: the carrier
is the mean of two unit gratings, the key's orientation (40 degrees for key 189) and one SEP
degrees on (SEP=120: 160 degrees, a diagonal; gratings near the image axes are learned less),
each with its own per-image phase, so each takes half the carrier's amplitude. It patches the library's
``key_carrier`` for this process only, trains the demo's generator with it (shipped surrogate,
key 189, the library's recipe), releases the demo set (2400 phantoms at 128 px, rho 0.1),
trains 64 px suspects (seeds SEEDS; cached in /tmp/exp/suspects_two) and reports per suspect:
the defaults' verdict (boundary queries, the +/-25 degree check), dP with the whole pattern
turned (what a rival key with the same separation would carry), and dP with one grating only.
Single-grating reference, same seeds and defaults (attack_sample.log): 0.505, 0.785, 0.572.

    SEP=120 SEEDS=1,11,12 PYTHONPATH=. python docs/lab/learnability/two_gratings.py
    NORM=power SEP=120 ...   # the same carrier power as one grating (the first run's is half)
"""
import os
from pathlib import Path

import numpy as np
import torch
from demo_release import CLASSES, TARGET, demo_generator, release_suspects

import xmark_core.generator.model as gm
from xmark_core.app_support.demo import query_images
from xmark_core.nets.checkpoint import load_checkpoint
from xmark_core.verify.protocol import VerifyConfig, run_verification
from xmark_core.verify.suspects import TorchSuspect

torch.set_num_threads(int(os.environ.get("NT", 1)))
sep_deg = float(os.environ.get("SEP", 120))  # 120: the second grating at 160 degrees (the runs logged)
norm = os.environ.get("NORM", "half")  # "half": each grating at half amplitude (peak 1, half
# the power of one grating); "power": each at 1/sqrt(2) (one grating's power), clipped to +/-1
seeds = [int(s) for s in os.environ.get("SEEDS", "1,11,12").split(",")]
single = gm.key_carrier
active = [0, 1]  # which of the two gratings a mark carries (queries may carry one)


def two_carrier(key, cycles, h, w, phase, turn=0.0):
    parts = [single(key, cycles, h, w, phase + 2.39996 * j, turn + np.radians(sep_deg) * j) for j in active]
    if norm == "power":
        return (sum(parts) / np.sqrt(2.0)).clamp(-1.0, 1.0)
    return sum(parts) / 2.0


gm.key_carrier = two_carrier
tag = f"sep{sep_deg:g}" + ("" if norm == "half" else f"_{norm}")
marker = demo_generator(Path(f"/tmp/exp/gens/two_{tag}.pt"))
images, ids = query_images(TARGET, 100, 128, 9001, 400)
scores = marker.target_scores(images)

for seed, f in release_suspects(marker, seeds, Path("/tmp/exp/suspects_two"), tag, {"sep": sep_deg, "norm": norm}):
    sus = TorchSuspect(load_checkpoint(f).model.eval(), CLASSES, 64)
    r = run_verification(sus, marker, images, ids, TARGET, VerifyConfig(seed=9001), query_scores=scores)
    print(f"{tag} seed {seed}: defaults dP {r.delta_p:.3f} p {r.p_value:.2g} WSR {r.wsr:.2f} "
          f"claimed {bool(r.decision)}", flush=True)
    plain = VerifyConfig(seed=9001, specificity=0.0)
    turns = {}
    for off in (-90, -60, -45, -30, -20, -10, 10, 20, 30, 45, 60):
        turns[off] = run_verification(sus, marker.turned(off), images, ids, TARGET, plain, query_scores=scores).delta_p
    print("  whole pattern turned: " + " ".join(f"{k:+d}:{v:.3f}" for k, v in turns.items()), flush=True)
    for j in (0, 1):
        active[:] = [j]
        d = run_verification(sus, marker, images, ids, TARGET, plain, query_scores=scores).delta_p
        print(f"  grating {j} only: dP {d:.3f}", flush=True)
    active[:] = [0, 1]
