"""A Dectris stream (SIMPLON stream v1) publisher for tests: replays the frames of an HDF5 data file.

The publisher binds a ZeroMQ PUSH socket on a free loopback port, as the detector does, and sends a
series' messages from a thread once a consumer connects. Frames are sent as stored: each chunk of the
data file (one frame per chunk) read with ``read_direct_chunk``, which for a bitshuffle-LZ4 file is the
stream's ``bsNN-lz4<`` payload; for an LZ4 file the HDF5 LZ4 filter's framing (16 bytes before the one
block) is taken off to give the stream's ``lz4<`` payload, a bare LZ4 block.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import zmq

LZ4_FILTER = 32004
LINGER_MS = 10000  # how long a closed publisher still delivers what is queued


def _json(value: dict) -> bytes:
    return json.dumps(value).encode()


def header(series: int, config: dict | None, pixel_mask: np.ndarray | None = None) -> list[bytes]:
    """The ``dheader-1.0`` message: header_detail all with a pixel mask, basic without, none for no config."""
    detail = "none" if config is None else ("all" if pixel_mask is not None else "basic")
    parts = [_json({"htype": "dheader-1.0", "series": series, "header_detail": detail})]
    if config is not None:
        parts.append(_json(config))
    if pixel_mask is not None:
        slow, fast = pixel_mask.shape
        flat = np.ones(pixel_mask.shape, np.float32)
        parts += [
            _json({"htype": "dflatfield-1.0", "shape": [fast, slow], "type": "float32"}),
            flat.tobytes(),
        ]
        mask = pixel_mask.astype("<u4")
        parts += [_json({"htype": "dpixelmask-1.0", "shape": [fast, slow], "type": "uint32"}), mask.tobytes()]
        table = np.zeros((2, 10), np.float32)
        parts += [
            _json({"htype": "dcountrate_table-1.0", "shape": [10, 2], "type": "float32"}),
            table.tobytes(),
        ]
    return parts


def frames(data_file: Path, series: int, dataset: str = "/entry/data/data") -> list[list[bytes]]:
    """The ``dimage-1.0`` messages of every frame of ``data_file`` (chunks of one frame)."""
    out = []
    with h5py.File(data_file, "r") as fh:
        ds = fh[dataset]
        n, slow, fast = ds.shape
        lz4 = ds.id.get_create_plist().get_filter(0)[0] == LZ4_FILTER
        bits = ds.dtype.itemsize * 8
        encoding = "lz4<" if lz4 else f"bs{bits}-lz4<"
        for k in range(n):
            _, chunk = ds.id.read_direct_chunk((k, 0, 0))
            payload = chunk[16:] if lz4 else chunk
            described = {
                "htype": "dimage_d-1.0",
                "shape": [fast, slow],
                "type": ds.dtype.name,
                "encoding": encoding,
                "size": len(payload),
            }
            times = {"htype": "dconfig-1.0", "start_time": k * 10**8, "stop_time": (k + 1) * 10**8}
            image = {"htype": "dimage-1.0", "series": series, "frame": k, "hash": ""}
            out.append([_json(image), _json(described), payload, _json(times)])
    return out


def end(series: int) -> list[bytes]:
    """The ``dseries_end-1.0`` message."""
    return [_json({"htype": "dseries_end-1.0", "series": series})]


class Publisher:
    """A PUSH socket on a free loopback port sending ``messages`` from a thread, then closing; a callable
    among the messages is called there instead (a pause mid-series, until it returns)."""

    def __init__(self, messages: list[list[bytes] | Callable[[], None]]):
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.PUSH)
        self._socket.setsockopt(zmq.LINGER, LINGER_MS)
        port = self._socket.bind_to_random_port("tcp://127.0.0.1")
        self.url = f"tcp://127.0.0.1:{port}"
        self._thread = threading.Thread(target=self._send, args=(messages,), daemon=True)
        self._thread.start()

    def _send(self, messages: list[list[bytes] | Callable[[], None]]) -> None:
        for parts in messages:
            if callable(parts):
                parts()
            else:
                self._socket.send_multipart(parts)  # blocks until a consumer is connected
        self._socket.close()

    def join(self) -> None:
        """Wait until every message was handed over, and release the context."""
        self._thread.join(LINGER_MS / 1000)
        if self._thread.is_alive():  # no consumer took the messages: drop them
            self._context.destroy(linger=0)
        else:
            self._context.term()
