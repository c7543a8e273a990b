"""SMV (ADSC) images: ``{ KEY=value; ... }`` text header padded to HEADER_BYTES, then raw 16-bit pixels.

Models follow dxtbx's ADSC reading: a CCD (so ``min_spot_size=Auto`` is 6) with fast +x and slow -y,
the origin at (-BEAM_CENTER_Y, +BEAM_CENTER_X, -DISTANCE) mm (the header's beam centre is in the Mosflm
frame), pedestal IMAGE_PEDESTAL (default 0) and a gain from GAIN or, without it, from the module
type guessed from the image and pixel size (Quantum 4: 1.25, Quantum 270: 2.8, other Quantum models
2.4, or 1.8 with hardware binning of an "R" model; unknown: 1). The corrected image is
(raw - pedestal) / gain. Raw values 1 to 65534 are trusted, whatever the pedestal, as current dxtbx
has it (since dxtbx #536, 2022): an ADSC CCD always carries a software offset, so 0 marks the module
boundaries and 65535 the truncated overloads. DIALS 3.12's dxtbx trusted (-1 - pedestal, 65535 -
pedestal) open, i.e. 0..65534 with no pedestal: its zero module boundaries then count as data, and on the
ADSC Q4 test image give about three times the components current DIALS finds (docs/departures.md).
A negative OSC_RANGE reverses the axis.
"""

from __future__ import annotations

import calendar
import re
import time

import numpy as np

from findspots.errors import ImageError
from findspots.images.fileio import open_binary
from findspots.images.models import Beam, Detector, Goniometer, Panel, ScanInfo

SMV_MAGIC = b"{\nHEADER_BYTES="
ADSC_TRUSTED_RANGE = (1.0, 65534.0)  # inclusive; see the module docstring
_REQUIRED = (
    "BEAM_CENTER_X",
    "BEAM_CENTER_Y",
    "DISTANCE",
    "WAVELENGTH",
    "PIXEL_SIZE",
    "OSC_START",
    "OSC_RANGE",
    "SIZE1",
    "SIZE2",
    "BYTE_ORDER",
)
_TYPES = {
    "unsigned_short": np.uint16,
    "signed_short": np.int16,
    "unsigned_long": np.uint32,
    "signed_long": np.int32,
}
_DATE_FORMATS = ("%a %b %d %H:%M:%S %Y", "%a %b %d %H:%M:%S %Z %Y")
# (SIZE1 == SIZE2, PIXEL_SIZE) -> ADSC module, as dxtbx guesses it when GAIN is absent.
_MODELS = {
    (2304, 0.0816): ("Q4", None),
    (4096, 0.0512): ("Q210", None),
    (2048, 0.1024): ("Q210", "2x2"),
    (6144, 0.0512): ("Q315", None),
    (3072, 0.1024): ("Q315", "2x2"),
    (4168, 0.0648): ("Q270", None),
    (2084, 0.0324): ("Q270", "2x2"),
}


def is_smv(start: bytes) -> bool:
    """True when the (decompressed) file starts like an SMV header."""
    return start.startswith(SMV_MAGIC)


def read_header(path: str) -> tuple[int, dict[str, str]]:
    """(header size in bytes, KEY -> value) of an SMV file (also .gz/.bz2)."""
    with open_binary(path) as fh:
        start = fh.read(512)
        if not is_smv(start):
            raise ImageError(f"{path}: not an SMV file")
        m = re.search(rb"HEADER_BYTES=\s*(\d+)", start)
        if m is None:
            raise ImageError(f"{path}: SMV header has no HEADER_BYTES")
        size = int(m.group(1))
        text = (start + fh.read(max(size - len(start), 0)))[:size].decode("ascii", "ignore")
    items = dict(re.findall(r"^\s*([A-Za-z_][\w]*)\s*=\s*([^;]*);", text, flags=re.M))
    return size, {k: v.strip() for k, v in items.items()}


def _float(header: dict[str, str], key: str, path: str) -> float:
    try:
        return float(header[key])
    except (KeyError, ValueError) as e:
        raise ImageError(f"{path}: SMV header has no valid {key}") from e


def adsc_gain(header: dict[str, str]) -> float:
    """ADU per photon: GAIN if given, else guessed from the ADSC module type."""
    if "GAIN" in header:
        return float(header["GAIN"])
    size1, size2 = int(header.get("SIZE1", 0)), int(header.get("SIZE2", 0))
    model, binning = _MODELS.get((size1, float(header.get("PIXEL_SIZE", 0))), (None, None))
    if size1 != size2 or model is None:
        return 1.0
    if model == "Q270":
        return 2.8
    if model == "Q4":
        return 1.25
    bin_level = binning or str(header.get("BIN"))
    hardware = bin_level.upper() != "NONE" and header.get("BIN_TYPE") == "HW"
    return 1.8 if hardware and model.endswith("R") else 2.4


def _epoch(date: str) -> float:
    date = date.replace("PST", "").replace("PDT", "")
    for fmt in _DATE_FORMATS:
        try:
            return float(calendar.timegm(time.strptime(date, fmt)))
        except ValueError:
            continue
    return 0.0


def models_from_header(path: str, header: dict[str, str]) -> tuple[Detector, Beam, Goniometer, ScanInfo]:
    """Detector, beam, goniometer and scan values of an ADSC SMV header."""
    missing = [k for k in _REQUIRED if k not in header]
    if missing:
        raise ImageError(f"{path}: SMV header lacks {', '.join(missing)} (only ADSC-style SMV is supported)")
    pedestal = float(header.get("IMAGE_PEDESTAL", 0))
    pixel = _float(header, "PIXEL_SIZE", path)
    panel = Panel(
        image_size=(int(header["SIZE1"]), int(header["SIZE2"])),
        pixel_size=(pixel, pixel),
        trusted_range=ADSC_TRUSTED_RANGE,
        origin=np.array(
            [
                -_float(header, "BEAM_CENTER_Y", path),
                _float(header, "BEAM_CENTER_X", path),
                -_float(header, "DISTANCE", path),
            ]
        ),
        fast_axis=np.array([1.0, 0.0, 0.0]),
        slow_axis=np.array([0.0, -1.0, 0.0]),
        type="CCD",
        gain=adsc_gain(header),
        pedestal=pedestal,
        identifier=header.get("DETECTOR_SN", ""),
    )
    osc_range = _float(header, "OSC_RANGE", path)
    gonio = Goniometer(np.array([1.0 if osc_range > 0 else -1.0, 0.0, 0.0]))
    scan = ScanInfo(
        start_angle=_float(header, "OSC_START", path),
        angle_increment=abs(osc_range),
        exposure_time=float(header.get("TIME", 0) or 0),
        epoch=_epoch(header.get("DATE", "")),
    )
    return Detector([panel]), Beam(_float(header, "WAVELENGTH", path)), gonio, scan


def read_models(path: str) -> tuple[Detector, Beam, Goniometer, ScanInfo]:
    """Experiment models of one SMV file, from its header."""
    _, header = read_header(path)
    return models_from_header(path, header)


def read_raw(path: str) -> np.ndarray:
    """The (SIZE2, SIZE1) pixel array as int32."""
    size, header = read_header(path)
    nfast, nslow = int(header.get("SIZE1", 0)), int(header.get("SIZE2", 0))
    dtype = np.dtype(_TYPES.get(header.get("TYPE", "unsigned_short"), np.uint16))
    dtype = dtype.newbyteorder(">" if header.get("BYTE_ORDER") == "big_endian" else "<")
    with open_binary(path) as fh:
        fh.read(size)
        data = fh.read(nfast * nslow * dtype.itemsize)
    if len(data) < nfast * nslow * dtype.itemsize:
        raise ImageError(
            f"{path}: truncated SMV file: {len(data)} of {nfast * nslow * dtype.itemsize} data bytes"
        )
    return np.frombuffer(data, dtype=dtype).reshape(nslow, nfast).astype(np.int32)
