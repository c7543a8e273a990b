"""Connected-component labelling of sparse strong pixels.

Pixels are identified by a 64-bit key ``z * (height * width) + y * width + x`` (z = frame), so
ascending keys are ascending (z, y, x). Connectivity follows DIALS (SPEC §3.1): in 3D, face
neighbours only (6-connected: x+1, y+1, z+1); in 2D, 4-connected within a frame. Labels are
numbered by each component's smallest key, which is DIALS's output row order.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components


def _links(keys: np.ndarray, step: int, allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i, j) with keys[j] == keys[i] + step, for pixels where ``allowed``."""
    src = np.arange(keys.size) if allowed is None else np.flatnonzero(allowed)
    target = keys[src] + step
    pos = np.searchsorted(keys, target)
    pos[pos == keys.size] = 0
    hit = keys[pos] == target
    return src[hit], pos[hit]


def label_pixels(keys: np.ndarray, width: int, height: int, three_d: bool) -> tuple[np.ndarray, int]:
    """Label sorted unique pixel keys; returns (label per pixel, number of components).

    Label k is the component with the k-th smallest first key.
    """
    keys = np.asarray(keys, dtype=np.int64)
    n = keys.size
    if n == 0:
        return np.zeros(0, np.int64), 0
    npix = width * height
    in_frame = keys % npix
    pairs = [
        _links(keys, 1, in_frame % width < width - 1),
        _links(keys, width, in_frame < npix - width),
    ]
    if three_d:
        pairs.append(_links(keys, npix, None))
    src = np.concatenate([p[0] for p in pairs])
    dst = np.concatenate([p[1] for p in pairs])
    graph = coo_matrix((np.ones(src.size, np.int8), (src, dst)), shape=(n, n))
    ncomp, raw = connected_components(graph, directed=False)
    # Rank components by their first (smallest-key) pixel; keys are sorted, so first index.
    _, first = np.unique(raw, return_index=True)
    rank = np.empty(ncomp, np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(ncomp)
    return rank[raw], ncomp
