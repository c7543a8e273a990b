"""Spot measures from labelled strong pixels: bbox, centroid, intensity, peak, shoebox.

Conventions (docs/dials-behaviour.md#spot-measures): bbox ``(x0, x1, y0, y1, z0, z1)`` half-open; pixel
centres at +0.5 in x, y and z; centroid weights are the float32 pixel values with no background; sums of
weights are accumulated in float32 in (z, y, x) order as DIALS does, cross products in float64.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numba
import numpy as np

from findspots.output.refl import Shoeboxes
from findspots.spotfinder.arrays import ArrayRecord

VALID = 1
FOREGROUND = 4


@dataclass
class Components(ArrayRecord):
    """Pixels of labelled components, grouped: component k is ``slice(start[k], start[k+1])``."""

    keys: np.ndarray  # int64, key order within each component
    values: np.ndarray  # float64 corrected pixel values
    start: np.ndarray  # int64 (ncomp + 1,)

    @property
    def sizes(self) -> np.ndarray:
        return np.diff(self.start)

    def __len__(self) -> int:
        return self.start.size - 1

    def take(self, order: np.ndarray) -> Components:
        """The components at indices ``order`` (int array), in that order."""
        sizes = self.sizes[order]
        start = np.zeros(sizes.size + 1, np.int64)
        np.cumsum(sizes, out=start[1:])
        out = Components(np.empty(start[-1], np.int64), np.empty(start[-1]), start)
        self.copy_into(out, np.asarray(order, np.int64), start[:-1])
        return out

    def copy_into(self, out: Components, groups: np.ndarray, at: np.ndarray) -> None:
        """Copy component ``groups[i]`` to ``out``'s pixels from ``at[i]`` on (no pixel-sized temporaries)."""
        _copy_groups(self.keys, self.values, self.start, groups, at, out.keys, out.values)

    def select(self, keep: np.ndarray) -> Components:
        """The components where ``keep`` (boolean per component) is True, order kept."""
        return self.take(np.flatnonzero(keep))


@numba.njit(cache=True, nogil=True)
def _copy_groups(keys, values, start, groups, at, out_keys, out_values):
    for i in range(groups.size):
        a = start[groups[i]]
        n = start[groups[i] + 1] - a
        out_keys[at[i] : at[i] + n] = keys[a : a + n]
        out_values[at[i] : at[i] + n] = values[a : a + n]


def group_components(keys: np.ndarray, values: np.ndarray, labels: np.ndarray, ncomp: int) -> Components:
    """Group pixels by label (labels ranked 0..ncomp-1), keeping key order inside each group."""
    order = np.argsort(labels, kind="stable")
    counts = np.bincount(labels, minlength=ncomp)
    start = np.zeros(ncomp + 1, np.int64)
    np.cumsum(counts, out=start[1:])
    return Components(keys[order], values[order], start)


@numba.njit(cache=True, nogil=True, inline="always")
def _zyx(key, npix, width):
    """(z, y, x) of a pixel key ``z * npix + y * width + x``."""
    z = key // npix
    r = key - z * npix
    y = r // width
    return z, y, r - y * width


@numba.njit(cache=True, nogil=True)
def _measure(keys, values, start, width, npix, upper, bbox, xyz, var, intensity, peak, n_over):
    for k in range(start.size - 1):
        a, b = start[k], start[k + 1]
        over = 0
        x0 = y0 = z0 = np.int64(1) << 62
        x1 = y1 = z1 = -1
        s = np.float32(0.0)
        s2 = np.float32(0.0)
        cx = cy = cz = 0.0
        best = np.float32(-np.inf)
        px = py = pz = 0
        for p in range(a, b):
            z, y, x = _zyx(keys[p], npix, width)
            x0 = min(x0, x)
            x1 = max(x1, x + 1)
            y0 = min(y0, y)
            y1 = max(y1, y + 1)
            z0 = min(z0, z)
            z1 = max(z1, z + 1)
            over += values[p] > upper
            w = np.float32(values[p])
            s += w
            s2 += w * w
            cx += np.float64(w) * (x + 0.5)
            cy += np.float64(w) * (y + 0.5)
            cz += np.float64(w) * (z + 0.5)
        # The peak is the first maximum in shoebox (z, y, x) order, i.e. in key order.
        for p in range(a, b):
            w = np.float32(values[p])
            if w > best:
                best = w
                pz, py, px = _zyx(keys[p], npix, width)
        bbox[k, 0] = x0
        bbox[k, 1] = x1
        bbox[k, 2] = y0
        bbox[k, 3] = y1
        bbox[k, 4] = z0
        bbox[k, 5] = z1
        intensity[k] = s
        n_over[k] = over
        peak[k, 0] = px + 0.5
        peak[k, 1] = py + 0.5
        peak[k, 2] = pz + 0.5
        if s <= 0:
            xyz[k, 0] = (x0 + x1) / 2.0
            xyz[k, 1] = (y0 + y1) / 2.0
            xyz[k, 2] = (z0 + z1) / 2.0
            var[k, 0] = var[k, 1] = var[k, 2] = 0.0
            continue
        sd = np.float64(s)
        mx = cx / sd
        my = cy / sd
        mz = cz / sd if z1 - z0 > 1 else z0 + 0.5
        xyz[k, 0] = mx
        xyz[k, 1] = my
        xyz[k, 2] = mz
        denom = sd * sd - np.float64(s2)
        if denom <= 0:
            var[k, 0] = var[k, 1] = var[k, 2] = 1.0 / 12.0
            continue
        vx = vy = vz = 0.0
        for p in range(a, b):
            z, y, x = _zyx(keys[p], npix, width)
            w = np.float64(np.float32(values[p]))
            vx += w * (x + 0.5 - mx) ** 2
            vy += w * (y + 0.5 - my) ** 2
            vz += w * (z + 0.5 - mz) ** 2
        var[k, 0] = vx / denom + 1.0 / 12.0
        var[k, 1] = vy / denom + 1.0 / 12.0
        var[k, 2] = vz / denom + 1.0 / 12.0


@dataclass
class SpotMeasures(ArrayRecord):
    """Per-spot measures, one row per component: all that rows and filters need but the shoeboxes."""

    bbox: np.ndarray  # (N, 6) int32
    xyz: np.ndarray  # (N, 3) float64 centroid
    variance: np.ndarray  # (N, 3) float64
    intensity: np.ndarray  # (N,) float64 (float32 sum)
    peak: np.ndarray  # (N, 3) float64 peak pixel centre
    first: np.ndarray  # (N,) int64 smallest pixel key: the row order
    size: np.ndarray  # (N,) int64 strong pixels
    n_over: np.ndarray  # (N,) int64 pixels above the upper trusted value

    def __len__(self) -> int:
        return self.first.size

    def take(self, order: np.ndarray) -> SpotMeasures:
        """The spots at indices ``order`` (int array), in that order."""
        return SpotMeasures(**{f.name: getattr(self, f.name)[order] for f in dataclasses.fields(self)})


def gather_measures(parts: list[SpotMeasures], order: np.ndarray) -> SpotMeasures:
    """The spots of ``parts`` (as if concatenated, at least one part) at indices ``order``; one field
    at a time, so that only one field is ever held twice."""
    return SpotMeasures(
        **{
            f.name: np.concatenate([getattr(p, f.name) for p in parts])[order]
            for f in dataclasses.fields(parts[0])
        }
    )


def measure(comps: Components, width: int, height: int, upper: float = np.inf) -> SpotMeasures:
    """Bounding box, centroid, centroid variance, summed intensity, peak, first pixel, size and
    overloaded pixels (values above ``upper``) of each component."""
    n = len(comps)
    bbox = np.empty((n, 6), np.int64)
    xyz = np.empty((n, 3))
    var = np.empty((n, 3))
    inten = np.empty(n, np.float32)
    peak = np.empty((n, 3))
    n_over = np.zeros(n, np.int64)
    if n:
        _measure(
            comps.keys,
            comps.values,
            comps.start,
            width,
            width * height,
            float(upper),
            bbox,
            xyz,
            var,
            inten,
            peak,
            n_over,
        )
    first = comps.keys[comps.start[:-1]]
    return SpotMeasures(
        bbox.astype(np.int32), xyz, var, inten.astype(np.float64), peak, first, comps.sizes, n_over
    )


@numba.njit(cache=True, nogil=True)
def _fill_shoeboxes(keys, values, start, rows, bbox, offsets, width, npix, invalid, data, mask):
    """Write component ``rows[k]``'s pixels into shoebox k (voxels in (z, y, x) order from ``offsets``)."""
    for k in range(rows.size):
        x0, x1, y0, y1, z0 = bbox[k, 0], bbox[k, 1], bbox[k, 2], bbox[k, 3], bbox[k, 4]
        for p in range(start[rows[k]], start[rows[k] + 1]):
            z, y, x = _zyx(keys[p], npix, width)
            voxel = offsets[k] + ((z - z0) * (y1 - y0) + (y - y0)) * (x1 - x0) + (x - x0)
            data[voxel] = np.float32(values[p])
            mask[voxel] = FOREGROUND if invalid[p] else VALID | FOREGROUND


def shoeboxes(
    comps: Components,
    bbox: np.ndarray,
    width: int,
    height: int,
    panel: int,
    invalid: np.ndarray | None = None,
    rows: np.ndarray | None = None,
) -> Shoeboxes:
    """Shoeboxes over each bbox: component pixels hold their value and mask Valid|Foreground.

    Pixels flagged in ``invalid`` (overloaded after correction) keep Foreground only. ``rows``: the
    components to box, in order (default all; ``bbox`` has one row per boxed component).
    """
    rows = np.arange(len(comps)) if rows is None else np.asarray(rows, np.int64)
    box = bbox.astype(np.int64)
    offsets = np.zeros(rows.size + 1, np.int64)
    np.cumsum((box[:, 1] - box[:, 0]) * (box[:, 3] - box[:, 2]) * (box[:, 5] - box[:, 4]), out=offsets[1:])
    total = int(offsets[-1])
    data = np.zeros(total, np.float32)
    mask = np.zeros(total, np.uint8)
    flagged = np.zeros(comps.keys.size, np.bool_) if invalid is None else np.asarray(invalid, np.bool_)
    npix = width * height
    _fill_shoeboxes(
        comps.keys, comps.values, comps.start, rows, box, offsets, width, npix, flagged, data, mask
    )
    return Shoeboxes(
        panel=np.full(rows.size, panel, np.uint32),
        bbox=bbox.astype(np.int32),
        offsets=offsets,
        data=data,
        mask=mask,
        background=np.zeros(total, np.float32),
    )


def concat_shoeboxes(parts: list[Shoeboxes]) -> Shoeboxes:
    """Concatenate shoebox lists in order."""
    offsets = [np.zeros(1, np.int64)]
    base = 0
    for sb in parts:
        offsets.append(sb.offsets[1:] + base)
        base += int(sb.offsets[-1])
    return Shoeboxes(
        panel=np.concatenate([sb.panel for sb in parts]),
        bbox=np.concatenate([sb.bbox for sb in parts]),
        offsets=np.concatenate(offsets),
        data=np.concatenate([sb.data for sb in parts]),
        mask=np.concatenate([sb.mask for sb in parts]),
        background=np.concatenate([sb.background for sb in parts]),
    )
