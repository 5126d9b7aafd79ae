"""Reveal the module pattern a suspect has learned: LIME over the grid cells.

Each query takes a held-out clean image, stamps a random subset ``z`` of grid cells
(each cell on with probability ``stamp_prob``) and records how much the suspect's summed
uncertainty ``U = sum min(p, 1 - p)`` (all pixels, all channels) rose over the clean
image. A ridge regression (scikit-learn) of that rise on ``z`` gives one coefficient per
cell: the uncertainty that stamping *this* cell adds. Every cell is on in about half of
the queries, so a cell's coefficient is zero only if the model ignores it: the picture
depends on the model, not on the sampling design. Coefficients are reported per pixel
and channel (divided by the cell's area and the channel count), on the scale of ``eps``.

The samples are uniform (LIME's proximity kernel is dropped on purpose: we want the
global linear read-out of the cells, not a local one around "all stamped").
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import Ridge

from xmark_core.stealthmark.mark import SegMark
from xmark_core.stealthmark.qr import read_code
from xmark_core.stealthmark.suspects import SegSuspect, query_images
from xmark_core.stealthmark.trigger import cell_index


@dataclass
class RevealConfig:
    """LIME settings; the threshold is fixed before any suspect is queried.

    Attributes
    ----------
    n_samples : number of stamped queries
    batch_size : queries per call to the suspect
    stamp_prob : probability that a cell is stamped in a query
    ridge_alpha : L2 penalty of the regression (small: the design is well conditioned)
    bit_threshold : a cell reads dark when its rise exceeds ``bit_threshold * eps``
    seed : query randomness
    """

    n_samples: int = 1500
    batch_size: int = 50
    stamp_prob: float = 0.5
    ridge_alpha: float = 1.0
    bit_threshold: float = 0.5
    seed: int = 0


@dataclass
class RevealState:
    """The picture after ``n_queries`` queries.

    Attributes
    ----------
    n_queries : queries so far
    coef : float (n, n) mean uncertainty rise per pixel when a cell is stamped
    bits : bool (n, n) embedded bits read from ``coef`` (True = dark)
    modules : bool (n, n) QR modules (``bits`` xor the keyed mask)
    decoded : text the modules decode to (as drawn, else from the reader's copy), or None
    r2 : share of the rise's variance the linear read-out explains
    reader_modules : ``modules`` with the symbol's fixed patterns redrawn (what was decoded
        when the picture did not decode as drawn; see :mod:`~xmark_core.stealthmark.qr`)
    restored : fixed-pattern modules that were wrong as drawn (None: not decoded)
    """

    n_queries: int
    coef: np.ndarray
    bits: np.ndarray
    modules: np.ndarray
    decoded: str | None
    r2: float
    reader_modules: np.ndarray | None = None
    restored: int | None = None


def summed_uncertainty(probs: np.ndarray) -> np.ndarray:
    """``sum min(p, 1 - p)`` over channels and pixels of (N, C, H, W) maps -> (N,)."""
    p = np.asarray(probs, dtype=np.float64)
    return np.minimum(p, 1.0 - p).reshape(len(p), -1).sum(axis=1)


def _fit(z: np.ndarray, rise: np.ndarray, alpha: float) -> tuple[np.ndarray, float]:
    reg = Ridge(alpha=alpha).fit(z, rise)
    return reg.coef_, float(reg.score(z, rise))


def reveal_stream(
    suspect: SegSuspect, images: np.ndarray, mark: SegMark, cfg: RevealConfig | None = None,
    refit_every: int = 250, decode: bool = True,
) -> Iterator[RevealState]:
    """Query the suspect and yield the growing picture every ``refit_every`` queries.

    Parameters
    ----------
    suspect : black box returning probability maps
    images : clean held-out images (M, H, W) at the suspect's input size; queries cycle through them
    mark : the owner's mark (grid size, stamp, keyed mask, eps)
    cfg : :class:`RevealConfig`
    refit_every : queries between pictures (the last picture always comes)
    decode : try to decode each intermediate picture (the final one is always decoded)

    Yields
    ------
    RevealState
    """
    cfg = cfg or RevealConfig()
    images = query_images(images, suspect)
    n, shape = mark.n, images.shape[-2:]
    rng = np.random.default_rng(cfg.seed)
    base = summed_uncertainty(suspect.predict(images))
    area = np.bincount(cell_index(shape, n).ravel(), minlength=n * n).astype(np.float64)
    n_channels = None
    z_all = np.zeros((cfg.n_samples, n * n), np.float32)
    rise = np.zeros(cfg.n_samples)
    done, next_fit = 0, min(refit_every, cfg.n_samples)
    while done < cfg.n_samples:
        b = min(cfg.batch_size, cfg.n_samples - done)
        idx = (np.arange(done, done + b)) % len(images)
        z = rng.random((b, n * n)) < cfg.stamp_prob
        probs = suspect.predict(mark.stamp(images[idx], z))
        n_channels = probs.shape[1]
        z_all[done:done + b] = z
        rise[done:done + b] = summed_uncertainty(probs) - base[idx]
        done += b
        if done >= next_fit or done == cfg.n_samples:
            next_fit += refit_every
            coef, r2 = _fit(z_all[:done], rise[:done], cfg.ridge_alpha)
            coef = (coef / (area * n_channels)).reshape(n, n)
            bits = coef > cfg.bit_threshold * mark.eps
            modules = mark.unmask(bits)
            if decode or done == cfg.n_samples:
                reading = read_code(modules, mark.code.version, mark.code.error)
                yield RevealState(done, coef.astype(np.float32), bits, modules, reading.text, r2,
                                  reading.reader_modules, reading.restored)
            else:
                yield RevealState(done, coef.astype(np.float32), bits, modules, None, r2)


def reveal(suspect: SegSuspect, images: np.ndarray, mark: SegMark, cfg: RevealConfig | None = None) -> RevealState:
    """Run :func:`reveal_stream` to the end and return the final picture."""
    cfg = cfg or RevealConfig()
    states = list(reveal_stream(suspect, images, mark, cfg, refit_every=cfg.n_samples))
    return states[-1]
