"""Whether an image file that may still be being written can be read whole now (``input.watch``).

A CBF is complete once its binary section holds the ``X-Binary-Size`` bytes its header announces; a
.gz/.bz2 file once it decompresses to its end-of-stream marker (and, holding a CBF, its binary section
is whole); any other file once its size has stopped changing between two looks.
"""

from __future__ import annotations

import contextlib
import os

from findspots.errors import ImageError
from findspots.images.cbf_header import BINARY_SECTION, BINARY_START, looks_like_cbf, parse_header
from findspots.images.fileio import compression, peek, read_all

_CBF_HEADER_BYTES = 1 << 16  # a CBF's header and MIME lines are far shorter than this


def cbf_binary_complete(head: bytes, size: int) -> bool:
    """True when a CBF of ``size`` bytes, whose first bytes are ``head``, holds its whole binary section."""
    section = head.find(BINARY_SECTION)
    start = head.find(BINARY_START, max(section, 0))
    if section < 0 or start < 0:
        return False
    announced = parse_header("", head[:start]).mime.get("x-binary-size", "")
    return announced.isdigit() and start + len(BINARY_START) + int(announced) <= size


def is_complete(path: str, last_size: int | None) -> bool:
    """Whether ``path`` can be read whole now; ``last_size``: its size at the previous look (None: none).

    A file that is absent, empty or unreadable is not complete (yet)."""
    try:
        size = os.path.getsize(path)
        if size == 0:
            return False
        with open(path, "rb") as fh:
            magic = fh.read(3)
        if compression(magic) is not None:
            data = read_all(path)  # ImageError until the stream reaches its end marker
            return cbf_binary_complete(data, len(data)) if looks_like_cbf(data[:64]) else size == last_size
        if looks_like_cbf(peek(path)):
            with open(path, "rb") as fh:
                return cbf_binary_complete(fh.read(_CBF_HEADER_BYTES), size)
    except (OSError, ImageError):
        return False
    return size == last_size


class CompleteFiles:
    """:func:`is_complete` over repeated looks at files still being written: keeps each file's size at
    the previous look."""

    def __init__(self) -> None:
        self._sizes: dict[str, int] = {}

    def __call__(self, path: str) -> bool:
        """Whether ``path`` can be read whole now (this look's size is kept for the next)."""
        complete = is_complete(path, self._sizes.get(path))
        with contextlib.suppress(OSError):
            self._sizes[path] = os.path.getsize(path)
        return complete
