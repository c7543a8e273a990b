"""CBF images: the pixel data of any CBF (also .gz/.bz2), byte-offset decoded here (``byte_offset``), other
compressions through fabio, and the experiment models from its header (``cbf_header``, ``cbf_models``).
"""

from __future__ import annotations

import base64
import hashlib
import io

import numpy as np

from findspots.errors import ImageError
from findspots.images.byte_offset import decode_byte_offset
from findspots.images.cbf_header import (
    BINARY_SECTION,
    BINARY_START,
    HEADER_LIMIT,
    CbfHeader,
    check_is_cbf,
    looks_like_cbf,
    parse_header,
)
from findspots.images.cbf_models import models_from_header, shadow_from_header
from findspots.images.fileio import DAMAGED, read_all, read_head
from findspots.images.models import Beam, Detector, FileModels, Goniometer, ScanInfo

_START = 64  # bytes that tell a CBF from other files

_ELEMENT_TYPES = {
    "signed 32-bit integer": np.int32,
    "unsigned 32-bit integer": np.uint32,
    "signed 16-bit integer": np.int16,
    "unsigned 16-bit integer": np.uint16,
    "signed 8-bit integer": np.int8,
    "unsigned 8-bit integer": np.uint8,
}


def read_raw(path: str, verify_md5: bool = False) -> np.ndarray:
    """Decode the image array (slow, fast) of any CBF (also .gz/.bz2) in its native dtype.

    ``verify_md5`` also checks the binary data against the header's Content-MD5 (about 8 ms per
    Pilatus 6M image; DIALS does not check it)."""
    data = read_all(path)
    header, start = _split_header(path, data)
    shape = header.shape
    _check_element_count(header, shape)
    binary = _binary_section(header, data, start + len(BINARY_START), verify_md5)
    if header.byte_offset and shape[0] * shape[1] > len(binary):  # each pixel takes at least one byte
        raise ImageError(
            f"{path}: corrupt CBF: {len(binary)} bytes of data cannot hold {shape[1]} x {shape[0]} pixels; "
            f"{DAMAGED}"
        )
    try:
        arr = _decode(header, data, binary, shape)
    except ImageError:
        raise
    except Exception as e:  # fabio raises many types (AssertionError, ValueError, ...)
        raise ImageError(f"{path}: cannot decode CBF data ({type(e).__name__}: {e}); {DAMAGED}") from e
    return _checked_array(header, arr, shape)


def read_raw_verified(path: str) -> np.ndarray:
    """``read_raw`` with the Content-MD5 check: a picklable reader for ``input.verify_md5=True``."""
    return read_raw(path, verify_md5=True)


def _decode(header: CbfHeader, data: bytes, binary: memoryview, shape: tuple[int, int]) -> np.ndarray:
    if header.byte_offset:
        return decode_byte_offset(binary, shape[0] * shape[1], _element_dtype(header), header.path, shape)
    from fabio.cbfimage import CbfImage  # other compressions (rare): fabio; imported here, it is slow

    img = CbfImage()
    img.read(io.BytesIO(data))
    return np.asarray(img.data).ravel()


def _element_dtype(header: CbfHeader) -> np.dtype:
    """The pixel type of X-Binary-Element-Type (signed 32-bit when absent, as CBFlib assumes)."""
    text = " ".join(header.mime.get("x-binary-element-type", "signed 32-bit integer").lower().split())
    dtype = _ELEMENT_TYPES.get(text)
    if dtype is None:
        raise ImageError(
            f"{header.path}: unsupported CBF element type {text!r} (8, 16 and 32-bit integers are read)"
        )
    return np.dtype(dtype)


def _binary_section(header: CbfHeader, data: bytes, offset: int, verify_md5: bool = False) -> memoryview:
    """The compressed binary block (a view, not a copy), checked against X-Binary-Size and, with
    ``verify_md5``, Content-MD5."""
    view = memoryview(data)
    size = header.mime.get("x-binary-size", "")
    if not size.isdigit():
        return view[offset:]
    available = len(data) - offset
    if available < int(size):
        raise ImageError(
            f"{header.path}: truncated CBF: binary section has {available} of {int(size)} bytes; {DAMAGED}"
        )
    binary = view[offset : offset + int(size)]
    md5 = header.mime.get("content-md5")
    if verify_md5 and md5 and base64.b64encode(hashlib.md5(binary).digest()).decode() != md5:
        raise ImageError(f"{header.path}: corrupt CBF: binary data does not match its Content-MD5; {DAMAGED}")
    return binary


def _check_element_count(header: CbfHeader, shape: tuple[int, int]) -> None:
    n = header.mime.get("x-binary-number-of-elements")
    if n is not None and n.isdigit() and int(n) != shape[0] * shape[1]:
        raise ImageError(
            f"{header.path}: CBF header element count {n} does not match dimensions {shape[1]} x {shape[0]}; "
            f"{DAMAGED}"
        )


def _checked_array(header: CbfHeader, arr: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if arr.size != shape[0] * shape[1]:
        raise ImageError(
            f"{header.path}: corrupt CBF: decoded {arr.size} pixels, header says {shape[1]} x {shape[0]}; "
            f"{DAMAGED}"
        )
    arr = arr.reshape(shape)
    dtype = _ELEMENT_TYPES.get(header.mime.get("x-binary-element-type", "").lower())
    if dtype is not None and arr.dtype != dtype:
        arr = arr.astype(dtype)
    return arr


def _split_header(path: str, data: bytes) -> tuple[CbfHeader, int]:
    """The parsed header of a CBF's (decompressed) bytes, and where its binary start marker is."""
    start = data.find(BINARY_START, max(data.find(BINARY_SECTION), 0))
    check_is_cbf(path, data[:_START], data.find(BINARY_SECTION) >= 0 and start >= 0)
    return parse_header(path, data[:start]), start


def _has_whole_header(start: bytes) -> bool:
    """True once a file's decompressed start tells it is no CBF, or holds a CBF's whole header."""
    if len(start) < _START:
        return False
    section = start.find(BINARY_SECTION)
    return not looks_like_cbf(start[:_START]) or (section >= 0 and start.find(BINARY_START, section) >= 0)


def read_start(path: str) -> bytes:
    """A file's decompressed start: the whole header of a CBF, at least the first 64 bytes of others.

    What ``formats.detect`` and ``models_from_start`` need, decompressing a .gz/.bz2 only that far."""
    return read_head(path, _has_whole_header, HEADER_LIMIT)


def read_header(path: str) -> CbfHeader:
    """The parsed header of a CBF (plain, .gz or .bz2), decompressing only that far."""
    return _split_header(path, read_start(path))[0]


def models_from_start(path: str, start: bytes) -> FileModels:
    """The models of a CBF from its decompressed start (``read_start``)."""
    header, _ = _split_header(path, start)
    detector, beam, goniometer, scan = models_from_header(header)
    return FileModels(detector, beam, goniometer, scan, shadow_from_header(header, goniometer), "CBF")


def file_models(path: str) -> FileModels:
    """The models of one CBF file, from its header only."""
    return models_from_start(path, read_start(path))


def read_models(path: str) -> tuple[Detector, Beam, Goniometer, ScanInfo]:
    """Experiment models and scan values of one CBF file, from its header only."""
    header, _ = _split_header(path, read_start(path))
    return models_from_header(header)
