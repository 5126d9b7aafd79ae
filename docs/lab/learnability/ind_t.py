"""Ind-T with boundary vs random queries on the demo release's Malicious suspects (lab; repo root).

Trains a generator with another key (KEY, default 1000) against the shipped surrogate exactly as
`make models` trains the owner's, then queries the shipped Malicious suspect and the cached lab
suspects (/tmp/exp/suspects, from query_choice.py) with that independent owner's marks.

    KEY=1000 python docs/lab/learnability/ind_t.py
    KEY=1005 SPECS=0,15,25 QUERY_CHOICES=boundary python docs/lab/learnability/ind_t.py

SPECS: key-specificity settings (VerifyConfig.specificity) to verify with (default 0). The
generator is cached in /tmp/exp/gens (weights only).
"""
import os
from pathlib import Path

import torch

from xmark_core.data.base import to_arrays
from xmark_core.data.phantom import FINDINGS, PhantomDataset
from xmark_core.generator.model import Marker
from xmark_core.generator.train import GeneratorTrainConfig, save_generator, train_generator
from xmark_core.nets.checkpoint import load_checkpoint
from xmark_core.verify.protocol import VerifyConfig, run_verification
from xmark_core.verify.suspects import TorchSuspect

torch.set_num_threads(int(os.environ.get("NT", 1)))
R = Path("models"); classes = list(FINDINGS); target = classes.index("Cardiomegaly")
key = int(os.environ.get("KEY", 1000))
sur = load_checkpoint(R / "surrogate.pt").model
cached = Path(f"/tmp/exp/gens/key_{key}.pt")
if not cached.exists():
    X, y = to_arrays(PhantomDataset(2400, size=128, seed=0), 64)
    cached.parent.mkdir(parents=True, exist_ok=True)
    save_generator(cached, train_generator(sur, X, y, target, GeneratorTrainConfig(key=key, seed=0)))
gen = load_checkpoint(cached).model
marker = Marker(surrogate=sur, generator=gen, input_size=64, target=target)
test = PhantomDataset(400, size=128, seed=9001)
yt = test.labels(); pool = [i for i in range(len(test)) if int(yt[i]) != target]
images, ids = [test[i].image for i in pool], [test[i].image_id for i in pool]
models = {"shipped": load_checkpoint(R / "suspect_malicious.pt").model}
models.update({f.stem: load_checkpoint(f).model for f in sorted(Path("/tmp/exp/suspects").glob("mal_*.ckpt"))})
specs = [float(v) for v in os.environ.get("SPECS", "0").split(",")]
for name, net in models.items():
    for queries in os.environ.get("QUERY_CHOICES", "boundary,random").split(","):
        for spec in specs:
            r = run_verification(TorchSuspect(net.eval(), classes, 64), marker, images, ids, target,
                                 VerifyConfig(m=100, seed=9001, queries=queries, specificity=spec))
            print(f"Ind-T key {key} {name} {queries} specificity {spec:g}: dP {r.delta_p:.3f} p {r.p_value:.2g} "
                  f"WSR {r.wsr:.2f} claimed {bool(r.decision)}", flush=True)
