"""Powder (ice) ring resolution ranges for ``spotfinder.filter.ice_rings``.

The rings are the d-spacings of every reflection of the given unit cell and space group that is not
systematically absent, down to a resolution limit: ``ice_rings.d_min`` or, when that is None, the panel's
highest resolution at its corners. Symmetry-equivalent reflections share a d-spacing, so the distinct values
are the rings (values within a relative 1e-12 in 1/d^2, rounding differences between equivalent
reflections, count as one). Each ring d masks the interval (inclusive)

    [1 / sqrt(1/d^2 + width/2),  1 / sqrt(1/d^2 - width/2)]

with ``width`` in 1/d^2 (default 0.002). The defaults describe hexagonal ice Ih: cell 4.498, 4.498, 7.338,
90, 90, 120 and space group 194 (P6_3/mmc).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from findspots.errors import ParameterError
from findspots.geometry.space_groups import averaged_metric, space_group

# Hexagonal ice Ih: the one definition for the per-image analysis and the report.
ICE_CELL = (4.498, 4.498, 7.338, 90.0, 90.0, 120.0)
ICE_SPACE_GROUP = 194  # P6_3/mmc
ICE_STEP = 0.25  # Angstrom: resolution steps at which the ice rings are enumerated and cached

MAX_INDICES = 50_000_000  # refuse to enumerate more Miller indices than this
RING_TOLERANCE = 1e-12  # relative d*^2 difference below which two reflections are one ring


def ring_d_spacings(unit_cell, group: int | str, d_min: float) -> np.ndarray:
    """Distinct d-spacings (Angstrom, descending) of the non-absent reflections with d >= ``d_min``."""
    return 1.0 / np.sqrt(ring_d_star_sq(unit_cell, group, d_min))


def ring_d_star_sq(unit_cell, group: int | str, d_min: float) -> np.ndarray:
    """Distinct d*^2 (ascending) of the non-absent reflections with d*^2 <= 1/d_min^2."""
    if d_min is None or not d_min > 0:
        raise ParameterError(f"ice ring resolution limit d_min={d_min} must be greater than zero")
    sg = space_group(group)
    g = averaged_metric(sg, unit_cell)
    g_star = np.linalg.inv(g)
    d_star_sq_max = 1.0 / (d_min * d_min)
    # |h_i| = |d* . a_i| <= |a_i| / d_min
    hmax = [int(math.floor(math.sqrt(g[i, i]) / d_min)) + 1 for i in range(3)]
    if (2 * hmax[0] + 1) * (2 * hmax[1] + 1) * (2 * hmax[2] + 1) > MAX_INDICES:
        raise ParameterError(
            f"spotfinder.filter.ice_rings: unit cell too large for d_min={d_min:g} "
            "(too many reflections); set ice_rings.d_min higher"
        )
    k = np.arange(-hmax[1], hmax[1] + 1)
    el = np.arange(-hmax[2], hmax[2] + 1)
    kk, ll = (a.ravel() for a in np.meshgrid(k, el, indexing="ij"))
    found = []
    for h in range(0, hmax[0] + 1):  # one of each Friedel pair: h > 0, or h = 0 with (k, l) > 0
        hkl = np.column_stack([np.full(kk.shape, h), kk, ll]).astype(np.int64)
        if h == 0:
            hkl = hkl[(kk > 0) | ((kk == 0) & (ll > 0))]
        f = hkl.astype(np.float64)
        d_star_sq = np.einsum("ni,ij,nj->n", f, g_star, f)
        keep = (d_star_sq > 0) & (d_star_sq <= d_star_sq_max)
        hkl, d_star_sq = hkl[keep], d_star_sq[keep]
        found.append(d_star_sq[~sg.is_absent(hkl)])
    d_star_sq = np.unique(np.concatenate(found)) if found else np.zeros(0)
    # Equivalent reflections can differ in the last bits of d*^2: keep one value per ring.
    if len(d_star_sq):
        first = np.concatenate([[True], np.diff(d_star_sq) > RING_TOLERANCE * d_star_sq[1:]])
        d_star_sq = d_star_sq[first]
    return d_star_sq


def ring_ranges(d_spacings, width: float) -> list[tuple[float, float]]:
    """The (d_lo, d_hi) interval of each ring, computed in DIALS's order of operations."""
    if width is None or not width > 0:
        raise ParameterError(f"spotfinder.filter.ice_rings.width={width} must be greater than zero")
    half = width * 0.5
    out = []
    for d in (float(v) for v in d_spacings):
        d_sq_inv = 1.0 / (d**2)
        if d_sq_inv - half <= 0:
            raise ParameterError(
                f"spotfinder.filter.ice_rings.width={width} is too wide for the ring at d={d:.4f} "
                "(1/d^2 - width/2 must stay above zero)"
            )
        lo = math.sqrt(1.0 / (d_sq_inv + half))
        hi = math.sqrt(1.0 / (d_sq_inv - half))
        if not lo < hi:
            raise ParameterError(f"spotfinder.filter.ice_rings.width={width} is too narrow to mask a ring")
        out.append((lo, hi))
    return out


def ice_ring_d_spacings(d_min: float) -> np.ndarray:
    """Distinct d-spacings (Angstrom, descending) of the hexagonal-ice rings with d >= ``d_min``.

    The per-image analysis asks once per image with a different ``d_min``: the rings are enumerated
    once down to the next multiple of :data:`ICE_STEP` below it (cached) and cut, which gives the same
    rings as enumerating to ``d_min`` itself (a cut of the ascending, de-duplicated d*^2 list)."""
    coarse = min(d_min, math.floor(d_min / ICE_STEP) * ICE_STEP) if d_min > ICE_STEP else d_min
    d_star_sq = _ice_d_star_sq(coarse)
    return 1.0 / np.sqrt(d_star_sq[d_star_sq <= 1.0 / (d_min * d_min)])


@functools.lru_cache(maxsize=16)
def _ice_d_star_sq(d_min: float) -> np.ndarray:
    return ring_d_star_sq(ICE_CELL, ICE_SPACE_GROUP, d_min)
