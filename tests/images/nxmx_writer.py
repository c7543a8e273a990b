"""Write small NXmx master + data file sweeps for tests (h5py + hdf5plugin), from arrays and a geometry."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import h5py
import hdf5plugin
import numpy as np


@dataclass
class Geometry:
    """imgCIF-frame geometry of one flat panel and a single-axis goniometer."""

    fast: tuple[float, float, float] = (1.0, 0.0, 0.0)
    slow: tuple[float, float, float] = (0.0, -1.0, 0.0)
    origin: tuple[float, float, float] = (-43.0516, 51.7204, -100.0)  # mm
    pixel_size: float = 0.172  # mm
    wavelength: float = 0.9795  # Angstrom
    axis: tuple[float, float, float] = (1.0, 0.0, 0.0)
    start: float = 0.0
    width: float = 0.1
    trusted: tuple[int, int] = (0, 1048500)
    thickness_m: float = 0.00045
    frame_time: float = 0.1
    pixel_mask: np.ndarray | None = None
    extra_detector: dict = field(default_factory=dict)


MCSTAS = np.array([-1.0, 1.0, -1.0])  # imgCIF <-> NeXus: negate x and z


def _axis(group, name: str, value, kind: str, vector, units: str, depends_on: str, offset=(0, 0, 0)):
    ds = group.create_dataset(name, data=value)
    ds.attrs["transformation_type"] = kind
    ds.attrs["vector"] = np.asarray(vector, dtype=float)
    ds.attrs["offset"] = np.asarray(offset, dtype=float)
    ds.attrs["units"] = units
    ds.attrs["depends_on"] = depends_on
    return ds


def write_data_file(
    path: Path, frames: np.ndarray, compression: str = "bslz4", chunk_frames: int = 1
) -> None:
    """An Eiger-style data file: /entry/data/data (n, ny, nx), chunked and compressed."""
    filters = {"bslz4": hdf5plugin.Bitshuffle(cname="lz4"), "gzip": {"compression": "gzip"}}[compression]
    kwargs = dict(filters) if compression == "bslz4" else filters
    with h5py.File(path, "w") as fh:
        entry = fh.create_group("entry")
        entry.attrs["NX_class"] = "NXentry"
        data = entry.create_group("data")
        data.attrs["NX_class"] = "NXdata"
        ds = data.create_dataset(
            "data", data=frames, chunks=(min(chunk_frames, len(frames)), *frames.shape[1:]), **kwargs
        )
        ds.attrs["image_nr_low"] = 1
        ds.attrs["image_nr_high"] = len(frames)


def write_master(
    path: Path, data_files: list[str], nframes: int, shape: tuple[int, int], g: Geometry
) -> None:
    """An NXmx master whose /entry/data/data_NNNNNN are external links to ``data_files``."""
    with h5py.File(path, "w") as fh:
        entry = fh.create_group("entry")
        entry.attrs["NX_class"] = "NXentry"
        entry.create_dataset("definition", data="NXmx")
        data = entry.create_group("data")
        data.attrs["NX_class"] = "NXdata"
        for k, name in enumerate(data_files, start=1):
            data[f"data_{k:06d}"] = h5py.ExternalLink(name, "/entry/data/data")
        inst = entry.create_group("instrument")
        inst.attrs["NX_class"] = "NXinstrument"
        beam = inst.create_group("beam")
        beam.attrs["NX_class"] = "NXbeam"
        beam.create_dataset("incident_wavelength", data=g.wavelength).attrs["units"] = "angstrom"
        det = inst.create_group("detector")
        det.attrs["NX_class"] = "NXdetector"
        det.create_dataset("sensor_material", data="Si")
        det.create_dataset("sensor_thickness", data=g.thickness_m).attrs["units"] = "m"
        det.create_dataset("underload_value", data=g.trusted[0])
        det.create_dataset("saturation_value", data=g.trusted[1])
        det.create_dataset("frame_time", data=g.frame_time).attrs["units"] = "s"
        det.create_dataset("description", data="test detector")
        if g.pixel_mask is not None:
            det.create_dataset("pixel_mask", data=g.pixel_mask.astype(np.uint32), compression="gzip")
        for key, value in g.extra_detector.items():
            det.create_dataset(key, data=value)
        det.create_dataset("depends_on", data="/entry/instrument/detector/transformations/translation")
        trans = det.create_group("transformations")
        trans.attrs["NX_class"] = "NXtransformations"
        origin = np.asarray(g.origin) * MCSTAS
        _axis(trans, "translation", origin[2], "translation", (0, 0, 1), "mm", ".")
        module = det.create_group("module")
        module.attrs["NX_class"] = "NXdetector_module"
        module.create_dataset("data_origin", data=np.array([0, 0]))
        module.create_dataset("data_size", data=np.array(shape))
        lateral = np.array([origin[0], origin[1], 0.0])
        length = float(np.linalg.norm(lateral))
        offset_path = "/entry/instrument/detector/module/module_offset"
        _axis(
            module,
            "module_offset",
            length,
            "translation",
            lateral / length if length else (1, 0, 0),
            "mm",
            "/entry/instrument/detector/transformations/translation",
        )
        _axis(
            module,
            "fast_pixel_direction",
            g.pixel_size,
            "translation",
            np.asarray(g.fast) * MCSTAS,
            "mm",
            offset_path,
        )
        _axis(
            module,
            "slow_pixel_direction",
            g.pixel_size,
            "translation",
            np.asarray(g.slow) * MCSTAS,
            "mm",
            offset_path,
        )
        sample = entry.create_group("sample")
        sample.attrs["NX_class"] = "NXsample"
        sample.create_dataset("depends_on", data="/entry/sample/transformations/omega")
        st = sample.create_group("transformations")
        st.attrs["NX_class"] = "NXtransformations"
        omega = g.start + g.width * np.arange(nframes)
        _axis(st, "omega", omega, "rotation", np.asarray(g.axis) * MCSTAS, "deg", ".")
        st.create_dataset("omega_end", data=omega + g.width).attrs["units"] = "deg"


def write_sweep(
    folder: Path,
    stem: str,
    frames: np.ndarray,
    g: Geometry,
    per_file: int = 20,
    chunk_frames: int = 1,
    compression: str = "bslz4",
) -> Path:
    """Master ``<stem>_master.h5`` plus ``<stem>_data_00000k.h5`` files; returns the master path."""
    names = []
    for k, start in enumerate(range(0, len(frames), per_file), start=1):
        name = f"{stem}_data_{k:06d}.h5"
        write_data_file(folder / name, frames[start : start + per_file], compression, chunk_frames)
        names.append(name)
    master = folder / f"{stem}_master.h5"
    write_master(master, names, len(frames), frames.shape[1:], g)
    return master
