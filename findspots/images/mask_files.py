"""Mask files: one bool array per panel (True = good pixel), for ``spotfinder.lookup.mask`` and the
``mask`` of an experiment file's imageset.

Formats, recognised by content:

* ``.npy`` (numpy): a 2D array for one panel (or one image-sized array cut at the panels' raw-image
  offsets), or 3D (panel, row, column); boolean or integer, True / non-zero = good (DIALS's convention);
* HDF5 / NeXus: the root dataset ``/mask`` (True / non-zero = good); else root datasets ``mask_0``,
  ``mask_1``... one per panel; else a NeXus ``pixel_mask`` dataset anywhere in the file (0 = good, any
  set bit = bad); else the file's only 2D/3D boolean or integer dataset (True / non-zero = good).
  Shapes as for ``.npy``;
* a DIALS mask pickle is refused (pickles are never loaded): the error says how to convert it.

Float data, a wrong number of panels or a wrong shape is an error naming the file.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from findspots.errors import ImageError
from findspots.images.fileio import HDF5_MAGIC, h5py_with_filters
from findspots.images.models import Detector

NPY_MAGIC = b"\x93NUMPY"
PICKLE_SUFFIXES = (".pickle", ".pkl", ".pck")
CONVERT_PICKLE = (
    "dials.python -c \"import pickle, numpy; m = pickle.load(open('mask.pickle', 'rb')); "
    "m = m if isinstance(m, tuple) else (m,); "
    "numpy.save('mask.npy', numpy.stack([p.as_numpy_array() for p in m]))\""
)
_PER_PANEL = re.compile(r"mask_\d+")


class MaskFileError(ImageError):
    """A mask file that cannot be read or does not fit the detector; the message names its source."""


def read_mask_file(path: str | Path, detector: Detector, source: str) -> list[np.ndarray]:
    """One bool array per panel (True = good) from a mask file; ``source`` begins every error message."""
    path = Path(path)
    if not path.is_file():
        raise MaskFileError(f"{source}: no such file")
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head.startswith(NPY_MAGIC):
        try:
            array = np.load(path, allow_pickle=False)
        except ValueError as err:
            raise MaskFileError(f"{source}: cannot read the numpy array ({err})") from None
        masks = _split_panels(_as_good(array, False, source), detector, source)
    elif head.startswith(HDF5_MAGIC):
        masks = _hdf5_masks(path, detector, source)
    elif head[:1] == b"\x80" or path.suffix.lower() in PICKLE_SUFFIXES:
        raise MaskFileError(
            f"{source}: DIALS mask pickles are not read (unpickling can run code); convert it once with "
            f"{CONVERT_PICKLE} and give mask.npy instead"
        )
    else:
        raise MaskFileError(f"{source}: not a .npy or HDF5/NeXus mask file")
    check_panel_masks(masks, detector, source)
    return masks


def check_panel_masks(masks: list[np.ndarray], detector: Detector, source: str) -> None:
    """MaskFileError unless ``masks`` holds one array of each panel's shape."""
    if len(masks) != len(detector):
        raise MaskFileError(f"{source}: holds {len(masks)} panel masks, the detector has {len(detector)}")
    for k, (m, panel) in enumerate(zip(masks, detector, strict=True)):
        if tuple(np.shape(m)) != tuple(panel.shape):
            raise MaskFileError(
                f"{source}: panel {k} mask is {tuple(np.shape(m))} (rows, columns), "
                f"the panel is {tuple(panel.shape)}"
            )


def _as_good(array: np.ndarray, zero_is_good: bool, source: str) -> np.ndarray:
    """Bool array, True = good, of boolean or integer mask data (``zero_is_good``: a NeXus pixel_mask)."""
    if array.dtype.kind not in "biu":
        raise MaskFileError(f"{source}: mask data must be boolean or integer, not {array.dtype}")
    good = array == 0 if zero_is_good else array != 0
    return np.asarray(good, dtype=bool)


def _split_panels(good: np.ndarray, detector: Detector, source: str) -> list[np.ndarray]:
    """Per-panel arrays of a 3D stack, a one-panel 2D array, or an image-sized 2D array cut at the
    panels' raw-image offsets."""
    if good.ndim == 3:
        return [np.ascontiguousarray(g) for g in good]
    if good.ndim != 2:
        raise MaskFileError(f"{source}: mask must be 2D (one panel) or 3D (panels), not {good.ndim}D")
    if len(detector) == 1:
        return [good]
    out = []
    for k, panel in enumerate(detector):
        x0, y0 = panel.raw_offset
        ny, nx = panel.shape
        part = good[y0 : y0 + ny, x0 : x0 + nx]
        if part.shape != (ny, nx):
            raise MaskFileError(
                f"{source}: a {good.shape} mask does not cover panel {k} ({ny} x {nx} at x={x0}, y={y0})"
            )
        out.append(np.ascontiguousarray(part))
    return out


def _hdf5_masks(path: Path, detector: Detector, source: str) -> list[np.ndarray]:
    """The panel masks of an HDF5/NeXus file, by the rules of the module docstring, in their order."""
    h5py = h5py_with_filters()
    with h5py.File(path, "r") as fh:
        if isinstance(fh.get("mask"), h5py.Dataset):
            return _split_panels(
                _as_good(np.asarray(fh["mask"][()]), False, f"{source} (/mask)"), detector, source
            )
        per_panel = [n for n in fh if _PER_PANEL.fullmatch(n) and isinstance(fh[n], h5py.Dataset)]
        if per_panel:
            per_panel.sort(key=lambda n: int(n[5:]))
            return [_as_good(np.asarray(fh[n][()]), False, f"{source} (/{n})") for n in per_panel]
        pixel_masks: list[str] = []
        candidates: list[str] = []

        def visit(name, obj):
            if not isinstance(obj, h5py.Dataset):
                return
            if name.rsplit("/", 1)[-1] == "pixel_mask":
                pixel_masks.append(name)
            elif obj.ndim in (2, 3) and obj.dtype.kind in "biu":
                candidates.append(name)

        fh.visititems(visit)
        if len(pixel_masks) > 1:
            raise MaskFileError(f"{source}: several pixel_mask datasets ({', '.join(pixel_masks)})")
        if pixel_masks:
            name, zero_is_good = pixel_masks[0], True
        elif len(candidates) == 1:
            name, zero_is_good = candidates[0], False
        elif not candidates:
            raise MaskFileError(f"{source}: no /mask, pixel_mask or 2D/3D boolean or integer dataset")
        else:
            found = ", ".join(candidates)
            raise MaskFileError(
                f"{source}: several possible mask datasets ({found}); keep one or name it /mask"
            )
        good = _as_good(np.asarray(fh[name][()]), zero_is_good, f"{source} (/{name})")
    return _split_panels(good, detector, source)
