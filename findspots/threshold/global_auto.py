"""``global_threshold=Auto``: the global threshold estimated from one image
(docs/dials-behaviour.md#global-auto).

The estimate looks at how the number of bright pixels falls as the cut rises, and picks a cut just
before the fall levels off:

1. **Ladder.** The cuts are ``g_k = int(1.5**(k+1))`` for k = 0..18, i.e. 1, 2, 3, 5, 7, 11, 17, 25,
   38, 57, 86, 129, 194, 291, 437, 656, 985, 1477, 2216. ``n_k`` is the number of pixels of the
   whole image with value > g_k (strict). The mask is ignored: masked pixels count too.
2. **Chord start.** Treat the points ``P_k = (g_k, n_k)`` as a curve ending at ``P_18``. For every
   k < 18 take the slope of the chord from ``P_k`` to ``P_18``, ``(n_18 - n_k) / (g_18 - g_k)``;
   ``m`` is the first k with the smallest (steepest falling) slope.
3. **Elbow** (the construction of the distl spot finder's resolution "method 1", Zhang et al. 2006):
   among ``P_m .. P_18`` the elbow ``e`` is the point farthest from the straight line through ``P_m``
   and ``P_18``, distance measured perpendicular to that line (first point on ties). In float64, with
   ``v = unit(n_18 - n_m, -(g_18 - g_m))`` the distance of ``P_i`` is ``|v . (P_m - P_i)|``.
4. **Result.** The cut two ladder steps left of the elbow, ``g_(e-2)``, as an int. DIALS indexes
   the ladder the Python way, so an elbow at index 0 or 1 wraps round to the top of the ladder:
   ``e = 0`` gives ``g_17 = 1477`` and ``e = 1`` gives ``g_18 = 2216``. A blank image (every
   ``n_k = 0``: all slopes 0, so m = 0, all distances 0, so e = 0) therefore gets 1477. This is
   mirrored, not corrected.

DIALS estimates on the first ``compute_threshold`` call of each process or pickled task (its first
image's first panel, region of interest applied) by writing the value into its parameters, so it
holds for every later image that process thresholds. findspots estimates once per run, from the
first image of the first scan range (first panel, region of interest applied), before any worker
starts, and passes the value explicitly to every threshold of the run
(:meth:`findspots.threshold.DispersionThreshold.with_global_threshold`), so the spots never depend
on how the images are split into chunks or processes.
"""

from __future__ import annotations

import math

import numba
import numpy as np

LADDER = tuple(int(1.5**i) for i in range(1, 20))
_LADDER = np.array(LADDER, dtype=np.float64)


@numba.njit(cache=True, nogil=True)
def _counts_above(image, ladder):
    """``counts[k]`` = number of pixels with value > ladder[k] (ladder ascending)."""
    counts = np.zeros(ladder.size, np.int64)
    flat = image.ravel()
    for p in range(flat.size):
        v = flat[p]
        for k in range(ladder.size):
            if not v > ladder[k]:
                break  # ascending ladder: not above this step means not above any later one
            counts[k] += 1
    return counts


def counts_above(image: np.ndarray) -> np.ndarray:
    """Pixels of ``image`` above each ladder step (int64, length 19); no mask."""
    return _counts_above(np.ascontiguousarray(image, dtype=np.float64), _LADDER)


def elbow_index(x, y) -> int:
    """Index of the elbow of the curve (x[k], y[k]) (steps 2 and 3 of the module docstring)."""
    x = [float(v) for v in x]
    y = [float(v) for v in y]
    last = len(x) - 1
    slopes = [(y[last] - y[k]) / (x[last] - x[k]) for k in range(last)]
    m = 0
    for k in range(1, last):
        if slopes[k] < slopes[m]:
            m = k
    # unit normal of the chord P_m -> P_last
    vx, vy = y[last] - y[m], -(x[last] - x[m])
    norm = math.sqrt(vx * vx + vy * vy)
    vx, vy = vx / norm, vy / norm
    best, best_gap = m, -1.0
    for i in range(m, last + 1):
        gap = abs(vx * (x[m] - x[i]) + vy * (y[m] - y[i]))
        if gap > best_gap:
            best, best_gap = i, gap
    return best


def threshold_from_counts(counts) -> int:
    """The Auto global threshold from the 19 ladder counts (step 4: two steps left, wrapping)."""
    if len(counts) != len(LADDER):
        raise ValueError(f"expected {len(LADDER)} counts, got {len(counts)}")
    e = elbow_index(LADDER, counts)
    return int(LADDER[(e - 2) % len(LADDER)])


def estimate_global_threshold(image: np.ndarray) -> int:
    """The ``global_threshold=Auto`` value for one panel image (the mask plays no part)."""
    return threshold_from_counts(counts_above(image))
