"""A series received from a Dectris stream, kept as the HDF5 file the image readers read.

Each frame's compressed payload is written unchanged as one HDF5 chunk (``write_direct_chunk``) of
``/entry/data/data`` as it arrives, and the series header's detector configuration becomes the datasets of
a Dectris-style master (``/entry/instrument/detector`` and its ``detectorSpecific``, the beam's
wavelength, the goniometer's omega), so that :mod:`findspots.images.nexus` reads the series as it reads
the master file the detector writes for it. A file rather than frames in memory, because:

- decoding: the frames are decompressed by the HDF5 bitshuffle-LZ4 and LZ4 filters (hdf5plugin), the
  same code that reads NXmx and Eiger files, so a streamed frame gives the pixels of the file's frame by
  construction (no second decoder to keep in step);
- memory: the receiver holds one frame's payload at a time, whatever the length of the series;
- workers: forked and cluster workers reopen the file by its path, as for any HDF5 sweep, instead of
  being sent every frame; per-image events, which read each image by its path, work unchanged, also
  while the series is received: the file is written under SWMR once its frames' dataset exists, and
  :meth:`SeriesFile.flush` makes the frames added so far visible to readers.

A bitshuffle-LZ4 payload (``bsNN-lz4<``) is already an HDF5 bitshuffle chunk (big-endian total and block
sizes, then the blocks). A plain ``lz4<`` payload is one LZ4 block of the whole frame; it is framed as the
HDF5 LZ4 filter's chunk (total size, block size, then the block's compressed size and bytes).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

from findspots.images.fileio import h5py_with_filters

DATA = "/entry/data/data"
# The configuration keys the Dectris master reader takes from /entry/instrument/detector.
DETECTOR_KEYS = (
    "x_pixel_size",
    "y_pixel_size",
    "beam_center_x",
    "beam_center_y",
    "detector_distance",
    "sensor_thickness",
    "sensor_material",
    "bit_depth_readout",
    "bit_depth_image",
    "frame_time",
    "count_time",
)
_BITSHUFFLE = {"bs32-lz4<": 4, "bs16-lz4<": 2, "bs8-lz4<": 1}


@dataclass(frozen=True)
class FrameFormat:
    """What the ``dimage_d-1.0`` part says of a frame's data: (slow, fast) shape, dtype, encoding."""

    shape: tuple[int, int]
    dtype: np.dtype
    encoding: str


def frame_format(part: dict) -> FrameFormat:
    """The frame format of a ``dimage_d-1.0`` part (its ``shape`` is [fast, slow]); ValueError when the
    type or encoding is not one this reader decodes."""
    dtype = np.dtype(str(part["type"])).newbyteorder("<")
    encoding = str(part["encoding"])
    if encoding in _BITSHUFFLE and _BITSHUFFLE[encoding] != dtype.itemsize:
        raise ValueError(f"encoding {encoding} does not fit type {part['type']}")
    if encoding not in _BITSHUFFLE and encoding != "lz4<":
        raise ValueError(f"encoding {encoding!r} (expected bs32-lz4<, bs16-lz4<, bs8-lz4< or lz4<)")
    fast, slow = (int(v) for v in part["shape"])
    return FrameFormat((slow, fast), dtype, encoding)


def description(config: dict) -> str:
    """The detector's description, naming the EIGER stream interface where it does not say "EIGER": the
    Dectris master reader recognises a master by that word."""
    given = str(config.get("description", "")).strip()
    return given if "eiger" in given.lower() else f"{given or 'Dectris'} (EIGER stream interface)"


def lz4_chunk(payload: bytes, nbytes: int) -> bytes:
    """A ``lz4<`` payload (one LZ4 block of ``nbytes`` bytes) framed as a chunk of the HDF5 LZ4 filter."""
    if len(payload) == nbytes:
        # the filter takes a block as long as its data for a stored (uncompressed) block
        raise ValueError("an lz4< payload exactly as long as the frame cannot be told from a raw block")
    return struct.pack(">QII", nbytes, nbytes, len(payload)) + payload


@dataclass
class SeriesFile:
    """The HDF5 file of one received series, written frame by frame (see the module's docstring)."""

    path: str
    config: dict | None  # the detector configuration of the header; None: the header had none
    pixel_mask: np.ndarray | None = None
    fmt: FrameFormat | None = None
    frames: set[int] = field(default_factory=set)
    _fh: object = field(default=None, repr=False)

    def __post_init__(self) -> None:
        h5py = h5py_with_filters()
        self._fh = h5py.File(self.path, "w", libver="latest")  # the format SWMR needs
        entry = self._group(self._fh, "entry", "NXentry")
        self._group(entry, "data", "NXdata")
        if self.config is not None:
            self._write_config(entry, self.config)

    @staticmethod
    def _group(parent, name: str, nx_class: str):
        group = parent.create_group(name)
        group.attrs["NX_class"] = nx_class
        return group

    def _write_config(self, entry, config: dict) -> None:
        instrument = self._group(entry, "instrument", "NXinstrument")
        if "wavelength" in config:
            beam = self._group(instrument, "beam", "NXbeam")
            beam.create_dataset("incident_wavelength", data=float(config["wavelength"]))
            beam["incident_wavelength"].attrs["units"] = "angstrom"
        detector = self._group(instrument, "detector", "NXdetector")
        detector.create_dataset("description", data=description(config))
        for key in DETECTOR_KEYS:
            if key in config:
                detector.create_dataset(key, data=config[key])
        specific = detector.create_group("detectorSpecific")
        for key, value in config.items():
            if isinstance(value, int | float | str) and key not in DETECTOR_KEYS:
                specific.create_dataset(key, data=value)
        if self.pixel_mask is not None:
            specific.create_dataset("pixel_mask", data=self.pixel_mask, compression="gzip")
        gonio = self._group(self._group(entry, "sample", "NXsample"), "goniometer", "NXtransformations")
        gonio.create_dataset("omega", data=[float(config.get("omega_start", 0.0))])
        gonio.create_dataset("omega_range_average", data=float(config.get("omega_increment", 0.0)))

    def add(self, frame: int, fmt: FrameFormat, payload: bytes) -> None:
        """Store frame ``frame`` (0-based number in the series) from its compressed payload."""
        if self.fmt is None:
            self._create_data(fmt)
        elif fmt != self.fmt:
            raise ValueError(f"frame {frame} is {fmt}, the series' first frame {self.fmt}")
        data = self._fh[DATA]
        if frame >= data.shape[0]:
            data.resize(frame + 1, axis=0)
        nbytes = fmt.dtype.itemsize * fmt.shape[0] * fmt.shape[1]
        chunk = payload if fmt.encoding in _BITSHUFFLE else lz4_chunk(payload, nbytes)
        data.id.write_direct_chunk((frame, 0, 0), chunk)
        self.frames.add(frame)

    def _create_data(self, fmt: FrameFormat) -> None:
        import hdf5plugin

        self.fmt = fmt
        compression = hdf5plugin.Bitshuffle(cname="lz4") if fmt.encoding in _BITSHUFFLE else hdf5plugin.LZ4()
        self._fh["entry/data"].create_dataset(
            "data",
            shape=(0, *fmt.shape),
            maxshape=(None, *fmt.shape),
            chunks=(1, *fmt.shape),
            dtype=fmt.dtype,
            **compression,
        )
        self._fh.swmr_mode = True  # no dataset is added from here on; readers may open the file

    def flush(self) -> None:
        """Make the frames added so far visible to readers of the file (SWMR readers)."""
        self._fh.flush()

    def close(self, frames: int) -> None:
        """Keep the first ``frames`` frames (at least one was added) and close the file."""
        self._fh[DATA].resize(frames, axis=0)
        self._fh.close()

    def abandon(self) -> None:
        """Close the file as it is (the caller removes it)."""
        self._fh.close()
