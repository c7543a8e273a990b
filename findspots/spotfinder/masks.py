"""Static per-panel masks built once per sequence from the filter parameters
(docs/dials-behaviour.md#static-masks, docs/dials-behaviour.md#lookup-mask).

``static_masks`` follows DIALS's mask generator, in its order, each step only clearing pixels:

1. ``d_min > d_max`` is an error (no spot could be found);
2. ``border``: that many rows and columns at every edge;
3. ``untrusted`` regions, per panel (``panel`` None means 0; a region with no geometry masks its whole panel):
   ``circle=xc,yc,r`` masks pixels (i, j) with (i - xc)^2 + (j - yc)^2 < r^2 (integer pixel corners, strict);
   ``rectangle=x0,x1,y0,y1`` masks x0 <= i < x1, y0 <= j < y1 (outside the panel is an error, not clipped);
   ``polygon=x1,y1,x2,y2,...`` masks pixels whose centre (i + 0.5, j + 0.5) is inside by the even-odd rule;
   ``pixel=y,x`` masks that one pixel (row, column);
4. resolution, with d at each pixel centre through the panel's px->mm strategy (parallax-corrected for
   Si/CdTe sensors unless ``disable_parallax_correction``): ``d_min`` masks 0 <= d <= d_min, ``d_max`` masks
   d_max <= d <= max(d_max + 1, 1e9), each ``resolution_range=a,b`` masks min <= d <= max (all inclusive);
5. ``ice_rings``: every ring interval of :mod:`findspots.geometry.ice_rings`, inclusive;

and finally ANDs the ``lookup.mask`` (:func:`load_lookup_mask`). The detector's own mask (panel rectangles,
trusted range) is applied per image elsewhere.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from pathlib import Path

import numpy as np

from findspots.errors import ParameterError
from findspots.geometry.ice_rings import ring_d_spacings, ring_ranges
from findspots.geometry.parallax import panel_mu
from findspots.geometry.resolution import max_resolution_at_corners, resolution_map
from findspots.geometry.space_groups import averaged_metric, space_group
from findspots.images.mask_files import MaskFileError, check_panel_masks, read_mask_file

log = logging.getLogger("findspots")

UNTRUSTED = "spotfinder.filter.untrusted"


def apply_border(mask: np.ndarray, border: int) -> None:
    """Clear ``border`` rows and columns at every edge of ``mask`` (in place)."""
    if border and border > 0:
        mask[:border, :] = False
        mask[-border:, :] = False
        mask[:, :border] = False
        mask[:, -border:] = False


# ---------------------------------------------------------------- untrusted regions


def _values(v) -> str:
    return ",".join(str(x) for x in v)


def mask_circle(mask: np.ndarray, xc: float, yc: float, radius: float) -> None:
    """Clear pixels (i, j) with (i - xc)^2 + (j - yc)^2 < radius^2 (in place).

    As in dxtbx the scan box floor(c - r) .. ceil(c + r) is clipped to the panel and must not be empty,
    and the radius must be positive; both are ParameterErrors here."""
    what = f"{UNTRUSTED}.circle={_values((xc, yc, radius))}"
    if not radius > 0:
        raise ParameterError(f"{what}: the radius must be greater than 0")
    height, width = mask.shape
    x0, x1 = max(math.floor(xc - radius), 0), min(math.ceil(xc + radius), width)
    y0, y1 = max(math.floor(yc - radius), 0), min(math.ceil(yc + radius), height)
    if x1 <= x0 or y1 <= y0:
        raise ParameterError(f"{what}: the circle lies outside the panel ({width} x {height} pixels)")
    i = np.arange(x0, x1, dtype=np.float64)[None, :]
    j = np.arange(y0, y1, dtype=np.float64)[:, None]
    inside = (i - xc) * (i - xc) + (j - yc) * (j - yc) < radius * radius
    mask[y0:y1, x0:x1] &= ~inside


def mask_rectangle(mask: np.ndarray, x0: int, x1: int, y0: int, y1: int) -> None:
    """Clear x0 <= i < x1, y0 <= j < y1 (in place); the rectangle must lie inside the panel."""
    height, width = mask.shape
    if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
        raise ParameterError(
            f"{UNTRUSTED}.rectangle={_values((x0, x1, y0, y1))}: needs 0 <= x0 < x1 <= {width} and "
            f"0 <= y0 < y1 <= {height} (x0,x1,y0,y1 on a {width} x {height} panel)"
        )
    mask[y0:y1, x0:x1] = False


def inside_polygon(vertices: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Even-odd rule: which points (x, y) (broadcast arrays) are inside the polygon ``vertices`` (N, 2).

    An edge from vertex j to vertex i is crossed by the ray to +x from (x, y) when exactly one end lies
    strictly above y and x < (xj - xi) (y - yi) / (yj - yi) + xi."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    inside = np.zeros(np.broadcast_shapes(x.shape, y.shape), dtype=bool)
    n = len(vertices)
    for i in range(n):
        xi, yi = vertices[i]
        xj, yj = vertices[i - 1]
        if yi == yj:
            continue  # never straddles a horizontal line
        straddles = (yi > y) != (yj > y)
        inside ^= straddles & (x < (xj - xi) * (y - yi) / (yj - yi) + xi)
    return inside


def _polygon_vertices(coords) -> np.ndarray:
    what = f"{UNTRUSTED}.polygon={_values(coords)}"
    if len(coords) % 2:
        raise ParameterError(f"{what}: needs an even number of values (x, y pairs)")
    if len(coords) < 6:
        raise ParameterError(f"{what}: needs at least 3 vertices")
    return np.asarray(coords, dtype=np.float64).reshape(-1, 2)


def mask_polygon(mask: np.ndarray, coords) -> None:
    """Clear pixels whose centre is inside the polygon x1,y1,x2,y2,... (in place).

    The scan box is floor(min)..floor(max)+1 of the vertices, clipped to the panel, and must not be empty.
    At least 3 vertices are needed (dxtbx asserts more than 3, so DIALS refuses a triangle; here a triangle
    masks what the even-odd rule says)."""
    what = f"{UNTRUSTED}.polygon={_values(coords)}"
    vertices = _polygon_vertices(coords)
    height, width = mask.shape
    lo = np.floor(vertices.min(axis=0)).astype(int)
    hi = np.floor(vertices.max(axis=0)).astype(int)
    x0, y0 = max(lo[0], 0), max(lo[1], 0)
    x1, y1 = min(hi[0] + 1, width), min(hi[1] + 1, height)
    if x1 <= x0 or y1 <= y0:
        raise ParameterError(f"{what}: the polygon lies outside the panel ({width} x {height} pixels)")
    i = np.arange(x0, x1, dtype=np.float64)[None, :] + 0.5
    j = np.arange(y0, y1, dtype=np.float64)[:, None] + 0.5
    mask[y0:y1, x0:x1] &= ~inside_polygon(vertices, i, j)


def mask_pixel(mask: np.ndarray, y: int, x: int) -> None:
    """Clear pixel (row y, column x) (in place)."""
    height, width = mask.shape
    if not (0 <= y < height and 0 <= x < width):
        raise ParameterError(
            f"{UNTRUSTED}.pixel={y},{x}: (y, x) outside the panel ({height} rows x {width} columns)"
        )
    mask[y, x] = False


def apply_untrusted(mask: np.ndarray, regions, panel_index: int) -> None:
    """Apply every untrusted region that belongs to ``panel_index`` (in place)."""
    for region in regions or ():
        panel = 0 if region.panel is None else region.panel
        if panel != panel_index:
            continue
        if not any((region.circle, region.rectangle, region.polygon, region.pixel)):
            log.debug("Masking the whole of panel %d (untrusted region without geometry)", panel_index)
            mask[:] = False
            continue
        if region.circle is not None:
            log.debug("Untrusted circle on panel %d: %s", panel_index, _values(region.circle))
            mask_circle(mask, *region.circle)
        if region.rectangle is not None:
            log.debug("Untrusted rectangle on panel %d: %s", panel_index, _values(region.rectangle))
            mask_rectangle(mask, *region.rectangle)
        if region.polygon is not None:
            log.debug("Untrusted polygon on panel %d: %s", panel_index, _values(region.polygon))
            mask_polygon(mask, region.polygon)
        if region.pixel is not None:
            log.debug("Untrusted pixel on panel %d: %s", panel_index, _values(region.pixel))
            mask_pixel(mask, *region.pixel)


# ---------------------------------------------------------------- resolution


def in_ranges(d: np.ndarray, ranges: list[tuple[float, float]]) -> np.ndarray:
    """Boolean array: d lies in at least one closed interval [lo, hi] of ``ranges``."""
    if not ranges:
        return np.zeros(d.shape, dtype=bool)
    merged: list[list[float]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    los = np.array([m[0] for m in merged])
    his = np.array([m[1] for m in merged])
    k = np.searchsorted(los, d, side="right") - 1
    return (k >= 0) & (d <= his[np.maximum(k, 0)])


_RESOLUTION_CACHE: OrderedDict = OrderedDict()
_RESOLUTION_CACHE_SIZE = 3


def _resolution(panel, beam, mu: float | None) -> np.ndarray:
    """The panel's per-pixel d map, cached on the geometry (like DIALS's cache per beam and panel)."""
    key = (
        panel.image_size,
        panel.pixel_size,
        tuple(panel.origin),
        tuple(panel.fast_axis),
        tuple(panel.slow_axis),
        panel.thickness,
        mu,
        beam.wavelength,
        tuple(beam.s0),
    )
    if key in _RESOLUTION_CACHE:
        _RESOLUTION_CACHE.move_to_end(key)
        return _RESOLUTION_CACHE[key]
    d = resolution_map(panel, beam.wavelength, beam.s0, mu)
    d.flags.writeable = False
    _RESOLUTION_CACHE[key] = d
    while len(_RESOLUTION_CACHE) > _RESOLUTION_CACHE_SIZE:
        _RESOLUTION_CACHE.popitem(last=False)
    return d


def check_mask_parameters(f) -> list[tuple[float, float]]:
    """Validate the mask parameters that do not depend on the detector (ParameterError, one line).

    Checks d_min/d_max/resolution_range, the ice-ring settings and the panel-independent rules of the
    untrusted regions; returns the fixed (lo, hi) resolution ranges to mask. :func:`static_masks` calls it;
    it can also run before any image is read."""
    if f.d_min is not None and f.d_max is not None and f.d_min > f.d_max:
        raise ParameterError(
            f"spotfinder.filter.d_min={f.d_min} > spotfinder.filter.d_max={f.d_max}: no spots will be found"
        )
    ranges = []
    if f.d_min is not None:
        if not f.d_min > 0:
            raise ParameterError(f"spotfinder.filter.d_min={f.d_min} must be greater than 0")
        ranges.append((0.0, float(f.d_min)))
    if f.d_max is not None:
        ranges.append((float(f.d_max), max(f.d_max + 1.0, 1e9)))
    for pair in f.resolution_range or ():
        lo, hi = min(pair), max(pair)
        if not lo < hi:
            raise ParameterError(
                f"spotfinder.filter.resolution_range={_values(pair)}: the two limits must differ"
            )
        ranges.append((float(lo), float(hi)))
    ice = f.ice_rings
    if ice.filter:
        if ice.unit_cell is None or ice.space_group is None:
            raise ParameterError("spotfinder.filter.ice_rings.filter=True needs unit_cell and space_group")
        averaged_metric(space_group(ice.space_group), ice.unit_cell)  # errors early
        ring_ranges([1.0], ice.width)  # validates the width
        if ice.d_min is not None and not ice.d_min > 0:
            raise ParameterError(f"spotfinder.filter.ice_rings.d_min={ice.d_min} must be greater than 0")
    for region in f.untrusted or ():
        if region.circle is not None and not region.circle[2] > 0:
            raise ParameterError(
                f"{UNTRUSTED}.circle={_values(region.circle)}: the radius must be greater than 0"
            )
        if region.polygon is not None:
            _polygon_vertices(region.polygon)
    return ranges


def _ice_ring_ranges(ice, panel, s0, mu: float | None) -> list[tuple[float, float]]:
    d_limit = ice.d_min if ice.d_min is not None else max_resolution_at_corners(panel, s0, mu)
    rings = ring_d_spacings(ice.unit_cell, ice.space_group, d_limit)
    log.debug("Ice rings to d_min=%.4f: %d rings", d_limit, len(rings))
    return ring_ranges(rings, ice.width)


# ---------------------------------------------------------------- the masks


def static_masks(sequence, filter_params, lookup_mask: list[np.ndarray] | None = None) -> list[np.ndarray]:
    """Panel masks (True = usable) from the filter parameters and the lookup mask, in DIALS's order.

    ``lookup_mask`` is one bool array per panel (True = good), as :func:`load_lookup_mask` returns.
    """
    f = filter_params
    ranges = check_mask_parameters(f)
    detector = sequence.detector
    if lookup_mask is not None:
        check_lookup_mask(lookup_mask, detector, "spotfinder.lookup.mask")
    for region in f.untrusted or ():
        panel = 0 if region.panel is None else region.panel
        if not 0 <= panel < len(detector):
            log.warning(
                "%s.panel=%s: no such panel (the detector has %d); region ignored",
                UNTRUSTED,
                region.panel,
                len(detector),
            )
    beam = sequence.beam
    masks = []
    for index, panel in enumerate(detector):
        mask = np.ones(panel.shape, dtype=bool)
        apply_border(mask, f.border)
        apply_untrusted(mask, f.untrusted, index)
        panel_ranges = list(ranges)
        needs_geometry = bool(panel_ranges) or f.ice_rings.filter
        mu = None if f.disable_parallax_correction or not needs_geometry else panel_mu(panel, beam.wavelength)
        if f.ice_rings.filter:
            panel_ranges += _ice_ring_ranges(f.ice_rings, panel, beam.s0, mu)
        if panel_ranges:
            log.debug(
                "Resolution masks on panel %d (%s px->mm): %d ranges",
                index,
                "simple" if mu is None else f"parallax-corrected, mu={mu:.6g}/mm",
                len(panel_ranges),
            )
            mask &= ~in_ranges(_resolution(panel, beam, mu), panel_ranges)
        if lookup_mask is not None:
            mask &= lookup_mask[index]
        masks.append(mask)
    return masks


# ---------------------------------------------------------------- lookup mask files


def check_lookup_mask(masks, detector, source: str) -> None:
    """ParameterError unless ``masks`` holds one array of each panel's shape."""
    try:
        check_panel_masks(masks, detector, source)
    except MaskFileError as err:
        raise ParameterError(str(err)) from None


def load_lookup_mask(path, detector) -> list[np.ndarray] | None:
    """The ``spotfinder.lookup.mask`` file as one bool array per panel (True = good); None for no path.

    The formats and checks are those of :func:`findspots.images.mask_files.read_mask_file`; any problem
    is a ParameterError naming the file."""
    if path is None or str(path) == "":
        return None
    try:
        return read_mask_file(path, detector, f"spotfinder.lookup.mask={Path(path)}")
    except MaskFileError as err:
        raise ParameterError(str(err)) from None
