"""The C allocator setting the command line and the benchmark apply."""

import platform
import sys

from xmark_core.allocator import keep_large_blocks


def test_keep_large_blocks_applies_on_glibc():
    glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert keep_large_blocks() is glibc
