"""The ``radial_profile`` threshold: brighter than the median of its 2θ shell
(docs/dials-behaviour.md#radial-profile).

Per panel image (after any region-of-interest crop):

1. **Blur** (``blur=narrow|wide``, optional). The image is convolved with a fixed, normalised
   Gaussian-like kernel, the same weights DIALS uses so that the strong pixels agree:

   - narrow, 3×3: the binomial kernel ``[1 2 1]ᵀ[1 2 1] / 16`` (corners 1/16, edges 1/8, centre
     1/4); binomial weights are the standard small-support approximation of a Gaussian of σ ≈ 0.7
     px and are exact binary fractions, so the blur of integer data is exact;
   - wide, 5×5: the common integer approximation of a σ ≈ 1 px Gaussian,
     ``[[1 4 7 4 1] [4 16 26 16 4] [7 26 41 26 7] [4 16 26 16 4] [1 4 7 4 1]] / 273``
     (each weight is ``k / 273`` in float64).

   Outside the image the nearest edge pixel is repeated (coordinates are clamped), every pixel is
   blurred whatever its mask (masked values leak into their neighbours, as in DIALS), and each
   output is the float64 sum, kernel row by kernel row, of value × weight, starting from 0.
2. **Shells.** With ``t`` the pixel's 2θ (rad) and ``t0 = min t``, ``L = max(t - t0) + 1e-10`` over
   the whole (cropped) panel, the shell of a pixel is ``floor((t - t0) * (n_bins / L))``, which
   lies in 0 .. n_bins-1.
3. **Statistics** over the masked-in pixels of each shell, on the (blurred) values:

   - median: the middle value, or the mean of the two middle values for an even count;
   - quartiles by linear interpolation between order statistics (numpy's default "linear"
     method, Hyndman-Fan type 7): with the n values sorted ``v[0] <= .. <= v[n-1]``, the p-th
     quantile sits at ``h = (n-1) p``, ``q = (1 - f) v[floor h] + f v[ceil h]``, ``f = h - floor h``;
     ``IQR = q(0.75) - q(0.25)``;
   - an empty shell has median 0 and IQR 0; a one-pixel shell has IQR 0.
4. **Level.** ``L = n_iqr × IQR``, except that when ``L <= 1/g`` (g = the panel gain, one count in
   corrected units) L becomes ``2/g``. This is not ``max(L, 2/g)``: an L strictly between 1/g and
   2/g is kept as it is.
5. **Strong** = masked-in and (blurred) value > median + L of its shell (strict).

The 2θ of a pixel follows dxtbx ``Panel.get_two_theta_array``: the angle between the beam and the
lab position of the pixel's **corner** (x, y) = (i, j), not its centre, mapped with the simple
px→mm rule (no parallax correction; dxtbx uses the parallax-corrected rule for thick sensors, so
pixels within rounding or a parallax shift of a shell boundary can fall in the neighbouring shell).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable

import numba
import numpy as np

from findspots.errors import ParameterError

NARROW = np.outer([1.0, 2.0, 1.0], [1.0, 2.0, 1.0]) / 16.0
WIDE = (
    np.array(
        [
            [1, 4, 7, 4, 1],
            [4, 16, 26, 16, 4],
            [7, 26, 41, 26, 7],
            [4, 16, 26, 16, 4],
            [1, 4, 7, 4, 1],
        ],
        dtype=np.float64,
    )
    / 273.0
)
KERNELS = {"narrow": NARROW, "wide": WIDE}


@numba.njit(cache=True, nogil=True)
def _two_theta(origin, fast, slow, pixel_size, s0, nfast, nslow):
    """2θ (rad) at pixel corners (i, j), dxtbx's operation order: p = fast*(i*px) + slow*(j*py) + origin."""
    out = np.empty((nslow, nfast), np.float64)
    s0_len = math.sqrt(s0[0] * s0[0] + s0[1] * s0[1] + s0[2] * s0[2])
    for j in range(nslow):
        y = j * pixel_size[1]
        for i in range(nfast):
            x = i * pixel_size[0]
            px = fast[0] * x + slow[0] * y + origin[0]
            py = fast[1] * x + slow[1] * y + origin[1]
            pz = fast[2] * x + slow[2] * y + origin[2]
            den = s0_len * math.sqrt(px * px + py * py + pz * pz)
            if den <= 0:
                out[j, i] = 0.0
                continue
            c = (s0[0] * px + s0[1] * py + s0[2] * pz) / den
            if c < -1.0:
                c = -1.0
            elif c > 1.0:
                c = 1.0
            out[j, i] = math.acos(c)
    return out


def two_theta(panel, beam) -> np.ndarray:
    """2θ (rad) of every pixel of ``panel``, shape (nslow, nfast), for ``beam`` (see module doc).

    ``panel`` is a :class:`findspots.images.models.Panel` and ``beam`` a
    :class:`~findspots.images.models.Beam`; the pixel corner (i, j) is placed where
    ``Panel.pixel_to_lab(i, j)`` puts it (the sums are done in dxtbx's order, fast and slow terms
    first, then the origin) and 2θ is its angle to the unit incident beam vector."""
    nfast, nslow = panel.image_size
    s0 = np.asarray(beam.s0, np.float64)
    s0 = s0 / np.linalg.norm(s0)
    return _two_theta(
        np.asarray(panel.origin, np.float64),
        np.asarray(panel.fast_axis, np.float64),
        np.asarray(panel.slow_axis, np.float64),
        np.asarray(panel.pixel_size, np.float64),
        s0,
        int(nfast),
        int(nslow),
    )


class SequenceGeometry:
    """Per-panel 2θ arrays and gains of one detector and beam (picklable, unlike a lambda).

    Callable as ``geometry(panel_index) -> two_theta array`` (computed on each call: the threshold
    keeps only the shell map it derives); ``gain(panel_index)`` gives the panel gain that sets the
    one-count level."""

    def __init__(self, detector, beam):
        self.detector = detector
        self.beam = beam

    def __call__(self, panel_index: int) -> np.ndarray:
        return two_theta(self.detector[panel_index], self.beam)

    def gain(self, panel_index: int) -> float:
        return float(self.detector[panel_index].gain)


@numba.njit(cache=True, nogil=True)
def _convolve(image, kernel):
    """Kernel-weighted sum around each pixel with clamped (edge-repeating) coordinates."""
    h, w = image.shape
    kh, kw = kernel.shape
    mh, mw = kh // 2, kw // 2
    out = np.empty((h, w), np.float64)
    for j in range(h):
        for i in range(w):
            acc = 0.0
            for jj in range(kh):
                y = min(max(j + jj - mh, 0), h - 1)
                for ii in range(kw):
                    x = min(max(i + ii - mw, 0), w - 1)
                    acc += image[y, x] * kernel[jj, ii]
            out[j, i] = acc
    return out


def blur(image: np.ndarray, kind: str | None) -> np.ndarray:
    """The image blurred with the ``narrow`` or ``wide`` kernel; unchanged for None."""
    if kind is None:
        return image
    return _convolve(np.ascontiguousarray(image, dtype=np.float64), KERNELS[kind])


def shell_index(tt: np.ndarray, n_bins: int) -> np.ndarray:
    """Shell (0 .. n_bins-1) of each pixel from its 2θ (module doc, step 2), int32."""
    lookup = tt - tt.min()
    multiplier = n_bins / (lookup.max() + 1e-10)
    return np.floor(lookup * multiplier).astype(np.int32)


@numba.njit(cache=True, nogil=True)
def _quantile(v, p):
    h = (v.size - 1) * p
    lo = int(math.floor(h))
    hi = int(math.ceil(h))
    f = h - lo
    return (1.0 - f) * v[lo] + f * v[hi]


@numba.njit(cache=True, nogil=True)
def _shell_stats(values, mask, shells, n_bins):
    """Median and IQR of the masked-in values of each shell."""
    flat_v = values.ravel()
    flat_m = mask.ravel()
    flat_s = shells.ravel()
    counts = np.zeros(n_bins + 1, np.int64)
    for p in range(flat_v.size):
        if flat_m[p]:
            counts[flat_s[p] + 1] += 1
    for b in range(n_bins):
        counts[b + 1] += counts[b]
    fill = counts[:-1].copy()
    pool = np.empty(counts[n_bins], np.float64)
    for p in range(flat_v.size):
        if flat_m[p]:
            b = flat_s[p]
            pool[fill[b]] = flat_v[p]
            fill[b] += 1
    median = np.zeros(n_bins, np.float64)
    iqr = np.zeros(n_bins, np.float64)
    for b in range(n_bins):
        n = counts[b + 1] - counts[b]
        if n == 0:
            continue
        v = np.sort(pool[counts[b] : counts[b + 1]])
        if n % 2:
            median[b] = v[n // 2]
        else:
            median[b] = (v[n // 2 - 1] + v[n // 2]) / 2
        if n > 1:
            iqr[b] = _quantile(v, 0.75) - _quantile(v, 0.25)
    return median, iqr


@numba.njit(cache=True, nogil=True)
def _strong(values, mask, shells, level):
    h, w = values.shape
    out = np.empty((h, w), np.bool_)
    for j in range(h):
        for i in range(w):
            out[j, i] = mask[j, i] and values[j, i] > level[shells[j, i]]
    return out


def shell_levels(median: np.ndarray, iqr: np.ndarray, n_iqr: float, gain: float = 1.0) -> np.ndarray:
    """Per-shell threshold median + L (module doc, step 4)."""
    one = 1.0 / gain
    add = n_iqr * iqr
    add = np.where(add <= one, 2.0 * one, add)
    return median + add


def strong_by_shell(
    image: np.ndarray,
    mask: np.ndarray,
    shells: np.ndarray,
    n_bins: int,
    n_iqr: float = 6,
    blur_kind: str | None = None,
    gain: float = 1.0,
) -> np.ndarray:
    """Strong pixels of one panel image given each pixel's shell (module doc, steps 1, 3-5)."""
    image = np.ascontiguousarray(image, dtype=np.float64)
    mask = np.ascontiguousarray(mask, dtype=np.bool_)
    shells = np.ascontiguousarray(shells, dtype=np.int32)
    if image.shape != mask.shape or image.shape != shells.shape:
        raise ValueError(f"image {image.shape}, mask {mask.shape} and shell map {shells.shape} shapes differ")
    values = blur(image, blur_kind)
    median, iqr = _shell_stats(values, mask, shells, n_bins)
    return _strong(values, mask, shells, shell_levels(median, iqr, n_iqr, gain))


def radial_profile(
    image: np.ndarray,
    mask: np.ndarray,
    two_theta_array: np.ndarray,
    n_iqr: float = 6,
    blur_kind: str | None = None,
    n_bins: int = 100,
    gain: float = 1.0,
) -> np.ndarray:
    """Strong pixels of one panel image by the radial-profile rule, given each pixel's 2θ."""
    return strong_by_shell(image, mask, shell_index(two_theta_array, n_bins), n_bins, n_iqr, blur_kind, gain)


class RadialProfileThreshold:
    """``radial_profile`` threshold callable: ``fn(image, mask, panel=0, roi=None) -> strong``.

    ``geometry(panel)`` gives the panel's full 2θ array; when it also has ``gain(panel)`` that
    gain sets the one-count level, otherwise 1.0. ``roi=(x0, x1, y0, y1)`` says the image is the
    crop ``[y0:y1, x0:x1]`` of the panel; the 2θ array is cropped the same way (DIALS does too),
    so shells then span the crop's own 2θ range."""

    def __init__(self, n_iqr, blur_kind, n_bins, geometry: Callable | None = None):
        if n_iqr is None or n_bins is None or n_bins < 1:
            raise ParameterError(
                "spotfinder.threshold.radial_profile: n_iqr must be set and n_bins must be >= 1"
            )
        if blur_kind not in (None, "narrow", "wide"):
            raise ParameterError(
                f"spotfinder.threshold.radial_profile.blur={blur_kind}: narrow, wide or None"
            )
        self.n_iqr = n_iqr
        self.blur = blur_kind
        self.n_bins = int(n_bins)
        self.geometry = geometry
        self._shells: dict = {}
        self._lock = threading.Lock()

    def _panel_shells(self, panel: int, roi, shape) -> tuple[np.ndarray, float]:
        key = (panel, None if roi is None else tuple(int(v) for v in roi))
        with self._lock:
            hit = self._shells.get(key)
        if hit is not None:
            if hit[0].shape != shape:
                raise ValueError(f"panel {panel}: 2θ array {hit[0].shape} does not match the image {shape}")
            return hit
        if self.geometry is None:
            raise ParameterError(
                "spotfinder.threshold.algorithm=radial_profile needs the detector geometry "
                "(make_threshold(..., geometry=...))"
            )
        tt = np.asarray(self.geometry(panel), dtype=np.float64)
        if roi is not None:
            x0, x1, y0, y1 = key[1]
            tt = tt[y0:y1, x0:x1]
        if tt.shape != shape:
            raise ValueError(f"panel {panel}: 2θ array {tt.shape} does not match the image {shape}")
        gain_of = getattr(self.geometry, "gain", None)
        gain = float(gain_of(panel)) if gain_of is not None else 1.0
        hit = (shell_index(tt, self.n_bins), gain)
        with self._lock:
            self._shells[key] = hit
        return hit

    def __call__(self, image: np.ndarray, mask: np.ndarray, panel: int = 0, roi=None) -> np.ndarray:
        image = np.asarray(image)
        shells, gain = self._panel_shells(panel, roi, image.shape)
        return strong_by_shell(image, mask, shells, self.n_bins, self.n_iqr, self.blur, gain)

    def __getstate__(self):
        state = self.__dict__.copy()
        del state["_lock"]
        state["_shells"] = {}
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()
