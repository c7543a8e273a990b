"""HDF5 images: NeXus/NXmx master files (Eiger, Dectris or DLS style) and bare Eiger data files.

Geometry follows dxtbx's reading of NXmx: vectors are converted from the NeXus (McStas) frame to the
imgCIF frame by negating x and z; a module's fast and slow axes are rotated by the rotations of their
``depends_on`` chain, its origin is the translation part of the whole chain (first value of each axis);
the rotation axis comes from the sample's chain (one rotation axis: a single-axis goniometer; several:
a multi-axis goniometer whose scan axis is the one whose values vary); the scan is the first varying
rotation axis (start and median step) or a still when none varies. The trusted range is
(underload_value, saturation_value), inclusive, defaulting to the int32 limits; the static mask is
``pixel_mask == 0``. Integer data are read as int32 and, when ``bit_depth_readout`` is given, the two
top values of that bit depth become -1 and -2 (dxtbx's markers for masked and bad pixels).

Data are found under the NXdata group: its ``signal``, a ``data`` dataset (often a virtual dataset),
or the ``data_000001``, ``data_000002``... links to data files, in name order. Frames are read one at
a time in each worker process; when a chunk holds several frames the whole chunk is read once and the
following frames come from it, so no chunk is decompressed twice by a sequential reader.

A bare data file (``/entry/data/data`` without a master) is read too: the geometry comes from the
attributes some writers leave on ``/entry`` (beam centre, distance, wavelength, pixel size) or is a
placeholder, and a log line says what is missing. Such images are always treated as stills.

This module is long because reading an HDF5 sweep is one job done in steps that share its HDF5 helpers
(frames, locating the data, transformations, NXmx models, the Dectris and bare-file variants); the
sections below are those steps.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field

import numpy as np

from findspots.errors import ImageError
from findspots.images.fileio import h5py_with_filters
from findspots.images.models import (
    STILL_WIDTH,
    Beam,
    Detector,
    Goniometer,
    ImageSequence,
    Panel,
    Scan,
    rotation_matrix,
)
from findspots.images.swmr import open_hdf5, swmr_refusal

log = logging.getLogger("findspots")

MCSTAS_TO_IMGCIF = np.diag([-1.0, 1.0, -1.0])
INT32_LIMIT = float(0x7FFFFFFF)
BLOCK_LIMIT = 512 * 1024 * 1024  # read whole multi-frame chunks only up to this many bytes
_DATA_NAME = re.compile(r"^data_\d+$")

_LENGTH_MM = {"m": 1e3, "meter": 1e3, "metre": 1e3, "cm": 10.0, "mm": 1.0, "millimeter": 1.0}
_LENGTH_MM |= {"um": 1e-3, "micron": 1e-3, "micrometer": 1e-3, "µm": 1e-3, "nm": 1e-6}
_LENGTH_MM |= {"angstrom": 1e-7, "a": 1e-7, "å": 1e-7}
_ANGLE_DEG = {"deg": 1.0, "degree": 1.0, "degrees": 1.0, "rad": 180.0 / np.pi, "radian": 180.0 / np.pi}
_ANGLE_DEG |= {"radians": 180.0 / np.pi}
_WAVELENGTH_A = {"angstrom": 1.0, "a": 1.0, "å": 1.0, "nm": 10.0, "m": 1e10, "pm": 0.01}


def _text(value) -> str:
    if isinstance(value, bytes | np.bytes_):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        return _text(value.reshape(-1)[0]) if value.size else ""
    return str(value)


def _units(node, default: str = "") -> str:
    return _text(node.attrs.get("units", default)).strip().lower()


def _scale(units: str, table: dict[str, float], what: str, node) -> float:
    key = units.rstrip(".")
    if key not in table:
        raise ImageError(f"{node.file.filename}: {node.name} has unknown {what} units '{units}'")
    return table[key]


# --------------------------------------------------------------------------------------- reading


@dataclass
class Source:
    """A run of frames stored in one dataset: (file, dataset path, first frame there, count)."""

    file: str
    dataset: str
    start: int
    count: int


@dataclass
class NexusReader:
    """Reads frames of one HDF5 sweep; opens files lazily (also after pickling to a worker)."""

    sources: list[Source]
    first_number: int = 1  # image number of the first frame
    module_slices: list[tuple[int, int, int, int]] | None = None  # (y0, y1, x0, x1) per panel
    bit_depth: int | None = None
    _files: dict = field(default_factory=dict, init=False, repr=False)
    _block: tuple[int, int, np.ndarray] | None = field(default=None, init=False, repr=False)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_files"] = {}
        state["_block"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    @property
    def num_frames(self) -> int:
        """Frames over all sources."""
        return sum(s.count for s in self.sources)

    def read(self, path: str, number: int) -> np.ndarray | list[np.ndarray]:
        """Image ``number`` as int32 (with -1/-2 markers) or float, split into modules."""
        data = to_dxtbx_values(self.frame(number - self.first_number), self.bit_depth)
        if self.module_slices is None:
            return data
        return [np.ascontiguousarray(data[y0:y1, x0:x1]) for y0, y1, x0, x1 in self.module_slices]

    def frame(self, index: int) -> np.ndarray:
        """Frame ``index`` (0-based over all sources) in the file's own dtype."""
        if self._block is not None and self._block[0] <= index < self._block[1]:
            return self._block[2][index - self._block[0]]
        offset = 0
        for src in self.sources:
            if index < offset + src.count:
                return self._from_source(src, index - offset, index)
            offset += src.count
        raise IndexError(f"frame {index} outside 0..{self.num_frames - 1}")

    def _dataset(self, src: Source):
        if src.file not in self._files:
            try:
                self._files[src.file] = open_hdf5(src.file)
            except OSError as e:
                raise ImageError(f"{src.file}: cannot open HDF5 file ({e})") from e
        try:
            return self._files[src.file][src.dataset]
        except KeyError as e:
            raise ImageError(f"{src.file}: no dataset {src.dataset}") from e

    def _from_source(self, src: Source, k: int, index: int) -> np.ndarray:
        ds = self._dataset(src)
        pos = src.start + k
        per_chunk = ds.chunks[0] if ds.chunks else 1
        frame_bytes = ds.dtype.itemsize * int(np.prod(ds.shape[1:]))
        try:
            if per_chunk > 1 and per_chunk * frame_bytes <= BLOCK_LIMIT:
                c0 = max(pos - pos % per_chunk, src.start)
                c1 = min(pos - pos % per_chunk + per_chunk, src.start + src.count, ds.shape[0])
                self._block = None  # free the previous chunk before decoding the next
                block = ds[c0:c1]
                first = index - (pos - c0)
                self._block = (first, first + (c1 - c0), block)
                return block[pos - c0]
            return ds[pos]
        except (OSError, ValueError) as e:
            raise ImageError(f"{src.file}: cannot read frame {pos} of {src.dataset} ({e})") from e

    def close(self) -> None:
        """Close the open files (they reopen on the next read)."""
        for fh in self._files.values():
            fh.close()
        self._files = {}
        self._block = None


def to_dxtbx_values(data: np.ndarray, bit_depth: int | None) -> np.ndarray:
    """Integers as int32 with the readout's top two values as -1 and -2; floats unchanged."""
    if data.dtype.kind == "f":
        return data
    if data.dtype.kind not in "iu":
        raise ImageError(f"unsupported HDF5 image data type {data.dtype}")
    out = data.astype(np.int32)
    if bit_depth:
        top = 2**31 if bit_depth == 32 else 2**bit_depth
        out[data == top - 1] = -1
        out[data == top - 2] = -2
    return out


# ----------------------------------------------------------------------------- locating the data


def _link_target(group, name: str, base_dir: str) -> tuple[str, str] | None:
    """(file, dataset path) a member of ``group`` points to; None when the target is missing."""
    h5py = h5py_with_filters()
    link = group.get(name, getlink=True)
    if isinstance(link, h5py.ExternalLink):
        target = link.filename if os.path.isabs(link.filename) else os.path.join(base_dir, link.filename)
        if not os.path.exists(target):
            return None
        return target, link.path
    if isinstance(link, h5py.SoftLink):
        path = link.path if link.path.startswith("/") else f"{group.name}/{link.path}"
        return (group.file.filename, path) if path in group.file else None
    return group.file.filename, f"{group.name.rstrip('/')}/{name}"


def _bounds(space) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Inclusive bounds of a dataspace selection (the whole space when everything is selected)."""
    try:
        return space.get_select_bounds()
    except ValueError:
        return tuple(0 for _ in space.shape), tuple(n - 1 for n in space.shape)


def _virtual_sources(ds, base_dir: str) -> list[Source] | None:
    """The data files behind a virtual dataset, when each maps whole frames in order."""
    out = []
    for vs in sorted(ds.virtual_sources(), key=lambda v: _bounds(v.vspace)[0][0]):
        (v0, *_), (v1, *_) = _bounds(vs.vspace)
        (s0, *_), (s1, *_) = _bounds(vs.src_space) if vs.src_space.shape else ((0,), (v1 - v0,))
        if s1 - s0 != v1 - v0:
            return None
        name = vs.file_name
        if name == ".":
            name = ds.file.filename
        elif not os.path.isabs(name):
            name = os.path.join(base_dir, name)
        if not os.path.exists(name):
            return None
        if out and v0 != sum(s.count for s in out):
            return None
        out.append(Source(name, vs.dset_name, int(s0), int(v1 - v0 + 1)))
    return out or None


def _source_of(group, name: str, base_dir: str) -> list[Source] | None:
    target = _link_target(group, name, base_dir)
    if target is None:
        return None
    filename, path = target
    try:
        obj = group[name]
    except KeyError as err:  # a data file that a writer holds under SWMR: opened apart, as an SWMR reader
        if not swmr_refusal(err):
            raise
        obj = open_hdf5(filename)[path]
    if obj.ndim != 3:
        raise ImageError(f"{filename}: {path} is not a stack of 2D frames (shape {obj.shape})")
    if obj.is_virtual:
        expanded = _virtual_sources(obj, base_dir)
        if expanded:
            return expanded
        return [Source(group.file.filename, obj.name, 0, int(obj.shape[0]))]
    return [Source(filename, path, 0, int(obj.shape[0]))]


def data_names(nxdata) -> list[str]:
    """The members of an NXdata group that hold its frames, in order."""
    signal = _text(nxdata.attrs.get("signal", "")) or None
    if signal and signal in nxdata:
        return [signal]
    if "data" in nxdata:
        return ["data"]
    return sorted(n for n in nxdata if _DATA_NAME.match(n))


def data_links(master) -> list[tuple[str, str] | None]:
    """(file, dataset) of each data member of an open master, in order; None for a link whose file is
    not there (yet); none at all for a file that is not an NXmx or Dectris master (yet)."""
    entry, kind = _nxmx_entry(master)
    if kind == "Dectris":
        groups = [entry["data"]] if "data" in entry else []
    else:
        groups = _find(entry, "NXdata") if kind else []
    if not groups:
        return []
    nxdata, base = groups[0], os.path.dirname(os.path.abspath(master.filename))
    return [_link_target(nxdata, name, base) if name in nxdata else None for name in data_names(nxdata)]


def data_sources(nxdata, base_dir: str) -> list[Source]:
    """The frames of an NXdata group, in order, as runs in data files."""
    sources: list[Source] = []
    missing = []
    for name in data_names(nxdata):
        found = _source_of(nxdata, name, base_dir) if name in nxdata else None
        if found is None:
            missing.append(name)
            continue
        if missing:
            raise ImageError(f"{nxdata.file.filename}: data {', '.join(missing)} missing before {name}")
        sources += found
    if missing:
        log.warning("%s: data %s not found (ignored)", nxdata.file.filename, ", ".join(missing))
    if not sources:
        raise ImageError(f"{nxdata.file.filename}: no image data found under {nxdata.name}")
    return sources


# ----------------------------------------------------------------------------- transformations


@dataclass
class Transformation:
    """One NXtransformations axis: its values (mm or degrees), vector, offset (mm), name."""

    name: str
    kind: str  # "rotation" or "translation"
    values: np.ndarray
    vector: np.ndarray
    offset: np.ndarray
    end: np.ndarray | None = None

    def matrix(self, k: int = 0) -> np.ndarray:
        """4x4 homogeneous matrix at value ``k``."""
        m = np.identity(4)
        v = float(self.values[min(k, len(self.values) - 1)]) if len(self.values) else 0.0
        if self.kind == "rotation":
            m[:3, :3] = rotation_matrix(self.vector, v) if np.any(self.vector) else np.identity(3)
        else:
            m[:3, 3] = v * self.vector
        m[:3, 3] += self.offset
        return m


def _transformation(node) -> Transformation:
    kind = _text(node.attrs.get("transformation_type", "")).lower()
    units = _units(node)
    values = np.atleast_1d(node[()]).astype(np.float64).ravel()
    if kind == "rotation":
        values = values * _scale(units or "deg", _ANGLE_DEG, "angle", node)
    elif units:
        values = values * _scale(units, _LENGTH_MM, "length", node)
    vector = np.asarray(node.attrs.get("vector", (0.0, 0.0, 0.0)), dtype=np.float64).reshape(3)
    offset = np.asarray(node.attrs.get("offset", (0.0, 0.0, 0.0)), dtype=np.float64).reshape(-1)
    offset = np.resize(offset, 3) if offset.size else np.zeros(3)
    if np.any(offset):
        offset_units = _text(node.attrs.get("offset_units", "")).lower() or (
            units if kind != "rotation" else ""
        )
        offset = offset * (_scale(offset_units, _LENGTH_MM, "offset", node) if offset_units else 1.0)
    end = None
    end_name = node.name + "_end"
    if end_name in node.file:
        end = np.atleast_1d(node.file[end_name][()]).astype(np.float64).ravel()
        end = end * (_scale(units or "deg", _ANGLE_DEG, "angle", node) if kind == "rotation" else 1.0)
    return Transformation(node.name.split("/")[-1], kind, values, vector, offset, end)


def dependency_chain(node, depends_on: str | None) -> list[Transformation]:
    """The transformations reached by following ``depends_on`` from ``node``'s parent group."""
    chain = []
    seen = set()
    target = depends_on
    where = node
    while target and target != ".":
        try:
            axis = node.file[target] if target.startswith("/") else where.parent[target]
        except KeyError as e:
            raise ImageError(f"{node.file.filename}: depends_on target {target} not found") from e
        if axis.name in seen:
            raise ImageError(f"{node.file.filename}: depends_on loop at {axis.name}")
        seen.add(axis.name)
        chain.append(_transformation(axis))
        target = _text(axis.attrs.get("depends_on", "."))
        where = axis
    return chain


def cumulative(chain: list[Transformation], rotations_only: bool = False) -> np.ndarray:
    """Product of the chain's matrices at their first values (outermost applied last)."""
    m = np.identity(4)
    for t in chain:
        if rotations_only and t.kind != "rotation":
            continue
        m = t.matrix(0) @ m
    return m


def _depends_on(group) -> str | None:
    if "depends_on" in group:
        return _text(group["depends_on"][()])
    value = group.attrs.get("depends_on")
    return _text(value) if value is not None else None


# ------------------------------------------------------------------------------------ NXmx models


def _find(group, nx_class: str) -> list:
    return [v for v in group.values() if _text(v.attrs.get("NX_class", "")) == nx_class]


@dataclass
class NexusFile:
    """What a master (or bare data) file gives: the sweep's models and how to read it."""

    path: str
    detector: Detector
    beam: Beam
    goniometer: Goniometer | None
    scan: Scan
    reader: NexusReader
    format_mask: list[np.ndarray] | None
    format_name: str


def _nxmx_entry(fh):
    entries = _find(fh, "NXentry")
    for entry in entries:
        if "definition" in entry and _text(entry["definition"][()]).strip() == "NXmx":
            return entry, "NXmx"
    for entry in entries:
        try:
            desc = _text(entry["instrument/detector/description"][()]).lower()
        except KeyError:
            continue
        if "eiger" in desc:
            return entry, "Dectris"
    return None, ""


def _scalar(group, name: str, default=None):
    if name not in group:
        return default
    return np.asarray(group[name][()]).reshape(-1)[0]


def _wavelength(entry, instrument) -> float:
    beams = _find(instrument, "NXbeam") + [b for s in _find(entry, "NXsample") for b in _find(s, "NXbeam")]
    for beam in beams:
        if "incident_wavelength" in beam:
            node = beam["incident_wavelength"]
            value = float(np.atleast_1d(node[()]).ravel()[0])
            return value * _scale(_units(node, "angstrom"), _WAVELENGTH_A, "wavelength", node)
    raise ImageError(f"{entry.file.filename}: no incident_wavelength in an NXbeam")


def _module_panel(nxdet, module, trusted: tuple[float, float]) -> Panel:
    fast_node, slow_node = module["fast_pixel_direction"], module["slow_pixel_direction"]
    fast_t, slow_t = _transformation(fast_node), _transformation(slow_node)
    fast_chain = dependency_chain(fast_node, _text(fast_node.attrs.get("depends_on", ".")))
    slow_chain = dependency_chain(slow_node, _text(slow_node.attrs.get("depends_on", ".")))
    fast = MCSTAS_TO_IMGCIF @ cumulative(fast_chain, True)[:3, :3] @ fast_t.vector
    slow = MCSTAS_TO_IMGCIF @ cumulative(slow_chain, True)[:3, :3] @ slow_t.vector
    origin = MCSTAS_TO_IMGCIF @ cumulative(fast_chain)[:3, 3]
    size = np.asarray(module["data_size"][()]).ravel()[-2:]
    material = _text(_scalar(nxdet, "sensor_material", "Si"))
    material = {"silicon": "Si"}.get(material.lower(), material)
    thickness = 0.0
    if "sensor_thickness" in nxdet:
        node = nxdet["sensor_thickness"]
        thickness = float(np.atleast_1d(node[()]).ravel()[0]) * _scale(
            _units(node, "mm"), _LENGTH_MM, "length", node
        )
    return Panel(
        image_size=(int(size[1]), int(size[0])),
        pixel_size=(float(fast_t.values[0]), float(slow_t.values[0])),
        trusted_range=trusted,
        origin=origin,
        fast_axis=fast,
        slow_axis=slow,
        name=module.name,
        thickness=thickness,
        material=material,
    )


def _trusted(nxdet) -> tuple[float, float]:
    under = _scalar(nxdet, "underload_value")
    over = _scalar(nxdet, "saturation_value")
    return (
        float(under) if under is not None else -INT32_LIMIT,
        float(over) if over is not None else INT32_LIMIT,
    )


def _detector_flip(detector: Detector) -> Detector:
    """dxtbx: a single panel facing the beam but placed upstream of the sample is moved downstream."""
    if len(detector) != 1:
        return detector
    p = detector[0]
    normal = np.cross(p.fast_axis, p.slow_axis)
    if abs(normal[2]) > 0.99 and p.origin[2] > 0:
        p.origin = np.array([p.origin[0], p.origin[1], -p.origin[2]])
    return detector


def _module_slices(modules) -> list[tuple[int, int, int, int]]:
    out = []
    for m in modules:
        origin = np.asarray(m["data_origin"][()]).ravel()[-2:] if "data_origin" in m else (0, 0)
        size = np.asarray(m["data_size"][()]).ravel()[-2:]
        out.append((int(origin[0]), int(origin[0] + size[0]), int(origin[1]), int(origin[1] + size[1])))
    return out


def _pixel_mask(nxdet, slices: list[tuple[int, int, int, int]]) -> list[np.ndarray] | None:
    for name in ("pixel_mask", "detectorSpecific/pixel_mask"):
        if name in nxdet:
            mask = np.asarray(nxdet[name][()])
            if mask.ndim == 2 and mask.size:
                return [mask[y0:y1, x0:x1] == 0 for y0, y1, x0, x1 in slices]
    return None


def _goniometer(sample) -> tuple[Goniometer | None, list[Transformation]]:
    chain = dependency_chain(sample, _depends_on(sample)) if _depends_on(sample) else []
    rotations = [t for t in chain if t.kind == "rotation"]
    if not rotations:
        return None, chain
    if len(rotations) == 1:
        return Goniometer(MCSTAS_TO_IMGCIF @ rotations[0].vector), chain
    varying = [len(t.values) > 1 and not np.all(t.values == t.values[0]) for t in rotations]
    if sum(varying) > 1:
        raise ImageError(f"{sample.file.filename}: more than one goniometer axis is scanned")
    scan_axis = varying.index(True) if any(varying) else 0
    gonio = Goniometer.multi_axis(
        [MCSTAS_TO_IMGCIF @ t.vector for t in rotations],
        [float(t.values[0]) for t in rotations],
        [t.name for t in rotations],
        scan_axis,
    )
    return gonio, chain


def _varies(t: Transformation) -> bool:
    return len(t.values) > 1 and not np.all(t.values == t.values[0])


def _scan(chain: list[Transformation], nframes: int, frame_time: float | None, path: str) -> Scan:
    axis = next((t for t in chain if t.kind == "rotation" and _varies(t)), None)
    if axis is None:
        axis = next((t for t in chain if _varies(t)), chain[0] if chain else None)
    start, step = 0.0, 0.0
    if axis is not None and axis.kind == "rotation":
        start = float(axis.values[0])
        if axis.end is not None:
            steps = axis.end[: len(axis.values)] - axis.values[: len(axis.end)]
        elif len(axis.values) > 1:
            steps = np.diff(axis.values)
        else:
            steps = np.zeros(1)
        step = float(np.median(steps))
    n = nframes
    if axis is not None and len(axis.values) > 1 and len(axis.values) != nframes:
        n = min(nframes, len(axis.values))
        log.warning(
            "%s: %d frames but %d %s values; using %d images", path, nframes, len(axis.values), axis.name, n
        )
    if abs(step) < STILL_WIDTH:
        step = 0.0
    exposure = np.full(n, frame_time or 0.0)
    epochs = np.arange(n) * (frame_time or 0.0)
    return Scan(image_range=(1, n), oscillation=(start, step), exposure_times=exposure, epochs=epochs)


def _frame_time(nxdet) -> float | None:
    if "frame_time" not in nxdet:
        return None
    node = nxdet["frame_time"]
    value = float(np.atleast_1d(node[()]).ravel()[0])
    return value * {"s": 1.0, "second": 1.0, "seconds": 1.0, "ms": 1e-3, "us": 1e-6}.get(
        _units(node, "s"), 1.0
    )


def _read_nxmx(path: str, entry) -> NexusFile:
    base = os.path.dirname(os.path.abspath(path))
    instrument = _first(entry, "NXinstrument", path)
    nxdet = _first(instrument, "NXdetector", path)
    sample = _first(entry, "NXsample", path)
    modules = _find(nxdet, "NXdetector_module")
    if not modules:
        raise ImageError(f"{path}: NXdetector has no NXdetector_module")
    wavelength = _wavelength(entry, instrument)
    trusted = _trusted(nxdet)
    detector = _detector_flip(Detector([_module_panel(nxdet, m, trusted) for m in modules]))
    slices = _module_slices(modules)
    sources = data_sources(_first(entry, "NXdata", path), base)
    bit_depth = _scalar(nxdet, "bit_depth_readout")
    reader = NexusReader(
        sources, 1, slices if len(modules) > 1 else None, int(bit_depth) if bit_depth else None
    )
    _check_frame_shape(sources[0], slices, path)
    gonio, chain = _goniometer(sample)
    scan = _scan(chain, reader.num_frames, _frame_time(nxdet), path)
    return NexusFile(
        path, detector, Beam(wavelength), gonio, scan, reader, _pixel_mask(nxdet, slices), "NXmx"
    )


def _first(group, nx_class: str, path: str):
    found = _find(group, nx_class)
    if not found:
        raise ImageError(f"{path}: no {nx_class} in {group.name}")
    return found[0]


def _check_frame_shape(src: Source, slices, path: str) -> None:
    with open_hdf5(src.file) as df:
        shape = df[src.dataset].shape[1:]
    needed = (max(s[1] for s in slices), max(s[3] for s in slices))
    if shape[0] < needed[0] or shape[1] < needed[1]:
        raise ImageError(f"{path}: frames are {shape} (slow, fast) but the detector modules need {needed}")


# --------------------------------------------------------------------------- Dectris-style masters


def _eiger_panel(attrs: dict, shape: tuple[int, int], trusted: tuple[float, float]) -> Panel:
    """A flat Eiger panel: fast +x, slow -y, origin from the beam centre (pixels) and distance (mm)."""
    px = float(attrs.get("x_pixel_size", 7.5e-5)) * 1000.0
    py = float(attrs.get("y_pixel_size", 7.5e-5)) * 1000.0
    bx = float(attrs.get("beam_center_x", shape[1] / 2))
    by = float(attrs.get("beam_center_y", shape[0] / 2))
    distance = float(attrs.get("detector_distance", 0.1)) * 1000.0
    return Panel(
        image_size=(shape[1], shape[0]),
        pixel_size=(px, py),
        trusted_range=trusted,
        origin=np.array([-bx * px, by * py, -distance]),
        fast_axis=np.array([1.0, 0.0, 0.0]),
        slow_axis=np.array([0.0, -1.0, 0.0]),
        name=str(attrs.get("description", "Panel")),
        thickness=float(attrs.get("sensor_thickness", 0.00045)) * 1000.0,
        material="Si",
    )


def _group_values(group, names: tuple[str, ...]) -> dict:
    out = {}
    for name in names:
        if name in group:
            value = np.asarray(group[name][()]).reshape(-1)
            out[name] = _text(value[0]) if value.dtype.kind in "SOU" else value[0]
    return out


_EIGER_KEYS = (
    "x_pixel_size",
    "y_pixel_size",
    "beam_center_x",
    "beam_center_y",
    "detector_distance",
    "description",
    "sensor_thickness",
    "bit_depth_readout",
    "frame_time",
)


def _read_dectris(path: str, entry) -> NexusFile:
    base = os.path.dirname(os.path.abspath(path))
    det = entry["instrument/detector"]
    attrs = _group_values(det, _EIGER_KEYS)
    spec = det.get("detectorSpecific")
    cutoff = _scalar(spec, "countrate_correction_count_cutoff") if spec is not None else None
    sources = data_sources(entry["data"], base)
    with open_hdf5(sources[0].file) as df:
        shape = df[sources[0].dataset].shape[1:]
    trusted = (0.0, float(cutoff) if cutoff is not None else INT32_LIMIT)
    detector = Detector([_eiger_panel(attrs, shape, trusted)])
    wavelength = _wavelength(entry, entry["instrument"])
    bit_depth = attrs.get("bit_depth_readout")
    reader = NexusReader(sources, 1, None, int(bit_depth) if bit_depth else None)
    omega = _omega(entry)
    scan = Scan(
        (1, reader.num_frames), omega, np.full(reader.num_frames, float(attrs.get("frame_time", 0.0)))
    )
    mask = _pixel_mask(det, [(0, shape[0], 0, shape[1])])
    log.info("%s: Dectris EIGER master without NXmx geometry: detector placed from its beam centre", path)
    return NexusFile(path, detector, Beam(wavelength), Goniometer(), scan, reader, mask, "Dectris EIGER HDF5")


def _omega(entry) -> tuple[float, float]:
    gonio = entry.get("sample/goniometer")
    if gonio is None:
        return 0.0, 0.0
    start = _scalar(gonio, "omega", 0.0)
    width = _scalar(gonio, "omega_range_average", 0.0)
    return float(start), float(width)


# ------------------------------------------------------------------------------ bare data files


def _read_bare(path: str, fh) -> NexusFile:
    ds = fh.get("entry/data/data")
    if ds is None or ds.ndim != 3:
        raise ImageError(
            f"{path}: HDF5 file is neither an NXmx/Eiger master nor an Eiger data file (/entry/data/data)"
        )
    attrs = {k: fh["entry"].attrs[k] for k in fh["entry"].attrs}
    attrs = {k: (_text(v) if isinstance(v, bytes | str | np.bytes_) else v) for k, v in attrs.items()}
    shape = ds.shape[1:]
    first = int(ds.attrs.get("image_nr_low", 1))
    bits = ds.dtype.itemsize * 8 if ds.dtype.kind == "u" else None
    cutoff = attrs.get("countrate_correction_count_cutoff")
    top = float(2**bits - 3) if bits else INT32_LIMIT
    trusted = (0.0, float(cutoff) if cutoff is not None else top)
    missing = [
        k for k in ("beam_center_x", "beam_center_y", "detector_distance", "wavelength") if k not in attrs
    ]
    note = (
        f"missing {', '.join(missing)}: placeholders used" if missing else "geometry from /entry attributes"
    )
    log.warning(
        "%s: Eiger data file without its master: %s; no goniometer or scan (images read as stills), "
        "no pixel mask",
        path,
        note,
    )
    n = int(ds.shape[0])
    reader = NexusReader([Source(os.path.abspath(path), ds.name, 0, n)], first, None, bits)
    scan = Scan((first, first + n - 1), (0.0, 0.0), np.full(n, float(attrs.get("count_time", 0.0))))
    beam = Beam(float(attrs.get("wavelength", 1.0)))
    detector = Detector([_eiger_panel(attrs, shape, trusted)])
    return NexusFile(path, detector, beam, None, scan, reader, None, "Eiger HDF5 data file")


# ---------------------------------------------------------------------------------- entry points


def read_nexus(path: str) -> NexusFile:
    """Models and reader of an HDF5 master file (NXmx or Dectris) or a bare Eiger data file."""
    try:
        fh = open_hdf5(path)
    except OSError as e:
        raise ImageError(f"{path}: cannot open HDF5 file ({e})") from e
    with fh:
        entry, kind = _nxmx_entry(fh)
        try:
            if kind == "NXmx":
                return _read_nxmx(path, entry)
            if kind == "Dectris":
                return _read_dectris(path, entry)
            return _read_bare(path, fh)
        except KeyError as e:
            raise ImageError(f"{path}: incomplete NeXus file ({e})") from e


def nexus_sequence(path: str, indices: list[int] | None = None) -> ImageSequence:
    """The sweep in an HDF5 file as one ImageSequence (``indices``: 0-based frames to keep)."""
    nx = read_nexus(path)
    seq = ImageSequence(
        paths=[path] * nx.scan.num_images,
        image_numbers=list(range(nx.scan.image_range[0], nx.scan.image_range[1] + 1)),
        detector=nx.detector,
        beam=nx.beam,
        goniometer=nx.goniometer,
        scan=nx.scan,
        template=path,
        reader=nx.reader,
        format_mask=nx.format_mask,
        format_name=nx.format_name,
    )
    if indices is None:
        return seq
    first = min(indices)
    if sorted(indices) != list(range(min(indices), max(indices) + 1)):
        raise ImageError(f"{path}: image indices {indices[:3]}... are not consecutive")
    return seq.sub(first, first + len(indices))
