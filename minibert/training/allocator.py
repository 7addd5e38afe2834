"""Keep freed memory in the process during training, so that each step reuses the last one's.

A training step allocates and frees the same large arrays every time (activations kept for
backward, their gradients, attention maps: tens of MB for a batch of 32 x 128). glibc's malloc
serves a block above its mmap threshold with a fresh mmap and gives it back to the kernel with
munmap when it is freed, and trims the top of the heap when much of it is free. The next step
then asks for the same memory again, and the kernel hands it over one page fault at a time,
zero-filling every 4 KB page: time the step spends in the kernel, not in arithmetic.

`keep_freed_memory()` sets glibc's thresholds (mallopt) so that blocks up to 32 MiB come from the
heap and the heap is not trimmed: the second and later steps find their memory already mapped.
The cost is that the process keeps the peak memory of a step mapped until it exits, which is
what a training run wants. glibc's own maximum for the mmap threshold is 32 MiB on 64-bit
machines; larger blocks still use mmap. On a C library without mallopt (musl, macOS, Windows)
it does nothing. Trainer.train calls it; the same settings can be made without code with the
environment variables MALLOC_MMAP_THRESHOLD_=33554432 and MALLOC_TRIM_THRESHOLD_=1073741824.
"""

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1  # mallopt parameter numbers, from glibc's malloc.h
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's largest allowed on 64-bit
TRIM_THRESHOLD = 1024 * 1024 * 1024

_done = False


def keep_freed_memory() -> bool:
    """Set the thresholds once per process; True when glibc accepted them."""
    global _done
    if _done:
        return True
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    _done = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
    return _done
