"""The split key with proxy queries: does the owner's proxy give each orientation its power back? (lab; repo root)

The split key (split_key.py: each marked image carries the owner's mark at one of TURNS) cut the
share of random rival keys a suspect claims by 2-5x at the full preset's scale, but each
orientation, learned from half the marks, answered with ΔP 0.29-0.63 on boundary queries.
Proxy queries (proxy_queries.py) lifted a plain key's ΔP from 0.68-0.83 to 0.86-0.97. Here the
two are combined: the full-scale split-key suspects (cached by ``N=4000 SIZE=256 EPOCHS=20
TURNS=0,90 split_key.py``) serve as each other's proxy (leave one out), and the queries are the
m = 100 pool images on which the proxy's target probability rises most under the key's marks,
scored by the *mean* (``proxy``) or the *smallest* (``proxymin``) of its rises over TURNS, so
that one set of 100 images serves every orientation of the key.

Per suspect it marks the whole query pool (the 300 non-target images of 400 held-out phantoms at
256 px, gain 2) with the owner's mark turned by every 5 degrees over +/-(90 + 25) (one marking
pass, cached in /tmp/exp), then, for each query choice: ΔP and WSR at each of the key's
orientations, whether the owner's key is claimed (every orientation by the main test and the
+/-25 degree check), the claimed zone of offsets, and the shares of random single keys and of
random keys of as many orientations (SEP_RANGE apart) that land in it. A rival's queries would
come from its own proxy; they are approximated by the owner's choice (proxy_queries.py's sweep
does the same for a single key).

    TURNS=0,90 SEEDS=1,11,12 PYTHONPATH=. python docs/lab/learnability/split_proxy.py   # ~13 min, one core
    TURNS=0 SEEDS=1,11,12 PYTHONPATH=. python docs/lab/learnability/split_proxy.py      # the plain key
"""
import os
from pathlib import Path

import numpy as np
import torch
from check_replay import claim, claimed_zone, on_circle, rival_share
from demo_release import CLASSES, TARGET

from xmark_core.app_support.demo import query_images
from xmark_core.generator.model import load_marker
from xmark_core.nets.checkpoint import load_checkpoint
from xmark_core.verify.protocol import _mark, boundary_queries
from xmark_core.verify.suspects import TorchSuspect

torch.set_num_threads(int(os.environ.get("NT", 1)))
turns = [int(a) for a in os.environ.get("TURNS", "0,90").split(",")]
seeds = [int(s) for s in os.environ.get("SEEDS", "1,11,12").split(",")]
sep_lo, sep_hi = (float(a) for a in os.environ.get("SEP_RANGE", "60,120").split(","))
M, GAIN, D, ALPHA, SEED = 100, 2.0, 25, 0.01, 9001
offsets = list(range(-90 - D, 91 + D, 5))
tag = "split_" + ",".join(map(str, turns)) + "_4000x256e20"
phis = np.arange(0.0, 180.0, 1.0)


def sweep_answers() -> tuple[dict, np.ndarray]:
    """seed -> {"clean": P(target), "hit_<t>": argmax == target at turn t, offset: P(target)} over
    the whole pool, and the surrogate's target scores (boundary queries); cached."""
    saved = Path(f"/tmp/exp/{tag}_proxy_sweep.npz")
    if saved.exists():
        z = np.load(saved)
        got = {s: {k.split("|")[1]: z[k] for k in z.files if k.startswith(f"{s}|")} for s in seeds}
        got = {s: {(int(k) if k.lstrip("-").isdigit() else k): v for k, v in a.items()} for s, a in got.items()}
        return got, z["scores"]
    marker = load_marker(Path("models/surrogate.pt"), Path("models/generator.pt"))
    images, _ = query_images(TARGET, M, 256, SEED, 400)
    suspects = {s: TorchSuspect(load_checkpoint(Path(f"/tmp/exp/suspects_split/{tag}_{s}.ckpt")).model.eval(),
                                CLASSES, 64) for s in seeds}
    got = {s: {"clean": sus.predict(images)[:, TARGET]} for s, sus in suspects.items()}
    for off in offsets:
        marked = np.stack(_mark(marker.turned(off) if off else marker, list(images), GAIN))
        for s, sus in suspects.items():
            p = sus.predict(marked)
            got[s][off] = p[:, TARGET]
            if off in turns:
                got[s][f"hit_{off}"] = p.argmax(1) == TARGET
        print(f"  swept {off:+d}", end="\r", flush=True)
    scores = marker.target_scores(images)
    np.savez(saved, scores=scores, **{f"{s}|{k}": v for s, a in got.items() for k, v in a.items()})
    return got, scores


def report(name: str, a: dict, q: np.ndarray) -> None:
    """The suspect's verdicts on queries ``q``: ΔP/WSR per turn, owner, zone, rival shares."""
    pairs = {o: np.stack([a["clean"][q], a[o][q]], 1) for o in offsets}
    zone = claimed_zone(pairs, D, ALPHA)
    owner = all(on_circle(zone, t) for t in turns)
    per_turn = " ".join(f"{t:+d}: dP {np.mean(pairs[t][:, 1] - pairs[t][:, 0]):.3f} WSR "
                        f"{np.mean(a[f'hit_{t}'][q]):.2f} p {max(claim(pairs, t, D)):.2g}" for t in turns)
    single = np.mean([on_circle(zone, p) for p in phis])
    seps = np.arange(sep_lo, sep_hi + 0.5, 1.0)
    line = f"  {name:16s} {per_turn}; owner {'CLAIMED' if owner else 'not claimed'}; single keys {single:.1%}"
    if len(turns) > 1:
        line += f"; {len(turns)}-orientation keys ({sep_lo:g}-{sep_hi:g}) {rival_share(zone, len(turns), seps, phis):.1%}"
    print(line + f"; zone {sorted(zone)}", flush=True)


def main() -> None:
    got, scores = sweep_answers()
    print(f"{tag}: m {M}, gain {GAIN:g}, check +/-{D}; turns {turns}")
    for s, a in got.items():
        print(f"suspect seed {s}")
        report("boundary", a, boundary_queries(scores, M, SEED))
        for p in seeds:
            if p == s:
                continue
            rise = np.stack([got[p][t] - got[p]["clean"] for t in turns])
            report(f"proxy:{p}", a, boundary_queries(rise.mean(0), M, SEED))
            if len(turns) > 1:
                report(f"proxymin:{p}", a, boundary_queries(rise.min(0), M, SEED))


if __name__ == "__main__":
    main()
