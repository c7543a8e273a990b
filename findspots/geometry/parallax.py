"""Pixel to laboratory coordinates with dxtbx's px->mm strategies (simple and parallax-corrected).

A photon reaching a thick sensor is absorbed, on average, some way into it; the pixel that records it sits
beyond the point where the ray crossed the sensor surface. dxtbx's ``ParallaxCorrectedPxMmStrategy`` (used
for Pilatus and Eiger panels, i.e. Si and CdTe sensors with a thickness) models this. For a pixel position
(x, y) the plain millimetre position is m = (x * pixel_size_fast, y * pixel_size_slow); then

* u = unit(origin + m_x * fast + m_y * slow), the ray direction to that point;
* n = fast x slow, flipped if needed so that origin . n > 0 (pointing away from the sample);
* cos_t = u . n, and with t0 the sensor thickness and mu its linear attenuation coefficient the mean
  depth travelled along the ray inside the sensor is

      o = 1/mu - (t0/cos_t + 1/mu) * exp(-mu * t0 / cos_t)

* the position on the sensor surface is m' = m - o * (u . fast, u . slow): the apparent point is moved
  back towards the beam by the in-plane projection of the absorption depth;
* lab = fast * m'_x + slow * m'_y + origin.

The simple strategy uses m' = m. Everything is vectorised over arrays of pixel positions; the operations are
done in the order dxtbx does them so that results agree to the last bit wherever numpy's ``exp`` agrees with
the C library's.
"""

from __future__ import annotations

import numpy as np

from findspots.geometry.attenuation import has_table, linear_attenuation


def panel_mu(panel, wavelength: float) -> float | None:
    """The panel's linear attenuation coefficient (1/mm) for its px->mm strategy, or None.

    None means the simple strategy: no sensor material with a known attenuation table, or no thickness.
    A ``mu`` stored on the panel (> 0) is used as is; otherwise it is computed from the material and the
    wavelength as dxtbx does when it builds the panel (Si and CdTe).
    """
    if not panel.thickness or panel.thickness <= 0:
        return None
    if panel.mu is not None and panel.mu > 0:
        return float(panel.mu)
    if not has_table(panel.material):
        return None
    return linear_attenuation(panel.material, wavelength)


def _normal(panel) -> np.ndarray:
    f, s = panel.fast_axis, panel.slow_axis
    n = np.array([f[1] * s[2] - f[2] * s[1], f[2] * s[0] - f[0] * s[2], f[0] * s[1] - f[1] * s[0]])
    o = panel.origin
    if o[0] * n[0] + o[1] * n[1] + o[2] * n[2] < 0:
        n = -n
    return n


def pixel_to_lab(panel, x, y, mu: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lab coordinates (mm) of pixel positions (x, y) (broadcast arrays), as three component arrays.

    ``mu`` None selects the simple strategy; a value selects the parallax-corrected one with the panel's
    thickness.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    f, s, o = panel.fast_axis, panel.slow_axis, panel.origin
    mx = x * panel.pixel_size[0]
    my = y * panel.pixel_size[1]
    if mu is not None:
        t0 = float(panel.thickness)
        vx = o[0] + mx * f[0] + my * s[0]
        vy = o[1] + mx * f[1] + my * s[1]
        vz = o[2] + mx * f[2] + my * s[2]
        length = np.sqrt(vx * vx + vy * vy + vz * vz)
        ux, uy, uz = vx / length, vy / length, vz / length
        n = _normal(panel)
        cos_t = ux * n[0] + uy * n[1] + uz * n[2]
        depth = 1.0 / mu - (t0 / cos_t + 1.0 / mu) * np.exp(-mu * t0 / cos_t)
        mx = mx - (ux * f[0] + uy * f[1] + uz * f[2]) * depth
        my = my - (ux * s[0] + uy * s[1] + uz * s[2]) * depth
    return (
        f[0] * mx + s[0] * my + o[0],
        f[1] * mx + s[1] * my + o[1],
        f[2] * mx + s[2] * my + o[2],
    )
