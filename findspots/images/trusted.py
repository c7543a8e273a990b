"""The trusted-range test fused with the static mask: one pass over a raw image, no temporaries."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def _in_range(raw, static, lo, hi, out):
    h, w = raw.shape
    for j in range(h):
        row = raw[j]
        keep = static[j]
        dst = out[j]
        for i in range(w):
            dst[i] = (keep[i] != 0) & (row[i] >= lo) & (row[i] <= hi)


def trusted_and_static(raw: np.ndarray, static: np.ndarray | None, lo, hi) -> np.ndarray:
    """``static & (lo <= raw) & (raw <= hi)`` as a bool array (``static`` None: all usable).

    ``lo`` and ``hi`` must already be of a type that compares exactly with ``raw`` (ints for
    integer images).
    """
    raw = np.ascontiguousarray(raw)
    if static is None:
        static = np.ones(raw.shape, np.bool_)
    static = np.ascontiguousarray(static, dtype=np.bool_)
    if static.shape != raw.shape:
        raise ValueError(f"mask shape {static.shape} and image shape {raw.shape} differ")
    out = np.empty(raw.shape, np.bool_)
    _in_range(raw, static.view(np.uint8), lo, hi, out.view(np.uint8))
    return out
