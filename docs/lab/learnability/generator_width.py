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
"""
import os
import tempfile
import time
from pathlib import Path

import torch

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
base = int(os.environ.get("BASE", 8))
seeds = [int(s) for s in os.environ.get("SEEDS", "1,11,12").split(",")]
sur = load_checkpoint(R / "surrogate.pt").model
gen_file = Path(f"/tmp/exp/gens/base{base}.pt")
if not gen_file.exists():
    X, y = to_arrays(PhantomDataset(2400, size=128, seed=0), 64)
    gen_file.parent.mkdir(parents=True, exist_ok=True)
    t = time.time()
    save_generator(gen_file, train_generator(sur, X, y, target, GeneratorTrainConfig(key=189, seed=0, base=base)))
    print(f"base {base}: generator trained in {time.time() - t:.0f} s", flush=True)
marker = Marker(surrogate=sur, generator=load_checkpoint(gen_file).model, input_size=64, target=target)
x = torch.rand(8, 1, 128, 128)
with torch.inference_mode():
    marker.generator(x, x)
    t = time.perf_counter()
    marker.generator(x, x)
print(f"base {base}: {(time.perf_counter() - t) / 8 * 1000:.1f} ms per 128 px image (one thread)", flush=True)
images, ids = query_images(target, 100, 128, 9001, 400)
scores = marker.target_scores(images)
cache = Path("/tmp/exp/suspects_width")
cache.mkdir(parents=True, exist_ok=True)
release = None
for seed in seeds:
    f = cache / f"base{base}_{seed}.ckpt"
    if not f.exists():
        if release is None:
            with tempfile.TemporaryDirectory() as tmp:
                res = embed_release(PhantomDataset(2400, size=128, seed=0), marker, target, Path(tmp) / "e",
                                    rho=0.1, seed=0)
                release = to_arrays(open_dataset(str(Path(tmp) / "e" / "release")), 64)
            print(f"base {base}: {res.n_marked} marked, PSNR {res.psnr_mean:.2f} dB, SSIM {res.ssim_mean:.4f}",
                  flush=True)
        net = train_classifier(*release, classes, TrainConfig(input_size=64, epochs=15, seed=seed)).model
        save_checkpoint(f, net, kind="classifier", arch="smallcnn", arch_kwargs=net.arch_kwargs,
                        classes=classes, input_size=64, config={"seed": seed, "base": base})
    sus = TorchSuspect(load_checkpoint(f).model.eval(), classes, 64)
    r = run_verification(sus, marker, images, ids, target, VerifyConfig(seed=9001), query_scores=scores)
    print(f"base {base} seed {seed}: defaults dP {r.delta_p:.3f} p {r.p_value:.2g} WSR {r.wsr:.2f} "
          f"claimed {bool(r.decision)}", flush=True)
