"""Must the mark be computed at the image's own resolution? (lab; repo root)

Marking at a fixed working side and upsampling the perturbation (``Marker.work_size``)
makes embedding cost constant per image -- the lever for the speed target at 512 px -- but
at the demo's 128 px source a release marked at 64 px was learned less (README). Is it the
working side relative to the *suspect's* input (64 px here) or to the image that matters?
This releases the demo's phantom set (2400 images, seed 0, rho 0.1) at SIZE px with the shipped
marker at each working side in WORKS ("none" = native), trains a 64 px suspect per seed in
SEEDS (cached in /tmp/exp/suspects_ws; INPUT=128 trains them at 128 px instead, i.e. at 1/2 of a
256 px source; ARCH=resnet18 another architecture) and verifies it with the library's defaults (boundary
queries, the +/-25 degree check), the queries marked like the release, pool 400 at SIZE px.
ARCH_KW: JSON keyword arguments of the architecture (resnet18's stem without max-pool below).

    SIZE=256 WORKS=none,128,64 SEEDS=1,11,12 PYTHONPATH=. python docs/lab/learnability/work_size.py
    SIZE=256 WORKS=none INPUT=128 SEEDS=1 ...
    SIZE=128 WORKS=none ARCH=resnet18 SEEDS=1 ...   # another architecture on the demo's own release
    SIZE=128 WORKS=none ARCH=resnet18 ARCH_KW='{"maxpool": false}' SEEDS=1 ...   # its stem at stride 2
    SIZE=256 WORKS=none ARCH=densenet121 SEEDS=1 ...   # the issue's other example (~30 min)
    SIZE=256 WORKS=none GEN=/tmp/exp/gens/base8.pt SEEDS=1,11,12 ...   # a base-8 generator (generator_width.py)
"""
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from xmark_core.app_support.demo import query_images
from xmark_core.data.base import to_arrays
from xmark_core.data.open import open_dataset
from xmark_core.data.phantom import FINDINGS, PhantomDataset
from xmark_core.embed import embed_release
from xmark_core.generator.model import load_marker
from xmark_core.nets.checkpoint import load_checkpoint, save_checkpoint
from xmark_core.nets.train import TrainConfig, train_classifier
from xmark_core.verify.protocol import VerifyConfig, run_verification
from xmark_core.verify.suspects import TorchSuspect

torch.set_num_threads(int(os.environ.get("NT", 1)))
R = Path("models")
CACHE = Path("/tmp/exp/suspects_ws")
CACHE.mkdir(parents=True, exist_ok=True)
classes, target = list(FINDINGS), list(FINDINGS).index("Cardiomegaly")
size = int(os.environ.get("SIZE", 256))
side = int(os.environ.get("INPUT", 64))  # the suspects' input size
arch = os.environ.get("ARCH", "smallcnn")
arch_kw = json.loads(os.environ.get("ARCH_KW", "{}"))  # e.g. '{"maxpool": false}' for resnet18
seeds = [int(s) for s in os.environ.get("SEEDS", "1,11,12").split(",")]
gen_file = Path(os.environ.get("GEN", R / "generator.pt"))  # another generator (generator_width.py's)
images, ids = query_images(target, 100, size, 9001, 400)  # the non-target images of the phantom set
scores = load_marker(R / "surrogate.pt", R / "generator.pt").target_scores(images)  # the surrogate's: any work size

for work in os.environ.get("WORKS", "none,128,64").split(","):
    marker = load_marker(R / "surrogate.pt", gen_file)
    marker.work_size = None if work == "none" else int(work)
    release = None
    for seed in seeds:
        tag = (("" if side == 64 else f"_in{side}") + ("" if "GEN" not in os.environ else f"_{gen_file.stem}") + ("" if arch == "smallcnn" else f"_{arch}")
               + "".join(f"_{k}{v}" for k, v in sorted(arch_kw.items())))
        f = CACHE / f"{size}_{work}{tag}_{seed}.ckpt"
        if not f.exists():
            if release is None:
                with tempfile.TemporaryDirectory() as tmp:
                    res = embed_release(PhantomDataset(2400, size=size, seed=0), marker, target, Path(tmp) / "e",
                                        rho=0.1, seed=0)
                    release = to_arrays(open_dataset(str(Path(tmp) / "e" / "release")), side)
                print(f"{size} px, work {work}: {res.n_marked} marked, PSNR {res.psnr_mean:.2f} dB, "
                      f"SSIM {res.ssim_mean:.4f}", flush=True)
            net = train_classifier(*release, classes, TrainConfig(arch=arch, arch_kwargs=arch_kw, input_size=side, epochs=15,
                                                                 seed=seed)).model
            save_checkpoint(f, net, kind="classifier", arch=arch, arch_kwargs=getattr(net, "arch_kwargs", {}),
                            classes=classes, input_size=side, config={"seed": seed, "work": work, "size": size})
        net = load_checkpoint(f).model.eval()
        r = run_verification(TorchSuspect(net, classes, side), marker, images, ids, target, VerifyConfig(seed=9001),
                             query_scores=scores)
        turned = {k: round(float(np.mean([q[f"p_{k}"] - q["p_b"] for q in r.log])), 3) for k in ("minus", "plus")}
        print(f"{size} px, work {work}, suspect {arch} {side} px, seed {seed}: dP {r.delta_p:.3f} p {r.p_value:.2g} WSR {r.wsr:.2f} "
              f"claimed {bool(r.decision)}; turned -/+: dP {turned}", flush=True)
