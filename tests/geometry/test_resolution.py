"""Per-pixel resolution (d at pixel centres) and the corner resolution used for ice rings."""

from __future__ import annotations

import math

import numpy as np
import pytest

from findspots.geometry.parallax import pixel_to_lab
from findspots.geometry.resolution import max_resolution_at_corners, resolution_at_pixel, resolution_map
from findspots.images.models import Beam, Panel

WAVELENGTH = 1.0


def make_panel(**kw) -> Panel:
    args = dict(
        image_size=(6, 5),
        pixel_size=(10.0, 10.0),
        trusted_range=(0, 1e6),
        origin=(-25.0, 25.0, -100.0),
        fast_axis=(1, 0, 0),
        slow_axis=(0, -1, 0),
    )
    args.update(kw)
    return Panel(**args)


def hand_d(x_mm: float, y_mm: float, dist: float, wavelength: float = WAVELENGTH) -> float:
    two_theta = math.atan2(math.hypot(x_mm, y_mm), dist)
    return wavelength / (2 * math.sin(two_theta / 2))


def test_simple_map_by_hand():
    p = make_panel()
    s0 = Beam(WAVELENGTH).s0
    d = resolution_map(p, WAVELENGTH, s0)
    assert d.shape == (5, 6)
    # pixel (i=0, j=0): centre at (-25 + 5, 25 - 5) = (-20, 20) mm, 100 mm away
    assert d[0, 0] == pytest.approx(hand_d(-20, 20, 100), rel=1e-14)
    assert d[0, 0] == pytest.approx(3.6394, abs=1e-4)
    # pixel (i=5, j=4): centre at (30, -20)
    assert d[4, 5] == pytest.approx(hand_d(30, -20, 100), rel=1e-14)
    # symmetric pixels have the same d
    assert d[1, 1] == pytest.approx(d[3, 3], rel=1e-14)


def test_pixel_on_the_beam_uses_its_far_corner():
    """Pixel (2, 2) has its centre exactly on the beam (s1 == s0): d is taken at (3, 3) instead."""
    p = make_panel()
    d = resolution_map(p, WAVELENGTH, Beam(WAVELENGTH).s0)
    assert np.isfinite(d).all()
    assert d[2, 2] == pytest.approx(hand_d(5, -5, 100), rel=1e-14)


def test_parallax_map_uses_the_corrected_positions():
    p = make_panel(thickness=0.45, material="Si")
    s0 = Beam(WAVELENGTH).s0
    mu = 3.0
    d = resolution_map(p, WAVELENGTH, s0, mu)
    x, y, z = pixel_to_lab(p, 0.5, 0.5, mu)
    assert d[0, 0] == pytest.approx(hand_d(x, y, -z), rel=1e-13)
    simple = resolution_map(p, WAVELENGTH, s0)
    off_beam = np.ones(d.shape, bool)
    off_beam[2, 2] = False
    # the apparent position moves towards the beam: lower angle, larger d
    assert (d[off_beam] > simple[off_beam]).all()


def test_corner_resolution():
    p = make_panel()
    s0 = Beam(WAVELENGTH).s0
    # corners (0,0) (0,5) (6,0) (6,5) in pixels: (-25,25) (-25,-25) (35,25) (35,-25) mm
    expected = min(hand_d(x, y, 100) for x, y in [(-25, 25), (-25, -25), (35, 25), (35, -25)])
    assert max_resolution_at_corners(p, s0) == pytest.approx(expected, rel=1e-13)
    assert resolution_at_pixel(p, s0, 3.0, 2.5) == pytest.approx(hand_d(5, 0, 100), rel=1e-13)


def test_large_panel_blocks_agree_with_small():
    """The map is built in blocks of rows; block edges do not change the values."""
    p = make_panel(image_size=(1500, 1000), pixel_size=(0.172, 0.172), origin=(-120.0, 90.0, -200.0))
    s0 = Beam(0.9795).s0
    d = resolution_map(p, 0.9795, s0, 3.96)
    for j, i in [(0, 0), (699, 1499), (700, 3), (999, 1499)]:
        x, y, z = pixel_to_lab(p, i + 0.5, j + 0.5, 3.96)
        assert d[j, i] == pytest.approx(hand_d(x, y, -z, 0.9795), rel=1e-12)
