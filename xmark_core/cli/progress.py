"""The one progress bar every command uses: a ``progress(done, total)`` callback on stderr."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tqdm import tqdm

LOG_INTERVAL_S = 30.0


@contextmanager
def tqdm_progress(desc: str, unit: str = "it") -> Iterator[Callable[[int, int], None]]:
    """Yield a ``progress(done, total)`` callback drawing a tqdm bar on stderr.

    The bar appears on the first call, so a command that fails while checking its
    input prints only the error. Redrawn at most every 0.1 s on a terminal and every
    ``LOG_INTERVAL_S`` seconds when stderr is a file or pipe (CI logs, ``nohup``), where
    each redraw is kept as text.
    """
    bars: list[tqdm] = []

    def update(done: int, total: int) -> None:
        if not bars:
            interval = 0.1 if sys.stderr.isatty() else LOG_INTERVAL_S
            bars.append(tqdm(desc=desc, unit=unit, total=total, initial=done, file=sys.stderr,
                             dynamic_ncols=True, mininterval=interval))  # initial: not timed
        bars[0].total = total
        bars[0].update(done - bars[0].n)  # draws only when mininterval has passed

    try:
        yield update
    finally:
        for bar in bars:
            bar.close()
