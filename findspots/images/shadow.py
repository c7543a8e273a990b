"""Dynamic goniometer shadow masks (dxtbx ``dynamic_shadowing``), e.g. the DLS I23 kappa goniometer.

A goniometer is modelled by points on its surface, each attached to one goniometer axis. At a scan
angle every point is rotated by its own axis and all the axes outside it (the scan axis at the
scan angle, the others at their fixed angles), projected from the sample through each panel's
plane, and the convex hull of the projections, clipped to the panel, is the shadow. Pixels whose
centre lies inside that polygon (even-odd rule) are masked.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from findspots.images.models import Detector, Goniometer, Panel, rotation_matrix

PROJECTION_EPS = 1e-5  # points at or behind the panel plane (z <= eps) are not projected


def _cross(o: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    return float((a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]))


def convex_hull(points: np.ndarray) -> np.ndarray:
    """Convex hull (counter-clockwise, not closed) of 2D points, by the monotone chain method."""
    pts = np.unique(np.asarray(points, dtype=np.float64), axis=0)
    if len(pts) < 3:
        return pts
    lower: list[np.ndarray] = []
    upper: list[np.ndarray] = []
    for p in pts:
        while len(lower) >= 2 and _cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    for p in pts[::-1]:
        while len(upper) >= 2 and _cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return np.array(lower[:-1] + upper[:-1])


def clip_to_rectangle(poly: np.ndarray, width: float, height: float) -> np.ndarray:
    """Convex polygon clipped to [0, width] x [0, height] (Sutherland-Hodgman)."""
    edges = ((0, 0.0, 1.0), (0, width, -1.0), (1, 0.0, 1.0), (1, height, -1.0))
    out = np.asarray(poly, dtype=np.float64)
    for axis, value, sign in edges:
        if len(out) == 0:
            break
        inside = sign * (out[:, axis] - value) >= 0
        result = []
        for i in range(len(out)):
            cur, prev = out[i], out[i - 1]
            if inside[i] != inside[i - 1]:
                t = (value - prev[axis]) / (cur[axis] - prev[axis])
                result.append(prev + t * (cur - prev))
            if inside[i]:
                result.append(cur)
        out = np.array(result).reshape(-1, 2)
    return out


def polygon_mask(shape: tuple[int, int], polygon: np.ndarray) -> np.ndarray:
    """Bool (ny, nx) array, True where the pixel centre is inside ``polygon`` (pixels, even-odd rule)."""
    ny, nx = shape
    inside = np.zeros(shape, dtype=bool)
    poly = np.asarray(polygon, dtype=np.float64)
    if len(poly) < 3:
        return inside
    corners = np.floor(poly).astype(np.int64)
    x0, y0 = max(int(corners[:, 0].min()), 0), max(int(corners[:, 1].min()), 0)
    x1, y1 = min(int(corners[:, 0].max()) + 1, nx), min(int(corners[:, 1].max()) + 1, ny)
    if x0 >= x1 or y0 >= y1:
        return inside
    xi, yi = poly[:, 0], poly[:, 1]
    xj, yj = np.roll(xi, 1), np.roll(yi, 1)  # edge from vertex j = i - 1 to vertex i
    y = np.arange(y0, y1, dtype=np.float64)[:, None] + 0.5
    crosses = (yi > y) != (yj > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        xcross = (xj - xi) * (y - yi) / (yj - yi) + xi
    xcross = np.sort(np.where(crosses, xcross, -np.inf), axis=1)
    x = np.arange(x0, x1, dtype=np.float64) + 0.5
    for row, cuts in enumerate(xcross):
        n_right = len(cuts) - np.searchsorted(cuts, x, side="right")  # crossings strictly right of x
        inside[y0 + row, x0:x1] = (n_right % 2).astype(bool)
    return inside


def _panel_polygon(panel: Panel, lab_points: np.ndarray) -> np.ndarray:
    """Shadow polygon on one panel, in pixels (empty when there is no shadow)."""
    d = np.column_stack([panel.fast_axis, panel.slow_axis, panel.origin])
    local = lab_points @ np.linalg.inv(d).T
    z = local[:, 2]
    front = z > PROJECTION_EPS
    if front.sum() < 3:
        return np.zeros((0, 2))
    projected = local[front, :2] / z[front, None]
    hull = convex_hull(projected)
    if len(hull) < 3:
        return np.zeros((0, 2))
    width = panel.image_size[0] * panel.pixel_size[0]
    height = panel.image_size[1] * panel.pixel_size[1]
    clipped = clip_to_rectangle(hull, width, height)
    if len(clipped) < 3:
        return np.zeros((0, 2))
    return clipped / np.array(panel.pixel_size)


@dataclass(eq=False)
class GoniometerShadow:
    """Shadow of goniometer parts given as points at datum, each attached to one axis (index)."""

    goniometer: Goniometer
    points: np.ndarray  # (n, 3) lab coordinates with every axis at zero
    attached_to: np.ndarray  # (n,) axis index each point moves with
    invert: bool = False

    def points_at(self, scan_angle: float) -> np.ndarray:
        """Lab positions of the points with the scan axis at ``scan_angle`` degrees."""
        g = self.goniometer
        axes = g.axes if g.axes is not None else g.rotation_axis[None, :]
        angles = np.array(g.angles if g.angles is not None else [0.0], dtype=np.float64)
        angles[g.scan_axis] = scan_angle
        out = np.array(self.points, dtype=np.float64)
        for i, (axis, angle) in enumerate(zip(axes, angles, strict=True)):
            moved = self.attached_to <= i
            out[moved] = out[moved] @ rotation_matrix(axis, angle).T
        return out

    def mask(self, detector: Detector, scan_angle: float) -> list[np.ndarray]:
        """One bool array per panel, True = not in the shadow."""
        lab = self.points_at(scan_angle)
        masks = []
        for panel in detector:
            shadowed = polygon_mask(panel.shape, _panel_polygon(panel, lab))
            masks.append(shadowed if self.invert else ~shadowed)
        return masks


def _i23_arc(alpha_deg: np.ndarray, radius: float) -> np.ndarray:
    """The kappa arm's end, a half circle of the given radius at 107.61 mm along x."""
    a = np.radians(alpha_deg)
    return np.column_stack([np.full(a.size, 107.61), -radius * np.sin(a), -radius * np.cos(a)])


def _i23_phi_head(alpha_deg: np.ndarray, radius: float, arm: float, kappa_deg: float) -> np.ndarray:
    """Half circle around the phi head, seen along the kappa arm inclined by ``kappa_deg``."""
    a = np.radians(alpha_deg)
    rs = radius * np.sin(a)
    length = np.sqrt(rs**2 + arm**2)
    tilt = np.radians(kappa_deg) - np.arctan(radius / arm * np.sin(a))
    return np.column_stack([length * np.cos(tilt), length * np.sin(tilt), -radius * np.cos(a)])


# Fixed outline points of the DLS I23 kappa arm (end-station frame, mm), upper side; the lower side
# is the same with z negated, listed in reverse.
_I23_ARM = np.array(
    [
        (107.49, 7.84, 39.49),
        (107.39, 15.69, 38.97),
        (107.27, 23.53, 38.46),
        (107.16, 31.37, 37.94),
        (101.76, 33.99, 36.25),
        (96.37, 36.63, 34.56),
        (90.98, 39.25, 33.00),
        (85.58, 41.88, 31.18),
        (80.89, 47.06, 31.00),
        (76.55, 51.51, 31.03),
        (72.90, 55.04, 31.18),
        (66.86, 60.46, 31.67),
        (62.10, 64.41, 32.25),
    ]
)


def dls_i23_kappa_points() -> np.ndarray:
    """Outline of the DLS I23 kappa goniometer in the imgCIF lab frame at datum, mm."""
    lower = _I23_ARM[::-1] * np.array([1.0, 1.0, -1.0])
    points = np.vstack(
        [
            np.zeros((1, 3)),
            _i23_arc(np.arange(0.0, 190.0, 10.0), 40.0),
            _I23_ARM,
            _i23_phi_head(np.arange(180.0, 370.0, 10.0), 33.0, 89.02, 50.0),
            lower,
            [(107.61, 0.0, -40.0)],
        ]
    )
    # End-station frame: x away from the ring, y up, z along the beam; imgCIF flips y and z.
    return points * np.array([1.0, -1.0, -1.0])


def dls_i23_kappa(goniometer: Goniometer) -> GoniometerShadow:
    """Shadow of the DLS I23 kappa goniometer (all parts move with the kappa axis)."""
    points = dls_i23_kappa_points()
    return GoniometerShadow(goniometer, points, np.ones(len(points), dtype=np.int64))
