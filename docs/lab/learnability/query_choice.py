"""Which held-out images should the owner query with? (lab)

Random non-target queries (the protocol so far) against "boundary" queries: the m
non-target images the owner's *surrogate* gives the highest probability of the target class
(chosen before any suspect is seen, from the owner's own model only). A model that learned the
mark moves its target logit by some amount; near the decision boundary that shift is a large
change of probability, far from it (P_b ~ 0.01) a small one, so boundary queries should raise
delta P of a Malicious model. Ind-M (models trained on clean data) must stay unclaimed.

Suspects are trained on the shipped demo release (as suspect_seeds.py) or on clean data, and
cached in /tmp/exp/suspects so later variants re-verify without retraining:

    python docs/lab/learnability/query_choice.py mal:1 mal:100 clean:2
    GAINS=1.5,2,3 POOL=1200 ...
"""
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from xmark_core.data.base import to_arrays
from xmark_core.data.open import open_dataset
from xmark_core.data.phantom import FINDINGS, PhantomDataset
from xmark_core.embed import embed_release
from xmark_core.generator.model import load_marker
from xmark_core.nets.checkpoint import load_checkpoint, save_checkpoint
from xmark_core.nets.train import TrainConfig, evaluate, predict_proba, train_classifier
from xmark_core.verify.protocol import VerifyConfig, run_verification
from xmark_core.verify.suspects import TorchSuspect

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[3]
CACHE = Path("/tmp/exp/suspects")
CACHE.mkdir(parents=True, exist_ok=True)
classes, target = list(FINDINGS), list(FINDINGS).index("Cardiomegaly")
marker = load_marker(ROOT / "models/surrogate.pt", ROOT / "models/generator.pt")
test = PhantomDataset(int(os.environ.get("POOL", 1200)), size=128, seed=9001)
Xt, yt = to_arrays(test, 64)
pool = np.flatnonzero(yt != target)
p_sur = predict_proba(marker.surrogate, Xt[pool])[:, target]
choices = {"random": pool, "boundary": pool[np.argsort(-p_sur)[:100]]}
print("surrogate P(t) of boundary queries: median", float(np.median(np.sort(p_sur)[-100:])),
      "random: median", float(np.median(p_sur)), flush=True)


def release():
    ds = PhantomDataset(2400, size=128, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        embed_release(ds, marker, target, Path(tmp) / "embed", rho=0.1, seed=0)
        return to_arrays(open_dataset(str(Path(tmp) / "embed" / "release")), 64)


def model(kind: str, seed: int):
    f = CACHE / f"{kind}_{seed}.ckpt"
    if f.exists():
        return load_checkpoint(f).model  # weights only
    X, y = release() if kind == "mal" else to_arrays(PhantomDataset(2400, size=128, seed=0), 64)
    m = train_classifier(X, y, classes, TrainConfig(input_size=64, epochs=15, seed=seed)).model
    save_checkpoint(f, m, kind="classifier", arch="smallcnn", arch_kwargs=m.arch_kwargs, classes=classes,
                    input_size=64, config={"seed": seed, "train_set": kind})
    return m


for spec in sys.argv[1:]:
    kind, seed = spec.split(":")
    net = model(kind, int(seed)).eval()
    acc = evaluate(net, Xt, yt).accuracy
    for name, idx in choices.items():
        for gain in map(float, os.environ.get("GAINS", "2").split(",")):
            r = run_verification(TorchSuspect(net, classes, 64), marker, [test[int(i)].image for i in idx],
                                 [test[int(i)].image_id for i in idx], target,
                                 VerifyConfig(m=100, alpha=0.01, seed=9001, query_gain=gain, queries="random",
                                                          specificity=0.0))  # the main test alone
            print(f"{kind} seed {seed} acc {acc:.3f} {name:8s} gain {gain}: dP {r.delta_p:.3f} "
                  f"p {r.p_value:.2g} WSR {r.wsr:.2f} claimed {bool(r.decision)}", flush=True)
