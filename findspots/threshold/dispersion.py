"""Classic and extended dispersion thresholds as compiled sliding-window kernels.

Conventions (docs/dials-behaviour.md#window):
- ``kernel_size = (ky, kx)``: half-sizes along rows (slow) and columns (fast); the window is the
  inclusive box ``[j-ky, j+ky] x [i-kx, i+kx]`` clipped to the image, never padded.
- Pixels contribute to the window sums when masked-in and below 2**24.
- Integer-valued images (raw counts, the usual case) take a sliding-window path: int64 sums per
  column over the window's rows are updated as rows enter and leave, and slid along each row. The
  sums are exact integers, so the strong pixels are exactly those of any other summation order
  (a usable value <= -2**24, whose square could overflow, sends the image to the table path).
  The loops are written so that LLVM vectorises them: the row entering and the row leaving the
  window update the column sums in one pass, and the int64 sums are converted to float64 by
  32-bit halves. The value test runs only where the dispersion test passed.
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
def _dispersion_sides(m, x, y, nsig_b, gain, root):
    """Both sides ``(a, c)`` of DIALS's dispersion test ``a > c`` (products rearranged, no division).

    ``root`` is sqrt(2 (m - 1)); ``gain <= 0`` selects the no-gain form.
    """
    if gain > 0:
        return m * y - x * x, gain * x * ((m - 1) + nsig_b * root)
    return m * y - x * x - x * (m - 1), x * nsig_b * root


@numba.njit(cache=True, nogil=True, inline="always")
def _test(m, x, y, v, nsig_b, nsig_s, gain, value_test, root):
    """DIALS's dispersion test (and, with ``value_test``, the value test) from window sums.

    ``root`` is sqrt(2 (m - 1)).
    """
    a, c = _dispersion_sides(m, x, y, nsig_b, gain, root)
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
def _chessboard_core(flag, valid, erosion):
    """Valid flagged pixels whose chessboard distance to the nearest unflagged pixel >= erosion.

    That distance is >= erosion exactly when every pixel of the (2 erosion - 1)-wide square
    around the pixel is flagged; pixels outside the image count as flagged. ``flag`` and
    ``valid`` are uint8 (0/1) arrays. Unflagged pixels are counted per column over the square's
    rows as rows enter and leave; the columns with any are then OR-ed across the square's width,
    one byte-wide (vectorised) pass per column offset.
    """
    h, w = flag.shape
    core = np.empty((h, w), np.bool_)
    r = erosion - 1
    if r < 0:
        for j in range(h):
            for i in range(w):
                core[j, i] = (valid[j, i] != 0) & (flag[j, i] != 0)
        return core
    columns = np.zeros(w, np.int32)  # unflagged pixels per column over rows j-r..j+r
    padded = np.zeros(w + 2 * r, np.uint8)  # whether a column has any, with r zeros each side
    seen = padded[r : r + w]
    near = np.empty(w, np.uint8)  # whether the square around the pixel has any
    outside = np.ones(w, np.uint8)  # rows beyond the image count as flagged
    for j in range(-r, h):
        entering = flag[j + r] if j + r < h else outside
        leaving = flag[j - r - 1] if j - r - 1 >= 0 else outside
        for i in range(w):
            columns[i] += np.int32(entering[i] == 0) - np.int32(leaving[i] == 0)
        if j < 0:
            continue
        for i in range(w):
            seen[i] = columns[i] != 0
        for i in range(w):
            near[i] = padded[i]
        for d in range(1, 2 * r + 1):
            shifted = padded[d : d + w]
            for i in range(w):
                near[i] |= shifted[i]
        flag_row = flag[j]
        valid_row = valid[j]
        core_row = core[j]
        for i in range(w):
            core_row[i] = (valid_row[i] != 0) & (flag_row[i] != 0) & (near[i] == 0)
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


IBIG = 1 << 24  # BIG as an integer, for the integer window sums


@numba.njit(cache=True, nogil=True, inline="always")
def _usable(value, valid):
    """Whether a pixel enters the window sums: valid (nonzero) and below 2**24."""
    return (valid != 0) & (value < IBIG)


@numba.njit(cache=True, nogil=True, inline="always")
def _as_float(v):
    """``float(v)`` for an int64, by 32-bit halves that convert with vector instructions.

    AVX2 has no int64 -> float64 conversion (LLVM converts one element at a time). Both halves
    convert exactly (the low one offset into the int32 range and back), so the one rounding of
    their sum is that of the direct conversion.
    """
    high = np.float64(np.int32(v >> 32)) * 4294967296.0
    return high + (np.float64(np.int32((v & 0xFFFFFFFF) - 0x80000000)) + 2147483648.0)


@numba.njit(cache=True, nogil=True, inline="always")
def _update_columns(new, new_valid, old, old_valid, cn, cs, cq, want_q):
    """Add row ``new``'s usable pixels to the per-column sums and take row ``old``'s away.

    Returns whether a usable value of ``new`` is <= -2**24, whose square could overflow the
    int64 sums (rows are checked as they enter).
    """
    negative = False
    for i in range(cn.size):
        a = np.int64(new[i])
        b = np.int64(old[i])
        use_a = _usable(new[i], new_valid[i])
        use_b = _usable(old[i], old_valid[i])
        cn[i] += np.int32(use_a) - np.int32(use_b)
        cs[i] += (a if use_a else 0) - (b if use_b else 0)
        if want_q:
            cq[i] += (a * a if use_a else 0) - (b * b if use_b else 0)
        negative |= use_a & (a <= -IBIG)
    return negative


@numba.njit(cache=True, nogil=True, inline="always")
def _row_windows(padded_n, padded_s, padded_q, span, wn, ws, wq):
    """Window sums along a row from column sums padded with ``span - 1`` zeros in all."""
    w = wn.size
    ahead_n = padded_n[span - 1 :]
    ahead_s = padded_s[span - 1 :]
    ahead_q = padded_q[span - 1 :]
    n = np.int32(0)
    s = np.int64(0)
    q = np.int64(0)
    for i in range(span - 1):
        n += padded_n[i]
        s += padded_s[i]
        q += padded_q[i]
    for i in range(w):
        n += ahead_n[i]
        s += ahead_s[i]
        q += ahead_q[i]
        wn[i] = n
        ws[i] = s
        wq[i] = q
        n -= padded_n[i]
        s -= padded_s[i]
        q -= padded_q[i]


@numba.njit(cache=True, nogil=True, inline="always")
def _flag_row(wn, ws, wq, valid_row, least, nsig_b, gain, flagged):
    """The dispersion test along a row from its window sums; returns whether any pixel passed."""
    anything = False
    for i in range(wn.size):
        m = np.float64(wn[i])
        x = _as_float(ws[i])
        y = _as_float(wq[i])
        a, c = _dispersion_sides(m, x, y, nsig_b, gain, np.sqrt(2.0 * (m - 1)))
        flag = (valid_row[i] != 0) & (wn[i] >= least) & (x >= 0) & (a > c)
        flagged[i] = flag
        anything |= flag
    return anything


@numba.njit(cache=True, nogil=True)
def _sliding_dispersion(image, valid, ky, kx, nsig_b, nsig_s, min_count, threshold, gain, value_test, out):
    """The test of ``_dispersion_kernel`` from exact integer window sums (integer-valued images).

    ``valid`` is the mask as uint8. Window sums are kept per column over the window's rows and
    slid along each row; the dispersion test then runs branch-free over the row and the value
    test only at the pixels it flags. Returns False, leaving ``out`` unfinished, when a usable
    value is <= -2**24 (its square could overflow): the caller then uses ``_dispersion_kernel``.
    """
    h, w = image.shape
    least = np.int32(min_count)
    span = 2 * kx + 1
    padded_n = np.zeros(w + span - 1, np.int32)
    padded_s = np.zeros(w + span - 1, np.int64)
    padded_q = np.zeros(w + span - 1, np.int64)
    cn = padded_n[kx : kx + w]
    cs = padded_s[kx : kx + w]
    cq = padded_q[kx : kx + w]
    wn = np.empty(w, np.int32)
    ws = np.empty(w, np.int64)
    wq = np.empty(w, np.int64)
    flagged = np.empty(w, np.bool_)
    none = np.zeros(w, image.dtype)
    none_valid = np.zeros(w, np.uint8)
    for r in range(min(ky, h)):
        if _update_columns(image[r], valid[r], none, none_valid, cn, cs, cq, True):
            return False
    for j in range(h):
        new, new_valid, old, old_valid = none, none_valid, none, none_valid
        if j + ky < h:
            new, new_valid = image[j + ky], valid[j + ky]
        if j - ky - 1 >= 0:
            old, old_valid = image[j - ky - 1], valid[j - ky - 1]
        if _update_columns(new, new_valid, old, old_valid, cn, cs, cq, True):
            return False
        _row_windows(padded_n, padded_s, padded_q, span, wn, ws, wq)
        valid_row = valid[j]
        # a literal 0.0 (the usual no-gain case) lets LLVM drop the gain branch from the pixel loop
        if gain > 0:
            anything = _flag_row(wn, ws, wq, valid_row, least, nsig_b, gain, flagged)
        else:
            anything = _flag_row(wn, ws, wq, valid_row, least, nsig_b, 0.0, flagged)
        row_out = out[j]
        if not value_test:
            # pass 1 of the extended test: masked pixels are flagged, so they never seed erosion
            for i in range(w):
                row_out[i] = flagged[i] | (valid_row[i] == 0)
            continue
        for i in range(w):
            row_out[i] = False
        if not anything:
            continue
        row = image[j]
        for i in range(w):
            if flagged[i] and row[i] > threshold:
                m = np.int64(wn[i])
                x = np.float64(ws[i])
                b = m * row[i] - x
                if gain > 0:
                    d = nsig_s * math.sqrt(gain * x * m)
                else:
                    d = nsig_s * math.sqrt(x * m)
                row_out[i] = b > d
    return True


@numba.njit(cache=True, nogil=True, inline="always")
def _background(valid, core, k, none_valid, out):
    """Row ``k``'s pixels in pass 2's window sums (valid, not core) as uint8; none outside the image."""
    if k < 0 or k >= valid.shape[0]:
        return none_valid
    valid_row = valid[k]
    core_row = core[k]
    for i in range(out.size):
        out[i] = (valid_row[i] != 0) & (not core_row[i])
    return out


@numba.njit(cache=True, nogil=True, inline="always")
def _append_true(flat, lo, hi, positions, count):
    """Write the indices lo..hi-1 where ``flat`` is nonzero at ``positions[count:]``; returns the count."""
    for b in range(lo, hi):
        if flat[b] != 0:
            positions[count] = b
            count += 1
    return count


@numba.njit(cache=True, nogil=True)
def _true_positions(flags):
    """Flat indices of the True pixels of a C-contiguous bool image, in order.

    Eight pixels are tested at once (one uint64 word): the sparse pixels are found without a
    branch per pixel.
    """
    flat = flags.reshape(flags.size).view(np.uint8)
    words = flat[: flat.size // 8 * 8].view(np.uint64)
    total = 0
    for b in range(flat.size):
        total += flat[b]
    positions = np.empty(total, np.int64)
    count = 0
    for k in range(words.size):
        if words[k] != 0:
            count = _append_true(flat, 8 * k, 8 * k + 8, positions, count)
    _append_true(flat, 8 * words.size, flat.size, positions, count)
    return positions


@numba.njit(cache=True, nogil=True)
def _sliding_final(image, valid, core, ky, kx, nsig_s, threshold, gain, out):
    """Pass 2 of the extended test from exact integer window sums (integer-valued images).

    Column sums cover valid, non-core pixels; window sums are only formed at core pixels, the
    only ones that can be strong. Returns False, leaving ``out`` unfinished, when a usable value
    is <= -2**24 (see ``_sliding_dispersion``).
    """
    h, w = image.shape
    span = 2 * kx + 1
    padded_n = np.zeros(w + span - 1, np.int32)
    padded_s = np.zeros(w + span - 1, np.int64)
    cn = padded_n[kx : kx + w]
    cs = padded_s[kx : kx + w]
    unused = np.zeros(1, np.int64)
    none = np.zeros(w, image.dtype)
    none_valid = np.zeros(w, np.uint8)
    entering = np.empty(w, np.uint8)
    leaving = np.empty(w, np.uint8)
    out[:] = False
    positions = _true_positions(core)  # only core pixels can be strong
    nxt = 0
    for r in range(-ky, h):
        k_in = r + ky
        k_out = r - ky - 1
        new_valid = _background(valid, core, k_in, none_valid, entering)
        old_valid = _background(valid, core, k_out, none_valid, leaving)
        new = image[k_in] if k_in < h else none
        old = image[k_out] if k_out >= 0 else none
        if _update_columns(new, new_valid, old, old_valid, cn, cs, unused, False):
            return False
        if r < 0:
            continue
        while nxt < positions.size and positions[nxt] < (r + 1) * w:
            i = positions[nxt] - r * w
            nxt += 1
            m = np.int64(0)
            x = np.int64(0)
            for d in range(span):
                m += padded_n[i + d]
                x += padded_s[i + d]
            out[r, i] = _final_test(m, np.float64(x), image[r, i], nsig_s, threshold, gain)
    return True


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
    ky, kx = int(kernel_size[0]), int(kernel_size[1])
    count = min_count(kernel_size, min_local)
    settings = (ky, kx, sigma_background, sigma_strong, count, threshold, gain, value_test, out)
    if exact and _sliding_dispersion(image, mask.view(np.uint8), *settings):
        return out
    _dispersion_kernel(image, mask, _stat_mask(image, mask), *settings)
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
    core = _chessboard_core(flag.view(np.uint8), mask.view(np.uint8), min(ky, kx))
    out = np.empty(image.shape, np.bool_)
    settings = (ky + 2, kx + 2, float(sigma_strong), float(global_threshold), g, out)
    if exact and _sliding_final(image, mask.view(np.uint8), core, *settings):
        return out
    _extended_final(image, mask, core, *settings)
    return out
