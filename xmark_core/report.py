"""Evidence bundle of a verification: ``evidence.json`` + a self-contained ``report.html``.

``evidence.json`` holds everything a reviewer needs to check and re-run the verification:
suspect identity and hash, the owner's commitment and its check against the owner record,
test, parameters, seed, per-query log, statistic, p-value, delta P, WSR, decision, software
versions and a timestamp, plus ``evidence_sha256`` over all of it.  ``report.html`` is
rendered from ``evidence.json`` alone (so it can be re-rendered later) and embeds its
figures as inline SVG: one file, no scripts, readable by a non-programmer.
"""

from __future__ import annotations

import html
import json
import platform
import sys
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

import numpy as np

from xmark_core.atomic import atomic_path, atomic_write_json, atomic_write_text
from xmark_core.errors import DataError
from xmark_core.hashing import canonical_json, commitment, sha256_bytes, sha256_file
from xmark_core.verify.protocol import (
    SIDE_SIGN,
    SIDES,
    VerificationResult,
    VerifyConfig,
    stream_running_p,
)

SCHEMA = "xmark-evidence/1"

TEST_NAMES = {
    "ttest": "paired one-sided t-test with margin (DVBW)",
    "sequential": "anytime-valid sequential betting test",
    "label": "exact test on target-label hits (labels-only suspect)",
}
QUERY_CHOICE_TEXT = {
    "boundary": "the m held-out non-target images the owner's surrogate scores closest to the target class",
    "random": "a seeded random draw of m held-out non-target images",
    "proxy": "the m held-out non-target images on which the owner's proxy (a model the owner trained on its "
             "own release, never the suspect) raises the target score most when they are marked",
}


def proxy_text(proxy: dict[str, Any]) -> str:
    """Which proxy chose the queries: its checkpoint hash, or each one's for a mean of several
    (falls back to where it was read from when it has no hash)."""
    if proxy.get("kind") == "mean":
        members = proxy.get("members") or []
        return f"the mean of {len(members)} proxies, sha256 " + ", ".join(
            str(m.get("sha256", m.get("location"))) for m in members)
    return f"proxy sha256 {proxy.get('sha256', proxy.get('location'))}"


def query_choice_text(queries: str, choice: dict[str, Any] | None = None) -> str:
    """The query choice in words, with the proxy's checkpoint hash where one chose them."""
    text = QUERY_CHOICE_TEXT.get(queries, queries)
    proxy = (choice or {}).get("proxy") or {}
    return f"{text} ({proxy_text(proxy)})" if proxy.get("sha256") or proxy.get("kind") == "mean" else text


def specificity_text(spec: dict[str, Any] | None) -> str:
    """One line on the key-specificity check of a result's ``details`` (``off`` without one)."""
    if not spec:
        return "off"
    lo, hi = spec["minus"], spec["plus"]
    return (f"the owner's mark against the same mark with its key carrier turned by -/+{spec['degrees']:g} "
            f"degrees: the owner's raised the score {lo['delta_p']:+.3f} / {hi['delta_p']:+.3f} more "
            f"(p {lo['p_value']:.2g} / {hi['p_value']:.2g}); "
            + ("passed" if lo["decision"] and hi["decision"] else "NOT passed: a turned key is answered as strongly"))


# Plain names for the identity fields a reviewer reads, in the order they are shown; a field
# not named here keeps its own name and comes after them.
IDENTITY_NAMES = {
    "kind": "reached as", "location": "file or address", "sha256": "SHA-256",
    "sha256_source": "SHA-256 from", "model_id": "model id (API)", "api": "API version",
    "format": "checkpoint kind", "arch": "architecture", "classes": "classes",
    "input_size": "input size (px)", "output": "answers with", "labels_only": "top label only",
    "key": "owner key", "target": "target class", "cam_method": "saliency method",
    "work_size": "marking size (px)", "generator": "generator settings",
    "generator_sha256": "generator SHA-256", "surrogate_sha256": "surrogate SHA-256",
    "carrier_turn_deg": "carrier turned by (°)",
    "spec": "query pool (dataset)", "queries": "query images", "target_in_data": "target class index in the data",
    "excluded_released": "released images left out of the pool", "pool_size": "query pool size",
    "pool_ids_sha256": "query pool ids SHA-256", "query_choice": "query choice (details)",
}
_VALUE_NAMES = {
    ("kind", "checkpoint"): "checkpoint file", ("kind", "torch"): "model in memory",
    ("kind", "http"): "HTTP API (black box)", ("output", "proba"): "class probabilities",
    ("output", "label"): "top label only", ("cam_method", "eigencam"): "EigenCAM",
    ("cam_method", "gradcam"): "Grad-CAM", ("work_size", None): "each image's own size",
}


def identity_value(key: str, value: Any, classes: list[str] | None = None) -> str:
    """One identity field's value in words (a target index also gets its class name)."""
    if isinstance(value, (str, type(None))) and (key, value) in _VALUE_NAMES:
        return _VALUE_NAMES[(key, value)]
    if key == "target" and isinstance(value, int) and classes and 0 <= value < len(classes):
        return f"{value} ({classes[value]})"
    if isinstance(value, dict):  # a flat one reads as a list; a nested one stays exact
        if any(isinstance(v, (dict, list)) for v in value.values()):
            return json.dumps(value, sort_keys=True)
        return ", ".join(f"{k} {identity_value(k, v)}" for k, v in sorted(value.items()))
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "not recorded" if value is None else str(value)


def identity_rows(identity: dict[str, Any] | None) -> list[tuple[str, str]]:
    """A recorded identity (``Suspect.identity()``, ``Marker.identity()``, the data record) as
    (name, value) rows in a reviewer's words, in a fixed order whatever the dict's order."""
    identity = identity or {}
    order = list(IDENTITY_NAMES)
    keys = sorted(identity, key=lambda k: (order.index(k) if k in IDENTITY_NAMES else len(order), k))
    classes = identity.get("classes")
    return [(IDENTITY_NAMES.get(k, k.replace("_", " ")), identity_value(k, identity[k], classes)) for k in keys]


_MARKER_FILES = {"surrogate": "surrogate file", "surrogate_sha256": "surrogate file SHA-256",
                 "generator": "generator file", "generator_sha256": "generator file SHA-256"}


def marker_rows(marker: dict[str, Any] | None) -> list[tuple[str, str]]:
    """The evidence's ``marker`` record (the files used, then ``Marker.identity()``) as rows.
    Evidence the app wrote before XXVII holds the identity alone, at the top level."""
    marker = marker or {}
    files = [(name, str(marker[k])) for k, name in _MARKER_FILES.items() if k in marker]
    identity = marker["identity"] if "identity" in marker else {k: v for k, v in marker.items() if k not in _MARKER_FILES}
    return files + identity_rows(identity)


def hardening_text(hardening: dict[str, Any] | None) -> str:
    """One line on an owner record's ``hardening`` (``none``: the release carries the mark alone)."""
    if not hardening:
        return "none: the released images carry the mark alone"
    models = ", ".join(f"{m.get('name', 'model')} ({m.get('input_size')} px)" for m in hardening.get("models") or [])
    ssim = hardening.get("ssim_floor")
    return (f"each marked image was also pushed away from the target class for the owner's clean models "
            f"{models or '(none named)'}, within PSNR >= {hardening.get('psnr_floor'):g} dB"
            + (f" and SSIM >= {ssim:g}" if ssim is not None else "") + " per image (mark included); "
            "the queries carry the mark only")


# ----------------------------------------------------------------------------- building


def _read_json(path: Path, missing: str, invalid: str) -> Any:
    """``path`` parsed as JSON; DataError ``missing`` if it does not exist, ``invalid`` (with
    the parser's message) if it is not JSON text."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as e:
        raise DataError(missing, path) from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{invalid} ({e})", path) from e


def software_versions() -> dict[str, str]:
    import scipy
    import torch

    import xmark_core

    return {"python": sys.version.split()[0], "platform": platform.platform(),
            "xmark": xmark_core.__version__, "torch": torch.__version__,
            "numpy": np.__version__, "scipy": scipy.__version__}


def check_owner_record(path: str | Path, generator: str | Path | None = None,
                       surrogate: str | Path | None = None) -> dict[str, Any]:
    """Check an owner record: its commitment and the hashes of the files it commits to.

    Parameters
    ----------
    path : ``owner_record.json`` written by ``xmark embed``
    generator, surrogate : checkpoints used for this verification; their SHA-256 must
        equal the record's ``generator.sha256`` / ``surrogate.sha256`` (as written by
        :mod:`xmark_core.embed`; flat ``generator_sha256`` keys are read too) when recorded

    Returns
    -------
    dict with ``commitment`` (published value), ``commitment_recomputed``,
    ``commitment_ok``, per-file ``*_sha256`` / ``*_ok`` entries, ``record_sha256``, what the
    record says was released where it says it (``record_target``, ``record_target_name``,
    ``record_key``, ``record_rho``, ``record_created``, ``record_hardening``) and ``ok`` (all
    checks passed).
    """
    path = Path(path)
    record = _read_json(path, "owner record not found", "owner record is not valid JSON")
    if not isinstance(record, dict) or "commitment" not in record:
        raise DataError('owner record has no "commitment" field; pass the owner_record.json '
                        "written by `xmark embed`", path)
    recomputed = commitment(record)
    out: dict[str, Any] = {
        "record_path": str(path.resolve()), "record_sha256": sha256_file(path),
        "commitment": record["commitment"], "commitment_recomputed": recomputed,
        "commitment_ok": recomputed == record["commitment"],
    }
    checks = [out["commitment_ok"]]
    for name, file in (("generator", generator), ("surrogate", surrogate)):
        nested = record.get(name) if isinstance(record.get(name), dict) else {}
        want = nested.get("sha256") or record.get(f"{name}_sha256")
        if file is None:
            continue
        got = sha256_file(file)
        out[f"{name}_sha256"] = got
        out[f"{name}_sha256_recorded"] = want
        out[f"{name}_ok"] = None if want is None else got == want
        if want is not None:
            checks.append(got == want)
    for key in ("target", "target_name", "key", "rho", "created", "hardening"):
        if key in record:
            out[f"record_{key}"] = record[key]
    gen = record.get("generator")
    if "record_key" not in out and isinstance(gen, dict) and gen.get("key") is not None:
        out["record_key"] = gen["key"]  # where xmark embed writes it
    out["ok"] = all(checks)
    return out


def released_ids(owner_record: str | Path) -> list[str]:
    """Image ids / files the owner record lists as released or watermarked (excluded from
    the held-out query pool); empty if the record does not list them."""
    record = _read_json(Path(owner_record), "owner record not found", "owner record is not valid JSON")
    if not isinstance(record, dict):
        raise DataError("owner record is not a JSON object; pass the owner_record.json written by `xmark embed`",
                        owner_record)
    ids: list[str] = []
    for key in ("marked", "watermarked", "released"):
        v = record.get(key)
        if isinstance(v, list):
            ids += [str(x.get("image_id", x.get("path", ""))) if isinstance(x, dict) else str(x) for x in v]
    return ids


def _finite(obj: Any) -> Any:
    """JSON-safe copy: NaN / inf become None so the file is strict JSON."""
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, np.generic):
        return _finite(obj.item())
    return obj


def evidence_hash(evidence: dict[str, Any]) -> str:
    """SHA-256 over the canonical JSON of the evidence without its own hash."""
    return sha256_bytes(canonical_json({k: v for k, v in evidence.items() if k != "evidence_sha256"}))


def build_evidence(result: VerificationResult, suspect_identity: dict[str, Any], *,
                   owner: dict[str, Any] | None = None, marker: dict[str, Any] | None = None,
                   data: dict[str, Any] | None = None, command: list[str] | None = None,
                   created: str | None = None) -> dict[str, Any]:
    """Assemble the evidence dictionary (what ``evidence.json`` contains).

    Parameters
    ----------
    result : the verification
    suspect_identity : ``suspect.identity()``
    owner : :func:`check_owner_record` output
    marker : ``{"surrogate", "surrogate_sha256", "generator", "generator_sha256"}`` (the files
        used, where known) and ``"identity"``: ``Marker.identity()``
    data : data spec and pool description
    command : the command line, for the record
    created : ISO timestamp (default: now, UTC)
    """
    r = result.to_dict()
    verdict = result.verdict
    if owner is not None and not owner.get("ok", False):
        verdict += (" WARNING: the owner record does not match its published commitment or the "
                    "generator/surrogate used here, so this result is not tied to the owner's release.")
    elif owner is None:
        verdict += " (No owner record was checked.)"
    ev = {
        "schema": SCHEMA,
        "created_utc": created or datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "verdict": verdict,
        "owner_ok": None if owner is None else bool(owner.get("ok")),
        "decision": result.decision,
        "test": {"name": result.test, "description": TEST_NAMES[result.test],
                 "null_hypothesis": f"E[P_w - P_b] <= tau (tau = {result.config.tau:g}): the suspect is innocent"},
        "parameters": r["config"],
        "result": {k: r[k] for k in ("delta_p", "p_value", "statistic", "wsr", "clean_target_rate",
                                     "n_queries", "stopped_early", "supporting", "details",
                                     "target", "target_name")},
        "running": {"p_value": r["running_p"], "e_value": r["running_e"]},
        "suspect": suspect_identity,
        "owner": owner,
        "marker": marker,
        "data": {**(data or {}), "pool_size": result.pool["size"],
                 "pool_ids_sha256": result.pool["ids_sha256"],
                 "query_choice": {k: v for k, v in result.pool.items() if k not in ("size", "ids_sha256")}},
        "software": software_versions(),
        "command": command,
        "log": r["log"],
    }
    ev = _finite(ev)
    ev["evidence_sha256"] = evidence_hash(ev)
    return ev


def load_evidence(path: str | Path) -> dict[str, Any]:
    """Read ``evidence.json``; raises DataError if it is missing, malformed or altered."""
    path = Path(path)
    ev = _read_json(path, "evidence file not found", "not a JSON evidence file")
    if not isinstance(ev, dict) or ev.get("schema") != SCHEMA:
        raise DataError(f"not an X-Mark evidence file (schema {SCHEMA!r} expected)", path)
    if ev.get("evidence_sha256") != evidence_hash(ev):
        raise DataError("evidence_sha256 does not match the content: the file was altered or damaged", path)
    return ev


# ----------------------------------------------------------------------------- rendering


class _Html(str):
    """Already-rendered HTML that :func:`_fmt` must not escape."""


def _fmt(v: Any) -> str:
    if isinstance(v, _Html):
        return v
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}"
    if v is None:
        return "&mdash;"
    if isinstance(v, (list, dict)):
        return f'<span class="mono">{html.escape(json.dumps(v, sort_keys=True))}</span>'
    return html.escape(str(v))


def _table(rows: list[tuple[str, Any]]) -> str:
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{_fmt(v)}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _check(ok: bool | None) -> _Html:
    if ok is None:
        return _Html('<span class="muted">not recorded</span>')
    return _Html('<span class="ok">&#10003; matches</span>' if ok else '<span class="bad">&#10007; does NOT match</span>')


def _explanation(ev: dict[str, Any]) -> str:
    p, res = ev["parameters"], ev["result"]
    name = html.escape(res["target_name"])
    common = (
        f"<p>The owner watermarked a small share of the '{name}' images before releasing the data. "
        f"A model trained on the release learns to associate the invisible watermark with '{name}'. "
        f"To test this, {res['n_queries']} images that were <em>never released</em> and are <em>not</em> "
        f"'{name}' were shown to the suspect, each once as is and once with the watermark. "
        f"For an innocent model the watermark changes little. The test assumes the suspect is innocent "
        f"and asks how surprising the observed change would be: the <b>p-value</b>. The rules were fixed "
        f"in advance: the average rise must exceed a margin of {p['tau']:g} (on a 0&ndash;1 score), and a "
        f"claim is made only if the p-value is below {p['alpha']:g}, i.e. an innocent model would be "
        f"wrongly accused in at most {100 * p['alpha']:g}% of such verifications.</p>")
    specific = {
        "ttest": "<p>Method: paired one-sided t-test on the per-image score changes minus the margin "
                 "(as in dataset-ownership verification by backdoor watermarking, DVBW). It relies on the "
                 "average of many images behaving like a bell curve, which holds well for 100 images.</p>",
        "sequential": "<p>Method: a sequential betting test. The verifier starts with one unit of "
                      "imaginary money and, image by image, bets that the watermark raises the score by "
                      "more than the margin; an innocent model cannot make this money grow on average. "
                      f"Reaching {1 / p['alpha']:g} units is a claim. Because the test stays valid at "
                      "every step, the run may stop as soon as the evidence suffices.</p>",
        "label": "<p>Method: the suspect only returned its top label, so the test counts images whose label "
                 f"became '{name}' only after watermarking, against images where it was '{name}' only "
                 "without the watermark, and computes the exact probability of such counts under every "
                 "innocent possibility.</p>",
    }[ev["test"]["name"]]
    return common + specific


def render_html(ev: dict[str, Any]) -> str:
    """The human-readable report of an evidence dictionary (self-contained HTML)."""
    from xmark_core.verify import plots

    res, par = ev["result"], ev["parameters"]
    log = ev["log"]
    p_b = np.array([q["p_b"] for q in log], dtype=float)
    p_w = np.array([q["p_w"] for q in log], dtype=float)
    target = res["target_name"]
    running = np.array([np.nan if v is None else v for v in ev["running"]["p_value"]], dtype=float)
    claim = bool(ev["decision"])
    key = _table([
        ("Decision", "ownership CLAIMED" if claim else "no claim"),
        ("p-value", res["p_value"]), ("level alpha", par["alpha"]),
        ("average rise of the target score (ΔP)", res["delta_p"]), ("margin tau", par["tau"]),
        ("mark strength on the queries (query gain)", par.get("query_gain", 1.0)),
        ("mark strength in the key check (check gain)",
         (par.get("check_gain") or par.get("query_gain", 1.0)) if par.get("specificity") else "no key check"),
        ("query choice", query_choice_text(par.get("queries", "random"), (ev.get("data") or {}).get("query_choice"))),
        ("key-specificity check", specificity_text(res.get("details", {}).get("specificity"))),
        (f"watermarked images labelled '{target}' (WSR)", res["wsr"]),
        (f"original images labelled '{target}'", res["clean_target_rate"]),
        ("query images", res["n_queries"]), ("test", ev["test"]["description"]),
        ("stopped early", res["stopped_early"]), ("test statistic", res["statistic"]),
    ])
    suspect_table = _table(identity_rows(ev.get("suspect")))  # fixed order: same page from memory or file
    owner = ev.get("owner")
    if owner:
        rows: list[tuple[str, Any]] = [
            ("published commitment", owner.get("commitment")),
            ("recomputed from the owner record", owner.get("commitment_recomputed")),
            ("commitment check", _check(owner.get("commitment_ok"))),
            ("owner record file SHA-256", owner.get("record_sha256")),
            ("marked class (owner record)", owner.get("record_target_name", owner.get("record_target"))),
            ("owner key (owner record)", owner.get("record_key")),
            ("share of the class marked (owner record)", owner.get("record_rho")),
            ("hardening (owner record)", hardening_text(owner.get("record_hardening"))),
        ]
        for name in ("generator", "surrogate"):
            if f"{name}_sha256" in owner:
                rows += [(f"{name} file SHA-256", owner[f"{name}_sha256"]),
                         (f"{name} SHA-256 in the owner record", owner.get(f"{name}_sha256_recorded")),
                         (f"{name} check", _check(owner.get(f"{name}_ok")))]
        owner_table = _table(rows)
    else:
        owner_table = ('<p class="bad">No owner record was given: the watermark is not tied to a '
                       "published commitment.</p>")
    marker_table = _table(marker_rows(ev.get("marker")) + identity_rows(ev.get("data")))
    sup = res.get("supporting") or {}
    supporting_table = _table([(TEST_NAMES[k], "not applicable" if sup.get(k) is None else sup[k])
                               for k in TEST_NAMES if k in sup])
    turned = [s for s in SIDES if log and f"p_{s}" in log[0]]  # the specificity controls
    deg = float(par.get("specificity") or 0.0)  # logged turned answers imply the check was on
    if log and "p_check" in log[0]:  # the owner's mark again at the check's own gain, before the turned ones
        turned.insert(0, "check")
    rows = "".join(
        f"<tr><td class='num'>{q['index']}</td><td class='mono'>{html.escape(q['image_id'])}</td>"
        f"<td class='num'>{q['p_b']:.4f}</td><td class='num'>{q['p_w']:.4f}</td>"
        + "".join(f"<td class='num'>{q[f'p_{s}']:.4f}</td>" for s in turned)
        + f"<td class='num'>{q['label_b']}</td><td class='num'>{q['label_w']}</td>"
        f"<td class='mono'>{q['sha256_original'][:16]}&hellip;</td><td class='mono'>{q['sha256_watermarked'][:16]}&hellip;</td></tr>"
        for q in log)
    turned_heads = "".join(f"<th>P_w at check gain {par.get('check_gain')}</th>" if s == "check" else
                           f"<th>P key turned {SIDE_SIGN[s] * deg:+g}&deg;</th>".replace("-", "&minus;")
                           for s in turned)
    log_table = (f"<table><tr><th>#</th><th>image</th><th>P_b</th><th>P_w</th>{turned_heads}<th>label b</th>"
                 f"<th>label w</th><th>SHA-256 original</th><th>SHA-256 watermarked</th></tr>{rows}</table>")
    owner_path = (owner or {}).get("record_path", "owner_record.json")
    replay = f"xmark verify --replay evidence.json --owner-record {owner_path}"
    fields = {
        "title_verdict": "Ownership claimed" if claim else "No claim",
        "verdict_class": "claim" if claim else "noclaim",
        "verdict": html.escape(ev["verdict"]),
        "created": html.escape(ev["created_utc"]),
        "evidence_sha256": ev.get("evidence_sha256", ""),
        "key_table": key, "explanation": _explanation(ev), "target_name": html.escape(target),
        "fig_scatter": plots.to_svg(plots.paired_scatter(p_b, p_w, par["tau"], target)),
        "fig_dist": plots.to_svg(plots.distributions(p_b, p_w, par["tau"], target)),
        "fig_running": plots.to_svg(plots.running_evidence(running, par["alpha"], res["p_value"], ev["test"]["name"], *_streams(ev))),
        "suspect_table": suspect_table, "owner_table": owner_table, "marker_table": marker_table,
        "test_name": html.escape(ev["test"]["description"]), "supporting_table": supporting_table,
        "replay_command": html.escape(replay), "n_queries": res["n_queries"], "log_table": log_table,
        "params_table": _table(sorted(par.items())), "software_table": _table(sorted(ev["software"].items())),
    }
    template = resources.files("xmark_core").joinpath("templates/report.html").read_text(encoding="utf-8")
    return Template(template).substitute(fields)


def _streams(ev: dict[str, Any]) -> tuple[dict[str, np.ndarray], float]:
    """Each stream's running p-value of a verification with the key check (else none), and its angle."""
    cfg = VerifyConfig.from_recorded(ev["parameters"])
    return stream_running_p(ev["log"], cfg), cfg.specificity


def write_pdf(ev: dict[str, Any], path: str | Path) -> None:
    """A short PDF (verdict, key numbers, figures) with matplotlib's PDF backend."""
    import textwrap

    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    from xmark_core.verify import plots

    res, par = ev["result"], ev["parameters"]
    p_b = np.array([q["p_b"] for q in ev["log"]], dtype=float)
    p_w = np.array([q["p_w"] for q in ev["log"]], dtype=float)
    running = np.array([np.nan if v is None else v for v in ev["running"]["p_value"]], dtype=float)
    with atomic_path(path) as tmp, PdfPages(tmp) as pdf:
        fig = plt.figure(figsize=(8.27, 11.69))
        lines = ["X-Mark ownership verification report", "",
                 "OWNERSHIP CLAIMED" if ev["decision"] else "NO CLAIM", "",
                 *textwrap.wrap(ev["verdict"], 90), "",
                 f"test: {ev['test']['description']}", f"p-value: {res['p_value']:.4g}   alpha: {par['alpha']:g}",
                 f"delta P: {res['delta_p']:.4f}   margin tau: {par['tau']:g}",
                 f"WSR: {res['wsr']:.3f}   queries: {res['n_queries']}   seed: {par['seed']}",
                 f"suspect: {ev['suspect'].get('location')}", f"suspect sha256: {ev['suspect'].get('sha256')}",
                 f"owner commitment ok: {(ev.get('owner') or {}).get('commitment_ok')}",
                 f"created (UTC): {ev['created_utc']}", f"evidence sha256: {ev['evidence_sha256']}"]
        fig.text(0.07, 0.95, "\n".join(lines), va="top", family="monospace", fontsize=8.5)
        pdf.savefig(fig)
        plt.close(fig)
        for f in (plots.paired_scatter(p_b, p_w, par["tau"], res["target_name"]),
                  plots.distributions(p_b, p_w, par["tau"], res["target_name"]),
                  plots.running_evidence(running, par["alpha"], res["p_value"], ev["test"]["name"], *_streams(ev))):
            pdf.savefig(f)
            plt.close(f)


def write_bundle(ev: dict[str, Any], out_dir: str | Path, pdf: bool = False) -> dict[str, Path]:
    """Write ``evidence.json``, ``report.html`` (and ``report.pdf``) into ``out_dir``, atomically."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"evidence": out / "evidence.json", "html": out / "report.html"}
    atomic_write_json(paths["evidence"], ev)
    atomic_write_text(paths["html"], render_html(ev))
    if pdf:
        paths["pdf"] = out / "report.pdf"
        write_pdf(ev, paths["pdf"])
    return paths
