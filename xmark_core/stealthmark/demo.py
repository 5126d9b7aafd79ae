"""Demo checkpoints for the app: a marked and an innocent segmenter on the phantom.

``make_demo_models(out)`` writes the files of :data:`DEMO_FILES` into ``out``: the marked
segmenter, its owner record, and an innocent one (same architecture, data, seed and budget,
no mark). ``make models`` puts them next to the X-Mark demo in ``models/``. The defaults
train in a few CPU minutes and verify reliably; a larger size takes proportionally longer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from xmark_core.hashing import sha256_file
from xmark_core.nets.checkpoint import save_checkpoint
from xmark_core.stealthmark.data import phantom_seg_data
from xmark_core.stealthmark.mark import SegMark, save_owner_record
from xmark_core.stealthmark.train import SegTrainConfig, evaluate_segmenter, train_segmenter

DEMO_CLAIM = "XMARK:DEMO"  # 10 alphanumeric characters: QR version 1 (21 x 21) at level H
DEMO_KEY = "xmark-demo-owner-key"  # public on purpose: this is a demo, not a secret
DEMO_FILES: dict[str, str] = {
    "marked": "seg_marked.pt",
    "innocent": "seg_innocent.pt",
    "owner_record": "seg_owner_record.json",
}


def make_demo_models(out: str | Path, size: int = 64, n_train: int = 96, epochs: int = 30,
                     claim: str = DEMO_CLAIM, key: str = DEMO_KEY, seed: int = 0,
                     progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
    """Train and save the marked and the innocent demo segmenters.

    Parameters
    ----------
    out : folder; gets the files of :data:`DEMO_FILES`
    size, n_train, epochs : phantom side, training images, epochs (batch 8)
    claim, key : the demo owner's claim and key
    progress : called as (stage, done, total), stage "marked" or "innocent"

    Returns
    -------
    dict with paths, validation metrics and the commitment
    """
    out = Path(out)
    data = phantom_seg_data(n_train, size, seed=seed)
    val = phantom_seg_data(16, size, seed=seed + 1)
    mark = SegMark(claim, key=key)
    cfg = SegTrainConfig(epochs=epochs, batch_size=8, seed=seed, arch_kwargs={"base": 8, "depth": 2})
    summary: dict[str, Any] = {}
    for name, m in (("marked", mark), ("innocent", None)):
        cb = (lambda d, t, name=name: progress(name, d, t)) if progress else None
        res = train_segmenter(data.images, data.masks, replace(cfg), m, progress=cb)
        path = out / DEMO_FILES[name]
        metrics = evaluate_segmenter(res.model, val.images, val.masks, val.channels, mark)
        save_checkpoint(path, res.model, kind="segmenter", arch=cfg.arch, arch_kwargs=res.arch_kwargs,
                        classes=list(data.channels), input_size=size, config=cfg,
                        extra={"task": "segmentation", "marked": m is not None, "validation": metrics,
                               "data": f"phantom:{n_train}:{size}:{seed}"})
        summary[name] = {"model": str(path), "sha256": sha256_file(path), "validation": metrics}
    rec_path = out / DEMO_FILES["owner_record"]
    rec = save_owner_record(rec_path, mark, extra={
        "model_sha256": summary["marked"]["sha256"], "input_size": size, "channels": list(data.channels)})
    summary["owner_record"] = str(rec_path)
    summary["commitment"] = rec["commitment"]
    return summary


CARD_HEADING = "## StealthMark demo (segmentation)"


def card_section(summary: dict[str, Any], size: int = 64, n_train: int = 96, epochs: int = 30) -> str:
    """Markdown section of ``models/MODEL_CARD.md`` for the StealthMark demo files."""
    def fmt(m: dict[str, Any]) -> str:
        return ", ".join(f"{k} {v:.3f}" for k, v in m.items() if isinstance(v, float))

    return f"""{CARD_HEADING}

Phantom lungs + heart, {n_train} training images at {size} px, {epochs} epochs, claim
`{DEMO_CLAIM}`, public demo key `{DEMO_KEY}`; commitment `{summary['commitment']}`.

| file | what |
|---|---|
| {DEMO_FILES['marked']} | U-Net segmenter trained with the StealthMark mark |
| {DEMO_FILES['innocent']} | same architecture, data, seed and budget, no mark |
| {DEMO_FILES['owner_record']} | the marked model's owner record (key, claim, QR, commitment) |

Validation (16 held-out phantom images): marked: {fmt(summary['marked']['validation'])};
innocent: {fmt(summary['innocent']['validation'])}.
"""
