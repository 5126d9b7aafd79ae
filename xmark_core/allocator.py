"""The C allocator's setting for long array pipelines (glibc only; no torch import, so the
command line can apply it before anything else loads)."""

from __future__ import annotations

import ctypes
import sys


def keep_large_blocks(threshold: int = 1 << 30) -> bool:
    """Let glibc serve blocks up to ``threshold`` bytes from its heap and keep freed memory.

    By default glibc maps every block over 32 MB afresh and unmaps it when freed, so each
    such tensor pays page faults on first touch; one activation of the generator on a
    512 px image is 33 MB. Native embedding at 512 px took 224–228 ms per image, 190–192 ms
    with this (one thread; docs/lab/learnability/embed_profile.py). The price is a process
    that keeps its peak memory,
    so the command line and the benchmark call this at their start and the app does not.

    Returns
    -------
    bool
        Whether the setting was applied (False off Linux/glibc).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
        return bool(libc.mallopt(m_mmap_threshold, threshold)) and bool(libc.mallopt(m_trim_threshold, threshold))
    except (OSError, AttributeError):  # musl or another C library: keep its defaults
        return False
