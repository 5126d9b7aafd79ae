"""How many queries does the sequential test need, and which bet rule needs fewest? (lab; repo root)

The benchmark at a 256 px source needed a median 55 queries (target <= 30) although its suspect's
dP was 0.56. With the key-specificity check the claim needs three anytime-valid streams to reach
alpha: owner vs benign (margin tau) and owner vs each turned mark (margin 0); the claim comes at
the latest of the three. This scores every boundary query of a pool once per suspect (P_b, P_w,
P_minus, P_plus; cached in /tmp/exp/betting_logs.npz), then replays the three streams over many
query orders offline with each bet rule, and says which stream decides.

Suspects: the lab's Malicious suspects of the demo release at a 128 px source
(/tmp/exp/suspects/mal_*.ckpt, suspect_seeds.py) and at a 256 px source
(/tmp/exp/suspects_ws/256_none_*.ckpt, work_size.py), and clean ones (clean_*.ckpt) for the null.

    PYTHONPATH=. python docs/lab/learnability/betting.py            # ORDERS=200 query orders per suspect
"""
import os
from pathlib import Path

import numpy as np
import torch

from xmark_core.app_support.demo import query_images
from xmark_core.data.phantom import FINDINGS
from xmark_core.generator.model import load_marker
from xmark_core.nets.checkpoint import load_checkpoint
from xmark_core.verify import stats
from xmark_core.verify.protocol import VerifyConfig, run_verification
from xmark_core.verify.suspects import TorchSuspect

torch.set_num_threads(int(os.environ.get("NT", 1)))
R, LOGS = Path("models"), Path("/tmp/exp/betting_logs.npz")
classes, target = list(FINDINGS), list(FINDINGS).index("Cardiomegaly")
GROUPS = {  # name: (pool side, suspect checkpoints)
    "mal128": (128, sorted(Path("/tmp/exp/suspects").glob("mal_*.ckpt"))),
    "mal256": (256, sorted(Path("/tmp/exp/suspects_ws").glob("256_none_[0-9]*.ckpt"))),
    "clean128": (128, sorted(Path("/tmp/exp/suspects").glob("clean_*.ckpt"))),
}
COLS = ("p_b", "p_w", "p_minus", "p_plus")


def collect() -> dict[str, np.ndarray]:
    """(n_suspects, 4, 100) scores per group: every boundary query, all four versions."""
    out = {}
    for name, (size, files) in GROUPS.items():
        images, ids = query_images(target, 100, size, 9001, 400)
        marker = load_marker(R / "surrogate.pt", R / "generator.pt")
        scores = marker.target_scores(images)
        rows = []
        for f in files:
            sus = TorchSuspect(load_checkpoint(f).model.eval(), classes, 64)
            r = run_verification(sus, marker, images, ids, target, VerifyConfig(seed=9001), query_scores=scores)
            rows.append([[q[c] for q in r.log] for c in COLS])
            print(f"{name} {f.name}: dP {r.delta_p:.3f} p {r.p_value:.2g} claimed {r.decision}", flush=True)
        out[name] = np.array(rows)
    return out


def stop_time(y: np.ndarray, rule, alpha: float = 0.01) -> np.ndarray:
    """First 1-based n with capital >= 1/alpha, per row of y (orders, n); n+1 if never."""
    log_k = np.zeros(y.shape[0])
    stop = np.full(y.shape[0], y.shape[1] + 1)
    state = rule.start(y.shape[0])
    for t in range(y.shape[1]):
        lam = rule.bet(state)
        log_k += np.log1p(lam * y[:, t])
        rule.update(state, y[:, t], lam)
        stop = np.where((stop > y.shape[1]) & (log_k >= np.log(1 / alpha)), t + 1, stop)
    return stop


class Agrapa:
    """The library's rule (stats.SequentialTest): aGRAPA with a pseudo-observation, clipped."""

    def __init__(self, tau, max_bet=stats.DEFAULT_MAX_BET, prior_var=0.25):
        self.cap, self.prior_var = max_bet / (1 + tau), prior_var

    def start(self, n):
        return {"n": 0, "s": np.zeros(n), "q": np.zeros(n)}

    def bet(self, st):
        k = st["n"] + 1
        mu = st["s"] / k
        var = np.maximum((self.prior_var + st["q"] - st["n"] * (st["s"] / max(st["n"], 1)) ** 2) / k, 1e-8)
        return np.clip(mu / (var + mu**2), 0, self.cap)

    def update(self, st, y, lam):
        st["n"] += 1
        st["s"] = st["s"] + y
        st["q"] = st["q"] + y**2


def check_rule_matches_library():
    d = np.random.default_rng(0).uniform(-1, 1, (3, 50)) * 0.5 + 0.3
    lib = stats.sequential_path(d, 0.2)["bet"]  # both at the library's default cap
    rule = Agrapa(0.2)
    st = rule.start(3)
    for t in range(50):
        assert np.allclose(rule.bet(st), lib[:, t]), t
        rule.update(st, d[:, t] - 0.2, None)


def replay(logs: np.ndarray, make_rule, orders: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Per suspect and order: stop time of each stream and of the claim (the latest)."""
    rng = np.random.default_rng(seed)
    per = {"main": [], "minus": [], "plus": [], "claim": []}
    for s in logs:
        perm = np.stack([rng.permutation(s.shape[1]) for _ in range(orders)])
        pb, pw, pm, pp = (s[i][perm] for i in range(4))
        t_main = stop_time(pw - pb - 0.2, make_rule(0.2))
        t_m = stop_time(pw - pm, make_rule(0.0))
        t_p = stop_time(pw - pp, make_rule(0.0))
        for k, v in (("main", t_main), ("minus", t_m), ("plus", t_p), ("claim", np.maximum(t_main, np.maximum(t_m, t_p)))):
            per[k].append(v)
    return {k: np.array(v) for k, v in per.items()}


def describe(name: str, res: dict[str, np.ndarray], m: int = 100) -> str:
    def med(a):
        a = np.where(a > m, np.inf, a)
        v = np.median(a)
        return "∞" if not np.isfinite(v) else f"{v:.0f}"
    claim = res["claim"]
    per_sus = " ".join(med(c) for c in claim)
    return (f"{name:28s} claim median {med(claim.ravel()):>3s} (reached {np.mean(claim <= m):.2f}); "
            f"main {med(res['main'].ravel())}, minus {med(res['minus'].ravel())}, plus {med(res['plus'].ravel())}; "
            f"per suspect {per_sus}")


if __name__ == "__main__":
    check_rule_matches_library()
    if not LOGS.exists():
        np.savez(LOGS, **collect())
    data = dict(np.load(LOGS))
    orders = int(os.environ.get("ORDERS", 200))
    rules = {
        "aGRAPA 0.75 (library until 2026-12-05)": lambda tau: Agrapa(tau, 0.75),
        "aGRAPA 0.9 (library now)": lambda tau: Agrapa(tau, 0.9),
        "aGRAPA 0.95": lambda tau: Agrapa(tau, 0.95),
        "aGRAPA 0.99": lambda tau: Agrapa(tau, 0.99),
        "aGRAPA 0.75 prior 0.05": lambda tau: Agrapa(tau, 0.75, prior_var=0.05),
    }
    for g, logs in data.items():
        d = logs[:, 1] - logs[:, 0]
        print(f"--- {g}: {len(logs)} suspects, dP {np.round(d.mean(1), 3).tolist()}; "
              f"P_w - P_turned -/+ {np.round((logs[:, 1] - logs[:, 2]).mean(1), 3).tolist()} / "
              f"{np.round((logs[:, 1] - logs[:, 3]).mean(1), 3).tolist()}")
        for name, mk in rules.items():
            print(describe(name, replay(logs, mk, orders)), flush=True)
