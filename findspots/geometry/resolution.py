"""Resolution (d-spacing) of detector pixels, as DIALS's resolution masks compute it.

For the pixel centre (i + 0.5, j + 0.5) the lab point p comes from the panel's px->mm strategy
(:mod:`findspots.geometry.parallax`); then s1 = unit(p) / wavelength and d = 1 / |s1 - s0|. Where s1 equals
s0 exactly (a pixel centre on the direct beam) the pixel's far corner (i + 1, j + 1) is used instead.

The detector's highest resolution, used as the default limit for ice rings, is the smallest
d = 1 / (2 |s0| sin(theta)) over the four panel corners (0, 0), (0, h), (w, 0), (w, h) in pixels, with
2 theta the angle between s0 and the corner's lab point and sin(theta) at least 1e-9.
"""

from __future__ import annotations

import math

import numpy as np

from findspots.geometry.parallax import panel_mu, pixel_to_lab

_BLOCK_PIXELS = 1 << 20  # pixels per block when building a panel's map (bounds the temporaries)


def d_spacing(panel, x, y, wavelength: float, s0: np.ndarray, mu: float | None) -> np.ndarray:
    """d (Angstrom) at pixel positions (x, y) (broadcast arrays); inf on the direct beam."""
    px, py, pz = pixel_to_lab(panel, x, y, mu)
    length = np.sqrt(px * px + py * py + pz * pz)
    k = 1.0 / wavelength
    rx = (px / length) * k - s0[0]
    ry = (py / length) * k - s0[1]
    rz = (pz / length) * k - s0[2]
    with np.errstate(divide="ignore"):
        return 1.0 / np.sqrt(rx * rx + ry * ry + rz * rz)


def resolution_map(panel, wavelength: float, s0, mu: float | None = None) -> np.ndarray:
    """d (Angstrom) at every pixel centre of ``panel``, shape (nslow, nfast).

    ``mu`` None uses the simple px->mm strategy, a value the parallax-corrected one (see
    :func:`findspots.geometry.parallax.panel_mu`).
    """
    s0 = np.asarray(s0, dtype=np.float64)
    nfast, nslow = panel.image_size
    out = np.empty((nslow, nfast), dtype=np.float64)
    x = np.arange(nfast, dtype=np.float64)[None, :] + 0.5
    rows = max(1, _BLOCK_PIXELS // max(nfast, 1))
    for j0 in range(0, nslow, rows):
        j1 = min(nslow, j0 + rows)
        y = np.arange(j0, j1, dtype=np.float64)[:, None] + 0.5
        out[j0:j1] = d_spacing(panel, x, y, wavelength, s0, mu)
    on_beam = np.isinf(out)
    if on_beam.any():
        jj, ii = np.nonzero(on_beam)
        out[jj, ii] = d_spacing(panel, ii + 1.0, jj + 1.0, wavelength, s0, mu)
    return out


def _angle(a: np.ndarray, b: tuple[float, float, float]) -> float:
    norms = math.sqrt((a[0] * a[0] + a[1] * a[1] + a[2] * a[2]) * (b[0] * b[0] + b[1] * b[1] + b[2] * b[2]))
    if norms == 0:
        return 0.0
    c = (a[0] * b[0] + a[1] * b[1] + a[2] * b[2]) / norms
    return math.acos(max(-1.0, min(1.0, c)))


def resolution_at_pixel(panel, s0, x: float, y: float, mu: float | None = None) -> float:
    """d (Angstrom) at pixel position (x, y) from the scattering angle (the corner formula)."""
    s0 = np.asarray(s0, dtype=np.float64)
    p = tuple(float(c) for c in pixel_to_lab(panel, x, y, mu))
    sin_theta = max(1e-9, math.sin(0.5 * _angle(s0, p)))
    return 1.0 / (2.0 * math.sqrt(float(s0 @ s0)) * sin_theta)


def max_resolution_at_corners(panel, s0, mu: float | None = None) -> float:
    """The smallest d (Angstrom) at the four corners of ``panel``."""
    nfast, nslow = panel.image_size
    corners = ((0, 0), (0, nslow), (nfast, 0), (nfast, nslow))
    return min(resolution_at_pixel(panel, s0, x, y, mu) for x, y in corners)


def detector_max_resolution(detector, beam) -> float:
    """The smallest d (Angstrom) at the corners of any panel, each with its own px->mm strategy."""
    return min(
        max_resolution_at_corners(panel, beam.s0, panel_mu(panel, beam.wavelength)) for panel in detector
    )
