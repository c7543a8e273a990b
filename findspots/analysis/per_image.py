"""``per_image_statistics=True``: spots per image, without ice-ring spots, and their intensity.

As DIALS's per-image analysis (SPEC §7.4): rows are the images of each experiment's scan, a spot
belongs to image floor(z); spots whose 1/d² lies within 0.002 of a hexagonal-ice ring do not
count in ``#spots_no_ice`` nor in the total intensity.
"""

from __future__ import annotations

import numpy as np

from findspots.geometry.ice_rings import ice_ring_d_spacings
from findspots.geometry.parallax import panel_mu
from findspots.geometry.resolution import d_spacing

ICE_HALF_WIDTH = 0.002  # in 1/d^2


def spot_resolution(sequence, panel: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """d (Angstrom) at each spot centroid, with the panel's parallax-corrected px->mm."""
    d = np.empty(len(xy))
    beam = sequence.beam
    for p in np.unique(panel):
        rows = panel == p
        det = sequence.detector[int(p)]
        d[rows] = d_spacing(
            det, xy[rows, 0], xy[rows, 1], beam.wavelength, beam.s0, panel_mu(det, beam.wavelength)
        )
    return d


def on_ice_rings(d: np.ndarray) -> np.ndarray:
    """Spots within ``ICE_HALF_WIDTH`` in 1/d² of a hexagonal-ice ring."""
    finite = d[np.isfinite(d)]
    if not finite.size:
        return np.zeros(d.shape, bool)
    rings = ice_ring_d_spacings(float(finite.min()) * 0.99)
    inv = 1.0 / d**2
    return (np.abs(inv[:, None] - 1.0 / rings[None, :] ** 2) <= ICE_HALF_WIDTH).any(axis=1)


def per_image_rows(
    z: np.ndarray, intensity: np.ndarray, ice: np.ndarray, first_frame: int, nimages: int
) -> list[tuple[int, int, int, float]]:
    """(position 1..N, #spots, #spots_no_ice, total_intensity of non-ice spots) per image."""
    image = np.floor(z).astype(np.int64) - first_frame
    ok = (image >= 0) & (image < nimages)
    counts = np.bincount(image[ok], minlength=nimages)
    clean = ok & ~ice
    no_ice = np.bincount(image[clean], minlength=nimages)
    total = np.bincount(image[clean], weights=intensity[clean], minlength=nimages)
    return [(i + 1, int(counts[i]), int(no_ice[i]), float(total[i])) for i in range(nimages)]
