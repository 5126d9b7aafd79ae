"""Two releases compared on the same suspect seeds, from results.log (lab; repo root).

Reads the Malicious rows (seed, query choice, WSR, ΔP, p) of the results.log sections whose
header line contains one of the given strings -- kept_suspects.py rows (``mal  100  proxy  …``)
and release_variant.py rows (``TAG seed 100 proxy : WSR … dP … p …``) -- for a base release
(the strings before ``--``) and a variant (after it); a seed found in several sections of one
side keeps its first row. Prints, per query choice, the seeds both sides have, claims (p < 0.01),
seeds meeting the targets (WSR ≥ 95 %, ΔP ≥ 0.8, p < 1e-3), the paired ΔP difference and a
Wilcoxon signed-rank test of it, and where kept_suspects.py rows give them, the median over the
seeds of each one's sequential median (a seed never claimed counts as m + 1). From
proxy_centred_check.py sections (``check +/-D:`` blocks) it prints, per check angle, how many
suspects are claimed at the key and their mean claimed zone (the share of random rival keys),
over the suspects that learned the mark (claimed at the key at the widest angle printed).

    python docs/lab/learnability/paired_seeds.py "(XVI) kept_suspects.py, ATTACKS=finetune,fineprune" "TAG=more" "kept_suspects.py results/full_att6_models_more" "proxy_centred_check.py results/full_att6_models " "proxy_centred_check.py results/full_att6_models_more" -- "TAG=gate05" "kept_suspects.py results/full_att6_models_gate05" "proxy_centred_check.py results/full_att6_models_gate05"
"""
import re
import sys
from pathlib import Path

import numpy as np
from scipy import stats

LOG = Path(__file__).with_name("results.log")
KEPT = re.compile(r"^mal\s+(\d+)\s+(proxy|boundary)\s+([\d.]+)\s+(-?[\d.]+)\s+(\S+)(?:\s+([\d.]+) \()?")
VARIANT = re.compile(r"^\w+ seed (\d+) (proxy|boundary)\s*: WSR ([\d.]+) dP (-?[\d.]+) p (\S+)")
CHECK = re.compile(r"^check \+/-(\d+):")
ZONE = re.compile(r"^\s+mal(\d+)\s+zone\s+(\d+) deg .*at \+0: p (\S+)")


def sections(headers: list[str]) -> list[str]:
    """The lines of the results.log sections whose header line contains one of ``headers``."""
    out, take = [], False
    for line in LOG.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            take = any(h in line for h in headers)
        elif take:
            out.append(line)
    return out


def rows(headers: list[str]) -> tuple[dict[tuple[int, str], tuple[float, float, float]], dict[tuple[int, str], float]]:
    """(seed, query choice) -> (WSR, ΔP, p), and -> the sequential median where logged."""
    out: dict[tuple[int, str], tuple[float, float, float]] = {}
    seq: dict[tuple[int, str], float] = {}
    for line in sections(headers):
        if m := KEPT.match(line) or VARIANT.match(line):
            out.setdefault((int(m[1]), m[2]), (float(m[3]), float(m[4]), float(m[5])))
            if m.re is KEPT and m[6]:
                seq.setdefault((int(m[1]), m[2]), float(m[6]))
    return out, seq


def zones(headers: list[str]) -> dict[int, dict[int, tuple[int, bool]]]:
    """check angle -> seed -> (claimed zone in degrees, claimed at the key)."""
    out: dict[int, dict[int, tuple[int, bool]]] = {}
    d = None
    for line in sections(headers):
        if m := CHECK.match(line):
            d = int(m[1])
        elif d is not None and (m := ZONE.match(line)):
            out.setdefault(d, {}).setdefault(int(m[1]), (int(m[2]), float(m[3]) < 0.01))
    return out


def main() -> None:
    cut = sys.argv.index("--")
    (base, base_seq), (variant, variant_seq) = rows(sys.argv[1:cut]), rows(sys.argv[cut + 1:])
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
        for name, seq in (("base", base_seq), ("variant", variant_seq)):
            if all((sd, q) in seq for sd in seeds):
                print(f"  {name:8s} sequential: median of the seeds' medians {np.median([seq[sd, q] for sd in seeds]):g}")
    for name, side in (("base", zones(sys.argv[1:cut])), ("variant", zones(sys.argv[cut + 1:]))):
        if not side:
            continue
        learned = [sd for sd, (_, ok) in side[max(side)].items() if ok]
        for d in sorted(side):
            zone = np.mean([side[d][sd][0] for sd in learned])
            print(f"  {name:8s} check ±{d}°: claimed at the key {sum(ok for _, ok in side[d].values())} of "
                  f"{len(side[d])}; mean zone of the {len(learned)} that learned it {zone:.1f}° ({zone / 180:.1%})")


if __name__ == "__main__":
    main()
