"""Process-wide settings that make PyTorch on the CPU faster: the C allocator's thresholds.

Why: a message-passing step allocates and frees several (B, N, N, H) tensors of a few MB
each. glibc's malloc serves blocks above its mmap threshold with fresh ``mmap`` pages and
gives freed heap tops back to the kernel above its trim threshold, so every such tensor
costs page faults and the kernel zeroing its pages again. Measured on the 2-core CPU: the
mpnn prediction of 32 graphs at n = 64 (bfloat16, one thread) took 0.89-1.10 s with glibc's
defaults and 0.56-0.59 s with both thresholds raised (``benchmarks/bench_train.py``).

Raising them keeps freed memory in the process for reuse: the resident size stays near its
peak instead of shrinking between steps. ``NAR_MALLOC_TUNING=0`` turns this off. Other C
libraries (musl, macOS) are left alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's largest allowed value on 64-bit (HEAP_MAX_SIZE / 2)
TRIM_THRESHOLD = 256 * 1024 * 1024


@functools.cache
def tune_malloc() -> bool:
    """Raise glibc's mmap and trim thresholds once per process; True when they are set."""
    if os.environ.get("NAR_MALLOC_TUNING", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
