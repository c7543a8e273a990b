"""The same sweep as an NXmx master plus one bitshuffle-LZ4 data file (Eiger layout), made once from its CBFs.

The pixels are the CBFs' int32 values unchanged (module gaps -1, below the trusted range 0..Count_cutoff,
so both programs mask them as in the CBFs), one frame per HDF5 chunk as an Eiger writes them; the
geometry is what findspots reads from the first CBF, written with the test suite's NXmx writer
(``tests/images/nxmx_writer.py``). Debian's DIALS 3.12 reads the file only with ``HDF5_PLUGIN_PATH``
pointing at hdf5plugin's plugin folder (:func:`dials_env`).

    .venv/bin/python benchmarks/nxmx_copy.py            # the p6m sweep's copy (~1 min, ~0.3 GB)
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import h5py
import hdf5plugin
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from findspots.images.inputs import load_inputs  # noqa: E402
from tests.images.nxmx_writer import Geometry, write_master  # noqa: E402


def dials_env() -> dict[str, str]:
    """The environment in which DIALS 3.12 reads bitshuffle-LZ4 data."""
    return {**os.environ, "HDF5_PLUGIN_PATH": hdf5plugin.PLUGIN_PATH}


def nxmx_copy(paths: list[Path]) -> Path:
    """``<folder>/nxmx/<stem>_master.h5`` holding ``paths`` (a CBF sweep); written unless it exists."""
    folder = paths[0].parent / "nxmx"
    stem = paths[0].parent.name
    master = folder / f"{stem}_master.h5"
    stamp = folder / "paths.txt"
    listing = "\n".join(str(p) for p in paths)
    if master.exists() and stamp.exists() and stamp.read_text() == listing:
        return master
    folder.mkdir(exist_ok=True)
    (seq,) = load_inputs([str(p) for p in paths])
    panel = seq.detector[0]
    shape = panel.shape
    data_name = f"{stem}_data_000001.h5"
    with h5py.File(folder / data_name, "w") as fh:
        data = fh.create_group("entry").create_group("data")
        fh["entry"].attrs["NX_class"] = "NXentry"
        data.attrs["NX_class"] = "NXdata"
        ds = data.create_dataset(
            "data",
            shape=(len(seq), *shape),
            dtype=np.int32,
            chunks=(1, *shape),
            **hdf5plugin.Bitshuffle(cname="lz4"),
        )
        for k in range(len(seq)):
            ds[k] = seq.get_raw(k)[0]
        ds.attrs["image_nr_low"] = 1
        ds.attrs["image_nr_high"] = len(seq)
    start, width = seq.scan.oscillation
    geometry = Geometry(
        fast=tuple(panel.fast_axis),
        slow=tuple(panel.slow_axis),
        origin=tuple(panel.origin),
        pixel_size=panel.pixel_size[0],
        wavelength=seq.beam.wavelength,
        axis=tuple(seq.goniometer.rotation_axis),
        start=start,
        width=width,
        trusted=tuple(int(v) for v in panel.trusted_range),
        thickness_m=panel.thickness / 1000.0,
    )
    write_master(master, [data_name], len(seq), shape, geometry)
    stamp.write_text(listing)
    return master


def main(argv: list[str] | None = None) -> int:
    from make_sweep import make_sweep, preset

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="p6m")
    ap.add_argument("--root", help="sweep cache root (default $FINDSPOTS_BENCH_DIR or /tmp/findspots-bench)")
    args = ap.parse_args(argv)
    print(nxmx_copy(make_sweep(preset(args.preset), args.root)))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    sys.exit(main())
