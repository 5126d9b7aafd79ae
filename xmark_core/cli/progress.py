"""The one progress bar every command uses: a ``progress(done, total)`` callback on stderr."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tqdm import tqdm


@contextmanager
def tqdm_progress(desc: str, unit: str = "it") -> Iterator[Callable[[int, int], None]]:
    """Yield a ``progress(done, total)`` callback drawing a tqdm bar on stderr.

    The bar appears on the first call, so a command that fails while checking its
    input prints only the error.
    """
    bars: list[tqdm] = []

    def update(done: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(desc=desc, unit=unit, total=total, initial=done, file=sys.stderr,
                             dynamic_ncols=True))  # initial: work done before the bar is not timed
        bars[0].total = total
        bars[0].n = done
        bars[0].refresh()

    try:
        yield update
    finally:
        for bar in bars:
            bar.close()
