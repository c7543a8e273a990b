"""Classic and extended dispersion thresholds as compiled sliding-window kernels.

Conventions (SPEC Part B §1.2-1.4):
- ``kernel_size = (ky, kx)``: half-sizes along rows (slow) and columns (fast); the window is the
  inclusive box ``[j-ky, j+ky] x [i-kx, i+kx]`` clipped to the image, never padded.
- Pixels contribute to the window sums when masked-in and below 2**24.
- Integer-valued images (raw counts, the usual case) take a sliding-window path: per-column sums
  over the window's rows are updated as rows enter and leave, and a running sum along each row adds
  the column entering and subtracts the one leaving. Every partial sum is then an integer below
  2**53, so the sums, and the strong pixels, are exactly those of any other summation order.
- Other images (gain- or pedestal-corrected) use a summed-area table built row by row (running row
  sum added to the table row above) and read by four-corner inclusion-exclusion, DIALS's own order,
  so non-integer sums round, and ties fall, the same way as in DIALS. Only ``2*ky + 2`` table rows
  are kept at a time (a ring buffer), so memory does not grow with the image.
- The comparisons use DIALS's rearranged products (no division), in both paths.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from findspots.errors import ParameterError

BIG = float(1 << 24)  # values at or above this never enter the local statistics


@numba.njit(cache=True, nogil=True)
def _table_row(image, use, r, ring_n, ring_s, ring_q, nring, want_q):
    """Fill summed-area table row ``r`` into the ring buffer from the row above."""
    w = image.shape[1]
    cur = r % nring
    prev = (r - 1) % nring
    m = 0
    x = 0.0
    y = 0.0
    for i in range(w):
        if use[r, i]:
            v = image[r, i]
            m += 1
            x += v
            if want_q:
                y += v * v
        if r == 0:
            ring_n[cur, i] = m
            ring_s[cur, i] = x
            if want_q:
                ring_q[cur, i] = y
        else:
            ring_n[cur, i] = ring_n[prev, i] + m
            ring_s[cur, i] = ring_s[prev, i] + x
            if want_q:
                ring_q[cur, i] = ring_q[prev, i] + y


@numba.njit(cache=True, nogil=True)
def _window(ring, nring, j0, j1, i0, i1):
    """Inclusion-exclusion window sum over table rows j0 (exclusive) .. j1 and cols i0 .. i1."""
    acc = ring[0, 0] * 0
    if i0 >= 0 and j0 >= 0:
        acc += ring[j0 % nring, i0] - (ring[j1 % nring, i0] + ring[j0 % nring, i1])
    elif i0 >= 0:
        acc -= ring[j1 % nring, i0]
    elif j0 >= 0:
        acc -= ring[j0 % nring, i1]
    acc += ring[j1 % nring, i1]
    return acc


@numba.njit(cache=True, nogil=True)
def _stat_mask(image, mask):
    """Pixels that contribute to the local statistics: masked-in and below 2**24."""
    h, w = image.shape
    use = np.empty((h, w), np.bool_)
    for j in range(h):
        for i in range(w):
            use[j, i] = mask[j, i] and image[j, i] < BIG
    return use


@numba.njit(cache=True, nogil=True, inline="always")
def _test(m, x, y, v, nsig_b, nsig_s, gain, value_test, root):
    """DIALS's dispersion test (and, with ``value_test``, the value test) from window sums.

    ``root`` is sqrt(2 (m - 1)).
    """
    if gain > 0:
        a = m * y - x * x
        c = gain * x * ((m - 1) + nsig_b * root)
    else:
        a = m * y - x * x - x * (m - 1)
        c = x * nsig_b * root
    if not value_test or not a > c:
        return a > c
    b = m * v - x
    if gain > 0:
        d = nsig_s * math.sqrt(gain * x * m)
    else:
        d = nsig_s * math.sqrt(x * m)
    return b > d


@numba.njit(cache=True, nogil=True, inline="always")
def _final_test(m, x, v, nsig_s, threshold, gain):
    """The extended value test against the background mean of the widened window."""
    if x < 0 or not v > threshold:
        return False
    mean = x / m if m >= 2 else 0.0
    if gain > 0:
        bound = mean + nsig_s * math.sqrt(gain * mean)
    else:
        bound = mean + nsig_s * math.sqrt(mean)
    return v >= bound


@numba.njit(cache=True, nogil=True)
def _dispersion_kernel(image, mask, use, ky, kx, nsig_b, nsig_s, min_count, threshold, gain, value_test, out):
    """Classic dispersion test per pixel.

    With ``value_test`` False this is pass 1 of the extended algorithm: only the dispersion
    test, masked pixels flagged True (they must not seed the erosion), no global threshold.
    ``gain <= 0`` selects the no-gain formulas.
    """
    h, w = image.shape
    nring = 2 * ky + 2
    ring_n = np.zeros((nring, w), np.int64)
    ring_s = np.zeros((nring, w), np.float64)
    ring_q = np.zeros((nring, w), np.float64)
    next_row = 0
    for j in range(h):
        j1 = min(j + ky, h - 1)
        while next_row <= j1:
            _table_row(image, use, next_row, ring_n, ring_s, ring_q, nring, True)
            next_row += 1
        j0 = j - ky - 1
        for i in range(w):
            if not mask[j, i]:
                out[j, i] = not value_test
                continue
            i0 = i - kx - 1
            i1 = min(i + kx, w - 1)
            m = _window(ring_n, nring, j0, j1, i0, i1)
            x = _window(ring_s, nring, j0, j1, i0, i1)
            v = image[j, i]
            if m < min_count or x < 0 or (value_test and not v > threshold):
                out[j, i] = False
                continue
            y = _window(ring_q, nring, j0, j1, i0, i1)
            out[j, i] = _test(m, x, y, v, nsig_b, nsig_s, gain, value_test, math.sqrt(2 * (m - 1)))


@numba.njit(cache=True, nogil=True)
def _chessboard_core(flag, mask, erosion):
    """Valid flagged pixels whose chessboard distance to the nearest unflagged pixel >= erosion.

    Two-pass 8-neighbour chamfer transform (exact for the chessboard metric); pixels outside
    the image never count as unflagged.
    """
    h, w = flag.shape
    big = h + w + 1
    dist = np.empty((h, w), np.int32)
    for j in range(h):
        for i in range(w):
            if not flag[j, i]:
                dist[j, i] = 0
                continue
            d = big
            if j > 0:
                d = min(d, dist[j - 1, i] + 1)
                if i > 0:
                    d = min(d, dist[j - 1, i - 1] + 1)
                if i < w - 1:
                    d = min(d, dist[j - 1, i + 1] + 1)
            if i > 0:
                d = min(d, dist[j, i - 1] + 1)
            dist[j, i] = d
    for j in range(h - 1, -1, -1):
        for i in range(w - 1, -1, -1):
            d = dist[j, i]
            if d == 0:
                continue
            if j < h - 1:
                d = min(d, dist[j + 1, i] + 1)
                if i > 0:
                    d = min(d, dist[j + 1, i - 1] + 1)
                if i < w - 1:
                    d = min(d, dist[j + 1, i + 1] + 1)
            if i < w - 1:
                d = min(d, dist[j, i + 1] + 1)
            dist[j, i] = d
    core = np.empty((h, w), np.bool_)
    for j in range(h):
        for i in range(w):
            core[j, i] = mask[j, i] and flag[j, i] and dist[j, i] >= erosion
    return core


@numba.njit(cache=True, nogil=True)
def _extended_final(image, mask, core, ky, kx, nsig_s, threshold, gain, out):
    """Pass 2: value test against the mean of non-core valid pixels in a widened window."""
    h, w = image.shape
    use = np.empty((h, w), np.bool_)
    for j in range(h):
        for i in range(w):
            use[j, i] = mask[j, i] and not core[j, i] and image[j, i] < BIG
    nring = 2 * ky + 2
    ring_n = np.zeros((nring, w), np.int64)
    ring_s = np.zeros((nring, w), np.float64)
    ring_q = np.zeros((1, 1), np.float64)
    next_row = 0
    for j in range(h):
        j1 = min(j + ky, h - 1)
        while next_row <= j1:
            _table_row(image, use, next_row, ring_n, ring_s, ring_q, nring, False)
            next_row += 1
        j0 = j - ky - 1
        for i in range(w):
            if not (mask[j, i] and core[j, i]):
                out[j, i] = False
                continue
            i0 = i - kx - 1
            i1 = min(i + kx, w - 1)
            m = _window(ring_n, nring, j0, j1, i0, i1)
            x = _window(ring_s, nring, j0, j1, i0, i1)
            out[j, i] = _final_test(m, x, image[j, i], nsig_s, threshold, gain)


@numba.njit(cache=True, nogil=True)
def _integer_valued(image):
    """True when every pixel is a whole number small enough for exact float64 sums."""
    h, w = image.shape
    for j in range(h):
        for i in range(w):
            v = image[j, i]
            if not (-(2.0**48) < v < 2.0**48) or v != np.float64(np.int64(v)):
                return False
    return True


@numba.njit(cache=True, nogil=True, inline="always")
def _add_row(image, use, r, sign, cn, cs, cq, want_q):
    """Add (sign 1) or remove (sign -1) row ``r`` of the usable pixels from the column sums."""
    for i in range(image.shape[1]):
        if use[r, i]:
            v = image[r, i]
            cn[i] += sign
            cs[i] += sign * v
            if want_q:
                cq[i] += sign * v * v


@numba.njit(cache=True, nogil=True)
def _sliding_dispersion(
    image, mask, use, ky, kx, nsig_b, nsig_s, min_count, threshold, gain, value_test, out
):
    """The test of ``_dispersion_kernel`` with sliding window sums (integer-valued images only)."""
    h, w = image.shape
    cn = np.zeros(w, np.int64)
    cs = np.zeros(w, np.float64)
    cq = np.zeros(w, np.float64)
    root = np.sqrt(2.0 * (np.arange((2 * ky + 1) * (2 * kx + 1) + 1) - 1.0).clip(0))
    for r in range(min(ky, h)):
        _add_row(image, use, r, 1, cn, cs, cq, True)
    for j in range(h):
        if j + ky < h:
            _add_row(image, use, j + ky, 1, cn, cs, cq, True)
        if j - ky - 1 >= 0:
            _add_row(image, use, j - ky - 1, -1, cn, cs, cq, True)
        m = np.int64(0)
        x = 0.0
        y = 0.0
        for i in range(min(kx, w)):
            m += cn[i]
            x += cs[i]
            y += cq[i]
        for i in range(w):
            if i + kx < w:
                m += cn[i + kx]
                x += cs[i + kx]
                y += cq[i + kx]
            if i - kx - 1 >= 0:
                m -= cn[i - kx - 1]
                x -= cs[i - kx - 1]
                y -= cq[i - kx - 1]
            if not mask[j, i]:
                out[j, i] = not value_test
                continue
            v = image[j, i]
            if m < min_count or x < 0 or (value_test and not v > threshold):
                out[j, i] = False
                continue
            out[j, i] = _test(m, x, y, v, nsig_b, nsig_s, gain, value_test, root[m])


@numba.njit(cache=True, nogil=True)
def _sliding_final(image, mask, core, ky, kx, nsig_s, threshold, gain, out):
    """Pass 2 of the extended test with sliding window sums (integer-valued images only)."""
    h, w = image.shape
    use = np.empty((h, w), np.bool_)
    for j in range(h):
        for i in range(w):
            use[j, i] = mask[j, i] and not core[j, i] and image[j, i] < BIG
    cn = np.zeros(w, np.int64)
    cs = np.zeros(w, np.float64)
    cq = np.zeros(1, np.float64)
    for r in range(min(ky, h)):
        _add_row(image, use, r, 1, cn, cs, cq, False)
    for j in range(h):
        if j + ky < h:
            _add_row(image, use, j + ky, 1, cn, cs, cq, False)
        if j - ky - 1 >= 0:
            _add_row(image, use, j - ky - 1, -1, cn, cs, cq, False)
        m = np.int64(0)
        x = 0.0
        for i in range(min(kx, w)):
            m += cn[i]
            x += cs[i]
        for i in range(w):
            if i + kx < w:
                m += cn[i + kx]
                x += cs[i + kx]
            if i - kx - 1 >= 0:
                m -= cn[i - kx - 1]
                x -= cs[i - kx - 1]
            if not (mask[j, i] and core[j, i]):
                out[j, i] = False
                continue
            out[j, i] = _final_test(m, x, image[j, i], nsig_s, threshold, gain)


def min_count(kernel_size: tuple[int, int], min_local: int) -> int:
    """Pixels needed under the kernel: ``min_local``, or the full kernel area when <= 0."""
    area = (2 * kernel_size[0] + 1) * (2 * kernel_size[1] + 1)
    if min_local <= 0:
        return area
    if not 2 <= min_local <= area:
        raise ParameterError(
            f"spotfinder.threshold.dispersion.min_local={min_local}: must be <= 0 (whole kernel) "
            f"or between 2 and the kernel area {area}"
        )
    return min_local


def _exact(image: np.ndarray) -> bool:
    """Whether the sliding-window sums are exact for ``image`` (integer dtype or whole numbers)."""
    return image.dtype.kind in "iu" or bool(_integer_valued(image))


def _prepare(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # integer images (raw counts) are used as they are: no float64 copy of the image is needed
    image = np.ascontiguousarray(image, dtype=image.dtype if image.dtype.kind in "iu" else np.float64)
    mask = np.ascontiguousarray(mask, dtype=np.bool_)
    if image.shape != mask.shape:
        raise ValueError(f"image shape {image.shape} and mask shape {mask.shape} differ")
    return image, mask


def _dispersion_pass(
    image, mask, exact, kernel_size, sigma_background, sigma_strong, min_local, threshold, gain, value_test
) -> np.ndarray:
    """The classic test (``value_test``) or the extended pass-1 flag, by the exact fast path if possible."""
    out = np.empty(image.shape, np.bool_)
    kernel = _sliding_dispersion if exact else _dispersion_kernel
    ky, kx = int(kernel_size[0]), int(kernel_size[1])
    count = min_count(kernel_size, min_local)
    use = _stat_mask(image, mask)
    kernel(image, mask, use, ky, kx, sigma_background, sigma_strong, count, threshold, gain, value_test, out)
    return out


def dispersion(
    image: np.ndarray,
    mask: np.ndarray,
    kernel_size: tuple[int, int] = (3, 3),
    sigma_background: float = 6.0,
    sigma_strong: float = 3.0,
    min_local: int = 2,
    global_threshold: float = 0.0,
    gain: float | None = None,
) -> np.ndarray:
    """Classic DIALS dispersion threshold: boolean array of strong pixels (True = strong)."""
    image, mask = _prepare(image, mask)
    g = float(gain) if gain else 0.0
    return _dispersion_pass(
        image,
        mask,
        _exact(image),
        kernel_size,
        float(sigma_background),
        float(sigma_strong),
        min_local,
        float(global_threshold),
        g,
        True,
    )


def dispersion_extended(
    image: np.ndarray,
    mask: np.ndarray,
    kernel_size: tuple[int, int] = (3, 3),
    sigma_background: float = 6.0,
    sigma_strong: float = 3.0,
    min_local: int = 2,
    global_threshold: float = 0.0,
    gain: float | None = None,
) -> np.ndarray:
    """DIALS extended dispersion threshold (dispersion flag, erosion, background-only mean)."""
    image, mask = _prepare(image, mask)
    ky, kx = int(kernel_size[0]), int(kernel_size[1])
    g = float(gain) if gain else 0.0
    exact = _exact(image)
    flag = _dispersion_pass(
        image, mask, exact, kernel_size, float(sigma_background), 0.0, min_local, 0.0, g, False
    )
    core = _chessboard_core(flag, mask, min(ky, kx))
    out = np.empty(image.shape, np.bool_)
    final = _sliding_final if exact else _extended_final
    final(image, mask, core, ky + 2, kx + 2, float(sigma_strong), float(global_threshold), g, out)
    return out
