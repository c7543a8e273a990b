"""Image input: experiment models, format readers (CBF, HDF5/NeXus, SMV, experiment files), sequences.

The modules import one another without cycles (tests/test_import_cycles.py checks it): ``fileio`` opens
files and ``models`` is the data model; the format modules (``cbf_header``, ``byte_offset``,
``cbf_models``, ``cbf``, ``smv``, ``other``, ``nexus``) and ``mask_files`` build on those; ``formats`` is
the one list of formats, through which ``sweeps``, ``expt`` and ``inputs`` recognise files.
"""

from findspots.errors import ImageError
from findspots.images.cbf import read_models, read_raw
from findspots.images.expt import read_experiments, write_experiments
from findspots.images.inputs import load_inputs
from findspots.images.models import Beam, Detector, Goniometer, ImageSequence, Panel, Scan
from findspots.images.sweeps import group_images

__all__ = [
    "Beam",
    "Detector",
    "Goniometer",
    "ImageError",
    "ImageSequence",
    "Panel",
    "Scan",
    "group_images",
    "load_inputs",
    "read_models",
    "read_experiments",
    "read_raw",
    "write_experiments",
]
