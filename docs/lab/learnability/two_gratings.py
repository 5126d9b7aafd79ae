"""Is a two-grating key learned, and is it more specific than one grating? (lab; repo root)

The single-grating key has room for few owners: a suspect answers a grating within ~15-30
degrees of the one it learned, so a random rival key is claimed ~10 % of the time (README,
Architecture 5). A richer key is the lever named there. This tries the simplest: the carrier
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
import tempfile
from pathlib import Path

import numpy as np
import torch

import xmark_core.generator.model as gm
from xmark_core.app_support.demo import query_images
from xmark_core.data.base import to_arrays
from xmark_core.data.open import open_dataset
from xmark_core.data.phantom import FINDINGS, PhantomDataset
from xmark_core.embed import embed_release
from xmark_core.generator.model import Marker
from xmark_core.generator.train import GeneratorTrainConfig, save_generator, train_generator
from xmark_core.nets.checkpoint import load_checkpoint, save_checkpoint
from xmark_core.nets.train import TrainConfig, train_classifier
from xmark_core.verify.protocol import VerifyConfig, run_verification
from xmark_core.verify.suspects import TorchSuspect

torch.set_num_threads(int(os.environ.get("NT", 1)))
R = Path("models")
classes, target = list(FINDINGS), list(FINDINGS).index("Cardiomegaly")
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
sur = load_checkpoint(R / "surrogate.pt").model
tag = f"sep{sep_deg:g}" + ("" if norm == "half" else f"_{norm}")
gen_file = Path(f"/tmp/exp/gens/two_{tag}.pt")
if not gen_file.exists():
    X, y = to_arrays(PhantomDataset(2400, size=128, seed=0), 64)
    gen_file.parent.mkdir(parents=True, exist_ok=True)
    save_generator(gen_file, train_generator(sur, X, y, target, GeneratorTrainConfig(key=189, seed=0)))
marker = Marker(surrogate=sur, generator=load_checkpoint(gen_file).model, input_size=64, target=target)
images, ids = query_images(target, 100, 128, 9001, 400)
scores = marker.target_scores(images)

cache = Path("/tmp/exp/suspects_two")
cache.mkdir(parents=True, exist_ok=True)
release = None
for seed in seeds:
    f = cache / f"{tag}_{seed}.ckpt"
    if not f.exists():
        if release is None:
            with tempfile.TemporaryDirectory() as tmp:
                res = embed_release(PhantomDataset(2400, size=128, seed=0), marker, target, Path(tmp) / "e",
                                    rho=0.1, seed=0)
                release = to_arrays(open_dataset(str(Path(tmp) / "e" / "release")), 64)
            print(f"two gratings, {tag}: {res.n_marked} marked, PSNR {res.psnr_mean:.2f} dB, "
                  f"SSIM {res.ssim_mean:.4f}", flush=True)
        net = train_classifier(*release, classes, TrainConfig(input_size=64, epochs=15, seed=seed)).model
        save_checkpoint(f, net, kind="classifier", arch="smallcnn", arch_kwargs=net.arch_kwargs,
                        classes=classes, input_size=64, config={"seed": seed, "sep": sep_deg, "norm": norm})
    sus = TorchSuspect(load_checkpoint(f).model.eval(), classes, 64)
    r = run_verification(sus, marker, images, ids, target, VerifyConfig(seed=9001), query_scores=scores)
    print(f"{tag} seed {seed}: defaults dP {r.delta_p:.3f} p {r.p_value:.2g} WSR {r.wsr:.2f} "
          f"claimed {bool(r.decision)}", flush=True)
    plain = VerifyConfig(seed=9001, specificity=0.0)
    turns = {}
    for off in (-90, -60, -45, -30, -20, -10, 10, 20, 30, 45, 60):
        turns[off] = run_verification(sus, marker.turned(off), images, ids, target, plain, query_scores=scores).delta_p
    print("  whole pattern turned: " + " ".join(f"{k:+d}:{v:.3f}" for k, v in turns.items()), flush=True)
    for j in (0, 1):
        active[:] = [j]
        d = run_verification(sus, marker, images, ids, target, plain, query_scores=scores).delta_p
        print(f"  grating {j} only: dP {d:.3f}", flush=True)
    active[:] = [0, 1]
