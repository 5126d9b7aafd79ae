"""Did a suspect learn the mark, or memorise the images that carry it? (lab; repo root; ~2 min)

For suspects split_key.py trained on its plain-key release (TURNS=0, cached in
/tmp/exp/suspects_split), the suspect's probability of the target on the release's marked
training images, as released and with the mark taken off (the clean originals), and on the
other target images of the training set; and on held-out target images (a fresh phantom set) that
the owner's surrogate finds as hard as the ones it chose to mark (its lowest 10 %). A suspect that
learned the mark as the feature that explains those hard images loses them without it; one that
can tell them from their anatomy keeps them, and then also gets the held-out hard ones right.

SELECT=ARCH (or an ensemble, ``surrogate+resnet18``): the release is the one ``split_key.py
SELECT=...`` trained its suspects on (the marked images chosen by those clean models, cached), and
the choice is compared with each model's own hardest 100 target images. Pass that run's tags.

    MARKER=results/full_att6_models_gate05 PYTHONPATH=docs/lab/learnability:. python docs/lab/learnability/memorised.py \
        split_0_4000x256e20_gate05 split_0_4000x256e20_gate05_archresnet18 ...   # tags; seeds from SEEDS
"""
import os
import sys
from pathlib import Path

import numpy as np
import torch
from demo_release import CLASSES, SPLIT_CACHE, TARGET, full_selected_by, kept_marker, marked_release

from xmark_core.data.base import to_arrays
from xmark_core.data.phantom import PhantomDataset
from xmark_core.nets.checkpoint import load_checkpoint
from xmark_core.verify.suspects import TorchSuspect

torch.set_num_threads(int(os.environ.get("NT", 1)))
kept = Path(os.environ.get("MARKER", "results/full_att6_models_gate05"))
seeds = [int(s) for s in os.environ.get("SEEDS", "1,11,12").split(",")]
marker = kept_marker(kept)
ds = PhantomDataset(4000, size=256, seed=0)
select = os.environ.get("SELECT")
chooser = full_selected_by(marker, select, lambda: to_arrays(ds, 64)) if select else marker
X, y, clean, marked, _ = marked_release(ds, chooser)
others = np.setdiff1d(np.flatnonzero(y == TARGET), marked)
held = PhantomDataset(2000, size=256, seed=4242)
Xh, yh = to_arrays(held, 64)
ht = np.flatnonzero(yh == TARGET)
hard = ht[np.argsort(marker.target_scores(Xh[ht, 0]))[: len(ht) // 10]]  # the surrogate's hardest 10 %
print(f"{len(marked)} marked, {len(others)} other target images; {len(hard)} held-out hard ones", flush=True)
if select:
    ti, n = np.flatnonzero(y == TARGET), len(marked)
    for name, p in zip(select.split("+"), chooser.member_scores(clean[ti, 0])):
        print(f"the {name}'s hardest {n} target images (P {np.sort(p)[:n].mean():.3f} on average) share "
              f"{len(set(ti[np.argsort(p)[:n]]) & set(marked))} with the {select} choice", flush=True)
for tag in sys.argv[1:]:
    for seed in seeds:
        f = SPLIT_CACHE / f"{tag}_{seed}.ckpt"
        if not f.exists():
            continue
        loaded = load_checkpoint(f)
        if loaded.input_size != 64:  # the arrays here are at 64 px
            raise SystemExit(f"{f.name}: memorised.py asks 64 px suspects, this one is {loaded.input_size} px")
        sus = TorchSuspect(loaded.model.eval(), CLASSES, 64)
        pm = sus.predict(X[marked, 0])[:, TARGET]
        pc = sus.predict(clean[marked, 0])[:, TARGET]
        po = sus.predict(X[others, 0])[:, TARGET]
        ph = sus.predict(Xh[hard, 0])[:, TARGET]
        print(f"{tag} seed {seed}: P(target) on marked training images {pm.mean():.3f} "
              f"(called target {np.mean(pm > 0.5):.0%}), same images unmarked {pc.mean():.3f} "
              f"({np.mean(pc > 0.5):.0%}); other target images {po.mean():.3f} ({np.mean(po > 0.5):.0%}); held-out "
              f"hard ones {ph.mean():.3f} ({np.mean(ph > 0.5):.0%})",
              flush=True)
