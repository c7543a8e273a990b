"""The command line's data arguments -> image sequences, whatever the beamline wrote.

Accepted: image files (CBF/miniCBF, SMV/ADSC, MarCCD/MAR345/R-AXIS/Oxford best effort; also .gz/.bz2),
HDF5 (NeXus/NXmx or Dectris Eiger masters, bare Eiger data files), and DIALS experiment files
(``.expt``/``.json`` ExperimentList, old ``datablock.json``). Globs are expanded here when the shell did
not. Image files are grouped into sweeps as dials.import groups them; each HDF5 master or experiment
file gives its own sequences. HDF5 data files named next to their own master are skipped (the master
reads them). Sequences come out in argument order, all loose image files at the place of the first.
"""

from __future__ import annotations

import glob
import logging
import os

from findspots.errors import ImageError
from findspots.images.expt import read_experiments
from findspots.images.fileio import is_compressed, peek
from findspots.images.formats import FileFormat, SweepFormat, detect
from findspots.images.models import ImageSequence
from findspots.images.nexus import NexusReader, read_nexus
from findspots.images.sweeps import group_images

log = logging.getLogger("findspots")

SUPPORTED = (
    "supported inputs: CBF/miniCBF (Pilatus, Eiger), SMV (ADSC), HDF5 NeXus/NXmx and Eiger masters or "
    "data files, DIALS .expt/experiments.json/datablock.json, and on a best-effort basis MarCCD, MAR345, "
    "R-AXIS and Oxford Diffraction images (any of the image files also .gz or .bz2)"
)
_GLOB_CHARS = set("*?[")
_JSON = "json"
_IMAGE = "image"  # a compressed one-image file: its format is told with its header, in group_images


def _expand(args: list[str]) -> list[str]:
    """Arguments with unexpanded glob patterns replaced by the files they match (sorted)."""
    out = []
    for arg in args:
        if not os.path.exists(arg) and _GLOB_CHARS & set(arg):
            matches = sorted(glob.glob(arg))
            if not matches:
                raise ImageError(f"{arg}: no files match this pattern")
            out += matches
        else:
            out.append(arg)
    return out


def _classify(path: str) -> FileFormat | SweepFormat | str:
    """The image format of a data argument, ``_JSON`` for an experiment file, or ``_IMAGE`` for a
    compressed image file; ImageError otherwise.

    A .gz/.bz2 file can only hold one image (h5py reads no compressed HDF5): telling its format here
    would decompress its start (for bzip2 a whole 900 kB block) once more than reading its header does."""
    if not os.path.exists(path):
        raise ImageError(f"{path}: no such file")
    if os.path.isdir(path):
        raise ImageError(f"{path}: is a directory (give the image files or a glob); {SUPPORTED}")
    if is_compressed(path) and not path.lower().endswith((".expt", ".json")):
        return _IMAGE
    start = peek(path)
    fmt = detect(path, start)
    if isinstance(fmt, SweepFormat):
        return fmt
    if path.lower().endswith((".expt", ".json")) or (fmt is None and start.lstrip()[:1] in (b"{", b"[")):
        return _JSON
    if fmt is None:
        raise ImageError(f"{path}: unrecognised file format; {SUPPORTED}")
    return fmt


def kind_of(path: str) -> str:
    """'json', 'hdf5' or 'image' (files read one image per file, any .gz/.bz2 file unread); ImageError for
    anything else."""
    fmt = _classify(path)
    if isinstance(fmt, str):
        return fmt
    return "hdf5" if isinstance(fmt, SweepFormat) else "image"


def _data_files_of_masters(masters: list[str]) -> set[str]:
    """Data files that the given HDF5 masters read (so that '*.h5' globs work)."""
    out: set[str] = set()
    for master in masters:
        try:
            reader = read_nexus(master).reader
        except ImageError:
            continue
        if isinstance(reader, NexusReader):
            out |= {
                os.path.realpath(s.file)
                for s in reader.sources
                if os.path.realpath(s.file) != os.path.realpath(master)
            }
    return out


def load_inputs(args: list[str], verify_md5: bool = False) -> list[ImageSequence]:
    """Image sequences of the data arguments (files, globs, masters, experiment files), in order.

    ``verify_md5`` makes the CBF reader check each image's Content-MD5 (``input.verify_md5``)."""
    paths = list(dict.fromkeys(_expand(args)))
    formats = {p: _classify(p) for p in paths}
    skip = _data_files_of_masters([p for p in paths if isinstance(formats[p], SweepFormat)])
    out: list[ImageSequence] = []
    images = [p for p in paths if isinstance(formats[p], FileFormat) or formats[p] == _IMAGE]
    for p in paths:
        fmt = formats[p]
        if p in images[:1]:
            out += group_images(images, verify_md5)
        elif isinstance(fmt, SweepFormat) and os.path.realpath(p) not in skip:
            seq = fmt.read_sequence(p, None)
            log.debug("%s: %s, %d image(s)", p, seq.format_name, len(seq))
            out.append(seq)
        elif fmt == _JSON:
            out += read_experiments(p, verify_md5)
    if not out:
        raise ImageError(f"no images in {' '.join(args)}; {SUPPORTED}")
    return out
