"""Does a coarser key carrier carry the mark to suspects trained at 1/4 resolution? (lab; repo root)

The benchmark's 32 px suspects (1/4 of the demo's 128 px release) did not learn the mark
(ΔP 0.016) while the 64 px ones did (0.447). The carrier has 10.7 periods across the image:
12 px at 128, 6 px at 64, **3 px at 32** -- next to the Nyquist limit of a 32 px input. This
trains the demo's generator (shipped surrogate, key 189, the library's recipe) with another
``carrier_cycles``, re-embeds the demo release natively, trains Malicious suspects at 64 and
32 px and verifies each with the defaults (boundary queries, check ±25°) and with random
queries without the check. ``CYCLES=shipped`` uses the shipped generator (10.7 periods).

    CYCLES=5.3 SEEDS=1,11 PYTHONPATH=. python docs/lab/learnability/carrier_freq.py
    CYCLES=shipped SIZES=32 SAVE_DIR=/tmp/exp/suspects32 ...   # keep the suspects for a sweep:
    SUSPECTS=/tmp/exp/suspects32 OFFS=... PYTHONPATH=. python docs/lab/learnability/orientation_tuning.py
"""
import os
import tempfile
from pathlib import Path

import torch

from xmark_core.data.base import to_arrays
from xmark_core.data.open import open_dataset
from xmark_core.data.phantom import FINDINGS, PhantomDataset
from xmark_core.embed import embed_release
from xmark_core.generator.model import load_marker
from xmark_core.generator.train import GeneratorTrainConfig, save_generator, train_generator
from xmark_core.hashing import sha256_file
from xmark_core.nets.checkpoint import load_checkpoint, save_checkpoint
from xmark_core.nets.train import TrainConfig, evaluate, train_classifier
from xmark_core.verify.protocol import VerifyConfig, run_verification
from xmark_core.verify.suspects import TorchSuspect

torch.set_num_threads(1)
R = Path("models")
classes, target = list(FINDINGS), list(FINDINGS).index("Cardiomegaly")
cycles = os.environ.get("CYCLES", "5.3")
seeds = [int(s) for s in os.environ.get("SEEDS", "1,11").split(",")]
sizes = [int(s) for s in os.environ.get("SIZES", "64,32").split(",")]
ds = PhantomDataset(2400, size=128, seed=0)
test = PhantomDataset(400, size=128, seed=9001)
pool = [i for i in range(len(test)) if int(test.labels()[i]) != target]
images, ids = [test[i].image for i in pool], [test[i].image_id for i in pool]

with tempfile.TemporaryDirectory() as tmp:
    gen_path = R / "generator.pt"
    if cycles != "shipped":
        X, y = to_arrays(ds, 64)
        surrogate = load_checkpoint(R / "surrogate.pt").model
        res = train_generator(surrogate, X, y, target,
                              GeneratorTrainConfig(seed=0, key=189, carrier_cycles=float(cycles)))
        gen_path = Path(tmp) / "generator.pt"
        save_generator(gen_path, res, surrogate_sha256=sha256_file(R / "surrogate.pt"), classes=classes)
    marker = load_marker(R / "surrogate.pt", gen_path)
    emb = embed_release(ds, marker, target, Path(tmp) / "embed", rho=0.1, seed=0)
    print(f"carrier cycles {cycles}: release PSNR {emb.psnr_mean:.2f} dB, SSIM {emb.ssim_mean:.4f}", flush=True)
    release = open_dataset(str(Path(tmp) / "embed" / "release"))
    for size in sizes:
        Xr, yr = to_arrays(release, size)
        Xt, yt = to_arrays(test, size)
        for seed in seeds:
            net = train_classifier(Xr, yr, classes, TrainConfig(input_size=size, epochs=15, seed=seed)).model.eval()
            if os.environ.get("SAVE_DIR"):  # for orientation_tuning.py (SUSPECTS=SAVE_DIR)
                Path(os.environ["SAVE_DIR"]).mkdir(parents=True, exist_ok=True)
                save_checkpoint(Path(os.environ["SAVE_DIR"]) / f"c{cycles}_{size}px_{seed}.ckpt", net,
                                kind="classifier", arch="smallcnn", arch_kwargs=net.arch_kwargs,
                                classes=classes, input_size=size, config={"seed": seed, "cycles": cycles})
            acc = evaluate(net, Xt, yt).accuracy
            for q, spec in (("boundary", 25.0), ("random", 0.0)):
                r = run_verification(TorchSuspect(net, classes, size), marker, images, ids, target,
                                     VerifyConfig(m=100, seed=9001, queries=q, specificity=spec))
                sides = r.details.get("specificity") or {}
                check = " ".join(f"{k} dP {sides[k]['delta_p']:.3f} p {sides[k]['p_value']:.2g}"
                                 for k in ("minus", "plus") if k in sides)
                main_p = sides.get("main", {}).get("p_value", r.p_value)
                print(f"cycles {cycles} suspect {size} px seed {seed} acc {acc:.3f} {q}/±{spec:g}: "
                      f"dP {r.delta_p:.3f} p {r.p_value:.2g} (main {main_p:.2g}; {check or 'no check'}) "
                      f"WSR {r.wsr:.2f} claimed {bool(r.decision)}", flush=True)
