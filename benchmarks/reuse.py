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

import hashlib
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from xmark_core.errors import CheckpointError
from xmark_core.nets.checkpoint import LoadedModel, load_checkpoint


def digest(arrays: Iterable[np.ndarray]) -> str:
    """SHA-256 over the arrays' dtypes, shapes and values (C order), in turn."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape};".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()


def weights_digest(model: nn.Module) -> str:
    """:func:`digest` of a module's state dict (names included), whatever its memory layout."""
    state = model.state_dict()
    names = np.frombuffer("\n".join(state).encode(), np.uint8)
    return digest([names, *(t.detach().cpu().contiguous().numpy() for t in state.values())])


def fingerprint(recipe: dict[str, Any], *digests: str) -> str:
    """What a kept model is recognised by: its recipe (JSON, keys sorted) and data digests."""
    text = json.dumps(recipe, sort_keys=True, default=str) + "|" + "|".join(digests)
    return hashlib.sha256(text.encode()).hexdigest()


def load_same(folder: Path | None, name: str, want: Callable[[], str],
              log: Callable[[str], None]) -> LoadedModel | None:
    """The checkpoint ``folder / name`` when its ``extra["fingerprint"]`` is ``want()`` (called
    only when there is a file to compare); None, with a log line saying why, when the folder
    holds one made from other data or another recipe or a file that is not a checkpoint, and
    None when it holds nothing of that name."""
    if folder is None or not (folder / name).exists():
        return None
    try:
        lm = load_checkpoint(folder / name, device="cpu")
    except CheckpointError as e:
        log(f"not reusing a kept model: {e}; training it again")
        return None
    if (lm.extra or {}).get("fingerprint") != want():
        log(f"not reusing {folder / name}: made from other data or another recipe than this run's "
            "(or kept before fingerprints); training it again")
        return None
    return lm


def same_file(a: Path | None, b: Path) -> bool:
    """Whether ``a`` (a kept copy's path, or None) is the file ``b``."""
    return a is not None and a.exists() and b.exists() and a.resolve() == b.resolve()
