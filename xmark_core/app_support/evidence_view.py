"""What the Evidence page shows and offers for download, built with :mod:`xmark_core.report`."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


def now_utc() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def owner_files(bundle: Any) -> dict[str, str] | None:
    """Paths of the owner record and the checkpoints it commits to (demo bundle), if present."""
    record = bundle.path("owner_record")
    if not record.is_file():
        return None
    return {"record": str(record), "generator": str(bundle.path("generator")),
            "surrogate": str(bundle.path("surrogate"))}


@dataclass
class CommitmentCheck:
    ok: bool
    message: str
    details: dict[str, Any] | None


def commitment_check(files: dict[str, str] | None) -> CommitmentCheck:
    """Check the owner record's commitment and the generator/surrogate hashes it names."""
    if not files:
        return CommitmentCheck(False, "No owner record for this generator: the result is not tied to a "
                                      "published commitment.", None)
    from xmark_core.errors import XMarkError
    from xmark_core.report import check_owner_record

    try:
        d = check_owner_record(files["record"], generator=files["generator"], surrogate=files["surrogate"])
    except XMarkError as e:
        return CommitmentCheck(False, f"The owner record cannot be checked: {e}", None)
    if d["ok"]:
        msg = (f"The owner record matches its published commitment {d['commitment'][:16]}… and names the "
               "generator and surrogate used here. " + record_summary(d))
    elif not d["commitment_ok"]:
        msg = "The owner record does NOT match its published commitment: it was changed after release."
    else:
        msg = "The generator or surrogate used here is not the one the owner record commits to."
    return CommitmentCheck(bool(d["ok"]), msg, d)


def last_commitment(last: dict[str, Any]) -> CommitmentCheck:
    """:func:`commitment_check` of a verification's owner files, once per verification: it
    hashes the checkpoints, and the Evidence page reruns on every click."""
    if "commitment" not in last:
        last["commitment"] = commitment_check(last.get("owner_files"))
    return last["commitment"]


def record_summary(owner: dict[str, Any]) -> str:
    """What the checked owner record says was released (:func:`~xmark_core.report.check_owner_record`
    output), in one sentence for a reviewer."""
    from xmark_core.report import hardening_text

    name = owner.get("record_target_name", owner.get("record_target", "?"))
    rho = owner.get("record_rho")
    share = f"a share of {rho:g} of the '{name}' images marked" if rho is not None else f"the '{name}' class marked"
    return (f"It records {share} under key {owner.get('record_key', '?')}; hardening: "
            f"{hardening_text(owner.get('record_hardening'))}.")


def parameter_rows(result: Any, last: dict[str, Any]) -> list[dict[str, str]]:
    """The test's settings as (parameter, value) rows."""
    cfg = result.config
    rows = [
        ("test", result.test), ("queries m (planned)", cfg.m), ("queries made", result.n_queries),
        ("margin τ", cfg.tau), ("level α", cfg.alpha), ("query gain", cfg.query_gain),
        ("query choice", cfg.queries), ("key specificity ±°", cfg.specificity or "off"),
        ("check gain (key check)", (cfg.check_gain or cfg.query_gain) if cfg.specificity else "off"),
        ("largest bet (sequential test)", cfg.max_bet), ("seed", cfg.seed),
        ("CPU threads (marking)", cfg.threads or "not recorded"),
        ("target class", f"{result.target} ({result.target_name})"), ("query images", last.get("queries")),
        ("query pool size", result.pool.get("size")), ("run at (UTC)", last.get("created_utc")),
    ]
    proxy = result.pool.get("proxy")
    if proxy:  # proxy queries: which model chose them, right after the query choice
        at = [k for k, _ in rows].index("query choice") + 1
        from xmark_core.report import proxy_text

        value = proxy_text(proxy) if proxy.get("kind") == "mean" else proxy.get("sha256", proxy.get("location"))
        rows.insert(at, ("proxy (sha256)", value))
    return [{"parameter": k, "value": str(v)} for k, v in rows]


def model_tables(suspect: dict[str, Any], marker: dict[str, Any] | None) -> dict[str, list[dict[str, str]]]:
    """The suspect's and the watermark generator's identity (``Suspect.identity()``,
    ``Marker.identity()``), each as (property, value) rows in a reviewer's words, as the HTML
    report shows them."""
    from xmark_core.report import identity_rows

    return {model: [{"property": k, "value": v} for k, v in identity_rows(ident)]
            for model, ident in (("Suspect", suspect), ("Watermark generator", marker))}


def supporting_rows(result: Any) -> list[dict[str, str]]:
    """p-values of every test on the same queries (the decision uses the pre-registered one)."""
    return [{"test": k, "p-value": "n/a" if v is None else f"{v:.3g}",
             "used for the decision": "yes" if k == result.test else "no"}
            for k, v in result.supporting.items()]


def evidence_dict(last: dict[str, Any]) -> dict[str, Any]:
    """The ``evidence.json`` content of the last verification (see :func:`xmark_core.report.build_evidence`)."""
    from xmark_core.report import build_evidence

    check = last_commitment(last)
    # The files as the CLI records them (where the demo bundle names them), then the identity.
    files, hashes = last.get("owner_files") or {}, check.details or {}
    marker: dict[str, Any] = {}
    for name in ("surrogate", "generator"):
        if name in files:
            marker[name] = files[name]
        if f"{name}_sha256" in hashes:
            marker[f"{name}_sha256"] = hashes[f"{name}_sha256"]
    marker["identity"] = last.get("marker")
    return build_evidence(
        last["result"], last["suspect"], owner=check.details, marker=marker,
        data={"queries": last.get("queries")}, command=["xmark app", "verify"],
        created=last.get("created_utc"),
    )


def json_bytes(ev: dict[str, Any]) -> bytes:
    """``evidence.json`` content."""
    return (json.dumps(ev, indent=2, sort_keys=True) + "\n").encode()


def html_bytes(ev: dict[str, Any]) -> bytes:
    """``report.html`` rendered from the evidence alone."""
    from xmark_core.report import render_html

    return render_html(ev).encode()


def pdf_bytes(ev: dict[str, Any]) -> bytes:
    """``report.pdf`` (matplotlib's PDF backend) rendered from the evidence alone."""
    from xmark_core.report import write_pdf

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "report.pdf"
        write_pdf(ev, path)
        return path.read_bytes()
