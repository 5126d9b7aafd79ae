"""Queries chosen by a proxy of the suspect's architecture (lab; repo root; ~1 min a suspect at 64 px)

The owner does not know the thief's architecture, but it can train a proxy of each one it fears
on its own release. Does a resnet18 proxy choose queries on which resnet18 suspects answer the
mark, where the smallcnn-chosen ones did not? Suspects and proxies are classifiers that
``split_key.py`` trained on one release (TURNS=0, the plain key), named by their checkpoints in
/tmp/exp/suspects_split (file names without ``.ckpt``; each is queried at its own input size).
For each PROXIES entry (``&``-joined names, their mean as in
:class:`~xmark_core.verify.suspects.MeanSuspect`; ``boundary`` for the surrogate's boundary
queries instead) and each of SUSPECTS (never a member of that proxy), the library's verification
with the defaults (the +/-25 degree check) reports the suspect's accuracy, delta P, WSR, p and
whether ownership is claimed. Clean models belong in SUSPECTS too: they must not be claimed.

    E=split_0_4000x256e20_gate05
    MARKER=results/full_att6_models_gate05 PROXIES=boundary,${E}_archresnet18_selsurrogate+resnet18_12 \
        SUSPECTS=${E}_archresnet18_selsurrogate+resnet18_1,clean_resnet18_4000x256e20_0 \
        PYTHONPATH=docs/lab/learnability:. python docs/lab/learnability/proxy_arch.py
"""
import os
from functools import cache
from pathlib import Path

import torch
from demo_release import CLASSES, SPLIT_CACHE, TARGET, kept_marker

from xmark_core.app_support.demo import query_images
from xmark_core.data.base import to_arrays
from xmark_core.data.phantom import PhantomDataset
from xmark_core.nets.checkpoint import load_checkpoint
from xmark_core.nets.train import evaluate
from xmark_core.verify.protocol import VerifyConfig, run_verification
from xmark_core.verify.suspects import MeanSuspect, TorchSuspect

torch.set_num_threads(int(os.environ.get("NT", 1)))
kept = Path(os.environ.get("MARKER", "results/full_att6_models_gate05"))
size = int(os.environ.get("SIZE", 256))
marker = kept_marker(kept)


@cache
def suspect(name: str) -> TorchSuspect:
    """A cached checkpoint by name, at its own input size (each is loaded once)."""
    loaded = load_checkpoint(SPLIT_CACHE / f"{name}.ckpt")
    return TorchSuspect(loaded.model.eval(), CLASSES, loaded.input_size)


@cache
def held_out(side: int) -> tuple:
    """400 held-out phantoms at ``side`` px (split_key.py's accuracy set)."""
    return to_arrays(PhantomDataset(400, size=size, seed=9001), side)


@cache
def accuracy(name: str) -> float:
    sus = suspect(name)
    return evaluate(sus.model, *held_out(sus.input_size)).accuracy


images, ids = query_images(TARGET, 100, size, 9001, 400)
for proxy_spec in os.environ.get("PROXIES", "boundary").split(","):
    members = [] if proxy_spec == "boundary" else proxy_spec.split("&")
    proxy = MeanSuspect([suspect(m) for m in members]) if members else None
    print(f"queries: {proxy_spec}", flush=True)
    for name in os.environ["SUSPECTS"].split(","):
        if name in members:
            continue
        cfg = VerifyConfig(seed=9001, queries="proxy" if members else "boundary")
        v = run_verification(suspect(name), marker, images, ids, TARGET, cfg, proxy=proxy)
        print(f"  suspect {name} (accuracy {accuracy(name):.3f}): dP {v.delta_p:+.3f} WSR {v.wsr:.0%} p {v.p_value:.2g} "
              f"claimed {v.decision}", flush=True)
