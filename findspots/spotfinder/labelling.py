"""Connected-component labelling of sparse strong pixels.

Pixels are identified by a 64-bit key ``z * (height * width) + y * width + x`` (z = frame), so
ascending keys are ascending (z, y, x). Connectivity follows DIALS (docs/dials-behaviour.md#labelling): in 3D,
face neighbours only (6-connected: x+1, y+1, z+1); in 2D, 4-connected within a frame. Labels are
numbered by each component's smallest key, which is DIALS's output row order.
"""

from __future__ import annotations

import numba
import numpy as np

from findspots.numba_start import skip_blas_probe


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
    return _components(n, src, dst)


@numba.njit(cache=True, nogil=True, inline="always")
def _root(parent, i):
    while parent[i] != i:
        parent[i] = parent[parent[i]]  # path halving keeps the trees shallow
        i = parent[i]
    return i


@numba.njit(cache=True, nogil=True)
def _components(n, src, dst):
    """Union-find over the links; each component's root is its smallest index (first key).

    Labels then follow the order of first keys: component k is the k-th root met in index order.
    """
    parent = np.arange(n)
    for e in range(src.size):
        a = _root(parent, src[e])
        b = _root(parent, dst[e])
        if a < b:
            parent[b] = a
        elif b < a:
            parent[a] = b
    labels = np.empty(n, np.int64)
    count = 0
    for i in range(n):
        r = _root(parent, i)
        if r == i:
            labels[i] = count
            count += 1
        else:
            labels[i] = labels[r]
    return labels, count


def load_compiled() -> None:
    """Load the compiled labelling now: the first compiled function a process loads also sets up
    numba itself (~0.3 s), which processes forked afterwards then inherit instead of repeating."""
    skip_blas_probe()
    label_pixels(np.arange(2, dtype=np.int64), 2, 2, True)
