"""The byte-offset decoder at the edges of its fast path: the last pixels of a stream (where every read
is checked), long escapes, out-of-range sums, large noisy images and a caller's output buffer."""

from __future__ import annotations

import re

import numpy as np
import pytest
from reliability.cbftools import encode_byte_offset

from findspots.images import ImageError
from findspots.images.byte_offset import decode_byte_offset

DTYPES = [np.int32, np.uint32, np.int16, np.uint16, np.int8, np.uint8]
LONGEST = 15  # bytes of an 8-byte delta with its three escapes


def _delta_lengths(values: np.ndarray) -> np.ndarray:
    """Bytes each pixel takes in the byte-offset stream (1, 3, 7 or 15)."""
    d = np.diff(np.asarray(values, np.int64), prepend=np.int64(0))
    return np.select([abs(d) <= 127, abs(d) <= 32767, abs(d) < 2**31], [1, 3, 7], 15)


def _expected_cut_error(lengths: np.ndarray, size: int) -> str:
    """The decoder's message for a stream cut to ``size`` bytes, from the layout alone."""
    starts = np.cumsum(lengths) - lengths
    k = int(np.searchsorted(starts + lengths, size, side="right"))  # first pixel not complete
    if size == starts[k]:
        return f"decoded {k} pixels, header says {len(lengths)} pixels (the byte-offset data ends early)"
    escapes = [starts[k] + 1, starts[k] + 3, starts[k] + 7]  # positions after each escape marker
    pos = max(p for p in escapes if p <= size)
    return f"the byte-offset data is cut short inside pixel {k} (byte {pos})"


def _mixed_values(n: int, seed: int) -> np.ndarray:
    """Noisy int32 pixels with every delta length, the long ones near the end of the stream."""
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 200, n).astype(np.int64)
    values[-12:] = [5, 1000, 40000, -3, 2**31 - 1, -(2**31), 7, 100000, 2**31 - 2, 0, 3, -(2**31)]
    return values.astype(np.int32)


@pytest.mark.parametrize("n", [1, 12, 40, 300])
def test_every_cut_near_the_end_names_pixel_and_byte(n: int) -> None:
    values = _mixed_values(max(n, 12), seed=n)
    stream = encode_byte_offset(values)
    lengths = _delta_lengths(values)
    assert set(lengths[-12:]) == {1, 3, 7, 15}
    for size in range(max(0, len(stream) - 4 * LONGEST - 20), len(stream)):
        expected = re.escape(f"<stream>: corrupt CBF: {_expected_cut_error(lengths, size)}; ")
        with pytest.raises(ImageError, match=expected):
            decode_byte_offset(stream[:size], values.size, np.int32)
    np.testing.assert_array_equal(decode_byte_offset(stream, values.size, np.int32), values)


@pytest.mark.parametrize("tail", [0, 5, 14, 15, 16, 100])
def test_out_of_range_pixel_and_byte_anywhere(tail: int) -> None:
    # int16 pixels climbing past 32767 by one-byte deltas, followed by ``tail`` more bytes of data
    steps = np.full(300, 120, np.int64)
    stream = encode_byte_offset(np.cumsum(steps)) + bytes(tail)
    first_bad = int(np.argmax(np.cumsum(steps) > 32767))
    message = rf"pixel {first_bad} of the byte-offset data leaves the int16 range \(byte {first_bad + 1}\)"
    with pytest.raises(ImageError, match=message):
        decode_byte_offset(stream, 300 + tail, np.int16)


@pytest.mark.parametrize("delta", [2**62, -(2**63), 2**33, -(2**33) - 1, 2**32])
def test_huge_eight_byte_delta_is_out_of_range_not_an_overflow(delta: int) -> None:
    escape = b"\x80\x00\x80\x00\x00\x00\x80" + delta.to_bytes(8, "little", signed=True)
    for padding in (0, 64):  # end of the stream, and inside the unchecked part
        with pytest.raises(
            ImageError, match=r"pixel 0 of the byte-offset data leaves the int32 range \(byte 15\)"
        ):
            decode_byte_offset(escape + bytes(padding), 1 + padding, np.int32)


def test_eight_byte_delta_to_the_ends_of_uint32() -> None:
    values = np.array([2**32 - 1, 0, 5, 2**32 - 1] * 10, np.uint32)
    stream = encode_byte_offset(values)
    assert set(_delta_lengths(values)) == {15, 1}
    np.testing.assert_array_equal(decode_byte_offset(stream, values.size, np.uint32), values)


@pytest.mark.parametrize("dtype", DTYPES)
def test_large_noisy_image_round_trip(dtype: type) -> None:
    info = np.iinfo(dtype)
    rng = np.random.default_rng(7)
    n = 200_000
    small = rng.integers(0, 60, n)
    big = rng.integers(int(info.min), int(info.max) + 1, n, dtype=np.int64)
    values = np.where(rng.random(n) < 0.05, big, small).astype(dtype)
    stream = encode_byte_offset(values)
    np.testing.assert_array_equal(decode_byte_offset(stream, n, dtype), values)
    view = memoryview(b"junk" + stream)[4:]  # a view into a larger buffer, as read_raw passes it
    np.testing.assert_array_equal(decode_byte_offset(view, n, dtype), values)


def test_output_buffer_is_filled_and_returned() -> None:
    values = _mixed_values(1000, seed=3)
    stream = encode_byte_offset(values)
    out = np.full(values.shape, -1, np.int32)
    result = decode_byte_offset(stream, values.size, np.int32, out=out)
    assert np.shares_memory(result, out)
    np.testing.assert_array_equal(out, values)
    image = np.empty((10, 100), np.int32)  # a 2-D buffer of the right size is filled in place
    decode_byte_offset(stream, values.size, np.int32, out=image)
    np.testing.assert_array_equal(image.ravel(), values)


@pytest.mark.parametrize(
    "out",
    [np.empty(999, np.int32), np.empty(1000, np.int64), np.empty((1000, 2), np.int32)[:, 0]],
    ids=["size", "dtype", "strided"],
)
def test_unsuitable_output_buffer_is_refused(out: np.ndarray) -> None:
    stream = encode_byte_offset(np.zeros(1000, np.int32))
    with pytest.raises(
        ValueError, match="output buffer must be a writeable C-contiguous array of 1000 int32"
    ):
        decode_byte_offset(stream, 1000, np.int32, out=out)
