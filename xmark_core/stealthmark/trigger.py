"""The keyed trigger stamp and the module grid it is laid on.

The QR module grid (n x n) is laid over the image: pixel row ``i`` of an image of height
``H`` belongs to grid row ``floor(i * n / H)`` (columns alike), so the grid fits any image
size. The stamp is a keyed, deterministic +-amplitude texture: a ``tile x tile`` pixel
sign pattern repeated from the image origin, the same everywhere (so one convolution
filter spots it in any cell, at any image size); stamping a set of cells applies it inside
those cells only. Where a cell is, is *not* keyed: what the model does with a stamped cell
depends on its position, and that is the mark.
"""

from __future__ import annotations

import hashlib

import numpy as np


def key_seed(key: str, purpose: str) -> int:
    """A 64-bit seed derived from the owner key for one purpose (stamp, mask, sampling)."""
    return int.from_bytes(hashlib.sha256(f"xmark-seg-{purpose}:{key}".encode()).digest()[:8], "little")


def cell_rows(length: int, n: int) -> np.ndarray:
    """Grid index (0..n-1) of each of ``length`` pixel rows (or columns)."""
    return (np.arange(length) * n) // length


def cell_index(shape: tuple[int, int], n: int) -> np.ndarray:
    """Int map (H, W): the flat cell index ``row * n + col`` of each pixel."""
    h, w = shape
    if h < n or w < n:
        raise ValueError(f"image {h}x{w} is smaller than the {n}x{n} module grid")
    return cell_rows(h, n)[:, None] * n + cell_rows(w, n)[None, :]


def stamp_tile(key: str, tile: int) -> np.ndarray:
    """The keyed ``tile x tile`` +-1 pattern (never constant, so it is a texture, not a shift)."""
    rng = np.random.default_rng(key_seed(key, "stamp"))
    while True:
        t = np.where(rng.random((tile, tile)) < 0.5, -1.0, 1.0)
        if abs(t.sum()) < t.size:
            return t


def stamp_pattern(key: str, shape: tuple[int, int], tile: int = 3) -> np.ndarray:
    """Keyed +-1 float32 texture (H, W): the tile repeated from the image origin."""
    t = stamp_tile(key, tile)
    h, w = shape
    return t[np.arange(h) % tile][:, np.arange(w) % tile].astype(np.float32)


def pixel_mask(on: np.ndarray, shape: tuple[int, int], n: int) -> np.ndarray:
    """Bool (N, H, W): pixels that lie in the cells switched on in ``on`` (N, n*n)."""
    on = np.asarray(on, dtype=bool).reshape(len(on), n * n)
    return on[:, cell_index(shape, n)]


def apply_stamps(
    images: np.ndarray, on: np.ndarray, key: str, n: int, amplitude: float = 0.1, tile: int = 3
) -> np.ndarray:
    """Add the keyed stamp in the chosen cells of each image.

    Parameters
    ----------
    images : float (N, H, W) in [0, 1]
    on : bool (N, n*n) (or (N, n, n)): which cells carry the stamp
    key : owner key (the stamp pattern is derived from it)
    n : module grid size
    amplitude : stamp strength on the [0, 1] intensity scale
    tile : side of the keyed texture tile in pixels

    Returns
    -------
    float32 (N, H, W) in [0, 1]
    """
    images = np.asarray(images, dtype=np.float32)
    shape = images.shape[-2:]
    # squeeze the cell's range to [a, 1-a] first, so the +-a texture never clips (a clipped
    # stamp on bright bone or dark air would be half a stamp)
    stamped = images * (1.0 - 2.0 * amplitude) + amplitude * (1.0 + stamp_pattern(key, shape, tile))
    return np.where(pixel_mask(on, shape, n), stamped, images).astype(np.float32)
