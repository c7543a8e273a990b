"""An independent bitshuffle-LZ4 decoder (stream 'bslz4' payloads), to check HDF5 reads against.

Payload: big-endian uint64 total bytes and uint32 block bytes, then per block a big-endian uint32
compressed size and an LZ4 block. Each decompressed block is bit-shuffled: for every byte b of the
element and bit j of that byte, a row of (elements / 8) bytes holds bit j of byte b of every element.
Elements left over after the last multiple of 8 are stored raw at the end.
"""

from __future__ import annotations

import struct

import numba
import numpy as np


@numba.njit
def lz4_block(src: np.ndarray, out_size: int) -> np.ndarray:
    """Decompress one LZ4 block."""
    out = np.empty(out_size, np.uint8)
    i = 0
    o = 0
    while i < src.size:
        token = src[i]
        i += 1
        n = token >> 4
        if n == 15:
            while True:
                b = src[i]
                i += 1
                n += b
                if b != 255:
                    break
        out[o : o + n] = src[i : i + n]
        i += n
        o += n
        if i >= src.size:
            break
        offset = src[i] | (src[i + 1] << 8)
        i += 2
        m = token & 15
        if m == 15:
            while True:
                b = src[i]
                i += 1
                m += b
                if b != 255:
                    break
        m += 4
        for k in range(m):
            out[o + k] = out[o - offset + k]
        o += m
    return out[:o]


def bit_unshuffle(block: np.ndarray, n: int, itemsize: int) -> np.ndarray:
    """Undo the bit transpose of ``n`` elements (n a multiple of 8) of ``itemsize`` bytes."""
    bits = np.unpackbits(block.reshape(itemsize * 8, n // 8), axis=1, bitorder="little")
    return np.packbits(bits.T.reshape(n, itemsize, 8), axis=2, bitorder="little").reshape(-1)


def decode_bslz4(payload: bytes, dtype: np.dtype) -> np.ndarray:
    """The 1D array of a bitshuffle-LZ4 payload."""
    dtype = np.dtype(dtype)
    total, block_bytes = struct.unpack(">QI", payload[:12])
    size = dtype.itemsize
    n_elem, per_block = total // size, block_bytes // size
    data = np.frombuffer(payload, np.uint8)
    pos, done, parts = 12, 0, []
    while n_elem - done >= 8:
        count = min(per_block, n_elem - done)
        count -= count % 8
        (csize,) = struct.unpack(">I", payload[pos : pos + 4])
        raw = lz4_block(data[pos + 4 : pos + 4 + csize], count * size)
        parts.append(bit_unshuffle(raw, count, size))
        pos += 4 + csize
        done += count
    parts.append(data[pos : pos + (n_elem - done) * size])
    return np.concatenate(parts).view(dtype.newbyteorder("<"))
