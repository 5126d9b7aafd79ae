"""SHA-256 helpers for file identities and the owner's commitment."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_array(a: np.ndarray) -> str:
    """Hash of an array's dtype, shape and bytes (stable across runs and machines)."""
    a = np.ascontiguousarray(a)
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.tobytes())
    return h.hexdigest()


def canonical_json(obj: Any) -> bytes:
    """JSON with sorted keys and no whitespace: the bytes a commitment is taken over."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def commitment(record: dict[str, Any]) -> str:
    """SHA-256 over the canonical JSON of a record (without its own ``commitment`` key)."""
    body = {k: v for k, v in record.items() if k != "commitment"}
    return sha256_bytes(canonical_json(body))
