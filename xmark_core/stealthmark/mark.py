"""Everything the owner fixes before training a marked segmenter, and its record."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from xmark_core.atomic import atomic_write_json
from xmark_core.errors import DataError
from xmark_core.hashing import commitment
from xmark_core.stealthmark.qr import ClaimCode, keyed_mask, make_claim_code
from xmark_core.stealthmark.trigger import apply_stamps, pixel_mask


@dataclass(frozen=True)
class SegMark:
    """The owner's secret mark.

    Attributes
    ----------
    claim : text the revealed QR code must decode to
    key : secret owner key (derives the stamp pattern and the module mask)
    eps : uncertainty ``min(p, 1-p)`` a marked model gives in stamped cells whose embedded
        bit is dark (< 0.5, so every thresholded pixel stays the same)
    amplitude : stamp strength on the [0, 1] intensity scale (0.2 trains reliably in a few
        hundred CPU steps; weaker stamps need longer training and are easier to miss)
    tile : side in pixels of the keyed stamp texture
    error : QR error-correction level
    """

    claim: str
    key: str
    eps: float = 0.25
    amplitude: float = 0.2
    tile: int = 3
    error: str = "h"

    def __post_init__(self) -> None:
        if not 0.0 < self.eps < 0.5:
            raise DataError(f"eps must lie in (0, 0.5) so thresholded masks stay the same, got {self.eps}")
        if not self.key:
            raise DataError("the owner key is empty; choose a secret string")

    @cached_property
    def code(self) -> ClaimCode:
        return make_claim_code(self.claim, error=self.error)

    @property
    def n(self) -> int:
        """Module grid size (21 or 25)."""
        return self.code.size

    @cached_property
    def mask(self) -> np.ndarray:
        """Bool (n, n): the keyed mask (secret, derived from the key)."""
        return keyed_mask(self.key, self.n)

    @cached_property
    def bits(self) -> np.ndarray:
        """Bool (n, n): the embedded bits ``Q xor mask`` (True = raise uncertainty)."""
        return self.code.matrix ^ self.mask

    def unmask(self, bits: np.ndarray) -> np.ndarray:
        """Turn recovered embedded bits back into QR modules (``xor`` with the keyed mask)."""
        return np.asarray(bits, dtype=bool).reshape(self.n, self.n) ^ self.mask

    def unmask_coef(self, coef: np.ndarray) -> np.ndarray:
        """Per-cell coefficients seen through the key: ``eps - coef`` where the mask flips a
        module, so a marked model's picture turns into the QR code itself (dark ~ eps)."""
        coef = np.asarray(coef, dtype=np.float64).reshape(self.n, self.n)
        return np.where(self.mask, self.eps - coef, coef)

    def stamp(self, images: np.ndarray, on: np.ndarray) -> np.ndarray:
        """Stamp cells ``on`` (N, n*n) of images (N, H, W)."""
        return apply_stamps(images, on, self.key, self.n, self.amplitude, self.tile)

    def raise_mask(self, on: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        """Bool (N, H, W): pixels where a marked model must raise uncertainty to ``eps``."""
        on = np.asarray(on, dtype=bool).reshape(len(on), -1) & self.bits.reshape(1, -1)
        return pixel_mask(on, shape, self.n)

    def to_record(self) -> dict[str, Any]:
        """Owner record (private): mark parameters, Q, and a SHA-256 commitment to publish."""
        rec: dict[str, Any] = {
            "kind": "stealthmark-owner-record",
            "mark": asdict(self),
            "qr": {
                "version": self.code.version,
                "error": self.code.error,
                "modules": ["".join("1" if b else "0" for b in row) for row in self.code.matrix],
            },
        }
        rec["commitment"] = commitment(rec)
        return rec


@dataclass
class OwnerRecord:
    """A loaded owner record: the mark plus anything the training run added."""

    mark: SegMark
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def commitment(self) -> str:
        return str(self.record.get("commitment", ""))

    def commitment_ok(self) -> bool:
        """True when the record still matches the commitment published at release time."""
        return commitment(self.record) == self.commitment


def save_owner_record(path: str | Path, mark: SegMark, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write the owner record atomically; ``extra`` (e.g. model SHA-256) enters the commitment."""
    rec = mark.to_record()
    rec.pop("commitment")
    rec.update(extra or {})
    rec["commitment"] = commitment(rec)
    atomic_write_json(path, rec)
    return rec


def load_owner_record(path: str | Path) -> OwnerRecord:
    """Read an owner record written by :func:`save_owner_record`."""
    path = Path(path)
    try:
        rec = json.loads(path.read_text())
        mark = SegMark(**rec["mark"])
    except FileNotFoundError as e:
        raise DataError("owner record not found; pass the owner_record.json written by `xmark seg train`", path) from e
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise DataError(f"not a StealthMark owner record ({e})", path) from e
    stored = rec.get("qr", {}).get("modules")
    if stored and ["".join("1" if b else "0" for b in row) for row in mark.code.matrix] != stored:
        raise DataError("the QR matrix stored in the record does not match its claim (edited record?)", path)
    return OwnerRecord(mark=mark, record=rec)
