"""Two releases compared on the same suspect seeds, from results.log (lab; repo root).

Reads the Malicious rows (seed, query choice, WSR, ΔP, p) of the results.log sections whose
header line contains one of the given strings -- kept_suspects.py rows (``mal  100  proxy  …``)
and release_variant.py rows (``TAG seed 100 proxy : WSR … dP … p …``) -- for a base release
(the strings before ``--``) and a variant (after it); a seed found in several sections of one
side keeps its first row. Prints, per query choice, the seeds both sides have, claims (p < 0.01),
seeds meeting the targets (WSR ≥ 95 %, ΔP ≥ 0.8, p < 1e-3), the paired ΔP difference and a
Wilcoxon signed-rank test of it.

    python docs/lab/learnability/paired_seeds.py "(XVI) kept_suspects.py, ATTACKS=finetune,fineprune" "TAG=more" -- "TAG=gate05"
"""
import re
import sys
from pathlib import Path

import numpy as np
from scipy import stats

LOG = Path(__file__).with_name("results.log")
KEPT = re.compile(r"^mal\s+(\d+)\s+(proxy|boundary)\s+([\d.]+)\s+(-?[\d.]+)\s+(\S+)")
VARIANT = re.compile(r"^\w+ seed (\d+) (proxy|boundary)\s*: WSR ([\d.]+) dP (-?[\d.]+) p (\S+)")


def rows(headers: list[str]) -> dict[tuple[int, str], tuple[float, float, float]]:
    """(seed, query choice) -> (WSR, ΔP, p) from the sections whose header contains a string."""
    out: dict[tuple[int, str], tuple[float, float, float]] = {}
    take = False
    for line in LOG.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            take = any(h in line for h in headers)
        elif take and (m := KEPT.match(line) or VARIANT.match(line)):
            out.setdefault((int(m[1]), m[2]), (float(m[3]), float(m[4]), float(m[5])))
    return out


def main() -> None:
    cut = sys.argv.index("--")
    base, variant = rows(sys.argv[1:cut]), rows(sys.argv[cut + 1:])
    for q in ("proxy", "boundary"):
        seeds = sorted(sd for sd, qq in variant if qq == q and (sd, q) in base)
        if not seeds:
            continue
        a = np.array([base[sd, q][1] for sd in seeds])
        b = np.array([variant[sd, q][1] for sd in seeds])
        print(f"{q} queries, seeds {seeds[0]}-{seeds[-1]} ({len(seeds)})")
        for name, side, dps in (("base", base, a), ("variant", variant, b)):
            r = [side[sd, q] for sd in seeds]
            print(f"  {name:8s} dP {' '.join(f'{x:.3f}' for x in dps)}; claimed {sum(p < 0.01 for *_, p in r)}, "
                  f"meet targets {sum(w >= 0.95 and d >= 0.8 and p < 1e-3 for w, d, p in r)}, "
                  f"median dP {np.median(dps):.3f}, under 0.6: {int(np.sum(dps < 0.6))}")
        print(f"  variant - base: mean {np.mean(b - a):+.3f}, higher on {int(np.sum(b > a))} of {len(seeds)}, "
              f"Wilcoxon signed-rank p {stats.wilcoxon(b, a).pvalue:.2g}")


if __name__ == "__main__":
    main()
