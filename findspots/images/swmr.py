"""Opening an HDF5 file read-only, also while a writer appends to it under SWMR (``input.watch``).

A file that a writer holds open in SWMR mode can only be opened by an SWMR reader; one that is closed
opens either way. Files are opened as before (not SWMR) and as SWMR readers only when HDF5 refuses
the plain open, so that reading a finished file is unchanged. HDF5 also refuses to open one file
twice in a process with different SWMR flags: a file already open here as an SWMR reader is opened
again as one.
"""

from __future__ import annotations

from findspots.images.fileio import h5py_with_filters

# HDF5's reasons for refusing a plain read-only open that an SWMR reader's open overcomes
_SWMR_REFUSALS = ("already open for write", "SWMR read access flag not the same")


def swmr_refusal(err: Exception) -> bool:
    """Whether HDF5 refused an open (of a file, or of an object through an external link) that an SWMR
    reader's open would make."""
    return any(reason in str(err) for reason in _SWMR_REFUSALS)


def open_hdf5(path: str):
    """``path`` opened read-only (an ``h5py.File``), as an SWMR reader when a writer holds it under SWMR;
    OSError when HDF5 cannot open it (absent, truncated, not HDF5)."""
    h5py = h5py_with_filters()
    try:
        return h5py.File(path, "r")
    except OSError as err:
        if not swmr_refusal(err):
            raise
    return h5py.File(path, "r", swmr=True)
