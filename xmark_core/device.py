"""Device choice and reproducibility helpers shared by every module."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch


def get_device(prefer: str | None = None) -> torch.device:
    """Return ``prefer`` if given, else CUDA when present, else CPU.

    ``XMARK_DEVICE`` in the environment overrides the automatic choice.
    """
    name = prefer or os.environ.get("XMARK_DEVICE")
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a CPU ``torch.Generator`` seeded likewise."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    g = torch.Generator()
    g.manual_seed(seed)
    return g


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Torch's CPU ops at ``n`` threads inside the block, the caller's count restored after
    (``None``: leave it as it is).

    Why: at another thread count oneDNN sums a convolution's floats in another order, so a
    few pixels of a mark can land one 16-bit step apart. What must have the same bits on any
    machine of the same kind (a release, its commitment) is computed at a fixed count.
    """
    if n is None:
        yield
        return
    if n < 1:
        raise ValueError(f"threads must be >= 1 (or None for torch's own setting), got {n}")
    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)
