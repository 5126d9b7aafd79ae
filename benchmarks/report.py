"""Results files and the Markdown table.

``results/summary.json`` has a stable shape (issue #5), numbers as fractions and raw
p-values; ``results/details/<part>.json`` keep everything else; every file carries the
git commit and the settings (summary.json: the commit and ``quick``; the settings are in
``results/run.json`` and in each detail file).
"""

from __future__ import annotations

import math
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from xmark_core.atomic import atomic_write_json, atomic_write_text
from xmark_core.verify.protocol import stream_label

METHOD_KEYS = ("malicious", "ind_m", "ind_t", "ba_clean", "ba_drop", "psnr", "ssim")
VERIFY_KEYS = ("wsr", "delta_p", "p")
IND_KEYS = ("max_delta_p", "min_p", "n")
ATTACK_KEYS = ("wsr", "delta_p", "p", "ba")
RESOLUTION_KEYS = ("0.5", "0.25", "other_arch")
SPEED_KEYS = ("eigencam_ips", "embed_ips_256", "embed_ips_512", "embed_ips_1024", "io_floor_ratio_512",
              "verify_s_per_100")
TOP_KEYS = ("commit", "quick", "xmark", "baselines", "resolution", "attacks", "sequential", "speed")
SUMMARY_SPEED_SIZE = "512"  # eigencam_ips and the I/O ratio are reported at this size


MALICIOUS_TARGETS = {"wsr": 0.95, "delta_p": 0.8, "p": 1e-3}  # the issue's, per Malicious suspect


def git_commit(repo: str | Path | None = None) -> str:
    """``git rev-parse HEAD`` of the repository, or "unknown"."""
    root = Path(repo) if repo else Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"


def git_dirty(repo: str | Path | None = None) -> bool | None:
    """True when the working tree differs from the commit (None if git is unavailable)."""
    root = Path(repo) if repo else Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return bool(out.stdout.strip()) if out.returncode == 0 else None


def _pick(d: dict[str, Any] | None, keys: tuple[str, ...]) -> dict[str, Any]:
    d = d or {}
    return {k: d.get(k) for k in keys}


def method_summary(proto: dict[str, Any] | None, fa: dict[str, Any] | None) -> dict[str, Any]:
    """The summary block of one method (X-Mark or a baseline)."""
    proto, fa = proto or {}, fa or {}
    return {
        "malicious": _pick(proto.get("malicious"), VERIFY_KEYS),
        "ind_m": _pick(fa.get("ind_m"), IND_KEYS),
        "ind_t": _pick(fa.get("ind_t"), IND_KEYS),
        "ba_clean": proto.get("ba_clean"), "ba_drop": proto.get("ba_drop"),
        "psnr": proto.get("psnr"), "ssim": proto.get("ssim"),
    }


def claim_share_ci(claimed: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) confidence interval of the share of suspects claimed: with a
    handful of training seeds, "2 of 3" is compatible with almost any rate, and the table
    says so."""
    from scipy.stats import binomtest

    ci = binomtest(claimed, n).proportion_ci(confidence_level=level, method="exact")
    return float(ci.low), float(ci.high)


def build_summary(commit: str, quick: bool, parts: dict[str, Any], baselines: tuple[str, ...]) -> dict[str, Any]:
    """``summary.json`` in the issue's shape from the parts' results (missing parts -> null).

    Parameters
    ----------
    commit : git commit of the code that ran
    quick : whether this was a reduced run (a preset other than full and hardened)
    parts : results by part name: protocol, false_accusations, resolution, attacks, queries, speed
    baselines : the baseline names, in order
    """
    proto = parts.get("protocol") or {}
    fa = parts.get("false_accusations") or {}
    res = (parts.get("resolution") or {}).get("xmark") or {}
    att = parts.get("attacks") or {}
    seq = parts.get("queries") or {}
    spd = parts.get("speed") or {}
    sizes = spd.get("sizes") or {}
    speed = {
        "eigencam_ips": (sizes.get(SUMMARY_SPEED_SIZE) or {}).get("eigencam_ips"),
        **{f"embed_ips_{k}": (sizes.get(k) or {}).get("embed_ips") for k in ("256", "512", "1024")},
        "io_floor_ratio_512": (sizes.get("512") or {}).get("io_floor_ratio"),
        "verify_s_per_100": spd.get("verify_s_per_100"),
    }
    return {
        "commit": commit,
        "quick": bool(quick),
        "xmark": method_summary(proto.get("xmark"), fa.get("xmark")),
        "baselines": {b: method_summary(proto.get(b), fa.get(b)) for b in baselines},
        "resolution": {k: _pick(res.get(k), VERIFY_KEYS) for k in RESOLUTION_KEYS},
        "attacks": {k: _pick(v, ATTACK_KEYS) for k, v in att.items() if k != "none"},
        "sequential": {"median_queries": seq.get("median_queries")},
        "speed": speed,
    }


def shape_problems(summary: dict[str, Any]) -> list[str]:
    """Where ``summary`` departs from the issue's shape (empty list: it conforms).

    Checks keys, and that every number present is finite and in range (fractions in
    [0, 1] or [-1, 1] for ΔP and BA drop, p-values in [0, 1], speeds > 0).
    """
    problems: list[str] = []

    def keys(d: Any, want: tuple[str, ...], where: str, extra_ok: tuple[str, ...] = ()) -> bool:
        if not isinstance(d, dict):
            problems.append(f"{where}: not an object")
            return False
        missing = [k for k in want if k not in d]
        extra = [k for k in d if k not in want and k not in extra_ok]
        if missing:
            problems.append(f"{where}: missing {missing}")
        if extra:
            problems.append(f"{where}: unexpected {extra}")
        return not missing

    def num(v: Any, where: str, lo: float, hi: float) -> None:
        if v is None:
            return
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or not lo <= v <= hi:
            problems.append(f"{where}: {v!r} is not a finite number in [{lo}, {hi}]")

    def verify_block(d: Any, where: str, want: tuple[str, ...] = VERIFY_KEYS) -> None:
        if keys(d, want, where):
            num(d["wsr"], f"{where}.wsr", 0, 1)
            num(d["delta_p"], f"{where}.delta_p", -1, 1)
            num(d["p"], f"{where}.p", 0, 1)
            if "ba" in d:
                num(d["ba"], f"{where}.ba", 0, 1)

    def method(d: Any, where: str) -> None:
        if not keys(d, METHOD_KEYS, where):
            return
        verify_block(d["malicious"], f"{where}.malicious")
        for k in ("ind_m", "ind_t"):
            if keys(d[k], IND_KEYS, f"{where}.{k}"):
                num(d[k]["max_delta_p"], f"{where}.{k}.max_delta_p", -1, 1)
                num(d[k]["min_p"], f"{where}.{k}.min_p", 0, 1)
                num(d[k]["n"], f"{where}.{k}.n", 0, 1e9)
        num(d["ba_clean"], f"{where}.ba_clean", 0, 1)
        num(d["ba_drop"], f"{where}.ba_drop", -1, 1)
        num(d["psnr"], f"{where}.psnr", 0, 1e3)
        num(d["ssim"], f"{where}.ssim", -1, 1)

    if not keys(summary, TOP_KEYS, "summary", extra_ok=("stealthmark",)):
        return problems
    if not isinstance(summary["commit"], str) or not summary["commit"]:
        problems.append("summary.commit: not a non-empty string")
    if not isinstance(summary["quick"], bool):
        problems.append("summary.quick: not a boolean")
    method(summary["xmark"], "xmark")
    if isinstance(summary["baselines"], dict):
        for name, d in summary["baselines"].items():
            method(d, f"baselines.{name}")
    else:
        problems.append("baselines: not an object")
    if keys(summary["resolution"], RESOLUTION_KEYS, "resolution"):
        for k in RESOLUTION_KEYS:
            verify_block(summary["resolution"][k], f"resolution.{k}")
    if isinstance(summary["attacks"], dict):
        for name, d in summary["attacks"].items():
            verify_block(d, f"attacks.{name}", ATTACK_KEYS)
    else:
        problems.append("attacks: not an object")
    if keys(summary["sequential"], ("median_queries",), "sequential"):
        num(summary["sequential"]["median_queries"], "sequential.median_queries", 1, 1e9)
    if keys(summary["speed"], SPEED_KEYS, "speed"):
        for k in SPEED_KEYS:
            num(summary["speed"][k], f"speed.{k}", 1e-12, 1e12)
    return problems


# ---------------------------------------------------------------------------------- Markdown


def _f(v: Any, fmt: str = ".3f") -> str:
    if v is None:
        return "–"
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return format(v, fmt)


def _pct(v: Any) -> str:
    return "–" if v is None else f"{100 * v:.1f}%"


def _p(v: Any) -> str:
    return "–" if v is None else f"{v:.2g}"


def _pooled_queries(o: dict[str, Any] | None) -> str:
    """The sequential test over several Malicious suspects, as a clause ('' for one suspect)."""
    if not o or len(o.get("per_suspect", [])) < 2:
        return ""
    return (f"; over all {len(o['per_suspect'])} Malicious suspects: {_f(o.get('median_queries'), 'g')} "
            f"({o['reached']}/{o['runs']} runs)")


def _stream_queries(streams: dict[str, Any] | None, degrees: Any) -> str:
    """Each stream's median queries, as a clause ('' without the key check)."""
    if not streams or len(streams) < 2:
        return ""
    parts = ", ".join(f"{stream_label(k, float(degrees or 0))} {_f(v, 'g')}" for k, v in streams.items())
    return f"; each stream's median (the claim waits for the slowest): {parts}"


def meets_malicious_targets(wsr: float, delta_p: float, p: float) -> bool:
    """The issue's Malicious targets for one suspect: WSR >= 95 %, delta P >= 0.8, p < 1e-3."""
    return wsr >= MALICIOUS_TARGETS["wsr"] and delta_p >= MALICIOUS_TARGETS["delta_p"] and p < MALICIOUS_TARGETS["p"]


def _false_accusations_table(fa: dict[str, Any]) -> list[str]:
    """Share of Ind-M models and Ind-T key-suspect pairs with p < α per method, then every
    Ind-T claim by key and suspect (what a reader of a false accusation needs to find it)."""
    if not fa:
        return []
    lines = ["", "**False accusations** (share of independent models / keys with p < α; Ind-T: "
                 "each key against each Malicious suspect)", "", "| method | Ind-M | Ind-T |", "|---|---|---|"]
    for k, r in fa.items():
        lines.append(f"| {k} | {_pct(r['ind_m']['share_p_below_alpha'])} of {r['ind_m']['n']} | "
                     f"{_pct(r['ind_t']['share_p_below_alpha'])} of {r['ind_t']['n']} |")
    claims = [(k, c) for k, r in fa.items() for c in r["ind_t"].get("claims") or []]
    if claims:
        lines += ["", "Ind-T claims (an independent key's owner would wrongly claim the suspect): "
                  + "; ".join(f"{k} key {c['key']} on suspect seed {c['suspect_seed']} "
                              f"(ΔP {_f(c['delta_p'])}, p {_p(c['p'])})" for k, c in claims) + "."]
    return lines


def _by_check_table(fa: dict[str, Any], run_angle: float | None = None) -> list[str]:
    """Per key-check angle (the ``also_checks`` setting): the Malicious suspects the owner's key
    claims and the Ind-T pairs claimed, on the same models; no lines without ``by_check``."""
    by_c = {k: v["by_check"] for k, v in fa.items() if isinstance(v, dict) and v.get("by_check")}
    if not by_c:
        return []
    lines = ["", "**The key check's angle on the same suspects** (claimed = p < α; the owner's key on the "
                 "Malicious suspects, each independent key on each of them)", "",
             "| method | check | owner claims | Ind-T pairs claimed | those pairs (key on suspect seed) |",
             "|---|---|---|---|---|"]
    for name, rows in by_c.items():
        for d, r in sorted(rows.items(), key=lambda kv: float(kv[0])):
            label = "none" if float(d) == 0 else f"±{d}°"
            if run_angle is not None and float(d) == float(run_angle):
                label += " (the run's)"
            o, it = r["owner"], r["ind_t"]
            pairs = ", ".join(f"{c['key']} on {c['suspect_seed']}" for c in it["claims"]) or "–"
            lines.append(f"| {name} | {label} | {o['claimed']} of {o['n']} | {it['claimed']} of {it['n']} | {pairs} |")
    return lines


def _by_queries_table(proto: dict[str, Any]) -> list[str]:
    """The protocol's Malicious suspects and clean reference under each query choice (the
    ``also_queries`` setting); no lines when it was not set."""
    by_q = {k: v["by_queries"] for k, v in proto.items() if isinstance(v, dict) and "by_queries" in v}
    if not by_q:
        return []
    lines = ["", "**Query choices on the same suspects** (claimed = p < α; the targets: WSR ≥ 95 %, ΔP ≥ 0.8, "
                 "p < 1e-3)", "",
             "| method | queries | claimed | meet the targets | ΔP per seed | WSR per seed | clean reference ΔP / p |",
             "|---|---|---|---|---|---|---|"]
    for name, choices in by_q.items():
        for q, d in choices.items():
            m, c = d["malicious"], d["clean_reference"]
            claimed = round(m["share_p_below_alpha"] * m["n"])
            meet = sum(meets_malicious_targets(*v) for v in zip(m["wsr"], m["delta_p"], m["p"]))
            lines.append(f"| {name} | {q} | {claimed} of {m['n']} | {meet} of {m['n']} | "
                         f"{', '.join(_f(v) for v in m['delta_p'])} | {', '.join(_pct(v) for v in m['wsr'])} | "
                         f"{_f(c['delta_p'])} / {_p(c['p'])} |")
    return lines


def _resolution_seeds_table(rows: dict[str, Any]) -> list[str]:
    """X-Mark's resolution factors over training seeds (the ``resolution_seeds`` setting); no
    lines when every factor has one suspect."""
    many = {k: r["over_seeds"] for k, r in rows.items() if r.get("over_seeds")}
    if not many:
        return []
    lines = ["", "**Resolution transfer over training seeds** (same release; claimed = p < α; the targets: "
                 "WSR ≥ 95 %, ΔP ≥ 0.8, p < 1e-3)", "",
             "| suspect | seeds | claimed | meet the targets | ΔP per seed | WSR per seed | p per seed | BA per seed |",
             "|---|---|---|---|---|---|---|---|"]
    for k, o in many.items():
        claimed = round(o["share_p_below_alpha"] * o["n"])
        meet = sum(meets_malicious_targets(*v) for v in zip(o["wsr"], o["delta_p"], o["p"]))
        lines.append(f"| ×{k} of source ({rows[k]['input_size']} px) | {', '.join(str(v) for v in o['seeds'])} | "
                     f"{claimed} of {o['n']} | {meet} of {o['n']} | {', '.join(_f(v) for v in o['delta_p'])} | "
                     f"{', '.join(_pct(v) for v in o['wsr'])} | {', '.join(_p(v) for v in o['p'])} | "
                     f"{', '.join(_pct(v) for v in o['ba'])} |")
    return lines


def markdown(summary: dict[str, Any], parts: dict[str, Any], settings: dict[str, Any], seconds: float,
             machine: dict[str, Any] | None = None) -> str:
    """The results as Markdown tables (what the README's Results section shows).

    ``machine`` (run.json's) names the CPU in the heading: training is bitwise reproducible
    for a seed on one kind of CPU only, so tables from two kinds are two replicates."""
    s = settings
    cpu = f"; {machine.get('cpu')}, {machine.get('torch_cpu_capability')}" if machine else ""
    lines = [
        f"### X-Mark benchmark ({s.get('preset')}; commit {summary['commit'][:12]}; {seconds / 60:.1f} min{cpu})",
        "",
        f"{s.get('n_images')} phantom images, {len(s.get('classes', [])) or 4} classes, released at "
        f"{s.get('source_size')} px, ρ = {s.get('rho')} of class {s.get('target')}; suspects {s.get('arch')} "
        f"at {s.get('input_size')} px"
        + (f", trained {s['suspect_epochs']} epochs (the owner's models {s.get('epochs')})"
           if s.get("suspect_epochs") is not None else "")
        + f"; m = {s.get('m')}, τ = {s.get('tau')}, α = {s.get('alpha')}, "
        f"query gain {s.get('query_gain', 'library default')}, {s.get('queries', 'random')} queries"
        + (f", key-specificity check ±{s['specificity']:g}°"
           + (f" at gain {s['check_gain']:g}" if s.get("check_gain") else "") + " (X-Mark)"
           if s.get("specificity") else "") + ".",
        "",
        "| method | PSNR dB | SSIM | BA clean | BA drop | Malicious WSR | ΔP | p | Ind-M max ΔP / min p (n) "
        "| Ind-T max ΔP / min p (n) | ΔP @1/2 | ΔP @1/4 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    res = parts.get("resolution") or {}
    rows = [("X-Mark", summary["xmark"], res.get("xmark") or {})]
    ran = parts.get("protocol") or {}
    rows += [(b, d, res.get(b) or {}) for b, d in summary["baselines"].items() if b in ran]  # `baselines` setting
    for name, d, r in rows:
        mal, im, it = d["malicious"], d["ind_m"], d["ind_t"]
        lines.append(
            f"| {name} | {_f(d['psnr'], '.2f')} | {_f(d['ssim'], '.4f')} | {_pct(d['ba_clean'])} | "
            f"{_f(None if d['ba_drop'] is None else 100 * d['ba_drop'], '+.1f')} pt | {_pct(mal['wsr'])} | "
            f"{_f(mal['delta_p'])} | {_p(mal['p'])} | {_f(im['max_delta_p'])} / {_p(im['min_p'])} ({_f(im['n'], 'd')}) | "
            f"{_f(it['max_delta_p'])} / {_p(it['min_p'])} ({_f(it['n'], 'd')}) | "
            f"{_f((r.get('0.5') or {}).get('delta_p'))} | {_f((r.get('0.25') or {}).get('delta_p'))} |")

    proto = parts.get("protocol") or {}
    seeds = {k: v["malicious_seeds"] for k, v in proto.items() if isinstance(v, dict) and "malicious_seeds" in v}
    if any(v["n"] > 1 for v in seeds.values()):
        lines += ["", "**Malicious suspects over training seeds** (same release; claimed = p < α)", "",
                  "| method | claimed | 95 % CI of the share | ΔP per seed | p per seed | ownership test alone | "
                  "BA drop per seed |", "|---|---|---|---|---|---|---|"]
        for k, v in seeds.items():
            k_claimed = round(v["share_p_below_alpha"] * v["n"])
            lo, hi = claim_share_ci(k_claimed, v["n"])
            own = v.get("p_ownership") or []  # absent in results written before 2026-12-05 (VI)
            lines.append(f"| {k} | {k_claimed} of {v['n']} | {100 * lo:.0f}–{100 * hi:.0f} % | "
                         f"{', '.join(_f(d) for d in v['delta_p'])} | {', '.join(_p(q) for q in v['p'])} | "
                         f"{', '.join(_p(q) for q in own) or '–'} | "
                         f"{', '.join(_f(100 * d, '+.2f') for d in (proto[k].get('ba_seeds') or {}).get('ba_drop', [])) or '–'} |")
        lines += ["", "p is the largest of the ownership test and, with the key-specificity check, the "
                      "tests of the owner's mark against each turned one. BA drop (points) is against the "
                      "clean model of the same seed."]

    lines += _by_queries_table(proto)

    xr = res.get("xmark") or {}
    if xr:
        more = list(dict.fromkeys(q for r in xr.values() for q in r.get("by_queries") or {}))
        lines += ["", "**Resolution transfer (X-Mark release)**"
                  + (f" (WSR, ΔP, p with {s.get('queries', 'the default')} queries)" if more else ""), "",
                  "| suspect | input px | BA | WSR | ΔP | p |" + "".join(f" ΔP, p ({q} queries) |" for q in more),
                  "|---|---|---|---|---|---|" + "---|" * len(more)]
        for k, r in xr.items():
            if "skipped" in r:
                lines.append(f"| {k} | – | – | – | – | skipped: {r['skipped']} |" + " – |" * len(more))
            else:
                label = f"{r['arch']} (other arch)" if k == "other_arch" else f"×{k} of source"
                alt = [(r.get("by_queries") or {}).get(q) for q in more]
                lines.append(f"| {label} | {r['input_size']} | {_pct(r['ba'])} | {_pct(r['wsr'])} | "
                             f"{_f(r['delta_p'])} | {_p(r['p'])} |"
                             + "".join(f" {_f(a['delta_p'])}, {_p(a['p'])} |" if a else " – |" for a in alt))
        lines += _resolution_seeds_table(xr)

    att = parts.get("attacks") or {}
    if att:
        many = (att.get("none", {}).get("over_seeds") or {}).get("n", 1) > 1
        lines += ["", "**Adaptive attacks on the X-Mark Malicious suspect**"
                  + (" (columns: the first suspect; last column: all suspects)" if many else ""), "",
                  "| attack | BA | WSR | ΔP | p |" + (" claimed over suspects (within 5 BA pt) |" if many else ""),
                  "|---|---|---|---|---|" + ("---|" if many else "")]
        for k, r in att.items():
            o = r.get("over_seeds") or {}
            lines.append(f"| {k} | {_pct(r['ba'])} | {_pct(r['wsr'])} | {_f(r['delta_p'])} | {_p(r['p'])} |"
                         + (f" {o['claimed']} of {o['n']} ({o['claimed_within_ba']} of {o['within_ba']}) |"
                            if many else ""))

    lines += _false_accusations_table(parts.get("false_accusations") or {})
    lines += _by_check_table(parts.get("false_accusations") or {}, s.get("specificity"))

    seq = parts.get("queries") or {}
    if seq:
        lines += ["", f"**Sequential test**: median queries to reach α = {seq.get('alpha')}: "
                      f"{_f(seq.get('median_queries'), 'g')} ({seq.get('reached')}/{seq.get('repeats')} runs "
                      f"reached it within m = {seq.get('m')})"
                      + _stream_queries(seq.get("streams"), s.get("specificity"))
                      + _pooled_queries(seq.get("over_seeds")) + "."]

    spd = parts.get("speed") or {}
    if spd:
        lines += ["", f"**Speed** (torch threads {spd.get('torch_threads')}, load average before "
                      f"{_f((spd.get('loadavg_before') or [None])[0], '.1f')})", "",
                  "| size | EigenCAM img/s | generator img/s | generator native img/s | embed img/s "
                  "| I/O floor img/s | embed / I/O time | release (ρ) / I/O time | first run s |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for k, r in (spd.get("sizes") or {}).items():
            lines.append(f"| {k} px | {_f(r['eigencam_ips'], '.1f')} | {_f(r['generator_ips'], '.1f')} | "
                         f"{_f(r.get('generator_native_ips'), '.1f')} | {_f(r['embed_ips'], '.2f')} | "
                         f"{_f(r['io_ips'], '.1f')} | {_f(r['io_floor_ratio'], '.2f')}× | "
                         f"{_f(r.get('release_io_ratio'), '.2f')}× | {_f(r.get('warmup_s'), '.2f')} |")
        lines += ["", "Embed marks every image (the worst case); release marks the run's ρ of them, as "
                      "`xmark embed` does, and scores all with the surrogate. Both are timed warm; "
                      "first run: the untimed warm-up embedding of one batch at that size."]
        hard = {k: r for k, r in (spd.get("sizes") or {}).items() if "embed_hardened_ips" in r}
        if hard:
            lines += ["", "With the run's hardening after the mark (every image marked and hardened): "
                          + "; ".join(f"{k} px {_f(r['embed_hardened_ips'], '.2f')} img/s, "
                                      f"{_f(r['hardened_io_ratio'], '.1f')}× the I/O time" for k, r in hard.items())
                          + "."]
        lines += ["", f"Verification: {_f(spd.get('verify_s_per_100'), '.2f')} s per 100 queries in-process, "
                      f"{_f(spd.get('verify_http_s_per_100'), '.2f')} s over HTTP."]
    if "stealthmark" in summary:
        lines += ["", "**StealthMark**: see `details/stealthmark.json`."]
    return "\n".join(lines) + "\n"


def jsonable(obj: Any) -> Any:
    """Plain JSON values: numpy scalars and arrays to Python, tuples to lists, and
    non-finite floats to None (strict JSON has no NaN or infinity)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_results(out: str | Path, summary: dict[str, Any], parts: dict[str, Any], run_info: dict[str, Any],
                  table: str) -> list[Path]:
    """Write summary.json, run.json, table.md and details/<part>.json (atomically).

    Returns
    -------
    The paths written.
    """
    out = Path(out)
    written = [out / "summary.json", out / "run.json", out / "table.md"]
    atomic_write_json(written[0], jsonable(summary))
    atomic_write_json(written[1], jsonable(run_info))
    atomic_write_text(written[2], table)
    meta = {k: run_info[k] for k in ("commit", "dirty", "settings") if k in run_info}
    for name, data in parts.items():
        if data is None:
            continue
        path = out / "details" / f"{name}.json"
        atomic_write_json(path, jsonable({**meta, "part": name, "results": data}))
        written.append(path)
    return written
