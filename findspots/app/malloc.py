"""Keep freed image-sized buffers in the process instead of returning them to the kernel.

Each image allocates and frees a few arrays of 6-70 MB (decoded counts, masks, flags). glibc's
default heuristics give such blocks back to the kernel when freed (mmap, or trimming the heap
top), so the next image faults every page in again: on 100 Pilatus 6M images with the extended
threshold that was 1.2 GB of fresh pages and 0.9 s of system time. Raising the mmap and trim
thresholds makes them reusable; the peak memory does not grow, as it is what the run held anyway.
"""

from __future__ import annotations

import ctypes
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 256 << 20  # larger blocks still come straight from the kernel
TRIM_THRESHOLD = 512 << 20  # free memory kept at the heap top before it is given back


def reuse_freed_buffers() -> bool:
    """Set glibc's malloc thresholds (inherited by forked workers); False where not glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library is already loaded: no search for it
    except (OSError, AttributeError):  # e.g. musl: no mallopt
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
