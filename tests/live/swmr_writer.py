"""A detector's writer for tests, run as its own process (HDF5 lets one process hold a file as an SWMR
writer while others read it, not the same process): appends the frames of a data file to a new one
under SWMR, one bitshuffle-LZ4 chunk per frame, as stored.

``python swmr_writer.py SOURCE TARGET FRAMES EVENTS HOLD``: writes the first FRAMES frames of SOURCE's
/entry/data/data; before each frame after the first, waits until EVENTS (a file path, or - for none)
has a line per frame written so far (so events must arrive while the file grows); keeps the file open
HOLD seconds after the last frame, then closes it.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import h5py
import hdf5plugin

DATA = "/entry/data/data"
WAIT_S = 120  # for an event line, at most


def wait_for_lines(path: Path, n: int) -> None:
    deadline = time.monotonic() + WAIT_S
    while not (path.exists() and len(path.read_text().splitlines()) >= n):
        if time.monotonic() > deadline:
            raise SystemExit(f"{path}: fewer than {n} events after {WAIT_S} s")
        time.sleep(0.05)


def main(source: str, target: str, frames: int, events: str, hold: float) -> None:
    with h5py.File(source, "r") as src, h5py.File(target, "w", libver="latest") as dst:
        given = src[DATA]
        shape = given.shape[1:]
        entry = dst.create_group("entry")
        entry.attrs["NX_class"] = "NXentry"
        group = entry.create_group("data")
        group.attrs["NX_class"] = "NXdata"
        data = group.create_dataset(
            "data",
            shape=(0, *shape),
            maxshape=(None, *shape),
            chunks=(1, *shape),
            dtype=given.dtype,
            **hdf5plugin.Bitshuffle(cname="lz4"),
        )
        dst.swmr_mode = True
        for k in range(frames):
            if k and events != "-":
                wait_for_lines(Path(events), k)
            data.resize(k + 1, axis=0)
            data.id.write_direct_chunk((k, 0, 0), given.id.read_direct_chunk((k, 0, 0))[1])
            data.flush()
            print(f"frame {k + 1} written", flush=True)
        time.sleep(hold)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], float(sys.argv[5]))
