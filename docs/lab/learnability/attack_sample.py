"""Fine-tuning and fine-pruning over many Malicious suspects, not one (lab; repo root).

The benchmark attacks one Malicious suspect (fine-pruning left p = 0.017, target < 0.01). This
applies its two model attacks with its settings (the attacker's clean data: 10 % of the dataset
size, 240 phantom images, seed 2; 5 epochs at lr 1e-4; fine-pruning removes 50 % of the last
block's channels first) to the shipped Malicious suspect and the cached lab suspects
(/tmp/exp/suspects, query_choice.py), then verifies each with the library's defaults (boundary
queries, the +/-25 degree check) and measures clean accuracy (BA) on the 400 held-out images.

    PYTHONPATH=. python docs/lab/learnability/attack_sample.py

SIZE: the phantom's source side (held-out queries and the attacker's data; default 128, the
demo's); SUSPECTS: a glob of suspect checkpoints instead of the cached lab suspects (the shipped
one is then left out). The 256 px-source suspects of ``work_size.py``:

    SIZE=256 SUSPECTS='/tmp/exp/suspects_ws/256_none_[0-9]*.ckpt' PYTHONPATH=. python docs/lab/learnability/attack_sample.py

PROXY=CHECKPOINT also verifies every model with proxy queries chosen by that checkpoint (the
owner's proxy; a suspect file equal to it is skipped); ATT: the attacker's images (default 240,
the demo's 10 %; the full preset's is 400).
"""
import glob
import os
from pathlib import Path

import numpy as np
import torch

from benchmarks.context import MemoMarker
from xmark_core.attacks import fine_prune, fine_tune
from xmark_core.data.base import to_arrays
from xmark_core.data.phantom import FINDINGS, PhantomDataset
from xmark_core.generator.model import load_marker
from xmark_core.nets.checkpoint import load_checkpoint
from xmark_core.nets.train import evaluate
from xmark_core.verify.protocol import VerifyConfig, proxy_scores, run_verification
from xmark_core.verify.suspects import CheckpointSuspect, TorchSuspect

torch.set_num_threads(int(os.environ.get("NT", 1)))
R = Path("models")
classes, target = list(FINDINGS), list(FINDINGS).index("Cardiomegaly")
inner = load_marker(R / "surrogate.pt", R / "generator.pt")
owner = MemoMarker(inner)
size = int(os.environ.get("SIZE", 128))
test = PhantomDataset(400, size=size, seed=9001)
Xt, yt = to_arrays(test, 64)
pool = [i for i in range(len(test)) if int(yt[i]) != target]
images, ids = [test[i].image for i in pool], [test[i].image_id for i in pool]
scores = {"boundary": inner.target_scores(images)}
proxy = os.environ.get("PROXY")
if proxy:
    scores["proxy"] = proxy_scores(CheckpointSuspect(proxy), owner, images, "Cardiomegaly", VerifyConfig.query_gain)
Xa, ya = to_arrays(PhantomDataset(int(os.environ.get("ATT", 240)), size=size, seed=2), 64)
if "SUSPECTS" in os.environ:
    files = [(Path(f).stem, Path(f)) for f in sorted(glob.glob(os.environ["SUSPECTS"]))]
else:
    files = [("shipped_mal", R / "suspect_malicious.pt")]
    files += [(f.stem, f) for f in sorted(Path("/tmp/exp/suspects").glob("mal_*.ckpt"))]

files = [(n, f) for n, f in files if not proxy or Path(f).resolve() != Path(proxy).resolve()]
rows: dict[tuple[str, str], list] = {}
for name, f in files:
    net = load_checkpoint(f).model.eval()
    attacked = {
        "none": net,
        "finetune": fine_tune(net, Xa, ya, epochs=5, lr=1e-4, seed=0),
        "fineprune": fine_prune(net, Xa, fraction=0.5, y=ya, finetune_epochs=5, lr=1e-4, seed=0)[0],
    }
    for attack, model in attacked.items():
        model.eval()
        ba = evaluate(model, Xt, yt).accuracy
        for choice, sc in scores.items():
            r = run_verification(TorchSuspect(model, classes, 64), owner, images, ids, target,
                                 VerifyConfig(seed=9001, queries=choice), query_scores=sc)
            rows.setdefault((attack, choice), []).append((r.delta_p, r.p_value, ba))
            print(f"{name:16s} {attack:9s} {choice:8s}: dP {r.delta_p:.3f} p {r.p_value:.2g} BA {ba:.3f} "
                  f"claimed {bool(r.decision)}", flush=True)
for (attack, choice), v in rows.items():
    a = np.array(v)
    print(f"{attack:9s} {choice:8s}: claimed (p < 0.01) {int((a[:, 1] < 0.01).sum())} of {len(a)}; dP median {np.median(a[:, 0]):.3f} "
          f"(min {a[:, 0].min():.3f}); p median {np.median(a[:, 1]):.2g}, max {a[:, 1].max():.2g}; "
          f"BA median {np.median(a[:, 2]):.3f} (min {a[:, 2].min():.3f})")
