"""Experiment models (detector, beam, goniometer, scan values) from a parsed CBF header.

Two header flavours are understood:

* Pilatus miniCBF (``_array_data.header_convention PILATUS_1.2``): the ``# Key value`` lines of
  ``_array_data.header_contents``. Geometry follows dxtbx's miniCBF convention: fast axis (1,0,0),
  slow axis (0,-1,0), origin (-beam_x*px, +beam_y*px, -distance) mm, beam direction (0,0,1),
  rotation axis (1,0,0). A nonzero ``Detector_2theta`` rotates the detector about +x (same sense as
  the full-CBF DET_2THETA axis; not checked against a dxtbx import).
* Full CBF with imgCIF geometry (e.g. DLS I19): the ``_axis``, ``_diffrn_scan_axis``,
  ``_diffrn_scan_frame_axis``, ``_array_structure_list(_axis)`` loops give the detector axes and
  origin by composing the axis chain (translations and rotations, with offsets), the SOURCE axis
  gives the beam direction and the scanned goniometer axis (rotated by the axes it depends on) the
  rotation axis. Limits: one array per file, one detector element, no ``decreasing`` origin shift
  (a decreasing axis only flips its direction), no multi-axis goniometer model beyond the scan
  axis, no format-class static masks (e.g. the I03 SmarGon shadow mask).

Trusted range is (0, Count_cutoff) inclusive (current dxtbx); DIALS 3.12 wrote (-1, cutoff) with
exclusive ends, which selects the same integer pixels. Pilatus module gaps (487 x 195 px modules,
7 px fast and 17 px slow gaps) become panel mask rectangles when the image tiles into modules.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np

from findspots.errors import ImageError
from findspots.geometry.attenuation import has_table, linear_attenuation
from findspots.images import dls_p12m
from findspots.images.cbf_header import CbfHeader
from findspots.images.models import Beam, Detector, Goniometer, Panel, ScanInfo, ShadowMasker

PILATUS_MODULE = (487, 195)  # (fast, slow) pixels
PILATUS_GAP = (7, 17)
DEFAULT_CUTOFF = 1.0e6  # used only when a header has no Count_cutoff / overload value
EIGER_DEFAULT_CUTOFF = 1.0e8  # EIGER miniCBF without Count_cutoff (as dxtbx)
EIGER_MODULES = (((1030, 514), (10, 37)), ((1028, 512), (12, 38)))  # (module, gap) (fast, slow) pixels

JULIAN_DAY_OFFSET = 1721424.5  # Julian day of midnight starting proleptic Gregorian ordinal day 0
UNIX_EPOCH_JULIAN_DAY = 2440587.5

# Format-class quirks keyed by detector serial number: lab rotation axis for vertical goniometers.
ROTATION_AXIS_BY_SERIAL = {"60-0119": (0.0, 1.0, 0.0)}  # DLS I24 PILATUS3 6M


_DATE = re.compile(r"(\d+)-(\d+)-(\d+)T(\d+):(\d+):(\d+(?:\.\d*)?)")
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    m = _NUMBER.search(text)
    return float(m.group(0)) if m else None


def _numbers(text: str) -> list[float]:
    """Every number in a text such as '172e-6 m x 172e-6 m' or '(730.00, 865.00) pixels'."""
    return [float(v) for v in _NUMBER.findall(text)]


def _epoch(stamp: str | None) -> float:
    if not stamp:
        return 0.0
    try:
        return datetime.fromisoformat(stamp).replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        return 0.0


def _rotation(axis: np.ndarray, angle_deg: float) -> np.ndarray:
    """Right-handed rotation matrix about a unit axis."""
    x, y, z = axis / np.linalg.norm(axis)
    a = math.radians(angle_deg)
    c, s = math.cos(a), math.sin(a)
    t = 1 - c
    return np.array(
        [
            [t * x * x + c, t * x * y - s * z, t * x * z + s * y],
            [t * x * y + s * z, t * y * y + c, t * y * z - s * x],
            [t * x * z - s * y, t * y * z + s * x, t * z * z + c],
        ]
    )


def pilatus_gap_rects(nfast: int, nslow: int) -> list[tuple[int, int, int, int]]:
    """Module-gap rectangles (x0, y0, x1, y1) for a Pilatus image of whole modules, else []."""
    (mf, ms), (gf, gs) = PILATUS_MODULE, PILATUS_GAP
    if (nfast + gf) % (mf + gf) or (nslow + gs) % (ms + gs):
        return []
    nx, ny = (nfast + gf) // (mf + gf), (nslow + gs) // (ms + gs)
    rects = [(k * mf + (k - 1) * gf, 0, k * (mf + gf), nslow) for k in range(1, nx)]
    rects += [(0, k * ms + (k - 1) * gs, nfast, k * (ms + gs)) for k in range(1, ny)]
    return rects


def eiger_gap_rects(nfast: int, nslow: int) -> list[tuple[int, int, int, int]]:
    """Module-gap rectangles (x0, y0, x1, y1) of an EIGER (1030 x 514 modules, gaps 10 and 37) or
    EIGER2 (1028 x 512, gaps 12 and 38) image of whole modules, else []."""
    for (mf, ms), (gf, gs) in EIGER_MODULES:
        if (nfast + gf) % (mf + gf) == 0 and (nslow + gs) % (ms + gs) == 0:
            nx, ny = (nfast + gf) // (mf + gf), (nslow + gs) // (ms + gs)
            if nx > 4:
                continue
            rects = [(k * mf + (k - 1) * gf, 0, k * (mf + gf), nslow) for k in range(1, nx)]
            return rects + [(0, k * ms + (k - 1) * gs, nfast, k * (ms + gs)) for k in range(1, ny)]
    return []


def _detector_name(h: CbfHeader) -> tuple[str, str]:
    """(detector string, serial number) from '# Detector: NAME, S/N SERIAL ...'."""
    text = h.mini.get("Detector", "")
    m = re.search(r"S/N\s+([\w-]+)", text)
    return text, (m.group(1) if m else "")


def _panel_common(h: CbfHeader, nfast: int, nslow: int) -> dict:
    name, _ = _detector_name(h)
    full_overload = _number(h.first("_array_intensities.overload"))
    cutoff = full_overload if full_overload is not None else _number(h.mini.get("Count_cutoff"))
    is_pad = any(k in name.upper() for k in ("PILATUS", "EIGER"))
    material = h.mini.get("Sensor_material", "")
    material = {"silicon": "Si"}.get(material.lower(), material)
    thickness = _number(h.mini.get("Sensor_thickness"))
    eiger = "EIGER" in name.upper()
    default_cutoff = EIGER_DEFAULT_CUTOFF if eiger else DEFAULT_CUTOFF
    rects = pilatus_gap_rects(nfast, nslow) if "PILATUS" in name.upper() else []
    return dict(
        image_size=(nfast, nslow),
        trusted_range=(0.0, cutoff if cutoff is not None else default_cutoff),
        type="SENSOR_PAD" if is_pad or h.mini else "CCD",
        mask_rects=eiger_gap_rects(nfast, nslow) if eiger else rects,
        thickness=thickness * 1000.0 if thickness is not None else 0.0,
        material=material,
    )


def _mini_models(h: CbfHeader) -> tuple[Detector, Beam, Goniometer, ScanInfo]:
    nslow, nfast = h.shape
    if dls_p12m.is_p12m(h.mini.get("Detector", "")):
        return _p12m_models(h)
    px = _numbers(h.mini.get("Pixel_size", ""))
    beam_xy = _numbers(h.mini.get("Beam_xy", ""))
    wavelength = _number(h.mini.get("Wavelength"))
    distance = _number(h.mini.get("Detector_distance"))
    if len(px) < 2 or len(beam_xy) < 2 or wavelength is None or distance is None:
        raise ImageError(
            f"{h.path}: Pilatus header lacks Pixel_size, Beam_xy, Wavelength or Detector_distance"
        )
    pf, ps = px[0] * 1000.0, px[1] * 1000.0
    bx, by = beam_xy[0], beam_xy[1]
    rot = _rotation(np.array([1.0, 0.0, 0.0]), _number(h.mini.get("Detector_2theta")) or 0.0)
    panel = Panel(
        pixel_size=(pf, ps),
        origin=rot @ np.array([-bx * pf, by * ps, -distance * 1000.0]),
        fast_axis=rot @ np.array([1.0, 0.0, 0.0]),
        slow_axis=rot @ np.array([0.0, -1.0, 0.0]),
        **_panel_common(h, nfast, nslow),
    )
    _, serial = _detector_name(h)
    gonio = Goniometer(ROTATION_AXIS_BY_SERIAL.get(serial, (1.0, 0.0, 0.0)))
    return Detector([panel]), Beam(wavelength), gonio, _mini_scan(h)


def _mini_scan(h: CbfHeader) -> ScanInfo:
    exposure = _number(h.mini.get("Exposure_period")) or _number(h.mini.get("Exposure_time")) or 0.0
    return ScanInfo(
        start_angle=_number(h.mini.get("Start_angle")) or 0.0,
        angle_increment=_number(h.mini.get("Angle_increment")) or 0.0,
        exposure_time=exposure,
        epoch=_epoch(h.timestamp),
    )


def _p12m_models(h: CbfHeader) -> tuple[Detector, Beam, Goniometer, ScanInfo]:
    """The DLS I23 PILATUS 12M: 24 row panels and the kappa goniometer (see ``dls_p12m``)."""
    wavelength = _number(h.mini.get("Wavelength"))
    if wavelength is None:
        raise ImageError(f"{h.path}: Pilatus header lacks Wavelength")
    if h.shape != (dls_p12m.ROWS * dls_p12m.ROW_PITCH - 17, dls_p12m.ROW_SIZE[0]):
        raise ImageError(f"{h.path}: PILATUS 12M image is {h.shape}, expected 5071 x 2463 (slow, fast)")
    thickness = (_number(h.mini.get("Sensor_thickness")) or 0.00032) * 1000.0
    beam_xy = _numbers(h.mini.get("Beam_xy", ""))[:2]
    distance = _number(h.mini.get("Detector_distance"))
    if len(beam_xy) < 2 or distance is None:
        raise ImageError(f"{h.path}: Pilatus header lacks Beam_xy or Detector_distance")
    scan = _mini_scan(h)
    detector = dls_p12m.detector(thickness, scan.epoch, (beam_xy[0], beam_xy[1]), distance * 1000.0)
    return detector, Beam(wavelength), dls_p12m.goniometer(h.mini, scan.epoch), scan


def shadow_from_header(h: CbfHeader, goniometer: Goniometer) -> ShadowMasker | None:
    """The format's dynamic goniometer shadow (dxtbx dynamic_shadowing=Auto), if it has one."""
    if h.mini and dls_p12m.is_p12m(h.mini.get("Detector", "")):
        return dls_p12m.shadow(goniometer)
    return None


@dataclass
class _Axis:
    type: str
    equipment: str
    depends_on: str
    vector: np.ndarray
    offset: np.ndarray


class _AxisSet:
    """imgCIF axis chain with the settings of one frame."""

    def __init__(self, h: CbfHeader) -> None:
        self.axes: dict[str, _Axis] = {}
        for k, ident in enumerate(h.cif.get("_axis.id", [])):
            vec = [_number(h.cell(f"_axis.vector[{j}]", k)) or 0.0 for j in (1, 2, 3)]
            off = [_number(h.cell(f"_axis.offset[{j}]", k)) or 0.0 for j in (1, 2, 3)]
            self.axes[ident] = _Axis(
                type=(h.cell("_axis.type", k) or "").lower(),
                equipment=(h.cell("_axis.equipment", k) or "").lower(),
                depends_on=h.cell("_axis.depends_on", k) or ".",
                vector=np.array(vec, dtype=float),
                offset=np.array(off, dtype=float),
            )
        self.settings: dict[str, float] = {}
        self._read_settings(h)

    def _read_settings(self, h: CbfHeader) -> None:
        # Scan start values first, then the frame's own values override them.
        for prefix, angle, disp in (
            ("_diffrn_scan_axis", "angle_start", "displacement_start"),
            ("_diffrn_scan_frame_axis", "angle", "displacement"),
        ):
            for k, ident in enumerate(h.cif.get(f"{prefix}.axis_id", [])):
                axis = self.axes.get(ident)
                if axis is None:
                    continue
                col = angle if axis.type == "rotation" else disp
                value = _number(h.cell(f"{prefix}.{col}", k))
                if value is not None:
                    self.settings[ident] = value

    def chain(self, ident: str) -> list[str]:
        """The axis and every axis it depends on, innermost first."""
        out = []
        while ident not in (".", "", "?") and ident in self.axes and ident not in out:
            out.append(ident)
            ident = self.axes[ident].depends_on
        return out

    def point(self, ident: str) -> np.ndarray:
        """Lab position of the zero point of an axis after applying the whole chain."""
        p = np.zeros(3)
        for a in self.chain(ident):
            ax = self.axes[a]
            s = self.settings.get(a, 0.0)
            if ax.type == "rotation":
                p = _rotation(ax.vector, s) @ p + ax.offset
            else:
                p = p + ax.offset + s * ax.vector
        return p

    def direction(self, ident: str) -> np.ndarray:
        """Lab direction of an axis vector after the rotations of the axes it depends on."""
        v = self.axes[ident].vector.copy()
        for a in self.chain(ident)[1:]:
            ax = self.axes[a]
            if ax.type == "rotation":
                v = _rotation(ax.vector, self.settings.get(a, 0.0)) @ v
        return v


def _has_full_geometry(h: CbfHeader) -> bool:
    return "_axis.id" in h.cif and "_array_structure_list.axis_set_id" in h.cif


def _array_axes(h: CbfHeader, axes: _AxisSet) -> list[tuple[str, float, float, bool]]:
    """(axis id, displacement, increment mm, decreasing) for the fast then the slow array index."""
    rows = []
    ids = h.cif.get("_array_structure_list_axis.axis_set_id", [])
    for k, set_id in enumerate(h.cif["_array_structure_list.axis_set_id"]):
        prec = int(_number(h.cell("_array_structure_list.precedence", k)) or k + 1)
        direction = (h.cell("_array_structure_list.direction", k) or "increasing").lower()
        j = ids.index(set_id) if set_id in ids else -1
        axis_id = h.cell("_array_structure_list_axis.axis_id", j) or set_id
        disp = _number(h.cell("_array_structure_list_axis.displacement", j))
        inc = _number(h.cell("_array_structure_list_axis.displacement_increment", j))
        if axis_id not in axes.axes:
            raise ImageError(f"{h.path}: array axis {axis_id} not in the _axis loop")
        rows.append((prec, axis_id, disp or 0.0, inc, direction == "decreasing"))
    rows.sort()
    if len(rows) != 2:
        raise ImageError(f"{h.path}: expected 2 array axes, found {len(rows)}")
    return [(a, d, i if i is not None else 0.0, dec) for _, a, d, i, dec in rows]


def _full_models(h: CbfHeader) -> tuple[Detector, Beam, Goniometer, ScanInfo]:
    nslow, nfast = h.shape
    axes = _AxisSet(h)
    (fast_id, fast_disp, fast_inc, fast_dec), (slow_id, slow_disp, slow_inc, slow_dec) = _array_axes(h, axes)
    axes.settings[fast_id] = fast_disp
    axes.settings[slow_id] = slow_disp
    inner = slow_id if fast_id in axes.chain(slow_id) else fast_id
    fast = axes.direction(fast_id) * (-1 if fast_dec else 1)
    slow = axes.direction(slow_id) * (-1 if slow_dec else 1)
    sizes = [_number(v) for v in h.cif.get("_array_element_size.size", [])]
    pf = fast_inc or (sizes[0] * 1000.0 if sizes and sizes[0] else None)
    ps = slow_inc or (sizes[1] * 1000.0 if len(sizes) > 1 and sizes[1] else None)
    if not pf or not ps:
        raise ImageError(f"{h.path}: CBF header has no pixel size")
    name, _ = _detector_name(h)
    common = _panel_common(h, nfast, nslow) | {"trusted_range": _full_trusted_range(h)}
    panel = Panel(
        pixel_size=(pf, ps),
        origin=axes.point(inner),
        fast_axis=fast,
        slow_axis=slow,
        identifier=name,
        **common,
    )
    beam = _full_beam(h, axes)
    if panel.thickness > 0 and has_table(panel.material) and 0 < beam.wavelength < math.inf:
        panel.mu = linear_attenuation(panel.material, beam.wavelength)
    return Detector([panel]), beam, *_full_scan(h, axes)


def _full_trusted_range(h: CbfHeader) -> tuple[float, float]:
    """Inclusive trusted range of imgCIF intensities (current dxtbx): from the underload, else one above
    the undefined value, else 0; to one below the overload (an overloaded pixel is saturated), else 1e6."""
    underload = _number(h.first("_array_intensities.underload"))
    undefined = _number(h.first("_array_intensities.undefined_value"))
    overload = _number(h.first("_array_intensities.overload"))
    lo = underload if underload is not None else (undefined + 1 if undefined is not None else 0.0)
    return lo, overload - 1 if overload is not None else DEFAULT_CUTOFF


def _full_beam(h: CbfHeader, axes: _AxisSet) -> Beam:
    wavelength = _number(h.first("_diffrn_radiation_wavelength.wavelength"))
    if wavelength is None:
        wavelength = _number(h.mini.get("Wavelength"))
    if wavelength is None:
        raise ImageError(f"{h.path}: CBF header has no wavelength")
    source = [a for a in axes.axes.values() if a.equipment == "source"]
    # polarization as dxtbx's imgCIF beam: the source ratio, the normal at the plane angle from +y;
    # a Pilatus header convention sets the fraction to 0.999
    fraction = _number(h.first("_diffrn_radiation.polarizn_source_ratio"))
    plane = math.radians(_number(h.first("_diffrn_radiation.polarizn_source_norm")) or 0.0)
    if fraction is None or "PILATUS" in (h.first("_array_data.header_convention") or "").upper():
        fraction = 0.999
    return Beam(
        wavelength,
        source[0].vector if source else (0.0, 0.0, 1.0),
        polarization_normal=(math.sin(plane), math.cos(plane), 0.0),
        polarization_fraction=fraction,
        flux=_number(h.first("_diffrn_radiation.beam_flux")) or 0.0,
    )


def _full_goniometer(h: CbfHeader, axes: _AxisSet, scan_axis: str) -> Goniometer:
    """dxtbx's imgCIF goniometer: every goniometer axis, innermost (crystal side) first, at its
    ``_diffrn_scan_axis`` start angle, with the scanned one marked (its vector reversed when the
    increment is negative); the single scan axis alone when the axes do not form one chain."""
    depends = {ax.depends_on: name for name, ax in axes.axes.items() if ax.equipment == "goniometer"}
    chain, name = [], depends.get(".")
    while name and name not in chain:
        chain.append(name)
        name = depends.get(name)
    chain.reverse()
    ids = h.cif.get("_diffrn_scan_axis.axis_id", [])
    starts = {a: h.cell("_diffrn_scan_axis.angle_start", k) for k, a in enumerate(ids)}
    if scan_axis not in chain or len(chain) != len(depends) or any(a not in starts for a in chain):
        return Goniometer(axes.direction(scan_axis))
    vectors = [axes.axes[a].vector for a in chain]
    k = chain.index(scan_axis)
    if _scan_increment(h, scan_axis) < 0:
        vectors[k] = -vectors[k]
    angles = [_number(starts[a]) or 0.0 for a in chain]
    return Goniometer.multi_axis(vectors, angles, chain, k)


def _scan_increment(h: CbfHeader, ident: str) -> float:
    ids = h.cif.get("_diffrn_scan_axis.axis_id", [])
    return (
        (_number(h.cell("_diffrn_scan_axis.angle_increment", ids.index(ident))) or 0.0)
        if ident in ids
        else 0.0
    )


def _full_scan(h: CbfHeader, axes: _AxisSet) -> tuple[Goniometer, ScanInfo]:
    scan_axis, start, width = None, 0.0, 0.0
    gonio_ids = [a for a, ax in axes.axes.items() if ax.equipment == "goniometer" and ax.type == "rotation"]
    for k, ident in enumerate(h.cif.get("_diffrn_scan_axis.axis_id", [])):
        if ident in gonio_ids:
            inc = _number(h.cell("_diffrn_scan_axis.angle_increment", k)) or 0.0
            if scan_axis is None or (inc != 0 and width == 0):
                scan_axis, width = ident, inc
    if scan_axis is None and gonio_ids:
        scan_axis = gonio_ids[0]
    if scan_axis is not None:
        start = axes.settings.get(scan_axis, 0.0)
        gonio = _full_goniometer(h, axes, scan_axis)
        if width < 0:  # dxtbx turns a reversed scan round: the axis is reversed instead
            start, width = -start, -width
    else:
        gonio = Goniometer()
    exposure = _number(h.first("_diffrn_scan_frame.integration_time"))
    if exposure is None:
        exposure = _number(h.mini.get("Exposure_time")) or 0.0
    stamp = h.first("_diffrn_scan_frame.date")
    return gonio, ScanInfo(start, width, exposure, _cbflib_epoch(stamp) if stamp else _epoch(h.timestamp))


def _cbflib_epoch(stamp: str) -> float:
    """Seconds since 1970 of an imgCIF date as CBFlib's timestamp gives it (and dxtbx writes): the
    time of day added to the day's Julian day number before 1970's is taken off, so that the
    fraction of a second keeps only about 4e-5 s of precision."""
    m = _DATE.match(stamp.strip())
    if m is None:
        return 0.0
    year, month, mday, hour, minute = (int(v) for v in m.groups()[:5])
    try:
        day = datetime(year, month, mday).toordinal() + JULIAN_DAY_OFFSET
    except ValueError:
        return 0.0
    julian = day + (hour + (minute + float(m.group(6)) / 60.0) / 60.0) / 24.0
    return (julian - UNIX_EPOCH_JULIAN_DAY) * 86400.0


def models_from_header(h: CbfHeader) -> tuple[Detector, Beam, Goniometer, ScanInfo]:
    """Detector, beam, goniometer and this image's scan values from a parsed header.

    Values that give no usable model (infinite numbers, zero-length axis vectors) are an ImageError:
    NaN geometry would otherwise cut a sweep into one-image sequences and change the spots."""
    if not (_has_full_geometry(h) or h.mini):
        raise ImageError(f"{h.path}: CBF header has neither a Pilatus mini header nor imgCIF geometry")
    try:
        with np.errstate(all="ignore"):
            models = _full_models(h) if _has_full_geometry(h) else _mini_models(h)
    except (ValueError, ArithmeticError) as e:  # e.g. math domain errors of infinite angles
        raise ImageError(f"{h.path}: CBF header values make no sense ({e}); {_BAD_HEADER}") from e
    _check_finite(h, *models)
    return models


_BAD_HEADER = "correct the image header, or leave the file out of the command"


def _check_finite(h: CbfHeader, detector: Detector, beam: Beam, gonio: Goniometer, scan: ScanInfo) -> None:
    values = {"wavelength": beam.wavelength, "beam direction": beam.direction}
    values["rotation axis"] = gonio.rotation_axis
    for name in ("start_angle", "angle_increment", "exposure_time", "epoch"):
        values[name.replace("_", " ")] = getattr(scan, name)
    for k, panel in enumerate(detector):
        where = f"panel {k} " if len(detector) > 1 else "detector "
        values[where + "origin"] = panel.origin
        values[where + "fast axis"] = panel.fast_axis
        values[where + "slow axis"] = panel.slow_axis
        values[where + "pixel size"] = panel.pixel_size
        values[where + "trusted range"] = panel.trusted_range
    for name, value in values.items():
        if not np.all(np.isfinite(np.asarray(value, dtype=float))):
            raise ImageError(
                f"{h.path}: CBF header gives no finite {name} (an infinite value or a zero-length axis "
                f"vector); {_BAD_HEADER}"
            )
