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

from findspots.images import ImageError
from findspots.images.cbf import read_raw_verified
from findspots.images.models import ImageSequence, _default_reader

log = logging.getLogger("findspots")

SUPPORTED = (
    "supported inputs: CBF/miniCBF (Pilatus, Eiger), SMV (ADSC), HDF5 NeXus/NXmx and Eiger masters or "
    "data files, DIALS .expt/experiments.json/datablock.json, and on a best-effort basis MarCCD, MAR345, "
    "R-AXIS and Oxford Diffraction images (any of the image files also .gz or .bz2)"
)
_GLOB_CHARS = set("*?[")


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


def kind_of(path: str) -> str:
    """'json', 'hdf5' or 'image' (files read one image per file); ImageError for anything else."""
    from findspots.images.nexus import is_hdf5
    from findspots.images.other import is_other
    from findspots.images.smv import is_smv
    from findspots.images.sweeps import peek

    if not os.path.exists(path):
        raise ImageError(f"{path}: no such file")
    if os.path.isdir(path):
        raise ImageError(f"{path}: is a directory (give the image files or a glob); {SUPPORTED}")
    if is_hdf5(path):
        return "hdf5"
    if path.lower().endswith((".expt", ".json")):
        return "json"
    start = peek(path)
    cbf = start.startswith(b"###CBF") or start.lstrip().startswith(b"data_")
    if cbf or is_smv(start) or is_other(path, start):
        return "image"
    if start.lstrip()[:1] in (b"{", b"["):
        return "json"
    raise ImageError(f"{path}: unrecognised file format; {SUPPORTED}")


def sequences_of_files(paths: list[str]) -> list[ImageSequence]:
    """Image files (one image per file) grouped into sequences."""
    from findspots.images.sweeps import group_images

    return group_images(paths)


def _data_files_of_masters(masters: list[str]) -> set[str]:
    """Data files that the given HDF5 masters read (so that '*.h5' globs work)."""
    from findspots.images.nexus import NexusReader, read_nexus

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


def _hdf5_sequence(path: str) -> ImageSequence:
    from findspots.images.nexus import nexus_sequence

    seq = nexus_sequence(path)
    log.debug("%s: %s, %d image(s)", path, seq.format_name, len(seq))
    return seq


def load_inputs(args: list[str], verify_md5: bool = False) -> list[ImageSequence]:
    """Image sequences of the data arguments (files, globs, masters, experiment files), in order.

    ``verify_md5`` makes the CBF reader check each image's Content-MD5 (``input.verify_md5``)."""
    from findspots.images.expt import read_experiments

    paths = list(dict.fromkeys(_expand(args)))
    kinds = {p: kind_of(p) for p in paths}
    skip = _data_files_of_masters([p for p in paths if kinds[p] == "hdf5"])
    out: list[ImageSequence] = []
    images = [p for p in paths if kinds[p] == "image"]
    for p in paths:
        kind = kinds[p]
        if kind == "image" and p == images[0]:
            out += sequences_of_files(images)
        elif kind == "hdf5" and os.path.realpath(p) not in skip:
            out.append(_hdf5_sequence(p))
        elif kind == "json":
            out += read_experiments(p)
    if not out:
        raise ImageError(f"no images in {' '.join(args)}; {SUPPORTED}")
    if verify_md5:
        for seq in out:
            _verify_cbf_checksums(seq)
    return out


def _verify_cbf_checksums(seq: ImageSequence) -> None:
    """Give a sequence read by the default (CBF) reader the reader that checks Content-MD5."""
    if seq.reader is _default_reader:
        seq.reader = read_raw_verified
