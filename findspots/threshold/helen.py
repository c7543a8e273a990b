"""The ``helen`` blob-finder threshold (docs/dials-behaviour.md#helen; DIALS removed it in 2019).

It marks one pixel per blob: a pixel whose neighbourhood correlates with an ideal spot shape.
With d = ``exp_spot_dimension``, T = ``global_threshold``, s = ``min_blob_score``:

1. **Model.** A window of D × D pixels, D = d + 4 (two rings of background round the spot). Window
   cell (row r, column c), 0 <= r, c < D, sits at offset (r - D//2, c - D//2) from the tested
   pixel. Its model value is a linear cone of height 300: with ``m = (D - 1) / 2``,
   ``ρ = sqrt((c - m)² + (r - m)²)`` and ``R = d / 2``, value = ``max(0, 300 (R - ρ) / R)``.
   For the default d = 3 (D = 7) the cone is 300 at the centre, 100 at the four edge neighbours,
   300 (1.5 - √2) / 1.5 ≈ 17.157 at the diagonals and 0 elsewhere.
2. **Scan.** Pixels are visited once, in raster order, starting at flat index 1 (DIALS begins its
   search after index 0; pixel 0 is an edge pixel and could never pass step 3 anyway). A pixel is
   tested when it is masked-in and its value > T (strict).
3. **Viability.** The tested pixel's row and column must be at least D//2 from every image edge,
   and fewer than half of the D² window pixels may be *unusable* (masked-out, or inside the window
   of a pixel already found in this pass): ``unusable / D² < 0.5``, so >= 50 % rejects.
4. **Score.** The Pearson correlation between the window's values and the model, over the window
   pixels that are masked-in (pixels excluded by an earlier find still take part here): means
   ``x̄, ȳ``; ``r = Σ(x - x̄)(y - ȳ)/n / sqrt(Σ(x - x̄)²/n · Σ(y - ȳ)²/n)``, accumulated in float64
   in raster order of the window. A flat window gives 0/0 = NaN, which never passes.
5. **Find.** ``r > s`` marks that single pixel strong and makes its whole window unusable for the
   viability test of later pixels (step 3). DIALS also looks for the window maximum but never uses
   it: the pixel tested and marked is always the scanned one, so the first pixel above T of a blob
   in raster order is the one tested.
6. **Passes.** With ``num_passes = P > 0`` the scan is repeated P more times, each after blending
   the blobs found by the previous scan into the model: ``S[k]`` = sum over found pixels of the
   image value at window cell k (masks ignored), ``f = Σ model / Σ S``, then
   ``model[k] = 0.5 model[k] + 0.5 f S[k]``. Each scan starts afresh (no pixels found, none
   excluded); only the last scan's pixels are returned. If a scan finds nothing, ``Σ S = 0`` makes
   the model NaN and every later scan finds nothing (as in DIALS, whose sums start at 0).

``debug=True`` also computes a correlation map with the final model: at every pixel tested in
step 2 its score (NaN for a flat window), 0 where the window is not viable for the edge or mask
reasons of step 3 and at every pixel not tested. Unlike DIALS's map, no window is excluded by a
find (DIALS kept the last scan's exclusions, so its map read 0 at every blob it had found).
DIALS pickled its map to ``correlation.pickle`` in the working directory, overwritten for every
image; findspots saves it with :func:`numpy.save` as ``helen_correlation_p{panel}_{n:05d}.npy``
in :attr:`HelenThreshold.debug_dir` (default: the working directory), n counting the images this
threshold object has processed on that panel (so per process when work is spread over several),
and logs the path at DEBUG level.
"""

from __future__ import annotations

import logging
import math
import os
import threading

import numba
import numpy as np

from findspots.errors import ParameterError

log = logging.getLogger("findspots")

PEAK = 300.0  # height of the ideal cone
MAX_UNUSABLE = 0.5  # a window with this fraction or more of unusable pixels is rejected
POLLUTION = 0.5  # weight of the found blobs when the model is updated
BORDER = 4  # extra model width round the expected spot


def ideal_spot(d: int) -> np.ndarray:
    """The D × D cone model (D = d + 4) of step 1, float64."""
    size = d + BORDER
    m = (size - 1) / 2
    radius = d / 2
    model = np.empty((size, size), np.float64)
    for r in range(size):
        for c in range(size):
            rho = math.sqrt((c - m) ** 2 + (r - m) ** 2)
            value = (radius - rho) / radius * PEAK
            model[r, c] = value if value >= 0 else 0.0
    return model


@numba.njit(cache=True, nogil=True)
def _viable(mask, usable, j, i, half, size):
    h, w = mask.shape
    if j - half < 0 or j + half >= h or i - half < 0 or i + half >= w:
        return False
    bad = 0
    for r in range(size):
        for c in range(size):
            y = j + r - half
            x = i + c - half
            if not (mask[y, x] and usable[y, x]):
                bad += 1
    return bad / (size * size) < MAX_UNUSABLE


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _score(image, mask, model, j, i, half):
    """Pearson correlation of masked-in window values with the model (step 4); IEEE division,
    so a flat window gives NaN."""
    size = model.shape[0]
    n = 0
    sx = 0.0
    sy = 0.0
    for r in range(size):
        for c in range(size):
            y = j + r - half
            x = i + c - half
            if mask[y, x]:
                sx += image[y, x]
                sy += model[r, c]
                n += 1
    mx = sx / n
    my = sy / n
    sxy = 0.0
    sxx = 0.0
    syy = 0.0
    for r in range(size):
        for c in range(size):
            y = j + r - half
            x = i + c - half
            if mask[y, x]:
                dx = image[y, x] - mx
                dy = model[r, c] - my
                sxy += dx * dy
                sxx += dx * dx
                syy += dy * dy
    sxy /= n
    sxx /= n
    syy /= n
    return sxy / math.sqrt(sxx * syy)


@numba.njit(cache=True, nogil=True)
def _scan(image, mask, model, threshold, min_score, found, usable):
    """One raster scan (steps 2-5); fills ``found`` and ``usable`` (both reset here)."""
    h, w = image.shape
    size = model.shape[0]
    half = size // 2
    found[:, :] = False
    usable[:, :] = True
    for p in range(1, h * w):
        j = p // w
        i = p - j * w
        if not mask[j, i] or not image[j, i] > threshold:
            continue
        if not _viable(mask, usable, j, i, half, size):
            continue
        if _score(image, mask, model, j, i, half) > min_score:
            found[j, i] = True
            for r in range(size):
                for c in range(size):
                    usable[j + r - half, i + c - half] = False


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _blend(image, model, found):
    """Blend the windows of the found pixels into the model (step 6)."""
    h, w = image.shape
    size = model.shape[0]
    half = size // 2
    sums = np.zeros((size, size), np.float64)
    for j in range(h):
        for i in range(w):
            if found[j, i]:
                for r in range(size):
                    for c in range(size):
                        sums[r, c] += image[j + r - half, i + c - half]
    model_sum = 0.0
    sums_sum = 0.0
    for r in range(size):
        for c in range(size):
            model_sum += model[r, c]
            sums_sum += sums[r, c]
    factor = model_sum / sums_sum  # IEEE: no blobs gives inf, and 0 * inf = NaN
    out = np.empty((size, size), np.float64)
    for r in range(size):
        for c in range(size):
            out[r, c] = model[r, c] * (1.0 - POLLUTION) + sums[r, c] * factor * POLLUTION
    return out


@numba.njit(cache=True, nogil=True)
def _correlation_map(image, mask, model, threshold):
    h, w = image.shape
    size = model.shape[0]
    half = size // 2
    usable = np.ones((h, w), np.bool_)
    out = np.zeros((h, w), np.float64)
    for p in range(1, h * w):
        j = p // w
        i = p - j * w
        if not mask[j, i] or not image[j, i] > threshold:
            continue
        if _viable(mask, usable, j, i, half, size):
            out[j, i] = _score(image, mask, model, j, i, half)
    return out


def helen(
    image: np.ndarray,
    mask: np.ndarray,
    exp_spot_dimension: int = 3,
    global_threshold: float = 100.0,
    min_blob_score: float = 0.7,
    num_passes: int = 0,
    return_correlation: bool = False,
):
    """Strong pixels (one per blob) of one panel image; with ``return_correlation`` also the map."""
    image = np.ascontiguousarray(image, dtype=np.float64)
    mask = np.ascontiguousarray(mask, dtype=np.bool_)
    if image.shape != mask.shape:
        raise ValueError(f"image shape {image.shape} and mask shape {mask.shape} differ")
    model = ideal_spot(int(exp_spot_dimension))
    found = np.empty(image.shape, np.bool_)
    usable = np.empty(image.shape, np.bool_)
    t, s = float(global_threshold), float(min_blob_score)
    _scan(image, mask, model, t, s, found, usable)
    for _ in range(int(num_passes)):
        model = _blend(image, model, found)
        _scan(image, mask, model, t, s, found, usable)
    if return_correlation:
        return found, _correlation_map(image, mask, model, t)
    return found


class HelenThreshold:
    """``helen`` threshold callable: ``fn(image, mask, panel=0, roi=None) -> strong``."""

    def __init__(self, exp_spot_dimension, global_threshold, min_blob_score, num_passes, debug=False):
        for name, value in [
            ("exp_spot_dimension", exp_spot_dimension),
            ("global_threshold", global_threshold),
            ("min_blob_score", min_blob_score),
            ("num_passes", num_passes),
        ]:
            if value is None or isinstance(value, str):
                raise ParameterError(f"spotfinder.threshold.helen.{name}={value}: a number is needed")
        if exp_spot_dimension < 1:
            raise ParameterError(
                f"spotfinder.threshold.helen.exp_spot_dimension={exp_spot_dimension}: must be >= 1"
            )
        if num_passes < 0:
            raise ParameterError(f"spotfinder.threshold.helen.num_passes={num_passes}: must be >= 0")
        self.exp_spot_dimension = int(exp_spot_dimension)
        self.global_threshold = float(global_threshold)
        self.min_blob_score = float(min_blob_score)
        self.num_passes = int(num_passes)
        self.debug = bool(debug)
        self.debug_dir = "."
        self._calls: dict[int, int] = {}
        self._lock = threading.Lock()

    def __call__(self, image: np.ndarray, mask: np.ndarray, panel: int = 0, roi=None) -> np.ndarray:
        args = (self.exp_spot_dimension, self.global_threshold, self.min_blob_score, self.num_passes)
        if not self.debug:
            return helen(image, mask, *args)
        found, corr = helen(image, mask, *args, return_correlation=True)
        with self._lock:
            n = self._calls.get(panel, 0)
            self._calls[panel] = n + 1
        path = os.path.join(self.debug_dir, f"helen_correlation_p{panel}_{n:05d}.npy")
        np.save(path, corr)
        log.debug("Wrote the helen correlation map to %s", path)
        return found

    def __getstate__(self):
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()
