"""How much does the demo's claim depend on the suspect's training seed? (lab)

Re-embeds the shipped demo release (models/surrogate.pt + models/generator.pt, phantom
2,400 at 128 px, seed 0 -- exactly what `make models` did), trains Malicious suspects with
other seeds, verifies each exactly as the demo does (m 100, tau 0.2, queries from phantom
seed 9001) at the query gains in GAINS (default 3: the demo's gain until 2026-12-04). The
demo's own suspect is seed 1.

    python docs/lab/learnability/suspect_seeds.py 2 3      # one process per core
    WORK_SIZE=64 python docs/lab/learnability/suspect_seeds.py 1 2   # mark at 64 px and upsample,
                                                            # as the benchmark does
    GAINS=1.5,2,2.5,3,4 python docs/lab/learnability/suspect_seeds.py 3 5 1   # the gain sweep
"""
import os
import sys
import tempfile
from pathlib import Path

import torch

from xmark_core.data.open import open_dataset
from xmark_core.data.base import to_arrays
from xmark_core.data.phantom import FINDINGS, PhantomDataset
from xmark_core.embed import embed_release
from xmark_core.generator.model import load_marker
from xmark_core.nets.train import TrainConfig, evaluate, train_classifier
from xmark_core.verify.protocol import VerifyConfig, run_verification
from xmark_core.verify.suspects import TorchSuspect

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[3]
classes, target = list(FINDINGS), list(FINDINGS).index("Cardiomegaly")
ds = PhantomDataset(2400, size=128, seed=0)
test = PhantomDataset(400, size=128, seed=9001)
Xt, yt = to_arrays(test, 64)
marker = load_marker(ROOT / "models/surrogate.pt", ROOT / "models/generator.pt")
marker.work_size = int(os.environ["WORK_SIZE"]) if os.environ.get("WORK_SIZE") else None  # None: native, as the demo
with tempfile.TemporaryDirectory() as tmp:
    embed_release(ds, marker, target, Path(tmp) / "embed", rho=0.1, seed=0)
    Xr, yr = to_arrays(open_dataset(str(Path(tmp) / "embed" / "release")), 64)
pool = [i for i in range(len(test)) if int(yt[i]) != target]
for seed in map(int, sys.argv[1:]):
    model = train_classifier(Xr, yr, classes, TrainConfig(input_size=64, epochs=15, seed=seed)).model
    acc = evaluate(model, Xt, yt).accuracy
    for gain in map(float, os.environ.get("GAINS", "3").split(",")):
        r = run_verification(TorchSuspect(model, classes, 64), marker, [test[i].image for i in pool],
                             [test[i].image_id for i in pool], target,
                             VerifyConfig(m=100, alpha=0.01, seed=9001, query_gain=gain,
                                          queries=os.environ.get("QUERIES", "random"),
                                          specificity=0.0))  # the main test alone
        print(f"suspect seed {seed} gain {gain}: accuracy {acc:.3f} dP {r.delta_p:.3f} "
              f"p {r.p_value:.2g} WSR {r.wsr:.2f} claimed {bool(r.decision)}", flush=True)
