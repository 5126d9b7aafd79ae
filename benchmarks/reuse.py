"""Models a run kept, used again (``--reuse-models DIR``).

A kept classifier or generator is loaded instead of trained when its checkpoint carries the
``fingerprint`` this run computes for the model it is about to train: a hash of the training
data (images and labels; for a generator also the saliency maps and the surrogate's weights)
and of the training recipe (the config dataclass). A setting that changes what a model learns
from (dataset size, the release's marks, the generator's recipe, a seed) changes the hash, so a
folder kept under other settings is never used by mistake: those models are trained again.
Passing a stopped run's ``--keep-models`` folder resumes it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from xmark_core.errors import CheckpointError
from xmark_core.hashing import canonical_json, sha256_array, sha256_bytes
from xmark_core.nets.checkpoint import LoadedModel, load_checkpoint


def digest(arrays: Iterable[np.ndarray]) -> str:
    """SHA-256 over the arrays' own hashes (:func:`~xmark_core.hashing.sha256_array`: dtype,
    shape and values, whatever the memory layout), in turn."""
    return sha256_bytes(canonical_json([sha256_array(a) for a in arrays]))


def fingerprint(recipe: dict[str, Any], *digests: str) -> str:
    """What a kept model is recognised by: its recipe and its data's digests (canonical JSON)."""
    return sha256_bytes(canonical_json({"recipe": recipe, "data": list(digests)}))


def load_same(folder: Path | None, name: str, want: Callable[[], str],
              log: Callable[[str], None], threads: int | None = None) -> LoadedModel | None:
    """The checkpoint ``folder / name`` when its ``extra["fingerprint"]`` is ``want()`` (called
    only when there is a file to compare); None, with a log line saying why, when the folder
    holds one made from other data or another recipe or a file that is not a checkpoint, and
    None when it holds nothing of that name. ``threads``: this run's torch threads; a file kept
    by a run at another count is named as the likely cause (models trained at another count
    have other weights, and a release made from them other bits; a folder kept before XXVII
    at a count other than 1 also holds suspects of a release marked at that count)."""
    if folder is None or not (folder / name).exists():
        return None
    try:
        lm = load_checkpoint(folder / name, device="cpu")
    except CheckpointError as e:
        log(f"not reusing a kept model: {e}; training it again")
        return None
    if (lm.extra or {}).get("fingerprint") != want():
        kept_threads = (lm.extra or {}).get("threads")
        likely = (f"; it was kept by a run at {kept_threads} torch threads and this one uses {threads}, "
                  "and a model trained at another count has other weights, and a release made from "
                  "it other bits (benchmarks README, --threads)"
                  if kept_threads is not None and threads is not None and kept_threads != threads else "")
        log(f"not reusing {folder / name}: made from other data or another recipe than this run's "
            f"(or kept before fingerprints){likely}; training it again")
        return None
    return lm


def same_file(a: Path | None, b: Path) -> bool:
    """Whether ``a`` (a kept copy's path, or None) is the file ``b``."""
    return a is not None and a.exists() and b.exists() and a.resolve() == b.resolve()
