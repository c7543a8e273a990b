"""Spot filters applied after measuring, in DIALS's order (docs/dials-behaviour.md#filter-chain).

Each takes per-spot arrays and returns a boolean "keep" array; none reads images itself.
"""

from __future__ import annotations

import numpy as np


def peak_centroid(peak: np.ndarray, centroid: np.ndarray, max_separation: float) -> np.ndarray:
    """Keep spots whose 3D peak-to-centroid distance is at most ``max_separation`` pixels."""
    return np.linalg.norm(peak - centroid, axis=1) <= max_separation


def ring_mask(height: int, width: int, ring: int = 1) -> np.ndarray:
    """True on the outermost ``ring`` pixels of a height x width box (its background region)."""
    mask = np.ones((height, width), bool)
    mask[ring : height - ring, ring : width - ring] = False
    return mask


def plane_gradient(box: np.ndarray, use: np.ndarray) -> tuple[float, float]:
    """Least-squares plane ``c + a*x + b*y`` through the pixels ``use`` of ``box``; returns (a, b).

    x is the column index and y the row index inside the box. Fewer than three pixels, or pixels
    on one line, give no gradient (0, 0).
    """
    y, x = np.nonzero(use)
    if x.size < 3:
        return 0.0, 0.0
    design = np.column_stack([np.ones(x.size), x, y]).astype(np.float64)
    coef, _, rank, _ = np.linalg.lstsq(design, box[use].astype(np.float64), rcond=None)
    if rank < 3:
        return 0.0, 0.0
    return float(coef[1]), float(coef[2])


def background_gradient(
    boxes: list[np.ndarray], trusted: list[tuple[float, float]], cutoff: float
) -> np.ndarray:
    """Keep spots whose background plane is flat enough.

    ``boxes[i]`` is spot i's image data summed over its frames, over its bounding box expanded
    by ``background_size + 1`` pixels in x and y (clipped to the panel). Only the outermost ring
    of one pixel counts as background, and only pixels inside the trusted range ``trusted[i]``.
    A spot is rejected when either gradient of the fitted plane exceeds ``cutoff`` in size.
    """
    keep = np.ones(len(boxes), bool)
    for i, (box, (lo, hi)) in enumerate(zip(boxes, trusted, strict=True)):
        use = ring_mask(*box.shape) & (box >= lo) & (box <= hi)
        a, b = plane_gradient(box, use)
        keep[i] = abs(a) <= cutoff and abs(b) <= cutoff
    return keep


def spot_density(xy: np.ndarray, nbins: int = 50, gradient_cutoff: float = 0.002) -> np.ndarray:
    """Keep spots outside crowded regions of the detector.

    The xy centroids are binned on an ``nbins`` x ``nbins`` grid. The bin counts are histogrammed
    into min(max count, 30) equal slots between their smallest and largest value; on the
    normalised cumulative histogram, the first slot i > 0 where this gradient and the one before
    are both below ``gradient_cutoff`` gives the cutoff (the lower edge of slot i - 1). Spots
    strictly inside a grid bin holding more than the cutoff are rejected. When no such slot
    exists (sparse data) every spot is kept.
    """
    keep = np.ones(len(xy), bool)
    if len(xy) == 0:
        return keep
    grid, xedges, yedges = np.histogram2d(xy[:, 0], xy[:, 1], bins=nbins)
    counts = grid.ravel()
    n_slots = min(int(counts.max()), 30)
    if n_slots < 2:
        return keep
    low, high = counts.min(), counts.max()
    width = (high - low) / n_slots
    slot = np.minimum(((counts - low) / width).astype(np.int64), n_slots - 1)
    cumulative = np.cumsum(np.bincount(slot, minlength=n_slots)).astype(np.float64)
    cumulative /= cumulative.max()
    gradients = np.diff(cumulative) / width
    cutoff = None
    for i in range(1, gradients.size):
        if gradients[i] < gradient_cutoff and gradients[i - 1] < gradient_cutoff:
            cutoff = low + (i - 1) * width  # lower edge of slot i - 1
            break
    if cutoff is None:
        return keep
    for ix, iy in np.argwhere(grid > cutoff):
        inside = (
            (xy[:, 0] > xedges[ix])
            & (xy[:, 0] < xedges[ix + 1])
            & (xy[:, 1] > yedges[iy])
            & (xy[:, 1] < yedges[iy + 1])
        )
        keep &= ~inside
    return keep
