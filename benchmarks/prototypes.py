"""Faster-kernel ideas, measured by ``profile.py`` against findspots' own (findspots is not changed).

* ``numba_read``: a byte-offset miniCBF reader with a numba decoder (no MD5 check), int32 out.
* ``sliding_dispersion`` / ``sliding_dispersion_extended``: the dispersion tests with window sums
  kept as running sums: per-column sums over the ``2*ky+1`` rows of the window are updated by
  adding the row entering and subtracting the row leaving, and a running sum along the row adds
  the column entering and subtracts the one leaving. No summed-area table, no modulo ring index,
  sequential memory access. For integer-valued images (raw Pilatus/Eiger counts with gain 1)
  every partial sum is an integer below 2**53, so the sums, and therefore the strong pixels, are
  exactly those of a summed-area table; for non-integer data (gain-corrected) they can differ in
  the last bit, so a real implementation would keep the exact path for that case.
  They accept the raw int32 image directly (``mask`` then includes the trusted range), so the
  float64 copy of the image is not needed either.

All formulas are the ones in findspots' ``threshold/dispersion.py`` docstrings/SPEC (classic:
``m*y - x*x > x*((m-1) + n_b*sqrt(2(m-1)))`` without gain, and so on); ``profile.py`` checks that the
strong pixels are identical on every image it profiles.
"""

from __future__ import annotations

import math
import re

import numba
import numpy as np

BIG = float(1 << 24)


# ------------------------------------------------------------------------------------- CBF decode


@numba.njit(cache=True, nogil=True)
def _byte_offset_decode(src, n, out):
    """x-CBF_BYTE_OFFSET: signed 8-bit deltas, escape 0x80 -> int16, 0x8000 -> int32, then int64."""
    pos = 0
    value = np.int64(0)
    for i in range(n):
        d = np.int64(np.int8(src[pos]))
        pos += 1
        if d == -128:
            d = np.int64(np.int16(np.uint16(src[pos]) | (np.uint16(src[pos + 1]) << 8)))
            pos += 2
            if d == -32768:
                d = np.int64(
                    np.int32(
                        np.uint32(src[pos])
                        | (np.uint32(src[pos + 1]) << 8)
                        | (np.uint32(src[pos + 2]) << 16)
                        | (np.uint32(src[pos + 3]) << 24)
                    )
                )
                pos += 4
                if d == -2147483648:
                    d = np.int64(0)
                    for b in range(8):
                        d |= np.int64(src[pos + b]) << (8 * b)
                    pos += 8
        value += d
        out[i] = value
    return pos


_SIZE = re.compile(rb"X-Binary-Size:\s*(\d+)")
_FAST = re.compile(rb"X-Binary-Size-Fastest-Dimension:\s*(\d+)")
_SLOW = re.compile(rb"X-Binary-Size-Second-Dimension:\s*(\d+)")


def numba_read(path: str) -> np.ndarray:
    """Read an uncompressed byte-offset miniCBF with the numba decoder (no MD5 check), int32 out."""
    with open(path, "rb") as fh:
        data = fh.read()
    start = data.find(b"\x0c\x1a\x04\xd5")
    head = data[:start]
    nfast, nslow = int(_FAST.search(head).group(1)), int(_SLOW.search(head).group(1))
    size = int(_SIZE.search(head).group(1))
    src = np.frombuffer(data, np.uint8, count=size, offset=start + 4)
    out = np.empty(nfast * nslow, np.int32)
    _byte_offset_decode(src, out.size, out)
    return out.reshape(nslow, nfast)


# ------------------------------------------------------------------------------ sliding dispersion


@numba.njit(cache=True, nogil=True, inline="always")
def _column_update(image, mask, r, sign, cn, cs, cq, want_q):
    w = image.shape[1]
    for i in range(w):
        if mask[r, i]:
            v = np.float64(image[r, i])
            if v < BIG:
                cn[i] += sign
                cs[i] += sign * v
                if want_q:
                    cq[i] += sign * v * v


@numba.njit(cache=True, nogil=True)
def _sliding_dispersion(image, mask, ky, kx, nsig_b, nsig_s, min_count, threshold, gain, value_test, out):
    """Classic test (``value_test``) or pass 1 of the extended test (masked pixels True)."""
    h, w = image.shape
    cn = np.zeros(w, np.int64)
    cs = np.zeros(w, np.float64)
    cq = np.zeros(w, np.float64)
    area = (2 * ky + 1) * (2 * kx + 1)
    root = np.zeros(area + 1)
    for m in range(1, area + 1):
        root[m] = math.sqrt(2.0 * (m - 1))
    for r in range(min(ky, h)):
        _column_update(image, mask, r, 1, cn, cs, cq, True)
    for j in range(h):
        if j + ky < h:
            _column_update(image, mask, j + ky, 1, cn, cs, cq, True)
        if j - ky - 1 >= 0:
            _column_update(image, mask, j - ky - 1, -1, cn, cs, cq, True)
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
            v = np.float64(image[j, i])
            if m < min_count or x < 0 or (value_test and not v > threshold):
                out[j, i] = False
                continue
            if gain > 0:
                a = m * y - x * x
                c = gain * x * ((m - 1) + nsig_b * root[m])
            else:
                a = m * y - x * x - x * (m - 1)
                c = x * nsig_b * root[m]
            if not value_test or not a > c:
                out[j, i] = a > c
                continue
            b = m * v - x
            if gain > 0:
                d = nsig_s * math.sqrt(gain * x * m)
            else:
                d = nsig_s * math.sqrt(x * m)
            out[j, i] = b > d


@numba.njit(cache=True, nogil=True)
def _sliding_final(image, mask, core, ky, kx, nsig_s, threshold, gain, out):
    """Extended pass 2: value test against the mean of valid non-core pixels in the window."""
    h, w = image.shape
    use = np.empty((h, w), np.bool_)
    for j in range(h):
        for i in range(w):
            use[j, i] = mask[j, i] and not core[j, i]
    cn = np.zeros(w, np.int64)
    cs = np.zeros(w, np.float64)
    cq = np.zeros(1, np.float64)
    for r in range(min(ky, h)):
        _column_update(image, use, r, 1, cn, cs, cq, False)
    for j in range(h):
        if j + ky < h:
            _column_update(image, use, j + ky, 1, cn, cs, cq, False)
        if j - ky - 1 >= 0:
            _column_update(image, use, j - ky - 1, -1, cn, cs, cq, False)
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
            v = np.float64(image[j, i])
            if x < 0 or not v > threshold:
                out[j, i] = False
                continue
            mean = x / m if m >= 2 else 0.0
            if gain > 0:
                bound = mean + nsig_s * math.sqrt(gain * mean)
            else:
                bound = mean + nsig_s * math.sqrt(mean)
            out[j, i] = v >= bound


def _min_count(kernel_size, min_local) -> int:
    area = (2 * int(kernel_size[0]) + 1) * (2 * int(kernel_size[1]) + 1)
    return area if min_local <= 0 else int(min_local)


def sliding_dispersion(
    image,
    mask,
    kernel_size=(3, 3),
    sigma_background=6.0,
    sigma_strong=3.0,
    min_local=2,
    global_threshold=0.0,
    gain=None,
):
    """Classic dispersion with running window sums; ``image`` may be the raw int32 array."""
    out = np.empty(image.shape, np.bool_)
    _sliding_dispersion(
        image,
        mask,
        int(kernel_size[0]),
        int(kernel_size[1]),
        float(sigma_background),
        float(sigma_strong),
        _min_count(kernel_size, min_local),
        float(global_threshold),
        float(gain) if gain else 0.0,
        True,
        out,
    )
    return out


def sliding_dispersion_extended(
    image,
    mask,
    kernel_size=(3, 3),
    sigma_background=6.0,
    sigma_strong=3.0,
    min_local=2,
    global_threshold=0.0,
    gain=None,
    erosion=None,
):
    """Extended dispersion: sliding pass 1, chessboard erosion (``erosion(flag, mask, k)``, by
    default findspots' own ``_chessboard_core``), sliding pass 2 with the window widened by 2."""
    if erosion is None:
        from findspots.threshold.dispersion import _chessboard_core as erosion
    ky, kx = int(kernel_size[0]), int(kernel_size[1])
    g = float(gain) if gain else 0.0
    flag = np.empty(image.shape, np.bool_)
    _sliding_dispersion(
        image,
        mask,
        ky,
        kx,
        float(sigma_background),
        0.0,
        _min_count(kernel_size, min_local),
        0.0,
        g,
        False,
        flag,
    )
    core = erosion(flag, mask, min(ky, kx))
    out = np.empty(image.shape, np.bool_)
    _sliding_final(image, mask, core, ky + 2, kx + 2, float(sigma_strong), float(global_threshold), g, out)
    return out
