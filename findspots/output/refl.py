"""Read and write DIALS msgpack reflection tables (``strong.refl``), docs/dials-behaviour.md#refl-format.

The file is one msgpack object::

    ["dials::af::reflection_table", version,
     {"identifiers": {id: str}, "nrows": N, "data": {name: [type_name, [N, raw]]}}]

Ordinary columns are the little-endian in-memory image of the C array. The ``Shoebox<>`` column is a
concatenation, row by row, of a 29-byte header (uint32 panel, 6 x int32 bbox, uint8 present flag) and,
when the flag is non-zero, the float32 data, the mask (int32 for flag 1, uint8 for flag 2) and the
float32 background, each in C order (z, y, x).

Everything is done with numpy on whole arrays or bounded chunks of rows; nothing is ever unpickled.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import secrets
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import msgpack
import numpy as np

TABLE_TAG = "dials::af::reflection_table"
SUPPORTED_VERSIONS = (1, 2)
SHOEBOX_TYPE = "Shoebox<>"

# type name -> (little-endian dtype, shape of one element)
COLUMN_TYPES: dict[str, tuple[np.dtype, tuple[int, ...]]] = {
    "bool": (np.dtype("u1"), ()),
    "int": (np.dtype("<i4"), ()),
    "std::size_t": (np.dtype("<u8"), ()),
    "double": (np.dtype("<f8"), ()),
    "vec2<double>": (np.dtype("<f8"), (2,)),
    "vec3<double>": (np.dtype("<f8"), (3,)),
    "mat3<double>": (np.dtype("<f8"), (3, 3)),
    "int6": (np.dtype("<i4"), (6,)),
    "cctbx::miller::index<>": (np.dtype("<i4"), (3,)),
}

# (dtype kind, itemsize, element shape) -> type name, used to infer a column's type when writing
_INFER: dict[tuple[str, int, tuple[int, ...]], str] = {
    ("b", 1, ()): "bool",
    ("i", 4, ()): "int",
    ("u", 8, ()): "std::size_t",
    ("f", 8, ()): "double",
    ("f", 8, (2,)): "vec2<double>",
    ("f", 8, (3,)): "vec3<double>",
    ("f", 8, (3, 3)): "mat3<double>",
    ("i", 4, (6,)): "int6",
    ("i", 4, (3,)): "cctbx::miller::index<>",
}

_HEADER_KEYS = ("identifiers", "nrows", "data")
# Packed per-row shoebox header: panel, bbox, present flag (29 bytes, no padding).
_SB_HEADER = np.dtype([("panel", "<u4"), ("bbox", "<i4", (6,)), ("present", "u1")])
_SB_HEADER_STRUCT = struct.Struct("<I6iB")
# Upper bound on the bytes one vectorised gather handles, so memory stays bounded for huge tables.
_CHUNK_BYTES = 1 << 20


@dataclass
class Shoeboxes:
    """All shoeboxes of a table, flattened: row i's voxels are ``[offsets[i], offsets[i+1])`` in C order."""

    panel: np.ndarray
    bbox: np.ndarray
    offsets: np.ndarray
    data: np.ndarray
    mask: np.ndarray
    background: np.ndarray
    # Rows without allocated arrays (DIALS flag 0); None means every row has arrays.
    present: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.panel = np.ascontiguousarray(self.panel, dtype=np.uint32).reshape(-1)
        self.bbox = np.ascontiguousarray(self.bbox, dtype=np.int32).reshape(-1, 6)
        self.offsets = np.ascontiguousarray(self.offsets, dtype=np.int64).reshape(-1)
        self.data = np.ascontiguousarray(self.data, dtype=np.float32).reshape(-1)
        self.mask = np.ascontiguousarray(self.mask, dtype=np.uint8).reshape(-1)
        self.background = np.ascontiguousarray(self.background, dtype=np.float32).reshape(-1)
        if self.present is not None:
            self.present = np.ascontiguousarray(self.present, dtype=bool).reshape(-1)
        self._validate()

    def _validate(self) -> None:
        n = len(self.panel)
        if len(self.bbox) != n or len(self.offsets) != n + 1:
            raise ValueError(f"shoeboxes: {n} panels, {len(self.bbox)} bboxes, {len(self.offsets)} offsets")
        if self.present is not None and len(self.present) != n:
            raise ValueError(f"shoeboxes: {n} rows but {len(self.present)} present flags")
        extents = self.bbox[:, 1::2].astype(np.int64) - self.bbox[:, 0::2]
        if (extents < 0).any():
            raise ValueError("shoeboxes: a bbox has x1 < x0, y1 < y0 or z1 < z0")
        sizes = extents.prod(axis=1)
        if self.present is not None:
            sizes[~self.present] = 0
        if self.offsets[0] != 0 or (np.diff(self.offsets) != sizes).any():
            raise ValueError("shoeboxes: offsets do not match the bbox volumes")
        voxels = int(self.offsets[-1])
        if not len(self.data) == len(self.mask) == len(self.background) == voxels:
            raise ValueError(
                f"shoeboxes: offsets give {voxels} voxels but data/mask/background have "
                f"{len(self.data)}/{len(self.mask)}/{len(self.background)}"
            )

    def __len__(self) -> int:
        return len(self.panel)

    def shape(self, i: int) -> tuple[int, int, int]:
        """Shape (nz, ny, nx) of shoebox i, from its bbox."""
        x0, x1, y0, y1, z0, z1 = (int(v) for v in self.bbox[i])
        return (z1 - z0, y1 - y0, x1 - x0)

    def get(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Views (data, mask, background) of shoebox i, each shaped (nz, ny, nx)."""
        if self.present is not None and not self.present[i]:
            raise ValueError(f"shoebox {i} has no allocated arrays")
        lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
        shape = self.shape(i)
        return (
            self.data[lo:hi].reshape(shape),
            self.mask[lo:hi].reshape(shape),
            self.background[lo:hi].reshape(shape),
        )


@dataclass
class ReflectionTable:
    """A reflection table as read from a file: columns, experiment identifiers and format version."""

    columns: dict[str, np.ndarray | Shoeboxes]
    identifiers: dict[int, str] = field(default_factory=dict)
    version: int = 1
    nrows: int = 0

    def __getitem__(self, name: str) -> np.ndarray | Shoeboxes:
        return self.columns[name]

    def __contains__(self, name: object) -> bool:
        return name in self.columns

    def __len__(self) -> int:
        return self.nrows


# ----------------------------------------------------------------------------------------------- writing


def column_type(values: np.ndarray | Shoeboxes) -> str:
    """The DIALS msgpack type name for a column, inferred from its dtype and shape (TypeError if none)."""
    if isinstance(values, Shoeboxes):
        return SHOEBOX_TYPE
    if not isinstance(values, np.ndarray) or values.ndim < 1:
        raise TypeError(f"a column must be a numpy array or Shoeboxes, not {type(values).__name__}")
    key = (values.dtype.kind, values.dtype.itemsize, tuple(values.shape[1:]))
    try:
        return _INFER[key]
    except KeyError:
        raise TypeError(f"no DIALS column type for dtype {values.dtype} with shape {values.shape}") from None


def write_reflections(
    path: str | os.PathLike,
    columns: Mapping[str, np.ndarray | Shoeboxes],
    identifiers: Mapping[int, str] | None = None,
    version: int = 1,
) -> None:
    """Atomically write a DIALS msgpack reflection table (version 1: int32 masks, read by every DIALS)."""
    if version not in SUPPORTED_VERSIONS:
        raise ValueError(f"reflection table version must be 1 or 2, not {version}")
    names = sorted(columns, key=lambda s: s.encode())
    types = {name: column_type(columns[name]) for name in names}
    nrows = _common_length(columns, names)
    # DIALS keeps identifiers in a std::map, so they are written in ascending id order.
    idents = {int(k): str(v) for k, v in sorted((identifiers or {}).items(), key=lambda kv: int(kv[0]))}
    with atomic_file(Path(path)) as fh:
        _write_table(fh, columns, names, types, nrows, idents, version)


def _common_length(columns: Mapping[str, np.ndarray | Shoeboxes], names: list[str]) -> int:
    lengths = {name: len(columns[name]) for name in names}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"columns have different lengths: {lengths}")
    return next(iter(lengths.values()), 0)


def _write_table(fh, columns, names, types, nrows, identifiers, version) -> None:
    packer = msgpack.Packer(use_bin_type=True)
    fh.write(packer.pack_array_header(3))
    fh.write(packer.pack(TABLE_TAG))
    fh.write(packer.pack(version))
    fh.write(packer.pack_map_header(3))
    fh.write(packer.pack("identifiers"))
    fh.write(packer.pack(identifiers))
    fh.write(packer.pack("nrows"))
    fh.write(packer.pack(nrows))
    fh.write(packer.pack("data"))
    fh.write(packer.pack_map_header(len(names)))
    for name in names:
        fh.write(packer.pack(name))
        fh.write(packer.pack_array_header(2))
        fh.write(packer.pack(types[name]))
        fh.write(packer.pack_array_header(2))
        fh.write(packer.pack(nrows))
        values = columns[name]
        if isinstance(values, Shoeboxes):
            flag = version  # version 1 files carry flag 1 / int32 masks, version 2 flag 2 / uint8 masks
            fh.write(_bin_header(_shoebox_blob_size(values, flag)))
            for chunk in _shoebox_blob_chunks(values, flag):
                fh.write(chunk)
        else:
            dtype, _ = COLUMN_TYPES[types[name]]
            raw = np.ascontiguousarray(values, dtype=dtype)
            fh.write(_bin_header(raw.nbytes))
            fh.write(memoryview(raw.reshape(-1)).cast("B"))


def _bin_header(nbytes: int) -> bytes:
    # The smallest msgpack bin encoding, as msgpack.packb would choose.
    if nbytes < 1 << 8:
        return struct.pack(">BB", 0xC4, nbytes)
    if nbytes < 1 << 16:
        return struct.pack(">BH", 0xC5, nbytes)
    if nbytes < 1 << 32:
        return struct.pack(">BI", 0xC6, nbytes)
    raise ValueError(f"column of {nbytes} bytes is too large for msgpack")


def _mask_itemsize(flag: int) -> int:
    return 4 if flag == 1 else 1


def _row_voxels(sb: Shoeboxes) -> np.ndarray:
    return np.diff(sb.offsets)


def _present(sb: Shoeboxes) -> np.ndarray:
    return np.ones(len(sb), dtype=bool) if sb.present is None else sb.present


def _shoebox_blob_size(sb: Shoeboxes, flag: int) -> int:
    return _SB_HEADER.itemsize * len(sb) + int(sb.offsets[-1]) * (8 + _mask_itemsize(flag))


def _row_chunks(sb: Shoeboxes, flag: int) -> Iterator[tuple[int, int]]:
    """Row ranges whose blob bytes are about _CHUNK_BYTES each (at least one row)."""
    row_bytes = _SB_HEADER.itemsize + _row_voxels(sb) * (8 + _mask_itemsize(flag))
    ends = np.cumsum(row_bytes)
    lo = 0
    while lo < len(sb):
        base = ends[lo - 1] if lo else 0
        hi = max(int(np.searchsorted(ends, base + _CHUNK_BYTES, side="right")), lo + 1)
        yield lo, hi
        lo = hi


def _shoebox_blob_chunks(sb: Shoeboxes, flag: int) -> Iterator[memoryview]:
    """The Shoebox<> blob in pieces of bounded size, interleaving headers and arrays without a row loop."""
    present = _present(sb)
    mask_dtype = np.dtype("<i4") if flag == 1 else np.dtype("u1")
    for lo, hi in _row_chunks(sb, flag):
        v0, v1 = int(sb.offsets[lo]), int(sb.offsets[hi])
        header = np.zeros(hi - lo, dtype=_SB_HEADER)
        header["panel"] = sb.panel[lo:hi]
        header["bbox"] = sb.bbox[lo:hi]
        header["present"] = np.where(present[lo:hi], flag, 0)
        parts = [
            header.view(np.uint8),
            sb.data[v0:v1].astype("<f4", copy=False).view(np.uint8),
            sb.mask[v0:v1].astype(mask_dtype).view(np.uint8),
            sb.background[v0:v1].astype("<f4", copy=False).view(np.uint8),
        ]
        source = np.concatenate(parts)
        # Segments in output order: header, data, mask, background of each row.
        voxels = sb.offsets[lo : hi + 1] - v0
        part_starts = np.cumsum([0] + [len(p) for p in parts[:-1]])
        starts = np.stack(
            [
                part_starts[0] + _SB_HEADER.itemsize * np.arange(hi - lo),
                part_starts[1] + 4 * voxels[:-1],
                part_starts[2] + mask_dtype.itemsize * voxels[:-1],
                part_starts[3] + 4 * voxels[:-1],
            ],
            axis=1,
        )
        n = np.diff(voxels)
        lengths = np.stack([np.full(hi - lo, _SB_HEADER.itemsize), 4 * n, mask_dtype.itemsize * n, 4 * n], 1)
        yield memoryview(source[_segment_index(starts.ravel(), lengths.ravel())])


def _gather(buf: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The segments ``buf[starts[k]:starts[k] + lengths[k]]`` concatenated, in chunks of bounded memory."""
    lengths = lengths.astype(np.int64, copy=False)
    ends = np.cumsum(lengths)
    out = np.empty(int(ends[-1]) if len(ends) else 0, dtype=buf.dtype)
    lo = 0
    while lo < len(lengths):
        base = int(ends[lo - 1]) if lo else 0
        hi = max(int(np.searchsorted(ends, base + _CHUNK_BYTES, side="right")), lo + 1)
        out[base : int(ends[hi - 1])] = buf[_segment_index(starts[lo:hi], lengths[lo:hi])]
        lo = hi
    return out


def _segment_index(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Indices that gather the segments [starts[k], starts[k] + lengths[k]) one after another."""
    lengths = lengths.astype(np.int64, copy=False)
    total = int(lengths.sum())
    out_starts = np.cumsum(lengths) - lengths
    return np.repeat(starts.astype(np.int64, copy=False) - out_starts, lengths) + np.arange(total)


class atomic_file:
    """Context manager: a temporary file beside ``target``, fsynced and renamed onto it on success only."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self.tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        self.fh = None

    def __enter__(self):
        # os.open with 0o666 lets the umask decide permissions, as for an ordinary new file.
        fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        self.fh = os.fdopen(fd, "wb", buffering=1 << 20)
        return self.fh

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self.fh.flush()
                os.fsync(self.fh.fileno())
            self.fh.close()
            if exc_type is None:
                os.replace(self.tmp, self.target)
                _fsync_dir(self.target.parent)
        finally:
            if self.tmp.exists():
                self.tmp.unlink()


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems cannot fsync a directory; the rename is still done
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------------------------- reading

_MAGIC_DECOMPRESS = (
    (b"\xfd7zXZ\x00", lzma.decompress),
    (b"\x1f\x8b", gzip.decompress),
    (b"BZh", bz2.decompress),
)


def read_reflections(path: str | os.PathLike) -> ReflectionTable:
    """Read a DIALS msgpack reflection table (versions 1 and 2; xz/gzip/bz2 detected by magic bytes)."""
    path = Path(path)
    obj = _unpack(_decompressed(path.read_bytes(), path), path)
    try:
        return _parse_table(obj)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None


def _decompressed(raw: bytes, path: Path) -> bytes:
    for magic, decompress in _MAGIC_DECOMPRESS:
        if raw.startswith(magic):
            try:
                return decompress(raw)
            except Exception as err:  # any codec failure means a corrupt file
                raise ValueError(f"{path}: corrupt compressed file: {err}") from None
    return raw


def _unpack(raw: bytes, path: Path) -> object:
    kind = _foreign_format(raw)
    if kind:
        raise ValueError(
            f"{path}: not a msgpack reflection table (looks like {kind}); findspots reads msgpack only"
        )
    try:
        return msgpack.unpackb(raw, raw=False, strict_map_key=False)
    except Exception as err:  # msgpack raises several unrelated types
        raise ValueError(f"{path}: not a msgpack reflection table ({type(err).__name__}: {err})") from None


def _foreign_format(raw: bytes) -> str | None:
    # A pickle (protocol 2+) starts 0x80 <proto>; 0x80 alone is an empty msgpack map, never a table.
    if len(raw) >= 2 and raw[0] == 0x80 and 2 <= raw[1] <= 5:
        return "a Python pickle, e.g. an old DIALS strong.pickle, which is never unpickled"
    if raw.startswith(b"\x89HDF\r\n\x1a\n"):
        return "an HDF5 file"
    if raw[:1] in (b"(", b"c", b"]", b"}"):
        return "a Python pickle (protocol 0/1), which is never unpickled"
    return None


def _parse_table(obj: object) -> ReflectionTable:
    if not (isinstance(obj, list) and len(obj) == 3 and obj[0] == TABLE_TAG):
        raise ValueError(f"not a DIALS reflection table (expected [{TABLE_TAG!r}, version, {{...}}])")
    version, header = obj[1], obj[2]
    if version not in SUPPORTED_VERSIONS or isinstance(version, bool):
        raise ValueError(f"unsupported reflection table version {version!r} (1 and 2 are read)")
    if not isinstance(header, dict):
        raise ValueError("table header is not a map")
    unknown = set(header) - set(_HEADER_KEYS)
    if unknown:
        raise ValueError(f"unknown header key(s) {sorted(map(str, unknown))}")
    nrows = header.get("nrows")
    if not isinstance(nrows, int) or isinstance(nrows, bool) or nrows < 0:
        raise ValueError(f"bad nrows {nrows!r}")
    identifiers = _parse_identifiers(header.get("identifiers", {}))
    data = header.get("data", {})
    if not isinstance(data, dict):
        raise ValueError("'data' is not a map")
    columns = {str(name): _parse_column(str(name), value, nrows) for name, value in data.items()}
    return ReflectionTable(columns=columns, identifiers=identifiers, version=version, nrows=nrows)


def _parse_identifiers(idents: object) -> dict[int, str]:
    if not isinstance(idents, dict) or not all(
        isinstance(k, int) and isinstance(v, str) for k, v in idents.items()
    ):
        raise ValueError("'identifiers' must map integer ids to strings")
    return dict(idents)


def _parse_column(name: str, value: object, nrows: int) -> np.ndarray | Shoeboxes:
    if not (isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)):
        raise ValueError(f"column {name!r} is not [type_name, [n, bytes]]")
    type_name, body = value
    if not (isinstance(body, list) and len(body) == 2):
        raise ValueError(f"column {name!r} ({type_name}) is not [n, bytes]")
    if not (isinstance(body[0], int) and isinstance(body[1], bytes)):
        raise ValueError(f"column {name!r} ({type_name}) is not [n, bytes]")
    n, raw = body
    if n != nrows:
        raise ValueError(f"column {name!r} has {n} rows but the table has {nrows}")
    if type_name == SHOEBOX_TYPE:
        return _parse_shoeboxes(name, raw, n)
    if type_name not in COLUMN_TYPES:
        raise ValueError(f"column {name!r} has unknown type {type_name!r}")
    dtype, shape = COLUMN_TYPES[type_name]
    expected = n * dtype.itemsize * int(np.prod(shape, dtype=np.int64))
    if len(raw) != expected:
        raise ValueError(f"column {name!r} ({type_name}) has {len(raw)} bytes, {n} rows need {expected}")
    array = np.frombuffer(raw, dtype=dtype).reshape((n, *shape)).copy()
    return array.view(bool) if type_name == "bool" else array


def _parse_shoeboxes(name: str, raw: bytes, n: int) -> Shoeboxes:
    starts, headers = _scan_shoebox_headers(name, raw, n)
    flags = headers["present"]
    nvox = np.where(flags > 0, _bbox_volumes(headers["bbox"]), 0)
    msize = np.where(flags == 1, 4, 1) * (flags > 0)
    buf = np.frombuffer(raw, dtype=np.uint8)
    data_at = starts + _SB_HEADER.itemsize
    mask_at = data_at + 4 * nvox
    bg_at = mask_at + msize * nvox
    data = _gather(buf, data_at, 4 * nvox).view("<f4")
    background = _gather(buf, bg_at, 4 * nvox).view("<f4")
    mask = _gather_masks(name, buf, mask_at, nvox, flags)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(nvox, out=offsets[1:])
    present = None if (flags > 0).all() else flags > 0
    return Shoeboxes(headers["panel"], headers["bbox"], offsets, data, mask, background, present)


def _scan_shoebox_headers(name: str, raw: bytes, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Start byte of every row's header, and the headers; sequential, as each row's size is in its header."""
    starts = np.empty(n, dtype=np.int64)
    unpack_from = _SB_HEADER_STRUCT.unpack_from
    hsize = _SB_HEADER.itemsize
    pos, end = 0, len(raw)
    for i in range(n):
        if pos + hsize > end:
            raise ValueError(f"column {name!r}: shoebox blob ends inside row {i}")
        starts[i] = pos
        _, x0, x1, y0, y1, z0, z1, flag = unpack_from(raw, pos)
        pos += hsize
        if flag:
            if flag not in (1, 2) or x1 < x0 or y1 < y0 or z1 < z0:
                raise ValueError(f"column {name!r}: bad shoebox header in row {i} (flag {flag})")
            pos += (x1 - x0) * (y1 - y0) * (z1 - z0) * (12 if flag == 1 else 9)
    if pos != end:
        raise ValueError(f"column {name!r}: shoebox blob has {end} bytes, rows need {pos}")
    buf = np.frombuffer(raw, dtype=np.uint8)
    headers = _gather(buf, starts, np.full(n, hsize)).view(_SB_HEADER)
    return starts, headers


def _bbox_volumes(bbox: np.ndarray) -> np.ndarray:
    return (bbox[:, 1::2].astype(np.int64) - bbox[:, 0::2]).prod(axis=1)


def _gather_masks(
    name: str, buf: np.ndarray, at: np.ndarray, nvox: np.ndarray, flags: np.ndarray
) -> np.ndarray:
    """Masks of all rows as uint8, whatever mix of int32 (flag 1) and uint8 (flag 2) rows the blob has."""
    wide = flags == 1
    if not wide.any():
        return _gather(buf, at, nvox)
    mask = np.empty(int(nvox.sum()), dtype=np.uint8)
    out_at = np.cumsum(nvox) - nvox
    wide_values = _gather(buf, at[wide], 4 * nvox[wide]).view("<i4")
    if ((wide_values < 0) | (wide_values > 255)).any():
        raise ValueError(f"column {name!r}: an int32 shoebox mask value does not fit the DIALS mask codes")
    mask[_segment_index(out_at[wide], nvox[wide])] = wide_values
    narrow = ~wide
    mask[_segment_index(out_at[narrow], nvox[narrow])] = _gather(buf, at[narrow], nvox[narrow])
    return mask
