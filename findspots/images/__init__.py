"""Image input: experiment models, format readers (CBF, HDF5/NeXus, SMV, experiment files), sequences."""


class ImageError(Exception):
    """An image file is missing, unreadable, corrupt or inconsistent with its sequence."""


# The submodules import ImageError from here, so it must exist before they load.
from findspots.images.cbf import read_models, read_raw  # noqa: E402
from findspots.images.expt import read_experiments, write_experiments  # noqa: E402
from findspots.images.inputs import load_inputs  # noqa: E402
from findspots.images.models import (  # noqa: E402
    Beam,
    Detector,
    Goniometer,
    ImageSequence,
    Panel,
    Scan,
)
from findspots.images.sweeps import group_images  # noqa: E402

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
