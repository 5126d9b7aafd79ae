"""Why is the benchmark's X-Mark release learned less than the shipped demo's? (lab)

Runs the benchmark's demo preset data and suspects (phantom 2,400 at 128 px, seed 0; suspects
smallcnn@64 with the benchmark's seeds; queries: non-target images of phantom seed 1; gain 2)
with a chosen marker:

    MARKER=shipped  models/surrogate.pt + models/generator.pt (what `make models` shipped)
    MARKER=bench    a generator trained as the benchmark does (2,000-image subset, seed = key)
    MARKER=full     a generator trained as demo_build does (all 2,400 images, seed 0)

    MARKER=shipped python docs/lab/learnability/cross_swap.py 100 101
    WORK_SIZE=none ...   mark at the image's own resolution (the demo) instead of 64 px
"""
import os
import sys
from pathlib import Path

import torch

from benchmarks.context import CLEAN, BenchContext, Log
from benchmarks.protocol import generator_data
from benchmarks.settings import preset
from xmark_core.generator.model import Marker, load_marker
from xmark_core.generator.train import GeneratorTrainConfig, compute_saliency, train_generator

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[3]
ws = os.environ.get("WORK_SIZE", "64")
s = preset("demo", work_size=None if ws == "none" else int(ws), queries="random", specificity=0.0)  # as when measured
ctx = BenchContext.create(s, Log())
kind = os.environ.get("MARKER", "shipped")
if kind == "shipped":
    marker = load_marker(ROOT / "models/surrogate.pt", ROOT / "models/generator.pt")
    marker.work_size = s.work_size
    surrogate = marker.surrogate
else:
    surrogate = ctx.train(CLEAN, seed=s.seed).model
    if kind == "bench":
        X, y, sal = generator_data(ctx, ctx.train(CLEAN, seed=s.seed))
        cfg = GeneratorTrainConfig(key=189, seed=189)
    else:
        X = ctx.train_images(CLEAN, s.input_size)
        y, sal = ctx.y, compute_saliency(surrogate, X, s.input_size)
        cfg = GeneratorTrainConfig(key=189, seed=0)
    res = train_generator(surrogate, X, y, s.target, cfg, saliency=sal, input_size=s.input_size)
    marker = Marker(surrogate=surrogate, generator=res.generator, input_size=s.input_size,
                    target=s.target, cam_method=cfg.cam_method, work_size=s.work_size)
ctx.set_selection(surrogate)
ctx.add_release("xmark", marker)
for seed in map(int, sys.argv[1:]):
    tr = ctx.train("xmark", seed=seed)
    for gain in map(float, os.environ.get("GAINS", "2").split(",")):
        r = ctx.verify(ctx.suspect(tr), marker, query_gain=gain)
        print(f"MARKER={kind} WORK_SIZE={ws} seed {seed} gain {gain}: acc {tr.accuracy:.3f} "
              f"dP {r.delta_p:.3f} p {r.p_value:.2g} WSR {r.wsr:.2f} claimed {bool(r.decision)}", flush=True)
