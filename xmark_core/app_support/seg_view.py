"""Glue for the Segmentation ownership page (StealthMark): demo files, example queries, evidence."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xmark_core.app_support.demo import default_models_dir
from xmark_core.stealthmark.demo import DEMO_FILES

# Shipped StealthMark demo (made by `make models`): a marked and an innocent segmenter
# and the owner record of the marked one.
SEG_FILES: dict[str, str] = DEMO_FILES  # written by `make models`
SEG_LABELS: dict[str, str] = {
    "marked": "Demo segmenter marked with the owner's claim",
    "innocent": "Demo segmenter trained without the mark (innocent)",
}
# Held-out phantom seed for the queries (the CLI's default `phantom:32:128:7919`).
QUERY_SEED = 7919


@dataclass
class SegDemo:
    root: Path
    present: dict[str, bool]

    def path(self, name: str) -> Path:
        return self.root / SEG_FILES[name]

    @property
    def ready(self) -> bool:
        return all(self.present.values())

    def message(self) -> str:
        missing = [SEG_FILES[k] for k, ok in self.present.items() if not ok]
        return (f"The StealthMark demo models are not available yet ({', '.join(missing)} missing in "
                f"{self.root}): build them with `make models`, or upload a segmenter and its owner record.")


def seg_demo(root: str | Path | None = None) -> SegDemo:
    root = Path(root) if root is not None else default_models_dir()
    return SegDemo(root, {k: (root / f).is_file() for k, f in SEG_FILES.items()})


def query_images(n: int, size: int, seed: int = QUERY_SEED) -> np.ndarray:
    """``n`` held-out phantom images (n, size, size) for the queries."""
    from xmark_core.stealthmark.data import phantom_seg_data

    return phantom_seg_data(int(n), size=int(size), seed=int(seed)).images


def example_query(mark: Any, image: np.ndarray, seed: int = 0, stamp_prob: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """One stamped version of ``image`` (random half of the grid cells) and the cells used."""
    on = np.random.default_rng(seed).random((1, mark.n ** 2)) < stamp_prob
    return mark.stamp(np.asarray(image, np.float32)[None], on)[0], on[0]


def evidence_files(result: Any, mark: Any, owner_record_path: str | None, data: dict[str, Any]) -> dict[str, bytes]:
    """``evidence.json`` and ``report.html`` of a segmentation verification, as bytes."""
    from xmark_core.report import check_owner_record
    from xmark_core.stealthmark.evidence import build_seg_evidence, render_seg_html

    owner = check_owner_record(owner_record_path) if owner_record_path else None
    ev = build_seg_evidence(result, mark, owner=owner, data=data, command=["xmark app", "seg verify"])
    return {"evidence.json": (json.dumps(ev, indent=2, sort_keys=True) + "\n").encode(),
            "report.html": render_seg_html(ev).encode()}
