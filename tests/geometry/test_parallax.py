"""Pixel to lab coordinates with the simple and the parallax-corrected px->mm strategies."""

from __future__ import annotations

import math

import numpy as np
import pytest

from findspots.geometry.parallax import panel_mu, pixel_to_lab
from findspots.images.models import Panel


def make_panel(**kw) -> Panel:
    args = dict(
        image_size=(100, 80),
        pixel_size=(0.2, 0.2),
        trusted_range=(0, 1e6),
        origin=(-10.0, 8.0, -100.0),
        fast_axis=(1, 0, 0),
        slow_axis=(0, -1, 0),
        thickness=0.45,
        material="Si",
    )
    args.update(kw)
    return Panel(**args)


def test_simple_strategy_is_origin_plus_pixel_steps():
    p = make_panel()
    x, y, z = pixel_to_lab(p, 12.5, 7.25)
    assert (x, y, z) == pytest.approx((-10 + 12.5 * 0.2, 8 - 7.25 * 0.2, -100))


def test_parallax_shift_by_hand():
    """A point 30 mm from the beam along x: shifted back by (u . fast) * mean absorption depth."""
    mu, t0, dist = 3.96, 0.45, 100.0
    p = make_panel(origin=(-20.0, 8.0, -dist))
    px = 250.0  # 50 mm along fast: lab x = 30 mm
    r = -20.0 + px * 0.2
    y_lab = 8.0 - 40 * 0.2
    length = math.sqrt(r * r + y_lab * y_lab + dist * dist)
    cos_t = dist / length  # normal (0, 0, -1) points away from the sample
    depth = 1 / mu - (t0 / cos_t + 1 / mu) * math.exp(-mu * t0 / cos_t)
    expected_x = r - (r / length) * depth
    x, y, z = pixel_to_lab(p, px, 40.0, mu)
    assert x == pytest.approx(expected_x, rel=1e-13)
    assert (y, z) == pytest.approx((y_lab, -dist))
    # the shift is towards the beam, about 0.04 mm here (0.2 of a pixel)
    assert 0.035 < r - x < 0.045


def test_no_shift_at_normal_incidence():
    """Where the ray meets the sensor at right angles there is no in-plane shift."""
    p = make_panel(origin=(-10.0, 8.0, -100.0))
    x, y, z = pixel_to_lab(p, 50.0, 40.0, 3.96)  # lab (0, 0, -100): on the detector normal
    assert (x, y, z) == pytest.approx((0.0, 0.0, -100.0), abs=1e-15)


def test_vectorised_matches_scalar():
    p = make_panel()
    xs = np.array([[0.5, 37.5], [99.5, 3.0]])
    ys = np.array([[0.5, 11.5], [79.5, 60.0]])
    vx, vy, vz = pixel_to_lab(p, xs, ys, 2.0)
    for k in np.ndindex(xs.shape):
        sx, sy, sz = pixel_to_lab(p, xs[k], ys[k], 2.0)
        assert (vx[k], vy[k], vz[k]) == (sx, sy, sz)


def test_normal_orientation_does_not_matter():
    """Flipping the slow axis (normal towards the sample) gives the same physical shift."""
    a = make_panel(origin=(-10.0, -8.0, -100.0), slow_axis=(0, 1, 0))
    b = make_panel(origin=(-10.0, 8.0, -100.0), slow_axis=(0, -1, 0))
    xa, ya, _ = pixel_to_lab(a, 90.0, 70.0, 3.0)
    xb, yb, _ = pixel_to_lab(b, 90.0, 10.0, 3.0)  # the same lab point before correction
    assert xa == pytest.approx(xb, rel=1e-12)
    assert ya == pytest.approx(yb, rel=1e-12)


def test_panel_mu_rules():
    assert panel_mu(make_panel(), 0.9795) == 3.9603861351765324  # from the Si table
    assert panel_mu(make_panel(mu=2.5), 0.9795) == 2.5  # a stored mu wins
    assert panel_mu(make_panel(thickness=0.0), 0.9795) is None  # no sensor thickness: simple
    assert panel_mu(make_panel(material=""), 0.9795) is None  # CCD / unknown material: simple
    assert panel_mu(make_panel(material="CdTe", thickness=1.0), 0.5) == pytest.approx(7.4492529402964305)
