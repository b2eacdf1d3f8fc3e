"""Memory allocator settings for the long-running server process.

A server that reads megabyte-sized documents on dozens of threads grows in RSS with glibc's
defaults, though nothing it holds grows: each thread gets a malloc arena of its own, and after
the first large buffer is freed glibc raises its mmap threshold, so later 1 MiB buffers come
from those arenas and stay mapped when freed.  Measured here with 16 concurrent 1 MiB reads:
197 MiB peak RSS with the defaults, 128 MiB with the threshold fixed at 256 KiB and two arenas
(``tests/bench/bench_core.py`` reports ``peak_rss_reads_1m_mib``).

Operators who set ``MALLOC_ARENA_MAX`` or ``MALLOC_MMAP_THRESHOLD_`` themselves keep their
choice; on a C library without ``mallopt`` (musl, macOS) nothing changes.
"""

from __future__ import annotations

import ctypes
import os
import sys

# From glibc's <malloc.h>.
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8

MMAP_THRESHOLD = 256 * 1024
ARENA_MAX = 2


def tune_allocator() -> bool:
    """Fix the mmap threshold and cap the arenas; True when both settings took effect.

    Called before the server starts its threads, so every arena it creates obeys the cap, and
    every large buffer (a document chunk) is returned to the system as soon as it is freed.
    """
    if not sys.platform.startswith("linux"):
        return False
    if "MALLOC_ARENA_MAX" in os.environ or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(_M_ARENA_MAX, ARENA_MAX))
