"""Best-effort reading of other formats fabio knows: MarCCD (TIFF), MAR345 image plates, Rigaku R-AXIS
and Oxford Diffraction images.

These are not checked against dials.import. The pixels come from fabio; the geometry comes from the
MarCCD header when its fields are present (distance, beam centre, pixel size, wavelength, phi range),
otherwise it is a placeholder (100 mm, beam at the image centre, 0.1 mm pixels, 1 Angstrom) and a
warning says so: spot positions in pixels do not depend on it. All of these are treated as CCD or
image-plate detectors (``min_spot_size=Auto`` gives 6) with the trusted range 0 to the data type's
maximum minus one.
"""

from __future__ import annotations

import logging
import os

import numpy as np

from findspots.errors import ImageError
from findspots.images.models import Beam, Detector, Goniometer, Panel, ScanInfo

log = logging.getLogger("findspots")

TIFF_MAGIC = (b"II*\x00", b"MM\x00*")
# file name endings fabio handles for these formats
_EXTENSIONS = (".mccd", ".mar2300", ".mar3450", ".mar1200", ".mar1600", ".mar2000", ".mar3000", ".osc")
_KIND = {
    "marccdimage": ("MarCCD", "CCD"),
    "mar345image": ("MAR345", "IMAGE_PLATE"),
    "raxisimage": ("Rigaku R-AXIS", "IMAGE_PLATE"),
    "oxdimage": ("Oxford Diffraction", "CCD"),
}


def is_other(path: str, start: bytes) -> bool:
    """True for files this module should try: TIFF (MarCCD), MAR345, R-AXIS or Oxford Diffraction."""
    name = path.lower().removesuffix(".gz").removesuffix(".bz2")
    return (
        start[:4] in TIFF_MAGIC
        or name.endswith(_EXTENSIONS)
        or start.startswith(b"RAXIS")
        or start.startswith(b"OD SAPPHIRE")
    )


def _open(path: str):
    try:
        import fabio
    except ImportError as e:  # pragma: no cover - fabio is a dependency
        raise ImageError(f"{path}: reading this format needs fabio ({e})") from e
    try:
        return fabio.open(path)
    except Exception as e:  # fabio raises many types
        raise ImageError(f"{path}: fabio cannot read this file ({type(e).__name__}: {e})") from e


def _kind(img) -> tuple[str, str]:
    cls = type(img).__name__.lower()
    if cls not in _KIND:
        raise ImageError(
            f"{img.filename}: {type(img).__name__} images are not supported (MarCCD, MAR345, R-AXIS and "
            "Oxford Diffraction are read on a best-effort basis)"
        )
    return _KIND[cls]


def _number(header: dict, key: str) -> float | None:
    try:
        value = float(header[key])
    except (KeyError, TypeError, ValueError):
        return None
    return value if value != 0 else None


def _marccd_geometry(header: dict) -> dict | None:
    """Distance (mm), beam (px), pixel (mm), wavelength (A), phi start/width (deg) of a MarCCD header."""
    values = {
        "distance": _number(header, "xtal_to_detector"),
        "beam_x": _number(header, "beam_x"),
        "beam_y": _number(header, "beam_y"),
        "pixel": _number(header, "pixelsize_x"),
        "wavelength": _number(header, "source_wavelength"),
    }
    if any(v is None for v in values.values()):
        return None
    start = (_number(header, "start_phi") or 0.0) / 1000.0
    end = (_number(header, "end_phi") or 0.0) / 1000.0
    return {
        "distance": values["distance"] / 1000.0,
        "beam": (values["beam_x"] / 1000.0, values["beam_y"] / 1000.0),
        "pixel": values["pixel"] / 1e6,
        "wavelength": values["wavelength"] / 1e5,
        "phi": (start, end - start),
    }


def read_models(path: str) -> tuple[tuple[Detector, Beam, Goniometer, ScanInfo], str]:
    """(models, format name) of one image; placeholder geometry when the header has none."""
    img = _open(path)
    name, sensor = _kind(img)
    nslow, nfast = img.data.shape
    geo = _marccd_geometry(img.header) if name == "MarCCD" else None
    if geo is None:
        log.warning("%s: %s header geometry not read: placeholder detector geometry used", path, name)
        geo = {
            "distance": 100.0,
            "beam": (nfast / 2, nslow / 2),
            "pixel": 0.1,
            "wavelength": 1.0,
            "phi": (0, 0),
        }
    px = geo["pixel"]
    top = float(np.iinfo(img.data.dtype).max - 1) if img.data.dtype.kind in "iu" else 1e30
    panel = Panel(
        image_size=(nfast, nslow),
        pixel_size=(px, px),
        trusted_range=(0.0, top),
        origin=np.array([-geo["beam"][0] * px, geo["beam"][1] * px, -geo["distance"]]),
        fast_axis=np.array([1.0, 0.0, 0.0]),
        slow_axis=np.array([0.0, -1.0, 0.0]),
        type=sensor,
        identifier=os.path.basename(path),
    )
    scan = ScanInfo(geo["phi"][0], geo["phi"][1], 0.0, 0.0)
    return (Detector([panel]), Beam(geo["wavelength"]), Goniometer(), scan), f"{name} (best effort)"


def read_raw(path: str) -> np.ndarray:
    """Pixel data (slow, fast) as int32 (or float64 for float images)."""
    data = np.asarray(_open(path).data)
    return data.astype(np.float64 if data.dtype.kind == "f" else np.int32)
