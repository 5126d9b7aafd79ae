"""Demo checkpoints for the app: a marked and an innocent segmenter on the phantom.

``make_demo_models(out)`` writes ``marked/model.pt`` + ``marked/owner_record.json`` and
``innocent/model.pt`` (same architecture, data, seed and budget, no mark). The defaults
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


def make_demo_models(out: str | Path, size: int = 64, n_train: int = 96, epochs: int = 30,
                     claim: str = DEMO_CLAIM, key: str = DEMO_KEY, seed: int = 0,
                     progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
    """Train and save the marked and the innocent demo segmenters.

    Parameters
    ----------
    out : folder; gets ``marked/`` and ``innocent/``
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
        path = out / name / "model.pt"
        metrics = evaluate_segmenter(res.model, val.images, val.masks, val.channels, mark)
        save_checkpoint(path, res.model, kind="segmenter", arch=cfg.arch, arch_kwargs=res.arch_kwargs,
                        classes=list(data.channels), input_size=size, config=cfg,
                        extra={"task": "segmentation", "marked": m is not None, "validation": metrics,
                               "data": f"phantom:{n_train}:{size}:{seed}"})
        summary[name] = {"model": str(path), "sha256": sha256_file(path), "validation": metrics}
    rec = save_owner_record(out / "marked" / "owner_record.json", mark, extra={
        "model_sha256": summary["marked"]["sha256"], "input_size": size, "channels": list(data.channels)})
    summary["owner_record"] = str(out / "marked" / "owner_record.json")
    summary["commitment"] = rec["commitment"]
    return summary
