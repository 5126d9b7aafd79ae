"""Queries chosen by the owner's own proxy suspect: does WSR reach 95 %? (lab; repo root)

At the full preset the Malicious suspects answer the owner's mark on most boundary queries but
not on ~20 % of them, and those are largely the same images for every suspect: Consolidation
phantoms, whose finding outweighs the mark (`WHY=1` prints the split by class). The owner can
know this before any suspect is seen: it trains a *proxy* on its own release, as a thief would,
and queries with the pool images on which the proxy's score moves most when the mark is added.
The choice uses the owner's data and models only, so the test's null is untouched; an innocent
model still has to move by more than tau on those images to be claimed.

Each suspect (``name=checkpoint``) answers every non-target image of the query pool (the demo's
held-out phantoms, POOL images at SIZE px, seed 9001), clean, marked (query gain 2) and marked
with the carrier turned by -/+25 degrees. Then for each query choice, m = 100 queries:
``boundary`` (the default: the surrogate's top target scores) and ``proxy:NAME`` (the top
proxy ΔP), each suspect but the proxy is verified on the same answers: ΔP, WSR, and the
defaults' claim (main t-test, tau 0.2, and the +/-25 degree check, each at alpha 0.01).

    SIZE=256 PYTHONPATH=. python docs/lab/learnability/proxy_queries.py \\
        mal1=/tmp/exp/suspects_split/split_0_4000x256e20_1.ckpt \\
        mal11=/tmp/exp/suspects_split/split_0_4000x256e20_11.ckpt \\
        mal12=/tmp/exp/suspects_split/split_0_4000x256e20_12.ckpt \\
        clean=models/suspect_clean.pt surrogate=models/surrogate.pt

The suspects named ``mal*`` serve as proxies in turn (leave one out). ``SWEEP=60`` also sweeps
the owner's carrier over +/-60 degrees for the rival-key zone of each choice (~15 min);
``WHY=1`` prints each suspect's WSR by class over the whole pool. ``COMBOS=a+b,c+d`` adds
choices by several proxies at once (e.g. trained at different input sizes): the mean of their
rises; none of them is verified under that choice.

``SEQ=200`` also replays the sequential claim (the library's anytime-valid streams: owner vs
original with margin tau, owner vs each turned mark with margin 0; the claim waits for the
slowest) over that many random orders of each choice's m queries, as the benchmark's repeats
do, and adds the choice ``proxyk:NAME``: the m candidates with the largest *smallest* of the
proxy's three differences (its rise for the owner's mark, and the owner's mark over each turned
one), so that the key-check streams get strong queries too.
"""
import os
import sys
from pathlib import Path

import numpy as np
import torch
from check_replay import claim, on_circle
from demo_release import CLASSES, TARGET

from xmark_core.app_support.demo import query_images
from xmark_core.data.phantom import PhantomDataset
from xmark_core.generator.model import load_marker
from xmark_core.nets.checkpoint import load_checkpoint
from xmark_core.verify import stats
from xmark_core.verify.protocol import _mark, boundary_queries
from xmark_core.verify.suspects import TorchSuspect

torch.set_num_threads(int(os.environ.get("NT", 1)))
SIZE, POOL, M, GAIN, D, TAU, ALPHA, SEED = int(os.environ.get("SIZE", 256)), int(os.environ.get("POOL", 400)), \
    100, 2.0, 25.0, 0.2, 0.01, 9001

def gained(marker, x: np.ndarray) -> np.ndarray:
    """Queries marked at the verification's gain, by the verification's own marking."""
    return np.stack(_mark(marker, list(x), GAIN))


def answers(suspect: TorchSuspect, versions: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The suspect's probabilities (n, classes) for each version of the pool."""
    return {k: suspect.predict(v) for k, v in versions.items()}


def verdict(a: dict[str, np.ndarray], q: np.ndarray) -> dict[str, float]:
    """ΔP, WSR and the defaults' claim on queries ``q``."""
    pb, pw = a["clean"][q, TARGET], a["marked"][q, TARGET]
    main = stats.paired_ttest(pw, pb, TAU).p_value
    side = max(stats.paired_ttest(pw, a[k][q, TARGET], 0.0).p_value for k in ("minus", "plus"))
    return {"dp": float(np.mean(pw - pb)), "wsr": float(np.mean(a["marked"][q].argmax(1) == TARGET)),
            "p": max(main, side), "p_main": main}


def first_hit(d: np.ndarray, tau: float) -> float:
    """Queries the anytime-valid stream of differences ``d`` needs to reach alpha (inf: never)."""
    hit = np.flatnonzero(stats.sequential_path(d, tau, ALPHA)["p_value"] <= ALPHA)
    return float(hit[0] + 1) if hit.size else np.inf


def sequential(a: dict[str, np.ndarray], q: np.ndarray, repeats: int) -> dict[str, float]:
    """Median queries of each stream and of the claim over ``repeats`` seeded orders of ``q``."""
    rng = np.random.default_rng(SEED)
    t = {k: [] for k in ("main", "minus", "plus", "claim")}
    for _ in range(repeats):
        o = q[rng.permutation(len(q))]
        pw = a["marked"][o, TARGET]
        t["main"].append(first_hit(pw - a["clean"][o, TARGET], TAU))
        for side in ("minus", "plus"):
            t[side].append(first_hit(pw - a[side][o, TARGET], 0.0))
        t["claim"].append(max(t["main"][-1], t["minus"][-1], t["plus"][-1]))
    return {k: float(np.median(v)) for k, v in t.items()}


def sweep(marker, images: np.ndarray, suspects: dict[str, TorchSuspect], got: dict, choices: dict[str, np.ndarray],
          span: int) -> None:
    """Rival keys: each suspect's claimed zone of carrier offsets within +/-``span`` degrees
    under each query choice (the owner's mark turned by every 5 degrees, the defaults' check
    replayed at each offset, as peak_test.py), and the share of random single keys whose
    carrier falls in it (offsets beyond +/-span counted as not claimed)."""
    used = np.unique(np.concatenate(list(choices.values())))
    offsets = range(-span - int(D), span + int(D) + 1, 5)
    pw = {name: {} for name in got}
    for off in offsets:
        marked = gained(marker.turned(off) if off else marker, images[used])
        for name, sus in suspects.items():
            pw[name][off] = sus.predict(marked)[:, TARGET]
        print(f"  swept {off:+d}", end="\r", flush=True)
    where = {int(u): k for k, u in enumerate(used)}
    print(f"\nrival keys (offsets within +/-{span} swept, check +/-{D:g}):")
    for choice, q in choices.items():
        k = np.array([where[int(i)] for i in q])
        for name, a in got.items():
            if is_proxy(choice, name):
                continue
            pb = a["clean"][q, TARGET]
            sweep_a = {off: np.stack([pb, pw[name][off][k]], 1) for off in offsets}
            zone = {r for r in range(-span, span + 1, 5) if max(claim(sweep_a, r, D)) < ALPHA}
            share = np.mean([on_circle(zone, phi) for phi in np.arange(0.0, 180.0, 1.0)])
            print(f"  {choice:12s} {name:10s} owner {'claimed' if 0 in zone else 'NOT claimed'}; "
                  f"claimed offsets {sorted(zone)}; random single keys claimed {share:.1%}")


def rise(a: dict[str, np.ndarray]) -> np.ndarray:
    """A proxy's rise of its target probability when the owner's mark is added, per pool image."""
    return a["marked"][:, TARGET] - a["clean"][:, TARGET]


def is_proxy(choice: str, name: str) -> bool:
    """Whether suspect ``name`` is (one of) the proxies of query choice ``choice``."""
    return ":" in choice and name in choice.split(":", 1)[1].split("+")


def main() -> None:
    marker = load_marker(Path("models/surrogate.pt"), Path("models/generator.pt"))
    images, ids = query_images(TARGET, M, SIZE, SEED, POOL)
    versions = {"clean": images, "marked": gained(marker, images),
                "minus": gained(marker.turned(-D), images), "plus": gained(marker.turned(D), images)}
    suspects, got = {}, {}
    for arg in sys.argv[1:]:
        name, path = arg.split("=", 1)
        ck = load_checkpoint(Path(path))
        suspects[name] = TorchSuspect(ck.model.eval(), CLASSES, ck.input_size)
        got[name] = answers(suspects[name], versions)
    labels = PhantomDataset(POOL, size=SIZE, seed=SEED).labels()  # the pool query_images drew from
    cls = labels[[int(i.split("-")[-1]) for i in ids]]
    choices = {"boundary": boundary_queries(marker.target_scores(images), M, SEED)}
    for name in got:
        if name.startswith("mal"):
            dp = rise(got[name])
            choices[f"proxy:{name}"] = boundary_queries(dp, M, SEED)
            if os.environ.get("SEQ"):
                a = got[name]
                keyed = np.minimum(dp, np.minimum(*(a["marked"][:, TARGET] - a[s][:, TARGET] for s in ("minus", "plus"))))
                choices[f"proxyk:{name}"] = boundary_queries(keyed, M, SEED)
    for combo in filter(None, os.environ.get("COMBOS", "").split(",")):  # several proxies: their mean rise
        mean_rise = np.mean([rise(got[n]) for n in combo.split("+")], 0)
        choices[f"proxy:{combo}"] = boundary_queries(mean_rise, M, SEED)
    print(f"pool: {len(ids)} non-target images at {SIZE} px; m {M}, gain {GAIN:g}, check +/-{D:g}")
    for choice, q in choices.items():
        counts = {CLASSES[c]: int(np.sum(cls[q] == c)) for c in np.unique(cls)}
        print(f"\n{choice}: queries by class {counts}")
        for name, a in got.items():
            if is_proxy(choice, name):
                continue
            r = verdict(a, q)
            seq = ""
            if os.environ.get("SEQ"):
                t = sequential(a, q, int(os.environ["SEQ"]))
                seq = f"  sequential claim {t['claim']:g} (main {t['main']:g}, -25 {t['minus']:g}, +25 {t['plus']:g})"
            print(f"  {name:10s} dP {r['dp']:.3f}  WSR {r['wsr']:.2f}  p {r['p']:.2g} (main {r['p_main']:.2g})"
                  f"  {'CLAIMED' if r['p'] < ALPHA else 'not claimed'}{seq}")
    if os.environ.get("SWEEP"):
        sweep(marker, images, suspects, got, choices, int(os.environ["SWEEP"]))
    if os.environ.get("WHY"):
        for name, a in got.items():
            hit = a["marked"].argmax(1) == TARGET
            print(f"{name}: WSR by class over the pool " + ", ".join(
                f"{CLASSES[c]} {hit[cls == c].mean():.2f}" for c in np.unique(cls)))


if __name__ == "__main__":
    main()
