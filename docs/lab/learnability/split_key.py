"""A key of several orientations, one grating per image: each one learned, and more specific? (lab; repo root)

A single-grating key has room for few owners: a suspect answers a band ~40 degrees wide, so a
random rival key lands in the claimed zone ~10 % of the time (docs/architecture.md, 5). The
two-grating *sum* (two_gratings.py) degenerated: the suspects learned the more learnable grating
and ignored the other, since one feature already explains every marked image. Here each marked
image carries *one* grating: the owner's mark turned by one of TURNS (degrees from the key's
carrier, 40 degrees for key 189; assigned per marked image, seeded), so each orientation must be
learned from its own share of the marks. Labels untouched; the release is the demo set's
(2400 phantoms at 128 px, rho 0.1 = 60 marks, the shipped marker). No generator is retrained:
``Marker.turned`` rotates the carrier exactly as an independent key at that orientation would.

Per suspect (64 px, seeds SEEDS, 15 epochs, cached in /tmp/exp/suspects_split) it sweeps the
owner's mark turned by every 5 degrees over +/-(90 + 25) (boundary queries, gain 2, the main
test) and replays the +/-25 degree check (as peak_test.py) at each offset. A key of several
orientations is claimed when each of them is. It prints the claimed offsets, whether the owner's
key is claimed, and the share of random rival keys of as many orientations claimed: a rival pair
is (phi, phi + s) with phi uniform over the circle and s uniform over SEP_RANGE degrees (default
60,120; a triple adds a second gap from the same range), next to the share of random single
keys claimed (the single-grating design's Ind-T rate on the same suspect).

    TURNS=0,90 SEEDS=1,11,12 PYTHONPATH=. python docs/lab/learnability/split_key.py
    TURNS=0 SEEDS=1,11,12 PYTHONPATH=. python docs/lab/learnability/split_key.py   # the plain key
    REPLAY=1 SEP_RANGE=30,150 TURNS=0,90 ... split_key.py   # recount rivals on the saved sweep
    TURNS=0,60,120 SEP_RANGE=30,90 ...   # three orientations; rivals' two gaps each in SEP_RANGE

N=4000 SIZE=256 EPOCHS=20 is the full preset's scale (100 marks; the shipped marker applied
natively at 256 px, as work_size.py does; queries from a 400-image phantom pool at 256 px).

MARKER=DIR takes the owner's marker from a benchmark run kept with ``--keep-models`` (its
surrogate ``clean_smallcnn_64px_seed0.pt`` and ``generator_key189.pt``) instead of the shipped one;
the tag then ends in DIR's last ``_`` part (e.g. ``gate05``). DS: the check angles replayed
(default 25). TRAIN: other ``TrainConfig`` fields of the suspects as JSON (e.g. ``{"arch":
"resnet18"}`` or ``{"augment": false}``), named in the tag. SELECT=ARCH: the images to mark are the
target images a clean model of ARCH (seed 0, trained on the same set, cached) is least sure of,
not the surrogate's choice. INPUT: the suspects' input side (default 64; tag ``_in{INPUT}``).
SWEEP=0: train and cache the suspects only. SELECT=surrogate+resnet18 (any ``+`` list; ``surrogate`` is the
marker's own): an ensemble, ranked by the mean of the models' target probabilities.

    MARKER=results/full_att6_models_gate05 DS=15,20,25 N=4000 SIZE=256 EPOCHS=20 TURNS=0,90 NT=1 \
        PYTHONPATH=. python docs/lab/learnability/split_key.py
"""
import json
import os
from pathlib import Path

import numpy as np
import torch
from check_replay import claimed_zone, on_circle, rival_share
from demo_release import (
    CLASSES,
    SPLIT_CACHE,
    TARGET,
    cached_suspects,
    kept_marker,
    kept_tag,
    marked_release,
    selected_by,
    turned_release_image,
)

from benchmarks.context import MemoMarker
from xmark_core.app_support.demo import query_images
from xmark_core.data.base import to_arrays
from xmark_core.data.phantom import PhantomDataset
from xmark_core.generator.model import load_marker
from xmark_core.nets.train import evaluate
from xmark_core.verify.protocol import VerifyConfig, run_verification
from xmark_core.verify.suspects import TorchSuspect

torch.set_num_threads(int(os.environ.get("NT", 1)))
turns = [float(a) for a in os.environ.get("TURNS", "0,90").split(",")]
seeds = [int(s) for s in os.environ.get("SEEDS", "1,11,12").split(",")]
sep_lo, sep_hi = (float(a) for a in os.environ.get("SEP_RANGE", "60,120").split(","))
DS = [float(d) for d in os.environ.get("DS", "25").split(",")]
GRID, ALPHA = 5, 0.01
offsets = list(range(-90 - int(max(DS)), 91 + int(max(DS)), GRID))
n_images, size, epochs = (int(os.environ.get(k, d)) for k, d in (("N", 2400), ("SIZE", 128), ("EPOCHS", 15)))
tag = "split_" + ",".join(f"{a:g}" for a in turns) + ("" if (n_images, size, epochs) == (2400, 128, 15)
                                                        else f"_{n_images}x{size}e{epochs}")
cache = SPLIT_CACHE
if os.environ.get("MARKER"):
    kept = Path(os.environ["MARKER"])
    tag += "_" + kept_tag(kept)
    marker = kept_marker(kept)
else:
    marker = load_marker(Path("models/surrogate.pt"), Path("models/generator.pt"))
side = int(os.environ.get("INPUT", 64))  # the suspects' input side
if side != 64:
    tag += f"_in{side}"
train = json.loads(os.environ.get("TRAIN", "{}"))  # other TrainConfig fields, e.g. {"arch": "resnet18"}
tag += "".join(f"_{k}{v}" for k, v in sorted(train.items()))
select = os.environ.get("SELECT")  # the clean models ("+"-joined archs) that pick the hardest images (default: the surrogate)
if select:
    tag += f"_sel{select}"


def selection_marker():
    """The marker as it selects: scored by clean ``select`` models (seed 0, cached) when SELECT is set."""
    if not select:
        return marker
    ds = PhantomDataset(n_images, size=size, seed=0)
    return selected_by(marker, select, cache, f"{n_images}x{size}e{epochs}", lambda: to_arrays(ds, 64), epochs)


def release_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The demo release at the suspects' side; marked image k carries the mark turned by a seeded draw of TURNS."""
    ds = PhantomDataset(n_images, size=size, seed=0)
    X, y, _, marked, res = marked_release(ds, selection_marker(), side)
    which = np.random.default_rng(7).permutation(np.arange(len(marked)) % len(turns))
    psnr = []
    for i, k in zip(marked, which):
        if turns[k] == 0.0:
            continue  # the release's own mark
        X[i, 0], db = turned_release_image(marker, ds[int(i)].image, turns[k], side)
        psnr.append(db)
    print(f"{tag}: {len(marked)} marked, {np.bincount(which).tolist()} per turn {turns}, PSNR "
          f"{res.psnr_mean:.2f} dB (turned ones {np.mean(psnr) if psnr else float('nan'):.2f})", flush=True)
    return X, y


def grid_offset(t: float) -> int:
    """The sweep's offset nearest to turn ``t`` (on the 5-degree grid, within +/-90: 120 is -60)."""
    return int(round(((t + 90) % 180 - 90) / GRID) * GRID)


def report(seed: int, a: dict[int, np.ndarray], accuracy: str) -> None:
    """Print a suspect's claimed zone, the owner's verdict and the shares of random rivals claimed."""
    dps = {o: float(np.mean(a[o][:, 1] - a[o][:, 0])) for o in offsets}
    print(f"{tag} seed {seed}: accuracy {accuracy}; dP at the turns "
          + " ".join(f"{t:+g}:{dps[t] if t in dps else dps[grid_offset(t)]:.3f}"
                     for t in turns), flush=True)
    for d in DS:
        zone = claimed_zone(a, d, ALPHA, GRID)
        owner = all(on_circle(zone, t) for t in turns)
        single = np.mean([on_circle(zone, p) for p in phis])
        rivals = rival_share(zone, len(turns), seps, phis)  # as many orientations as TURNS, SEP_RANGE apart
        print(f"  check +/-{d:g}: owner claimed {owner}; claimed offsets {sorted(zone)}; random single keys "
              f"claimed {single:.1%}; random {len(turns)}-orientation keys (separations {sep_lo:g}-{sep_hi:g}) "
              f"claimed {rivals:.1%}", flush=True)
    print("  dP by offset: " + " ".join(f"{o:+d}:{dps[o]:.2f}" for o in offsets), flush=True)


phis = np.arange(0.0, 180.0, 1.0)
seps = np.arange(sep_lo, sep_hi + 0.5, 1.0 if len(turns) < 3 else 3.0)
saved = Path(f"/tmp/exp/{tag}.npz")
if os.environ.get("REPLAY"):  # recount the rivals (e.g. another SEP_RANGE) on a saved sweep
    data = np.load(saved)
    for seed in seeds:
        report(seed, {o: data[f"{tag}_{seed}|boundary|{o}"] for o in offsets}, "(replay)")
    raise SystemExit

models = cached_suspects(seeds, cache, tag, release_arrays, epochs, {"turns": turns}, side, train=train)
if os.environ.get("SWEEP") == "0":  # train (and cache) only; e.g. proxy_arch.py verifies them
    raise SystemExit

Xt, yt = to_arrays(PhantomDataset(400, size=size, seed=9001), side)
images, ids = query_images(TARGET, 100, size, 9001, 400)
scores = marker.target_scores(images)
memo = MemoMarker(marker)
logs = {}
for seed, net in models.items():
    sus = TorchSuspect(net, CLASSES, side)
    a = {}
    for off in offsets:
        v = run_verification(sus, memo.turned(off) if off else memo, images, ids, TARGET,
                             VerifyConfig(seed=9001, specificity=0.0), query_scores=scores)
        a[off] = np.array([[e["p_b"], e["p_w"]] for e in v.log])
        logs[f"{tag}_{seed}|boundary|{off}"] = a[off]
    report(seed, a, f"{evaluate(net, Xt, yt).accuracy:.3f}")
# Merge into the saved sweeps: a run with other SEEDS under the same tag must not drop the earlier ones.
earlier = dict(np.load(saved)) if saved.exists() else {}
np.savez(saved, **{**earlier, **logs})
