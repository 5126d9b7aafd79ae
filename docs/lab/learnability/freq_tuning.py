"""How sharply a kept run's suspects are tuned to the carrier's frequency (lab; repo root).

A single-grating key is one orientation, and its rival zone (Ind-T) is the orientations a suspect
also answers. If suspects were as sharply tuned to the grating's *frequency*, a key could draw its
carrier's period too, and a rival would have to match both. This sweeps the owner's mark with the
carrier's ``carrier_cycles`` scaled by SCALES (the generator's residual unchanged: the carrier is
the mark's exact part, ``a * c``), at the key's orientation and, with TURNS, turned too, on the
benchmark's proxy queries (the run's first proxy chooses them, gain 2), and prints each suspect's
ΔP per scale and the scales at which the ownership test (margin tau) alone would claim.

    PYTHONPATH=. python docs/lab/learnability/freq_tuning.py results/full_att6_models results/full_att6_models_more
    SCALES=0.7,1,1.4 TURNS=0,15 PYTHONPATH=. python docs/lab/learnability/freq_tuning.py results/full_att6_models_gate05

The first folder holds the owner's surrogate, generator and proxy; Malicious suspects come from
every folder. One torch thread unless THREADS.
"""
import copy
import dataclasses
import os
import sys
from pathlib import Path

import numpy as np
import torch
from kept import kept_malicious, kept_owner, kept_suspect, proxy_query_images

from benchmarks.context import BenchContext, Log, model_file
from benchmarks.protocol import XMARK
from benchmarks.settings import preset
from xmark_core.verify import stats
from xmark_core.verify.protocol import _mark

torch.set_num_threads(int(os.environ.get("THREADS", 1)))
folders = [Path(a) for a in sys.argv[1:]]
s = preset(os.environ.get("PRESET", "full"))
SCALES = [float(x) for x in os.environ.get("SCALES", "0.5,0.6,0.7,0.8,0.9,1,1.1,1.25,1.4,1.6,1.8,2").split(",")]
TURNS = [float(x) for x in os.environ.get("TURNS", "0").split(",")]
ctx = BenchContext.create(s, Log(quiet=True))
owner = kept_owner(folders[0], s)
proxy = kept_suspect(folders[0] / model_file((XMARK, s.arch, s.input_size, s.proxy_seeds[0])), s.classes)
queries = proxy_query_images(owner, proxy, ctx)
gain = ctx.verify_config().query_gain
suspects = kept_malicious(folders, s)
p_b = [np.asarray(x.predict(queries))[:, s.target] for x in suspects]
base_cycles = owner.generator.carrier_cycles
print(f"{len(suspects)} suspects, {len(queries)} proxy queries, carrier {base_cycles:g} periods", flush=True)
for turn in TURNS:
    dp = np.zeros((len(suspects), len(SCALES)))
    claim = np.zeros_like(dp, dtype=bool)
    for j, f in enumerate(SCALES):
        gen = copy.deepcopy(owner.generator)
        gen.carrier_cycles = base_cycles * f
        m = dataclasses.replace(owner, generator=gen)
        marked = _mark(m.turned(turn) if turn else m, queries, gain)
        for i, x in enumerate(suspects):
            pb, pw = p_b[i], np.asarray(x.predict(marked))[:, s.target]
            dp[i, j] = float(np.mean(pw - pb))
            claim[i, j] = stats.paired_ttest(pw, pb, s.tau).p_value < s.alpha
    print(f"turn {turn:+g} deg: dP per carrier scale ({', '.join(f'{f:g}' for f in SCALES)}); * = ownership "
          f"test claims", flush=True)
    for i, x in enumerate(suspects):
        cells = " ".join(f"{v:6.3f}{'*' if c else ' '}" for v, c in zip(dp[i], claim[i]))
        print(f"  {x.name:28s} {cells}", flush=True)
    learned = dp[:, SCALES.index(1.0)] >= s.tau if 1.0 in SCALES else np.ones(len(suspects), bool)
    print(f"  mean over the {learned.sum()} that learned it: "
          + " ".join(f"{v:6.3f} " for v in dp[learned].mean(0)), flush=True)
    print(f"  claimed (of {learned.sum()}): " + " ".join(f"{v:6d} " for v in claim[learned].sum(0)), flush=True)
