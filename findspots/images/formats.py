"""The one list of image formats: how each recognises its files and reads their models and pixels.

As in dxtbx's format registry, every place that must know what a file is asks here: the command line's
inputs, the grouping of image files into sweeps and experiment files. A ``FileFormat`` holds one image
per file (CBF, SMV, the fabio best-effort formats); a ``SweepFormat`` holds a whole sweep in one file or
in the data files its master names (HDF5). The first format in ``FORMATS`` that understands a file
reads it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from findspots.errors import ImageError
from findspots.images import cbf, other, smv
from findspots.images.cbf_header import looks_like_cbf
from findspots.images.fileio import is_hdf5
from findspots.images.models import FileModels, ImageSequence
from findspots.images.nexus import nexus_sequence


@dataclass(frozen=True)
class FileFormat:
    """A format of files that hold one image each."""

    name: str
    understands: Callable[[str, bytes], bool]  # (path, first decompressed bytes)
    read_models: Callable[[str], FileModels]
    read_raw: Callable[[str], np.ndarray]
    read_raw_verified: Callable[[str], np.ndarray] | None = None  # also checks the file's checksum
    # the models from the file's decompressed start (cbf.read_start), when that holds the whole header
    models_from_start: Callable[[str, bytes], FileModels] | None = None

    def reader(self, verify_md5: bool) -> Callable[[str], np.ndarray]:
        """The pixel reader: the one that checks the checksum when asked to and the format has one."""
        return self.read_raw_verified if verify_md5 and self.read_raw_verified else self.read_raw


@dataclass(frozen=True)
class SweepFormat:
    """A format of files that hold (or name the files that hold) a whole sweep."""

    name: str
    understands: Callable[[str, bytes], bool]
    read_sequence: Callable[[str, list[int] | None], ImageSequence]  # (path, 0-based frames or all)


def _smv_models(path: str) -> FileModels:
    return FileModels(*smv.read_models(path), shadow=None, format_name="SMV (ADSC)")


def _other_models(path: str) -> FileModels:
    models, name = other.read_models(path)
    return FileModels(*models, shadow=None, format_name=name)


FORMATS: tuple[FileFormat | SweepFormat, ...] = (
    # The file itself, not its decompressed stream: h5py cannot read a compressed HDF5 file.
    SweepFormat("HDF5 (NeXus/NXmx, Eiger)", lambda path, start: is_hdf5(path), nexus_sequence),
    FileFormat("SMV (ADSC)", lambda path, start: smv.is_smv(start), _smv_models, smv.read_raw),
    FileFormat("MarCCD, MAR345, R-AXIS, Oxford Diffraction", other.is_other, _other_models, other.read_raw),
    FileFormat(
        "CBF",
        lambda path, start: looks_like_cbf(start),
        cbf.file_models,
        cbf.read_raw,
        cbf.read_raw_verified,
        cbf.models_from_start,
    ),
)


def detect(path: str, start: bytes) -> FileFormat | SweepFormat | None:
    """The first format that understands the file whose (decompressed) first bytes are ``start``."""
    return next((f for f in FORMATS if f.understands(path, start)), None)


def file_format(path: str, start: bytes) -> FileFormat:
    """The format of a one-image file whose decompressed first bytes are ``start``; ImageError when no
    such format understands it."""
    fmt = detect(path, start)
    if not isinstance(fmt, FileFormat):
        names = ", ".join(f.name for f in FORMATS if isinstance(f, FileFormat))
        raise ImageError(
            f"{path}: not a CBF file nor another image file format read here ({names}); "
            "leave it out of the command"
        )
    return fmt
