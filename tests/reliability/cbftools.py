"""Helpers of the reliability tests: the bundled real images, CBF surgery and running the command."""

from __future__ import annotations

import base64
import bz2
import hashlib
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
L_CYST = sorted((REPO / "data" / "l_cysteine").glob("l-cyst_01_*.cbf.bz2"))
L_CYST_ALL = sorted((REPO / "data" / "l_cysteine").glob("l-cyst_*.cbf.bz2"))
BINARY_START = b"\x0c\x1a\x04\xd5"


def real_cbf(k: int) -> bytes:
    """The uncompressed bytes of bundled L-cysteine image k (1-based, sweep 1)."""
    return bz2.decompress(L_CYST[k - 1].read_bytes())


def encode_byte_offset(values: np.ndarray) -> bytes:
    """The CBF byte-offset encoding of an integer array (C order), written independently of findspots."""
    v = np.asarray(values, np.int64).ravel()
    d = np.diff(v, prepend=np.int64(0))
    one = (d >= -127) & (d <= 127)
    two = ~one & (d >= -32767) & (d <= 32767)
    four = ~one & ~two & (d > -(2**31)) & (d < 2**31)
    eight = ~(one | two | four)
    lengths = np.select([one, two, four], [1, 3, 7], 15)
    starts = np.cumsum(lengths) - lengths
    buf = np.zeros(int(lengths.sum()), np.uint8)
    buf[starts[one]] = d[one].astype(np.int8).view(np.uint8)
    escapes = [
        (two, [], "<i2"),
        (four, [0x00, 0x80], "<i4"),
        (eight, [0x00, 0x80, 0x00, 0x00, 0x00, 0x80], "<i8"),
    ]
    for sel, markers, dtype in escapes:
        s = starts[sel]
        buf[s] = 0x80
        for k, byte in enumerate(markers):
            buf[s + 1 + k] = byte
        raw = d[sel].astype(dtype).view(np.uint8).reshape(len(s), np.dtype(dtype).itemsize)
        for k in range(raw.shape[1]):
            buf[s + 1 + len(markers) + k] = raw[:, k]
    return buf.tobytes()


def split_cbf(cbf: bytes) -> tuple[bytes, bytes, bytes]:
    """(text before the MIME header, MIME header through the binary start marker, binary and trailer)."""
    mime = cbf.index(b"--CIF-BINARY-FORMAT-SECTION--")
    start = cbf.index(BINARY_START, mime) + len(BINARY_START)
    return cbf[:mime], cbf[mime:start], cbf[start:]


def with_binary(cbf: bytes, stream: bytes, shape: tuple[int, int] | None = None, md5: bool = True) -> bytes:
    """``cbf`` with its binary data replaced by ``stream`` (and its size, optionally its dimensions and
    Content-MD5, updated to match); ``md5=False`` drops the checksum, as many writers do."""
    text, mime, rest = split_cbf(cbf)
    old_size = int(re.search(rb"X-Binary-Size:\s*(\d+)", mime).group(1))
    mime = re.sub(rb"X-Binary-Size:\s*\d+", b"X-Binary-Size: %d" % len(stream), mime)
    if shape is not None:
        slow, fast = shape
        mime = re.sub(
            rb"X-Binary-Number-of-Elements:\s*\d+", b"X-Binary-Number-of-Elements: %d" % (slow * fast), mime
        )
        mime = re.sub(
            rb"X-Binary-Size-Fastest-Dimension:\s*\d+", b"X-Binary-Size-Fastest-Dimension: %d" % fast, mime
        )
        mime = re.sub(
            rb"X-Binary-Size-Second-Dimension:\s*\d+", b"X-Binary-Size-Second-Dimension: %d" % slow, mime
        )
    digest = base64.b64encode(hashlib.md5(stream).digest())
    mime = re.sub(rb"Content-MD5:[^\r\n]*", b"Content-MD5: " + digest, mime)
    if not md5:
        mime = re.sub(rb"Content-MD5:[^\r\n]*\r?\n", b"", mime)
    return text + mime + stream + rest[old_size:]


def binary_of(cbf: bytes) -> bytes:
    """The byte-offset stream of a CBF (X-Binary-Size bytes after the start marker)."""
    _, mime, rest = split_cbf(cbf)
    return rest[: int(re.search(rb"X-Binary-Size:\s*(\d+)", mime).group(1))]


def findspots(args: list, cwd: Path, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    """``python -m findspots.app.cli ARGS`` in ``cwd``, as a user runs it (real exit code and stderr)."""
    return subprocess.run(
        [sys.executable, "-m", "findspots.app.cli", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )


def leftovers(directory: Path) -> list[str]:
    """Files in ``directory`` a failed run must not leave: results, temporary and checkpoint files."""
    names = []
    for p in directory.iterdir():
        if (
            p.name.endswith((".refl", ".tmp", ".npy", ".html"))
            or "checkpoint" in p.name
            or ".probe" in p.name
        ):
            names.append(p.name)
    return sorted(names)


MINI_HEADER = (
    "# Detector: PILATUS 300K, S/N 3-0101",
    "# 2016-03-05T09:01:45.613",
    "# Pixel_size 172e-6 m x 172e-6 m",
    "# Silicon sensor, thickness 0.000450 m",
    "# Exposure_time 0.0964000 s",
    "# Exposure_period 0.1000000 s",
    "# Count_cutoff 1048500 counts",
    "# Wavelength 0.97950 A",
    "# Detector_distance 0.20000 m",
    "# Beam_xy (15.00, 10.00) pixels",
    "# Start_angle 10.0000 deg.",
    "# Angle_increment 0.1000 deg.",
)


def mini_cbf(values: np.ndarray, header: tuple[str, ...] = MINI_HEADER, md5: bool = True) -> bytes:
    """A Pilatus miniCBF of a small (slow, fast) int32 array, as a detector writes one."""
    slow, fast = values.shape
    stream = encode_byte_offset(values)
    lines = [
        "###CBF: VERSION 1.5, CBFlib v0.7.8 - PILATUS detectors",
        "",
        "data_test",
        "",
        '_array_data.header_convention "PILATUS_1.2"',
        "_array_data.header_contents",
        ";",
        *header,
        ";",
        "",
        "_array_data.data",
        ";",
        "--CIF-BINARY-FORMAT-SECTION--",
        "Content-Type: application/octet-stream;",
        '     conversions="x-CBF_BYTE_OFFSET"',
        "Content-Transfer-Encoding: BINARY",
        f"X-Binary-Size: {len(stream)}",
        "X-Binary-ID: 1",
        'X-Binary-Element-Type: "signed 32-bit integer"',
        "X-Binary-Element-Byte-Order: LITTLE_ENDIAN",
        *([f"Content-MD5: {base64.b64encode(hashlib.md5(stream).digest()).decode()}"] if md5 else []),
        f"X-Binary-Number-of-Elements: {slow * fast}",
        f"X-Binary-Size-Fastest-Dimension: {fast}",
        f"X-Binary-Size-Second-Dimension: {slow}",
        "X-Binary-Size-Padding: 4095",
        "",
        "",
    ]
    text = "\r\n".join(lines).encode()
    return text + BINARY_START + stream + bytes(64) + b"\r\n--CIF-BINARY-FORMAT-SECTION----\r\n;\r\n\r\n"
