"""Why do some suspect seeds ignore a clean-label mark that others learn at ΔP 0.99? (lab; repo root)

On the hardened preset's release (rebuilt from a benchmark run's ``run.json`` with its kept
models, as ``hardened_extra.py`` does), seeds 101 and 106 of the eight 64 px Malicious smallcnn
suspects are not claimed (ΔP 0.10-0.24) while the other six reach ΔP 0.74-0.99. This measures,
for every kept suspect of SEEDS (no training):

* ``dP``: the ownership stream's mean P_w - P_b on the benchmark's proxy queries (gain 2);
* on the release's marked training images, as the suspect saw them (64 px): its target
  probability as released (mark + hardening), on the clean originals, and on the originals with
  the mark alone (no hardening); and how many of them the seed's validation split left in
  training;

and, with TRACE (seeds, comma-joined), trains those suspects again (the benchmark's recipe at one
thread) and prints the same per epoch: when does a learner pick the mark up, and what does a
non-learner do with the marked images meanwhile? ``SWAP=a:b`` also trains seed ``a``'s run with
seed ``b``'s initial weights (everything else seed ``a``'s: validation split, batch order,
augmentation, dropout), and the reverse (ONE_WAY=1: not the reverse): is it the initialisation or
the data stream?
EPOCHS=N trains the TRACE seeds for N epochs instead of the recipe's (the cosine schedule then
spans N).

ENSEMBLE=a,b,...: the release hardened against the run's clean resnet18 and clean smallcnn models
of the run's seed and of seeds a, b, ... (trained on the clean set and kept in the kept folder;
never a suspect's seed) instead of the run's seed alone, within the same floors; then suspects of
ENSEMBLE_SEEDS (default 101,106,100,102) trained on it (kept as ``xmark_ens..._smallcnn_...``) and
measured as above, with the benchmark's verification (the run's proxy queries: the proxies'
choice on the run's own release, the same owner mark).

    PYTHONPATH=docs/lab/learnability:. TRACE=100,101 SWAP=101:100 python docs/lab/learnability/nonlearners.py \
        results/full_hard_res128_seeds3 results/full_hard2_models
"""
import os
import sys

import numpy as np
import torch
from kept import run_settings

import xmark_core.nets.train as train_mod
from benchmarks import protocol
from benchmarks.context import CLEAN, BenchContext, Log, resize_stack
from benchmarks.protocol import XMARK
from xmark_core.data.base import stratified_split
from xmark_core.harden import HardenedMarker, HardenModel
from xmark_core.nets.train import predict_proba, train_classifier
from xmark_core.verify.protocol import _mark, choose_queries
from xmark_core.verify.suspects import TorchSuspect

torch.set_num_threads(1)
run_dir, kept = sys.argv[1], sys.argv[2]
s = run_settings(run_dir, malicious_seeds=1, baselines=[], resolution_seeds=1)
ctx = BenchContext.create(s, Log(), models_dir=kept if os.environ.get("ENSEMBLE") else None, reuse_dir=kept)
methods, _ = protocol.run(ctx)
owner = methods[XMARK].marker
rel = ctx.releases[XMARK]
size, t = s.input_size, s.target

cfg = ctx.verify_config()
order, _ = choose_queries(owner, ctx.pool, cfg, ctx.query_scores(XMARK))
queries = [np.asarray(ctx.pool[int(i)], np.float32) for i in order]
marked_queries = _mark(owner, queries, cfg.query_gain)
released = ctx.train_images(XMARK, size)[rel.index]
original = ctx.train_images(CLEAN, size)[rel.index]
mark_only = resize_stack(np.asarray(owner.mark(ctx.X[rel.index]), np.float32), size)[:, None]


def measures(model: torch.nn.Module, released: np.ndarray = released) -> dict[str, float]:
    sus = TorchSuspect(model, s.classes, size)
    p_w = sus.predict(marked_queries)
    out = {"dP": float((p_w[:, t] - sus.predict(queries)[:, t]).mean()), "wsr": float(np.mean(p_w.argmax(1) == t))}
    for name, x in (("released", released), ("original", original), ("mark_only", mark_only)):
        p = predict_proba(model, torch.from_numpy(np.ascontiguousarray(x)))
        out[f"P_{name}"] = float(p[:, t].mean())
        out[f"hit_{name}"] = float(np.mean(p.argmax(1) == t))
    return out


def line(tag: str, m: dict[str, float]) -> str:
    return (f"{tag:>26}: dP {m['dP']:.3f} WSR {m['wsr']:.2f} | marked train images P(t) released {m['P_released']:.3f} "
            f"({m['hit_released']:.0%}) original {m['P_original']:.3f} ({m['hit_original']:.0%}) "
            f"mark only {m['P_mark_only']:.3f} ({m['hit_mark_only']:.0%})")


def in_training(seed: int) -> int:
    vf = ctx._train_config((XMARK, s.arch, size, seed)).val_fraction  # the split train_classifier draws
    tr, _ = stratified_split(ctx.y, [1.0 - vf, vf], seed)
    return int(np.isin(rel.index, tr).sum())


print(f"release: {len(rel.index)} marked, PSNR {rel.psnr:.2f}; queries {len(queries)}", flush=True)
clean = ctx.train(CLEAN, seed=s.suspect_seed(0))
print(line(f"clean seed {clean.seed}", measures(clean.model)), flush=True)
for seed in [int(v) for v in os.environ.get("SEEDS", "100,101,102,103,104,105,106,107").split(",") if v]:
    tr = ctx.train(XMARK, seed=seed)
    print(line(f"seed {seed} ({in_training(seed)} in training)", measures(tr.model)), flush=True)

built: list[torch.nn.Module] = []
_build = train_mod.build_classifier


def traced(seed: int, init: int | None = None, epochs: int | None = None) -> None:
    """Train seed ``seed``'s suspect again, printing :func:`measures` after each epoch."""
    def build(*a, **k):
        m = _build(*a, **k)
        if init is not None:  # another seed's first weights; the global RNG left as seed's own run leaves it
            state = torch.get_rng_state()
            torch.manual_seed(init)
            m.load_state_dict(_build(*a, **k).state_dict())
            torch.set_rng_state(state)
        built.append(m)
        return m

    def progress(epoch: int, total: int) -> None:
        print(line(f"{tag} epoch {epoch:2d}", measures(built[-1])), flush=True)
        built[-1].train()

    key = (XMARK, s.arch, size, seed)
    cfg_t = ctx._train_config(key)
    if epochs:
        cfg_t.epochs = epochs
    tag = f"seed {seed}" + ("" if init is None else f" init {init}") + ("" if not epochs else f" {epochs} ep")
    train_mod.build_classifier = build
    try:
        res = train_classifier(ctx.train_images(XMARK, size), ctx.y, s.classes, cfg_t, progress=progress)
    finally:
        train_mod.build_classifier = _build
    same = ""
    if init is None and not epochs:
        keptw = ctx.train(XMARK, seed=seed).model.state_dict()
        same = f"; the kept weights {'repeated' if all(torch.equal(keptw[k], v) for k, v in res.model.state_dict().items()) else 'NOT repeated'}"
    r = ctx.verify(ctx.suspect(res.model, size), owner, XMARK)
    print(line(f"{tag} best epoch {res.best_epoch}", measures(res.model)) + same
          + f"; benchmark: dP {r.delta_p:.3f} p {r.p_value:.3g} claimed {r.decision}", flush=True)


for seed in [int(v) for v in os.environ.get("TRACE", "").split(",") if v]:
    traced(seed, epochs=int(os.environ.get("EPOCHS", 0)) or None)
if os.environ.get("SWAP"):
    a, b = (int(v) for v in os.environ["SWAP"].split(":"))
    traced(a, init=b)
    if not os.environ.get("ONE_WAY"):
        traced(b, init=a)

if os.environ.get("ENSEMBLE"):
    extra = [int(v) for v in os.environ["ENSEMBLE"].split(",")]
    base = methods[XMARK].release_marker
    models = [*base.models] + [HardenModel(tr.model, tr.input_size, f"{tr.arch} seed {tr.seed}")
                               for tr in (ctx.train(CLEAN, seed=seed) for seed in extra)]
    name = "xmark_ens" + "_".join(map(str, extra))
    ens = HardenedMarker(base.inner, models, base.config)
    ctx.add_release(name, ens)
    ctx.owners[name] = owner
    ctx.cache[f"proxy_scores:{name}"] = ctx.query_scores(XMARK)
    print(f"{name}: hardened against {[m.name for m in models]}: changed {ens.n_hardened} of {ens.n_marked}; "
          f"PSNR {ctx.releases[name].psnr:.2f} SSIM {ctx.releases[name].ssim:.4f}", flush=True)
    ens_released = ctx.train_images(name, size)[rel.index]
    print(line(f"clean seed {clean.seed}", measures(clean.model, ens_released)), flush=True)
    for seed in [int(v) for v in os.environ.get("ENSEMBLE_SEEDS", "101,106,100,102").split(",")]:
        tr = ctx.train(name, seed=seed)
        r = ctx.verify(ctx.suspect(tr), owner, name)
        print(line(f"{name} seed {seed}", measures(tr.model, ens_released))
              + f"; benchmark: dP {r.delta_p:.3f} p {r.p_value:.3g} claimed {r.decision} BA {tr.accuracy:.4f}",
              flush=True)
