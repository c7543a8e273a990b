"""CBF images: header parsing, experiment models from the header, pixel data (byte-offset decoded here,
other compressions through fabio).

Two header flavours are understood:

* Pilatus miniCBF (``_array_data.header_convention PILATUS_1.2``): the ``# Key value`` lines of
  ``_array_data.header_contents``. Geometry follows dxtbx's miniCBF convention: fast axis (1,0,0),
  slow axis (0,-1,0), origin (-beam_x*px, +beam_y*px, -distance) mm, beam direction (0,0,1),
  rotation axis (1,0,0). A nonzero ``Detector_2theta`` rotates the detector about +x (same sense as
  the full-CBF DET_2THETA axis; not checked against a dxtbx import).
* Full CBF with imgCIF geometry (e.g. DLS I19): the ``_axis``, ``_diffrn_scan_axis``,
  ``_diffrn_scan_frame_axis``, ``_array_structure_list(_axis)`` loops give the detector axes and
  origin by composing the axis chain (translations and rotations, with offsets), the SOURCE axis
  gives the beam direction and the scanned goniometer axis (rotated by the axes it depends on) the
  rotation axis. Limits: one array per file, one detector element, no ``decreasing`` origin shift
  (a decreasing axis only flips its direction), no multi-axis goniometer model beyond the scan
  axis, no format-class static masks (e.g. the I03 SmarGon shadow mask).

Trusted range is (0, Count_cutoff) inclusive (current dxtbx); DIALS 3.12 wrote (-1, cutoff) with
exclusive ends, which selects the same integer pixels. Pilatus module gaps (487 x 195 px modules,
7 px fast and 17 px slow gaps) become panel mask rectangles when the image tiles into modules.
"""

from __future__ import annotations

import base64
import bz2
import gzip
import hashlib
import io
import math
import re
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import BinaryIO

import numba
import numpy as np

from findspots.images import ImageError, dls_p12m
from findspots.images.models import Beam, Detector, Goniometer, Panel, ShadowMasker

BINARY_SECTION = b"--CIF-BINARY-FORMAT-SECTION--"
BINARY_START = b"\x0c\x1a\x04\xd5"
HEADER_CHUNK = 65536
HEADER_LIMIT = 4 * 1024 * 1024  # give up looking for the binary section after this many bytes

PILATUS_MODULE = (487, 195)  # (fast, slow) pixels
PILATUS_GAP = (7, 17)
DEFAULT_CUTOFF = 1.0e6  # used only when a header has no Count_cutoff / overload value
EIGER_DEFAULT_CUTOFF = 1.0e8  # EIGER miniCBF without Count_cutoff (as dxtbx)
EIGER_MODULES = (((1030, 514), (10, 37)), ((1028, 512), (12, 38)))  # (module, gap) (fast, slow) pixels

# Format-class quirks keyed by detector serial number: lab rotation axis for vertical goniometers.
ROTATION_AXIS_BY_SERIAL = {"60-0119": (0.0, 1.0, 0.0)}  # DLS I24 PILATUS3 6M

# What to do about a damaged image, appended to the errors that say which file and what is wrong.
_DAMAGED = "copy the file again from its source, or leave it out of the command"

_ELEMENT_TYPES = {
    "signed 32-bit integer": np.int32,
    "unsigned 32-bit integer": np.uint32,
    "signed 16-bit integer": np.int16,
    "unsigned 16-bit integer": np.uint16,
    "signed 8-bit integer": np.int8,
    "unsigned 8-bit integer": np.uint8,
}


@dataclass
class ScanInfo:
    """Per-image scan values read from a header."""

    start_angle: float
    angle_increment: float
    exposure_time: float
    epoch: float


@dataclass
class CbfHeader:
    """Parsed header of one CBF file."""

    path: str
    cif: dict[str, list[str]] = field(default_factory=dict)  # item name -> values (loops: a column)
    mini: dict[str, str] = field(default_factory=dict)  # Pilatus "# Key value" lines
    mime: dict[str, str] = field(default_factory=dict)  # binary section headers
    timestamp: str | None = None
    byte_offset: bool = False  # binary section uses the x-CBF_BYTE_OFFSET conversion

    def first(self, name: str) -> str | None:
        """First value of a CIF item, or None."""
        return self.cell(name, 0)

    def cell(self, name: str, row: int) -> str | None:
        """Value of a CIF item (or loop column) in a given row, or None when absent."""
        values = self.cif.get(name.lower())
        if values is None or not 0 <= row < len(values):
            return None
        return values[row]

    @property
    def shape(self) -> tuple[int, int]:
        """(slow, fast) array shape from X-Binary-Size-Second/Fastest-Dimension."""
        dims = (
            self.mime.get("x-binary-size-second-dimension", ""),
            self.mime.get("x-binary-size-fastest-dimension", ""),
        )
        if not all(d.isdigit() and d.isascii() and int(d) > 0 for d in dims):
            raise ImageError(f"{self.path}: CBF binary header has no valid image dimensions; {_DAMAGED}")
        return int(dims[0]), int(dims[1])


# ---------------------------------------------------------------------------------------------- I/O


@contextmanager
def _open_binary(path: str, buffered: bool = True) -> Iterator[BinaryIO]:
    """The file's (decompressed) byte stream; gzip and bzip2 are recognised by their magic bytes.

    ``buffered=False`` suits reading the whole file: after the magic bytes and the seek back, a
    buffered file's ``read()`` takes 4.4 ms for a 6 MB image, the raw file's 0.6 ms."""
    try:
        fh = open(path, "rb", buffering=-1 if buffered else 0)
    except FileNotFoundError as e:
        raise ImageError(f"{path}: no such file") from e
    except OSError as e:
        raise ImageError(f"{path}: cannot open ({e.strerror or e})") from e
    with fh:
        magic = fh.read(3)
        fh.seek(0)
        if magic[:2] == b"\x1f\x8b":
            with gzip.GzipFile(fileobj=fh) as stream:
                yield stream
        elif magic == b"BZh":
            with bz2.BZ2File(fh) as stream:
                yield stream
        else:
            yield fh


def _read_all(path: str) -> bytes:
    with _open_binary(path, buffered=False) as fh:
        try:
            return fh.read()
        except (OSError, EOFError, zlib.error, ValueError) as e:
            raise ImageError(f"{path}: corrupt or truncated compressed file ({e}); {_DAMAGED}") from e


def read_header_bytes(path: str) -> bytes:
    """The text before the binary data (through the MIME headers), reading as little as possible."""
    buf = bytearray()
    with _open_binary(path) as fh:
        try:
            while len(buf) < HEADER_LIMIT:
                chunk = fh.read(HEADER_CHUNK)
                if not chunk:
                    break
                if not buf:
                    _check_is_cbf(path, chunk[:64], True)  # fail fast on non-CBF files
                buf += chunk
                i = buf.find(BINARY_SECTION)
                if i >= 0 and buf.find(BINARY_START, i) >= 0:
                    break
        except (OSError, EOFError, zlib.error, ValueError) as e:
            raise ImageError(f"{path}: corrupt or truncated compressed file ({e}); {_DAMAGED}") from e
    end = buf.find(BINARY_START, max(buf.find(BINARY_SECTION), 0))
    _check_is_cbf(path, bytes(buf[:64]), buf.find(BINARY_SECTION) >= 0 and end >= 0)
    return bytes(buf[:end])


def _check_is_cbf(path: str, start: bytes, has_binary: bool) -> None:
    if not (start.startswith(b"###CBF") or start.lstrip().startswith(b"data_")):
        raise ImageError(f"{path}: not a CBF file")
    if not has_binary:
        raise ImageError(f"{path}: CBF has no binary data section (truncated or not an image); {_DAMAGED}")


# ------------------------------------------------------------------------------------------ parsing

_TOKEN = re.compile(r"'[^']*'(?=\s|$)|\"[^\"]*\"(?=\s|$)|\S+")


def _tokens(text: str) -> list[tuple[str, str]]:
    """CIF tokens as (kind, value), kind in name/value/loop/data; text fields are values."""
    out: list[tuple[str, str]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith(";"):
            body = [line[1:]]
            i += 1
            while i < len(lines) and not lines[i].startswith(";"):
                body.append(lines[i])
                i += 1
            out.append(("value", "\n".join(body)))
            i += 1
            continue
        for m in _TOKEN.finditer(line):
            tok = m.group(0)
            if tok.startswith("#"):
                break
            if tok[0] in "'\"":
                out.append(("value", tok[1:-1]))
            elif tok.lower() == "loop_":
                out.append(("loop", tok))
            elif tok.lower().startswith("data_"):
                out.append(("data", tok))
            elif tok.startswith("_"):
                out.append(("name", tok.lower()))
            else:
                out.append(("value", tok))
        i += 1
    return out


def parse_cif(text: str) -> dict[str, list[str]]:
    """Items and loop columns of one CIF data block: name (lower case) -> list of values."""
    toks = _tokens(text)
    items: dict[str, list[str]] = {}
    i = 0
    while i < len(toks):
        kind, val = toks[i]
        if kind == "loop":
            names = []
            i += 1
            while i < len(toks) and toks[i][0] == "name":
                names.append(toks[i][1])
                i += 1
            values = []
            while i < len(toks) and toks[i][0] == "value":
                values.append(toks[i][1])
                i += 1
            for k, name in enumerate(names):
                items[name] = values[k :: len(names)]
        elif kind == "name":
            if i + 1 < len(toks) and toks[i + 1][0] == "value":
                items[val] = [toks[i + 1][1]]
                i += 1
            i += 1
        else:
            i += 1
    return items


_MINI_LINE = re.compile(r"^#\s*([A-Za-z_][\w-]*)[:=]?\s*(.*?)\s*$")
_TIMESTAMP = re.compile(r"^#\s*(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?)")


def _parse_mini(contents: str) -> tuple[dict[str, str], str | None]:
    mini: dict[str, str] = {}
    stamp = None
    for line in contents.splitlines():
        line = line.strip()
        if m := _TIMESTAMP.match(line):
            stamp = m.group(1)
            continue
        if m := re.match(r"^#\s*(\w+)\s+sensor,\s*thickness\s+(\S+)\s*m", line):
            mini["Sensor_material"] = m.group(1)
            mini["Sensor_thickness"] = m.group(2)
            continue
        if m := _MINI_LINE.match(line):
            mini.setdefault(m.group(1), m.group(2))
    return mini, stamp


def _parse_mime(text: str) -> dict[str, str]:
    mime: dict[str, str] = {}
    for line in text.splitlines():
        if m := re.match(r"^([A-Za-z][\w-]*):\s*(.*?)\s*$", line):
            mime[m.group(1).lower()] = m.group(2).strip('"')
    return mime


def parse_header(path: str, raw_header: bytes) -> CbfHeader:
    """Split header bytes into CIF items, the Pilatus mini header and the MIME binary headers."""
    text = raw_header.decode("latin-1")
    cut = text.find(BINARY_SECTION.decode())
    cif_text, mime_text = (text, "") if cut < 0 else (text[:cut], text[cut:])
    cif = parse_cif(cif_text)
    contents = cif.get("_array_data.header_contents", [""])[0]
    mini, stamp = _parse_mini(contents)
    byte_offset = "x-cbf_byte_offset" in mime_text.lower()
    mime = _parse_mime(mime_text)
    return CbfHeader(path=path, cif=cif, mini=mini, mime=mime, timestamp=stamp, byte_offset=byte_offset)


def read_header(path: str) -> CbfHeader:
    """Read and parse only the header of a CBF (plain, .gz or .bz2)."""
    return parse_header(path, read_header_bytes(path))


# ------------------------------------------------------------------------------------------- pixels


def read_raw(path: str, verify_md5: bool = False) -> np.ndarray:
    """Decode the image array (slow, fast) of any CBF (also .gz/.bz2) in its native dtype.

    ``verify_md5`` also checks the binary data against the header's Content-MD5 (about 8 ms per
    Pilatus 6M image; DIALS does not check it)."""
    data = _read_all(path)
    start = data.find(BINARY_START, max(data.find(BINARY_SECTION), 0))
    _check_is_cbf(path, data[:64], data.find(BINARY_SECTION) >= 0 and start >= 0)
    header = parse_header(path, data[:start])
    shape = header.shape
    _check_element_count(header, shape)
    binary = _binary_section(header, data, start + len(BINARY_START), verify_md5)
    if header.byte_offset and shape[0] * shape[1] > len(binary):  # each pixel takes at least one byte
        raise ImageError(
            f"{path}: corrupt CBF: {len(binary)} bytes of data cannot hold {shape[1]} x {shape[0]} pixels; "
            f"{_DAMAGED}"
        )
    try:
        arr = _decode(header, data, binary, shape)
    except ImageError:
        raise
    except Exception as e:  # fabio raises many types (AssertionError, ValueError, ...)
        raise ImageError(f"{path}: cannot decode CBF data ({type(e).__name__}: {e}); {_DAMAGED}") from e
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


# Byte-offset decoding (CBF spec, x-CBF_BYTE_OFFSET): each pixel is the previous one plus a delta stored
# in 1 byte; the byte -128 (0x80) announces a 2-byte delta, whose value -32768 announces a 4-byte delta,
# whose value -2**31 announces an 8-byte one (all little-endian, two's complement). A damaged stream is
# reported, never decoded into plausible garbage: a stream that ends before the last pixel, an escape
# cut short, or a running value outside the pixel type all fail.
#
# Speed: almost every delta is one byte, so the hot loop must not branch on the data beyond the escape
# test: the byte is sign-extended by a cast (a compare-and-subtract is a branch that noisy images
# mispredict), and the range check is one unsigned compare. While the longest delta (1 + 2 + 4 + 8
# bytes) surely fits in what is left of the stream the loop needs no bounds checks; the last few pixels
# go through a careful loop that checks every read. A noisy Pilatus 6M image decodes in about 6 ms
# instead of 25 ms with a straightforward loop.
_BO_OK, _BO_SHORT, _BO_CUT, _BO_RANGE = 0, 1, 2, 3
_BO_LONGEST = 15  # bytes of the longest delta: 0x80, 0x8000, 0x80000000 and the 8-byte value


@numba.njit(cache=True, nogil=True)
def _int16_at(buf, pos):  # pragma: no cover - compiled
    return np.int64(np.int16(np.uint16(buf[pos]) | (np.uint16(buf[pos + 1]) << np.uint16(8))))


@numba.njit(cache=True, nogil=True)
def _int32_at(buf, pos):  # pragma: no cover - compiled
    u = np.uint32(buf[pos]) | (np.uint32(buf[pos + 1]) << np.uint32(8))
    u |= (np.uint32(buf[pos + 2]) << np.uint32(16)) | (np.uint32(buf[pos + 3]) << np.uint32(24))
    return np.int64(np.int32(u))


@numba.njit(cache=True, nogil=True)
def _int64_at(buf, pos):  # pragma: no cover - compiled
    u = np.uint64(0)
    for k in range(8):
        u |= np.uint64(buf[pos + k]) << np.uint64(8 * k)
    return np.int64(u)


@numba.njit(cache=True, nogil=True)
def _escaped_delta(buf, pos):  # pragma: no cover - compiled
    """(delta, next position) of the escaped delta after a 0x80 byte; all its bytes must be in ``buf``."""
    d = _int16_at(buf, pos)
    pos += 2
    if d == -32768:
        d = _int32_at(buf, pos)
        pos += 4
        if d == -2147483648:
            d = _int64_at(buf, pos)
            pos += 8
    return d, pos


@numba.njit(cache=True, nogil=True)
def _fast_run(buf, out, lo, hi):  # pragma: no cover - compiled
    """Decode while the longest delta surely fits; returns (status, next pixel, position, value)."""
    span = np.uint64(hi - lo)
    i = 0
    pos = 0
    value = np.int64(0)
    while True:
        # Each pixel takes at most _BO_LONGEST bytes, so this many pixels cannot read past the end.
        block = min(out.size - i, (buf.size - pos) // _BO_LONGEST)
        if block <= 0:
            return _BO_OK, i, pos, value
        for j in range(i, i + block):
            d = np.int64(np.int8(buf[pos]))
            pos += 1
            if d == -128:
                d, pos = _escaped_delta(buf, pos)
                if d > hi - value or d < lo - value:  # before the sum: an 8-byte delta could overflow it
                    return _BO_RANGE, j, pos, value
            value += d
            if np.uint64(value - lo) > span:  # below lo wraps to a huge unsigned number
                return _BO_RANGE, j, pos, value
            out[j] = value
        i += block


@numba.njit(cache=True, nogil=True)
def _careful_run(buf, out, lo, hi, start, pos, value):  # pragma: no cover - compiled
    """Decode pixels ``start``.. checking every read; returns (status, pixel index, byte position)."""
    m = buf.size
    for i in range(start, out.size):
        if pos >= m:
            return _BO_SHORT, i, pos
        d = np.int64(np.int8(buf[pos]))
        pos += 1
        if d == -128:
            if pos + 2 > m:
                return _BO_CUT, i, pos
            d = _int16_at(buf, pos)
            pos += 2
            if d == -32768:
                if pos + 4 > m:
                    return _BO_CUT, i, pos
                d = _int32_at(buf, pos)
                pos += 4
                if d == -2147483648:
                    if pos + 8 > m:
                        return _BO_CUT, i, pos
                    d = _int64_at(buf, pos)
                    pos += 8
        if d > hi - value or d < lo - value:
            return _BO_RANGE, i, pos
        value += d
        out[i] = value
    return _BO_OK, out.size, pos


@numba.njit(cache=True, nogil=True)
def _byte_offset_kernel(buf, out, lo, hi):  # pragma: no cover - compiled
    """Decode into ``out``; returns (status, pixel index, byte position) as in the codes above."""
    status, i, pos, value = _fast_run(buf, out, lo, hi)
    if status != _BO_OK:
        return status, i, pos
    return _careful_run(buf, out, lo, hi, i, pos, value)


def decode_byte_offset(
    stream: bytes | memoryview | np.ndarray,
    count: int,
    dtype: np.dtype,
    path: str = "<stream>",
    shape: tuple[int, int] | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """``count`` pixels of type ``dtype`` from a byte-offset stream; ImageError for a damaged stream.

    Bytes after the last pixel are ignored (without X-Binary-Size the stream runs to the file's end).
    ``out`` (C-contiguous, ``count`` elements of ``dtype``) is filled and returned instead of a new
    array, so that a caller can reuse one buffer per image shape."""
    dtype = np.dtype(dtype)
    info = np.iinfo(dtype)
    out = _output_buffer(out, count, dtype)
    buf = np.frombuffer(stream, np.uint8)  # no copy of the (large) stream
    status, i, pos = _byte_offset_kernel(buf, out, np.int64(info.min), np.int64(info.max))
    if status == _BO_SHORT:
        says = f"{shape[1]} x {shape[0]}" if shape else f"{count} pixels"
        raise ImageError(
            f"{path}: corrupt CBF: decoded {i} pixels, header says {says} (the byte-offset data ends early); "
            f"{_DAMAGED}"
        )
    if status == _BO_CUT:
        raise ImageError(
            f"{path}: corrupt CBF: the byte-offset data is cut short inside pixel {i} (byte {pos}); "
            f"{_DAMAGED}"
        )
    if status == _BO_RANGE:
        raise ImageError(
            f"{path}: corrupt CBF: pixel {i} of the byte-offset data leaves the {dtype} range "
            f"(byte {pos}); {_DAMAGED}"
        )
    return out


def _output_buffer(out: np.ndarray | None, count: int, dtype: np.dtype) -> np.ndarray:
    """A flat array of ``count`` ``dtype`` elements: a new one, or a flat view of a caller's buffer."""
    if out is None:
        return np.empty(count, dtype)
    if out.dtype != dtype or out.size != count or not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError(f"output buffer must be a writeable C-contiguous array of {count} {dtype}")
    return out.reshape(-1)


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
            f"{header.path}: truncated CBF: binary section has {available} of {int(size)} bytes; {_DAMAGED}"
        )
    binary = view[offset : offset + int(size)]
    md5 = header.mime.get("content-md5")
    if verify_md5 and md5 and base64.b64encode(hashlib.md5(binary).digest()).decode() != md5:
        raise ImageError(
            f"{header.path}: corrupt CBF: binary data does not match its Content-MD5; {_DAMAGED}"
        )
    return binary


def _check_element_count(header: CbfHeader, shape: tuple[int, int]) -> None:
    n = header.mime.get("x-binary-number-of-elements")
    if n is not None and n.isdigit() and int(n) != shape[0] * shape[1]:
        raise ImageError(
            f"{header.path}: CBF header element count {n} does not match dimensions {shape[1]} x {shape[0]}; "
            f"{_DAMAGED}"
        )


def _checked_array(header: CbfHeader, arr: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if arr.size != shape[0] * shape[1]:
        raise ImageError(
            f"{header.path}: corrupt CBF: decoded {arr.size} pixels, header says {shape[1]} x {shape[0]}; "
            f"{_DAMAGED}"
        )
    arr = arr.reshape(shape)
    dtype = _ELEMENT_TYPES.get(header.mime.get("x-binary-element-type", "").lower())
    if dtype is not None and arr.dtype != dtype:
        arr = arr.astype(dtype)
    return arr


# ------------------------------------------------------------------------------------------- models


_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    m = _NUMBER.search(text)
    return float(m.group(0)) if m else None


def _numbers(text: str) -> list[float]:
    """Every number in a text such as '172e-6 m x 172e-6 m' or '(730.00, 865.00) pixels'."""
    return [float(v) for v in _NUMBER.findall(text)]


def _epoch(stamp: str | None) -> float:
    if not stamp:
        return 0.0
    try:
        return datetime.fromisoformat(stamp).replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        return 0.0


def _rotation(axis: np.ndarray, angle_deg: float) -> np.ndarray:
    """Right-handed rotation matrix about a unit axis."""
    x, y, z = axis / np.linalg.norm(axis)
    a = math.radians(angle_deg)
    c, s = math.cos(a), math.sin(a)
    t = 1 - c
    return np.array(
        [
            [t * x * x + c, t * x * y - s * z, t * x * z + s * y],
            [t * x * y + s * z, t * y * y + c, t * y * z - s * x],
            [t * x * z - s * y, t * y * z + s * x, t * z * z + c],
        ]
    )


def pilatus_gap_rects(nfast: int, nslow: int) -> list[tuple[int, int, int, int]]:
    """Module-gap rectangles (x0, y0, x1, y1) for a Pilatus image of whole modules, else []."""
    (mf, ms), (gf, gs) = PILATUS_MODULE, PILATUS_GAP
    if (nfast + gf) % (mf + gf) or (nslow + gs) % (ms + gs):
        return []
    nx, ny = (nfast + gf) // (mf + gf), (nslow + gs) // (ms + gs)
    rects = [(k * mf + (k - 1) * gf, 0, k * (mf + gf), nslow) for k in range(1, nx)]
    rects += [(0, k * ms + (k - 1) * gs, nfast, k * (ms + gs)) for k in range(1, ny)]
    return rects


def eiger_gap_rects(nfast: int, nslow: int) -> list[tuple[int, int, int, int]]:
    """Module-gap rectangles (x0, y0, x1, y1) of an EIGER (1030 x 514 modules, gaps 10 and 37) or
    EIGER2 (1028 x 512, gaps 12 and 38) image of whole modules, else []."""
    for (mf, ms), (gf, gs) in EIGER_MODULES:
        if (nfast + gf) % (mf + gf) == 0 and (nslow + gs) % (ms + gs) == 0:
            nx, ny = (nfast + gf) // (mf + gf), (nslow + gs) // (ms + gs)
            if nx > 4:
                continue
            rects = [(k * mf + (k - 1) * gf, 0, k * (mf + gf), nslow) for k in range(1, nx)]
            return rects + [(0, k * ms + (k - 1) * gs, nfast, k * (ms + gs)) for k in range(1, ny)]
    return []


def _detector_name(h: CbfHeader) -> tuple[str, str]:
    """(detector string, serial number) from '# Detector: NAME, S/N SERIAL ...'."""
    text = h.mini.get("Detector", "")
    m = re.search(r"S/N\s+([\w-]+)", text)
    return text, (m.group(1) if m else "")


def _panel_common(h: CbfHeader, nfast: int, nslow: int) -> dict:
    name, _ = _detector_name(h)
    full_overload = _number(h.first("_array_intensities.overload"))
    cutoff = full_overload if full_overload is not None else _number(h.mini.get("Count_cutoff"))
    is_pad = any(k in name.upper() for k in ("PILATUS", "EIGER"))
    material = h.mini.get("Sensor_material", "")
    material = {"silicon": "Si"}.get(material.lower(), material)
    thickness = _number(h.mini.get("Sensor_thickness"))
    eiger = "EIGER" in name.upper()
    default_cutoff = EIGER_DEFAULT_CUTOFF if eiger else DEFAULT_CUTOFF
    rects = pilatus_gap_rects(nfast, nslow) if "PILATUS" in name.upper() else []
    return dict(
        image_size=(nfast, nslow),
        trusted_range=(0.0, cutoff if cutoff is not None else default_cutoff),
        type="SENSOR_PAD" if is_pad or h.mini else "CCD",
        mask_rects=eiger_gap_rects(nfast, nslow) if eiger else rects,
        thickness=thickness * 1000.0 if thickness is not None else 0.0,
        material=material,
    )


def _mini_models(h: CbfHeader) -> tuple[Detector, Beam, Goniometer, ScanInfo]:
    nslow, nfast = h.shape
    if dls_p12m.is_p12m(h.mini.get("Detector", "")):
        return _p12m_models(h)
    px = _numbers(h.mini.get("Pixel_size", ""))
    beam_xy = _numbers(h.mini.get("Beam_xy", ""))
    wavelength = _number(h.mini.get("Wavelength"))
    distance = _number(h.mini.get("Detector_distance"))
    if len(px) < 2 or len(beam_xy) < 2 or wavelength is None or distance is None:
        raise ImageError(
            f"{h.path}: Pilatus header lacks Pixel_size, Beam_xy, Wavelength or Detector_distance"
        )
    pf, ps = px[0] * 1000.0, px[1] * 1000.0
    bx, by = beam_xy[0], beam_xy[1]
    rot = _rotation(np.array([1.0, 0.0, 0.0]), _number(h.mini.get("Detector_2theta")) or 0.0)
    panel = Panel(
        pixel_size=(pf, ps),
        origin=rot @ np.array([-bx * pf, by * ps, -distance * 1000.0]),
        fast_axis=rot @ np.array([1.0, 0.0, 0.0]),
        slow_axis=rot @ np.array([0.0, -1.0, 0.0]),
        **_panel_common(h, nfast, nslow),
    )
    _, serial = _detector_name(h)
    gonio = Goniometer(ROTATION_AXIS_BY_SERIAL.get(serial, (1.0, 0.0, 0.0)))
    return Detector([panel]), Beam(wavelength), gonio, _mini_scan(h)


def _mini_scan(h: CbfHeader) -> ScanInfo:
    exposure = _number(h.mini.get("Exposure_period")) or _number(h.mini.get("Exposure_time")) or 0.0
    return ScanInfo(
        start_angle=_number(h.mini.get("Start_angle")) or 0.0,
        angle_increment=_number(h.mini.get("Angle_increment")) or 0.0,
        exposure_time=exposure,
        epoch=_epoch(h.timestamp),
    )


def _p12m_models(h: CbfHeader) -> tuple[Detector, Beam, Goniometer, ScanInfo]:
    """The DLS I23 PILATUS 12M: 24 row panels and the kappa goniometer (see ``dls_p12m``)."""
    wavelength = _number(h.mini.get("Wavelength"))
    if wavelength is None:
        raise ImageError(f"{h.path}: Pilatus header lacks Wavelength")
    if h.shape != (dls_p12m.ROWS * dls_p12m.ROW_PITCH - 17, dls_p12m.ROW_SIZE[0]):
        raise ImageError(f"{h.path}: PILATUS 12M image is {h.shape}, expected 5071 x 2463 (slow, fast)")
    thickness = (_number(h.mini.get("Sensor_thickness")) or 0.00032) * 1000.0
    beam_xy = _numbers(h.mini.get("Beam_xy", ""))[:2]
    distance = _number(h.mini.get("Detector_distance"))
    if len(beam_xy) < 2 or distance is None:
        raise ImageError(f"{h.path}: Pilatus header lacks Beam_xy or Detector_distance")
    scan = _mini_scan(h)
    detector = dls_p12m.detector(thickness, scan.epoch, (beam_xy[0], beam_xy[1]), distance * 1000.0)
    return detector, Beam(wavelength), dls_p12m.goniometer(h.mini, scan.epoch), scan


def shadow_from_header(h: CbfHeader, goniometer: Goniometer) -> ShadowMasker | None:
    """The format's dynamic goniometer shadow (dxtbx dynamic_shadowing=Auto), if it has one."""
    if h.mini and dls_p12m.is_p12m(h.mini.get("Detector", "")):
        return dls_p12m.shadow(goniometer)
    return None


@dataclass
class _Axis:
    type: str
    equipment: str
    depends_on: str
    vector: np.ndarray
    offset: np.ndarray


class _AxisSet:
    """imgCIF axis chain with the settings of one frame."""

    def __init__(self, h: CbfHeader) -> None:
        self.axes: dict[str, _Axis] = {}
        for k, ident in enumerate(h.cif.get("_axis.id", [])):
            vec = [_number(h.cell(f"_axis.vector[{j}]", k)) or 0.0 for j in (1, 2, 3)]
            off = [_number(h.cell(f"_axis.offset[{j}]", k)) or 0.0 for j in (1, 2, 3)]
            self.axes[ident] = _Axis(
                type=(h.cell("_axis.type", k) or "").lower(),
                equipment=(h.cell("_axis.equipment", k) or "").lower(),
                depends_on=h.cell("_axis.depends_on", k) or ".",
                vector=np.array(vec, dtype=float),
                offset=np.array(off, dtype=float),
            )
        self.settings: dict[str, float] = {}
        self._read_settings(h)

    def _read_settings(self, h: CbfHeader) -> None:
        # Scan start values first, then the frame's own values override them.
        for prefix, angle, disp in (
            ("_diffrn_scan_axis", "angle_start", "displacement_start"),
            ("_diffrn_scan_frame_axis", "angle", "displacement"),
        ):
            for k, ident in enumerate(h.cif.get(f"{prefix}.axis_id", [])):
                axis = self.axes.get(ident)
                if axis is None:
                    continue
                col = angle if axis.type == "rotation" else disp
                value = _number(h.cell(f"{prefix}.{col}", k))
                if value is not None:
                    self.settings[ident] = value

    def chain(self, ident: str) -> list[str]:
        """The axis and every axis it depends on, innermost first."""
        out = []
        while ident not in (".", "", "?") and ident in self.axes and ident not in out:
            out.append(ident)
            ident = self.axes[ident].depends_on
        return out

    def point(self, ident: str) -> np.ndarray:
        """Lab position of the zero point of an axis after applying the whole chain."""
        p = np.zeros(3)
        for a in self.chain(ident):
            ax = self.axes[a]
            s = self.settings.get(a, 0.0)
            if ax.type == "rotation":
                p = _rotation(ax.vector, s) @ p + ax.offset
            else:
                p = p + ax.offset + s * ax.vector
        return p

    def direction(self, ident: str) -> np.ndarray:
        """Lab direction of an axis vector after the rotations of the axes it depends on."""
        v = self.axes[ident].vector.copy()
        for a in self.chain(ident)[1:]:
            ax = self.axes[a]
            if ax.type == "rotation":
                v = _rotation(ax.vector, self.settings.get(a, 0.0)) @ v
        return v


def _has_full_geometry(h: CbfHeader) -> bool:
    return "_axis.id" in h.cif and "_array_structure_list.axis_set_id" in h.cif


def _array_axes(h: CbfHeader, axes: _AxisSet) -> list[tuple[str, float, float, bool]]:
    """(axis id, displacement, increment mm, decreasing) for the fast then the slow array index."""
    rows = []
    ids = h.cif.get("_array_structure_list_axis.axis_set_id", [])
    for k, set_id in enumerate(h.cif["_array_structure_list.axis_set_id"]):
        prec = int(_number(h.cell("_array_structure_list.precedence", k)) or k + 1)
        direction = (h.cell("_array_structure_list.direction", k) or "increasing").lower()
        j = ids.index(set_id) if set_id in ids else -1
        axis_id = h.cell("_array_structure_list_axis.axis_id", j) or set_id
        disp = _number(h.cell("_array_structure_list_axis.displacement", j))
        inc = _number(h.cell("_array_structure_list_axis.displacement_increment", j))
        if axis_id not in axes.axes:
            raise ImageError(f"{h.path}: array axis {axis_id} not in the _axis loop")
        rows.append((prec, axis_id, disp or 0.0, inc, direction == "decreasing"))
    rows.sort()
    if len(rows) != 2:
        raise ImageError(f"{h.path}: expected 2 array axes, found {len(rows)}")
    return [(a, d, i if i is not None else 0.0, dec) for _, a, d, i, dec in rows]


def _full_models(h: CbfHeader) -> tuple[Detector, Beam, Goniometer, ScanInfo]:
    nslow, nfast = h.shape
    axes = _AxisSet(h)
    (fast_id, fast_disp, fast_inc, fast_dec), (slow_id, slow_disp, slow_inc, slow_dec) = _array_axes(h, axes)
    axes.settings[fast_id] = fast_disp
    axes.settings[slow_id] = slow_disp
    inner = slow_id if fast_id in axes.chain(slow_id) else fast_id
    fast = axes.direction(fast_id) * (-1 if fast_dec else 1)
    slow = axes.direction(slow_id) * (-1 if slow_dec else 1)
    sizes = [_number(v) for v in h.cif.get("_array_element_size.size", [])]
    pf = fast_inc or (sizes[0] * 1000.0 if sizes and sizes[0] else None)
    ps = slow_inc or (sizes[1] * 1000.0 if len(sizes) > 1 and sizes[1] else None)
    if not pf or not ps:
        raise ImageError(f"{h.path}: CBF header has no pixel size")
    name, _ = _detector_name(h)
    panel = Panel(
        pixel_size=(pf, ps),
        origin=axes.point(inner),
        fast_axis=fast,
        slow_axis=slow,
        identifier=name,
        **_panel_common(h, nfast, nslow),
    )
    return Detector([panel]), _full_beam(h, axes), *_full_scan(h, axes)


def _full_beam(h: CbfHeader, axes: _AxisSet) -> Beam:
    wavelength = _number(h.first("_diffrn_radiation_wavelength.wavelength"))
    if wavelength is None:
        wavelength = _number(h.mini.get("Wavelength"))
    if wavelength is None:
        raise ImageError(f"{h.path}: CBF header has no wavelength")
    source = [a for a in axes.axes.values() if a.equipment == "source"]
    return Beam(wavelength, source[0].vector if source else (0.0, 0.0, 1.0))


def _full_scan(h: CbfHeader, axes: _AxisSet) -> tuple[Goniometer, ScanInfo]:
    scan_axis, start, width = None, 0.0, 0.0
    gonio_ids = [a for a, ax in axes.axes.items() if ax.equipment == "goniometer" and ax.type == "rotation"]
    for k, ident in enumerate(h.cif.get("_diffrn_scan_axis.axis_id", [])):
        if ident in gonio_ids:
            inc = _number(h.cell("_diffrn_scan_axis.angle_increment", k)) or 0.0
            if scan_axis is None or (inc != 0 and width == 0):
                scan_axis, width = ident, inc
    if scan_axis is None and gonio_ids:
        scan_axis = gonio_ids[0]
    if scan_axis is not None:
        start = axes.settings.get(scan_axis, 0.0)
        gonio = Goniometer(axes.direction(scan_axis))
    else:
        gonio = Goniometer()
    exposure = _number(h.first("_diffrn_scan_frame.integration_time"))
    if exposure is None:
        exposure = _number(h.mini.get("Exposure_time")) or 0.0
    stamp = h.first("_diffrn_scan_frame.date") or h.timestamp
    return gonio, ScanInfo(start, width, exposure, _epoch(stamp))


def models_from_header(h: CbfHeader) -> tuple[Detector, Beam, Goniometer, ScanInfo]:
    """Detector, beam, goniometer and this image's scan values from a parsed header.

    Values that give no usable model (infinite numbers, zero-length axis vectors) are an ImageError:
    NaN geometry would otherwise cut a sweep into one-image sequences and change the spots."""
    if not (_has_full_geometry(h) or h.mini):
        raise ImageError(f"{h.path}: CBF header has neither a Pilatus mini header nor imgCIF geometry")
    try:
        with np.errstate(all="ignore"):
            models = _full_models(h) if _has_full_geometry(h) else _mini_models(h)
    except (ValueError, ArithmeticError) as e:  # e.g. math domain errors of infinite angles
        raise ImageError(f"{h.path}: CBF header values make no sense ({e}); {_BAD_HEADER}") from e
    _check_finite(h, *models)
    return models


_BAD_HEADER = "correct the image header, or leave the file out of the command"


def _check_finite(h: CbfHeader, detector: Detector, beam: Beam, gonio: Goniometer, scan: ScanInfo) -> None:
    values = {"wavelength": beam.wavelength, "beam direction": beam.direction}
    values["rotation axis"] = gonio.rotation_axis
    for name in ("start_angle", "angle_increment", "exposure_time", "epoch"):
        values[name.replace("_", " ")] = getattr(scan, name)
    for k, panel in enumerate(detector):
        where = f"panel {k} " if len(detector) > 1 else "detector "
        values[where + "origin"] = panel.origin
        values[where + "fast axis"] = panel.fast_axis
        values[where + "slow axis"] = panel.slow_axis
        values[where + "pixel size"] = panel.pixel_size
        values[where + "trusted range"] = panel.trusted_range
    for name, value in values.items():
        if not np.all(np.isfinite(np.asarray(value, dtype=float))):
            raise ImageError(
                f"{h.path}: CBF header gives no finite {name} (an infinite value or a zero-length axis "
                f"vector); {_BAD_HEADER}"
            )


def read_models(path: str) -> tuple[Detector, Beam, Goniometer, ScanInfo]:
    """Experiment models and scan values of one CBF file, from its header only."""
    return models_from_header(read_header(path))
