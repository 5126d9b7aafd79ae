"""Evidence bundle of a segmentation verification: ``evidence.json`` + ``report.html``.

``evidence.json`` holds what a reviewer needs to check and re-run the verification: the
suspect's identity, the owner's commitment check, the mark's public parameters (the key
only as a SHA-256), the fixed thresholds, the per-cell coefficients, the binarised code,
its decoded text, the detector scores and the verdict, plus ``evidence_sha256`` over all of
it. ``report.html`` is rendered from ``evidence.json`` alone and embeds its pictures.
"""

from __future__ import annotations

import html
import re
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from xmark_core.atomic import atomic_write_json, atomic_write_text
from xmark_core.hashing import sha256_bytes
from xmark_core.report import _finite, _table, evidence_hash, software_versions
from xmark_core.stealthmark.mark import SegMark
from xmark_core.stealthmark.pictures import (
    attribution_image,
    code_image,
    detector_figure,
    png_data_uri,
)
from xmark_core.stealthmark.verify import VERIFIED, SegVerification

SCHEMA = "xmark-seg-evidence/1"


def _rows(bits: np.ndarray) -> list[str]:
    return ["".join("1" if b else "0" for b in row) for row in np.asarray(bits, dtype=bool)]


def _bits(rows: list[str]) -> np.ndarray:
    return np.array([[c == "1" for c in r] for r in rows], dtype=bool)


def build_seg_evidence(result: SegVerification, mark: SegMark, *, owner: dict[str, Any] | None = None,
                       data: dict[str, Any] | None = None, command: list[str] | None = None,
                       created: str | None = None) -> dict[str, Any]:
    """Assemble the evidence dictionary (what ``evidence.json`` contains).

    Parameters
    ----------
    result : the verification
    mark : the owner's mark (the key enters only as its SHA-256)
    owner : :func:`xmark_core.report.check_owner_record` output for the owner record
    data : where the held-out query images came from
    command : the command line, for the record
    created : ISO timestamp (default: now, UTC)
    """
    verdict = result.verdict
    if owner is not None and not owner.get("ok", False):
        verdict += " (WARNING: the owner record does not match its published commitment)"
    picture = None
    if result.reveal is not None:
        st = result.reveal
        picture = {"n_queries": st.n_queries, "r2": st.r2, "coef": np.round(st.coef, 5).tolist(),
                   "bits": _rows(st.bits), "modules": _rows(st.modules), "decoded": st.decoded,
                   "reader_modules": _rows(st.reader_modules) if st.reader_modules is not None else None,
                   "restored_fixed_modules": st.restored}
    detector = None
    if result.detector is not None:
        d = result.detector
        detector = {"tpr_asr": d.tpr, "fpr": d.fpr, "threshold": d.threshold,
                    "triggered": np.round(d.triggered, 5).tolist(), "clean": np.round(d.clean, 5).tolist()}
    ev = {
        "schema": SCHEMA,
        "created_utc": created or datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "verdict": verdict,
        "message": result.message,
        "owner_ok": None if owner is None else bool(owner.get("ok")),
        "result": {k: v for k, v in result.summary().items() if k not in ("suspect", "config")},
        "mark": {"claim": mark.claim, "eps": mark.eps, "amplitude": mark.amplitude, "tile": mark.tile,
                 "qr_version": mark.code.version, "qr_error": mark.code.error, "grid": mark.n,
                 "key_sha256": sha256_bytes(mark.key.encode()), "committed_modules": _rows(mark.code.matrix)},
        "picture": picture,
        "detector": detector,
        "parameters": result.config,
        "suspect": result.suspect,
        "owner": owner,
        "data": data or {},
        "software": software_versions(),
        "command": command,
    }
    ev = _finite(ev)
    ev["evidence_sha256"] = evidence_hash(ev)
    return ev


def _style() -> str:
    """Reuse the X-Mark report's stylesheet so both reports look alike."""
    try:
        text = resources.files("xmark_core").joinpath("templates/report.html").read_text(encoding="utf-8")
        m = re.search(r"<style>.*?</style>", text, re.S)
        if m:
            return m.group(0)
    except (FileNotFoundError, OSError):
        pass
    return "<style>body{font-family:sans-serif;max-width:900px;margin:2em auto}</style>"


def _img(uri: str, alt: str, width: int = 260) -> str:
    return f'<img src="{uri}" alt="{html.escape(alt)}" width="{width}" style="image-rendering:pixelated">'


def render_seg_html(ev: dict[str, Any]) -> str:
    """The human-readable report of a segmentation evidence dictionary (self-contained HTML)."""
    from xmark_core.verify.plots import to_svg

    res, mk = ev["result"], ev["mark"]
    ok = res["verdict"] == VERIFIED
    title = {"verified": "Ownership verified", "not verified": "Not verified",
             "unverifiable": "Cannot be verified"}[res["verdict"]]
    key = _table([
        ("Verdict", res["verdict"]), ("Claim committed by the owner", mk["claim"]),
        ("Text decoded from the suspect's picture", res["decoded"] or "(does not decode)"),
        ("Fixed-pattern modules the reader redrew (carry no claim)",
         (ev.get("picture") or {}).get("restored_fixed_modules")),
        ("Decoded text matches the claim", res["match"]),
        ("QR modules agreeing with the committed code", f"{res['bit_agreement']:.1%} of {res['n_bits']}"
         if res["n_bits"] else None),
        ("p-value (binomial, innocent model agrees with 1/2 of modules)", res["p_value"]),
        ("level alpha (fixed in advance)", res["alpha"]),
        ("detector: stamped queries flagged (ASR)", res["asr_tpr"]),
        ("detector: clean queries flagged (FPR)", res["fpr"]),
        ("stamped queries for the picture", res["n_queries"]),
        ("suspect outputs", res["output_check"]["message"]),
    ])
    pics = ""
    pic = ev.get("picture")
    if pic:
        coef = np.array(pic["coef"], dtype=float)
        modules = _bits(pic["modules"])
        bits = _bits(pic["bits"])
        # the picture through the key: bits != modules exactly where the keyed mask flips
        seen = np.where(bits != modules, mk["eps"] - coef, coef)
        committed = _bits(mk["committed_modules"])
        decoded = html.escape(str(pic["decoded"]))
        restored = pic.get("restored_fixed_modules")
        drawn_note = ""
        if restored and pic.get("reader_modules") is not None:
            reader = (f"<td>{_img(png_data_uri(code_image(_bits(pic['reader_modules']))), 'reader copy')}<br>"
                      f"<span class='muted'>reader's copy: {restored} wrong fixed-pattern modules redrawn; "
                      f"decodes to: <b>{decoded}</b></span></td>")
        else:  # nothing to redraw (or evidence written before the reader's copy existed)
            reader = ""
            drawn_note = f"; decodes to: <b>{decoded}</b>"
        pics = (
            "<h2>The picture the suspect draws</h2>"
            "<p>Each square is one cell of a grid laid over the image. Its darkness is how much the "
            "suspect's uncertainty rose, on average, when the owner's secret stamp was placed in that cell "
            "(measured over all stamped queries by a linear fit, the LIME method). An innocent model has "
            "no reason to answer some cells and not others, so its picture is noise or flat.</p>"
            "<table><tr>"
            f"<td>{_img(png_data_uri(attribution_image(coef, mk['eps'])), 'raw attribution')}<br>"
            "<span class='muted'>as measured (scrambled by the owner's key)</span></td>"
            f"<td>{_img(png_data_uri(attribution_image(seen, mk['eps'])), 'attribution through the key')}<br>"
            "<span class='muted'>seen through the owner's key</span></td>"
            f"<td>{_img(png_data_uri(code_image(modules)), 'binarised code')}<br>"
            f"<span class='muted'>binarised at the fixed threshold, as drawn by the suspect{drawn_note}</span></td>"
            f"{reader}"
            f"<td>{_img(png_data_uri(code_image(committed)), 'committed code')}<br>"
            f"<span class='muted'>the code committed by the owner: {html.escape(mk['claim'])}</span></td>"
            "</tr></table>"
            "<p>Any phone's QR reader can scan the decoded picture. The reader's copy redraws only "
            "the modules that are identical in every QR code of this size (finder squares, timing "
            "lines, alignment square, level bits); they carry no part of the claim. Every other "
            "module, and the bit agreement above, is the suspect's own.</p>"
        )
    det = ev.get("detector")
    det_html = ""
    if det:
        fig = detector_figure(np.array(det["triggered"]), np.array(det["clean"]), det["threshold"])
        det_html = (
            "<h2>Detector on single outputs</h2>"
            f"<figure>{to_svg(fig)}<figcaption>Score of each query: the suspect's uncertainty on stamped "
            "cells the owner's code marks dark, minus on stamped cells it marks light. Red: queries with the "
            "stamp; blue: the same images without it. The threshold was fixed before the run.</figcaption></figure>"
        )
    owner = ev.get("owner")
    owner_html = (_table([("published commitment", owner.get("commitment")),
                          ("recomputed from the owner record", owner.get("commitment_recomputed")),
                          ("commitment matches", owner.get("commitment_ok"))])
                  if owner else '<p class="bad">No owner record was checked.</p>')
    body = f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<title>StealthMark verification: {title}</title>{_style()}</head><body>
<h1>StealthMark ownership verification (segmentation model)</h1>
<div class="muted">Created {html.escape(ev['created_utc'])} (UTC) &middot; evidence SHA-256
<span class="mono">{ev.get('evidence_sha256', '')}</span></div>
<div class="verdict {'claim' if ok else 'noclaim'}"><strong>{title}</strong>{html.escape(res['message'])}</div>
<h2>Key numbers</h2>{key}
{pics}{det_html}
<h2>How it works</h2>
<p>The owner trained the model so that a secret stamp, placed in some cells of the image, makes the model
slightly less sure (its probability moves from near 0 or 1 to {mk['eps']:g} or {1 - mk['eps']:g}) in exactly
the cells where the owner's code is dark, without changing any pixel of the thresholded masks. The verifier
stamps random sets of cells on images the model never saw and fits how much each cell adds to the model's
total uncertainty. The thresholds (a cell is dark when its rise exceeds half of {mk['eps']:g}) were fixed
before any query. A model that was never trained with the owner's key agrees with each module of the code
with probability 1/2, which gives the p-value.</p>
<p class="muted">Limitation: a model that returns only binary masks, or rounds its probabilities coarsely,
cannot be verified this way.</p>
<h2>Suspect</h2>{_table(sorted((ev.get('suspect') or {}).items()))}
<h2>Owner's commitment</h2>{owner_html}
<details><summary>Mark, parameters and software</summary>
{_table(sorted((k, v) for k, v in mk.items() if k != 'committed_modules'))}
{_table(sorted((ev.get('parameters') or {}).items()))}
{_table(sorted((ev.get('data') or {}).items()))}
{_table(sorted(ev['software'].items()))}</details>
</body></html>
"""
    return body


def write_seg_bundle(ev: dict[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """Write ``evidence.json`` and ``report.html`` into ``out_dir`` (atomically)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"evidence": out / "evidence.json", "html": out / "report.html"}
    atomic_write_json(paths["evidence"], ev)
    atomic_write_text(paths["html"], render_seg_html(ev))
    return paths
