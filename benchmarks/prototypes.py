"""Faster-kernel ideas, measured by ``profile.py`` against findspots' own (findspots is not changed).

* ``numba_read``: a byte-offset miniCBF reader with a numba decoder (no MD5 check), int32 out.
* ``sliding_dispersion`` / ``sliding_dispersion_extended`` (adopted: now aliases of the package's
  kernels, which take this path for integer-valued images): the dispersion tests with window sums
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

import re

import numba
import numpy as np

from findspots.threshold.dispersion import dispersion, dispersion_extended

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
# The sliding-window prototype was adopted: the package's kernels take that path for integer-valued
# images (raw counts or whole-number float64), so profile.py's "alt" rows now time the package itself.
sliding_dispersion = dispersion
sliding_dispersion_extended = dispersion_extended
