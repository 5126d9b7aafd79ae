"""Do "negative" marks on non-target images sharpen a suspect's orientation tuning? (lab; repo root)

Ind-T fails when a rival key's carrier lies within ~12 degrees of the owner's: a suspect answers
a grating over a broad band of orientations, so the rival's own mark is answered about as well
as the owner's (docs/architecture.md, 5). This tries to narrow the band from the release side:
besides the usual clean-label release (rho 0.1 of the target class, the owner's mark), NEG_N
*non-target* images carry the owner's mark turned by +/-NEG degrees (a magnitude from NEG and a
sign drawn per image; labels untouched, so the release stays clean-label). A model trained on
it sees the owner's grating with the target class and near-miss gratings with the other
classes; if it can tell them apart it should answer a narrower band.

The demo set (2400 phantoms at 128 px), the shipped marker (key 189), 64 px suspects of seeds
SEEDS (15 epochs, cached in /tmp/exp/suspects_neg); then each suspect's boundary-query answer
(gain 2, the main test only) with the owner's carrier turned by every offset in OFFS, saved for
peak_test.py, and the library's defaults' verdict (boundary queries, +/-25 degree check).
NEG_N=0 is the plain release (the reference).

    NEG_N=0 SEEDS=1,11,12 PYTHONPATH=. python docs/lab/learnability/negative_marks.py
    NEG=15,25 NEG_N=60 SEEDS=1,11,12 PYTHONPATH=. python docs/lab/learnability/negative_marks.py
    python docs/lab/learnability/peak_test.py /tmp/exp/neg_15,25_60.npz
"""
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from demo_release import CLASSES, TARGET, cached_suspects, turned_release_image

from benchmarks.context import MemoMarker
from xmark_core.app_support.demo import query_images
from xmark_core.data.base import to_arrays
from xmark_core.data.open import open_dataset
from xmark_core.data.phantom import PhantomDataset
from xmark_core.embed import embed_release
from xmark_core.generator.model import load_marker
from xmark_core.nets.train import evaluate
from xmark_core.verify.protocol import VerifyConfig, run_verification
from xmark_core.verify.suspects import TorchSuspect

torch.set_num_threads(int(os.environ.get("NT", 1)))
negs = [float(a) for a in os.environ.get("NEG", "15,25").split(",")]
n_neg = int(os.environ.get("NEG_N", 60))
seeds = [int(s) for s in os.environ.get("SEEDS", "1,11,12").split(",")]
offsets = [float(o) for o in os.environ.get("OFFS", ",".join(str(o) for o in range(-40, 45, 5))).split(",")]
tag = f"neg_{','.join(f'{a:g}' for a in negs)}_{n_neg}" if n_neg else "neg_none"
cache = Path("/tmp/exp/suspects_neg")

marker = load_marker(Path("models/surrogate.pt"), Path("models/generator.pt"))


def release_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The demo release at 64 px, with NEG_N non-target images carrying a turned mark."""
    ds = PhantomDataset(2400, size=128, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        res = embed_release(ds, marker, TARGET, Path(tmp) / "e", rho=0.1, seed=0)
        X, y = to_arrays(open_dataset(str(Path(tmp) / "e" / "release")), 64)
    print(f"{tag}: {res.n_marked} marked, PSNR {res.psnr_mean:.2f} dB", flush=True)
    rng = np.random.default_rng(5)
    chosen = rng.choice(np.flatnonzero(y != TARGET), n_neg, replace=False)
    turns = rng.choice(negs, n_neg) * rng.choice([-1.0, 1.0], n_neg)
    psnr = []
    for i, d in zip(chosen, turns):
        X[i, 0], db = turned_release_image(marker, ds[int(i)].image, float(d))
        psnr.append(db)
    if n_neg:
        print(f"{tag}: {n_neg} negatives, PSNR {np.mean(psnr):.2f} dB, turns {sorted(set(turns.tolist()))}", flush=True)
    return X, y


models = cached_suspects(seeds, cache, tag, release_arrays, 15, {"neg": negs, "neg_n": n_neg})

Xt, yt = to_arrays(PhantomDataset(400, size=128, seed=9001), 64)
images, ids = query_images(TARGET, 100, 128, 9001, 400)
scores = marker.target_scores(images)
memo = MemoMarker(marker)
logs, rows = {}, {}
for seed, net in models.items():
    sus = TorchSuspect(net, CLASSES, 64)
    r = run_verification(sus, memo, images, ids, TARGET, VerifyConfig(seed=9001), query_scores=scores)
    print(f"{tag} seed {seed}: accuracy {evaluate(net, Xt, yt).accuracy:.3f}; defaults dP {r.delta_p:.3f} "
          f"p {r.p_value:.2g} WSR {r.wsr:.2f} claimed {bool(r.decision)}", flush=True)
    for off in offsets:
        v = run_verification(sus, memo.turned(off) if off else memo, images, ids, TARGET,
                             VerifyConfig(seed=9001, specificity=0.0), query_scores=scores)
        rows[(seed, off)] = v.delta_p
        logs[f"{tag}_{seed}|boundary|{off:g}"] = np.array([[e["p_b"], e["p_w"]] for e in v.log])
    print("  dP by offset: " + " ".join(f"{o:+.0f}:{rows[(seed, o)]:.3f}" for o in offsets), flush=True)
np.savez(f"/tmp/exp/{tag}.npz", **logs)
