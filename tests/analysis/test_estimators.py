"""Hand-worked cases for each per-image estimator and its edges."""

from __future__ import annotations

import numpy as np
import pytest

from findspots.analysis import resolution_estimates as est
from findspots.analysis.per_image import on_ice_rings, spot_figures
from findspots.analysis.text import overall_text, tabulate_psql
from findspots.geometry.ice_rings import ice_ring_d_spacings

# d (Angstrom) clear of every ice ring (checked below), high to low resolution
CLEAR_D = np.array([9.0, 7.0, 6.0, 5.0, 4.5, 4.2, 3.0, 2.8, 2.5, 2.35, 2.15, 1.8, 1.6])
ON_ICE_D = 3.897  # the (100) ring of hexagonal ice


def test_clear_spots_are_off_the_rings_and_the_ring_spot_is_on():
    assert not on_ice_rings(CLEAR_D).any()
    assert on_ice_rings(np.array([ON_ICE_D, 5.0])).tolist() == [True, False]


def _figures(d):
    d = np.asarray(d, dtype=np.float64)
    intensity = np.linspace(500.0, 50.0, len(d))
    return spot_figures(d, intensity, intensity.copy())


def test_ten_spots_off_ice_give_no_resolution_estimate():
    figures = _figures([*CLEAR_D[:10], ON_ICE_D])  # 11 spots, 10 off ice
    assert (figures["n_spots_total"], figures["n_spots_no_ice"]) == (11, 10)
    for name in ("estimated_d_min", "d_min_distl_method_1", "noisiness_method_1"):
        assert figures[name] == -1.0
    assert figures["d_min_distl_method_2"] == figures["noisiness_method_2"] == -1.0
    assert figures["n_spots_4A"] == 6  # 9, 7, 6, 5, 4.5, 4.2 (3.897 is not beyond 4 A)
    assert figures["total_intensity"] == pytest.approx(sum(np.linspace(500.0, 50.0, 11)[:10]))


def test_eleven_spots_off_ice_give_estimates():
    figures = _figures([*CLEAR_D[:11], ON_ICE_D])
    assert figures["n_spots_no_ice"] == 11
    # DISTL 1: 12 spots, step 2, points at d 9, 6, 4.5, 3.897, 2.8, 2.35; slopes from point 0 rise to
    # the last, so p_m = 5 (d 2.35); the largest gap from the chord is at point 3, and no later gap is
    # within half a standard deviation of it, so d_min is that point's d.
    assert figures["d_min_distl_method_1"] == pytest.approx(3.897)
    assert figures["estimated_d_min"] > 0 and figures["d_min_distl_method_2"] > 0


def test_spot_on_the_ring_boundary_is_off_the_ring():
    """|1/d^2 - ring| < width/2 is strict: a spot exactly width/2 away is not on ice."""
    d = np.array([3.8])  # between the (100) ring at 3.897 A and the (002) ring at 3.669 A
    ring = 1.0 / ice_ring_d_spacings(3.0)[0] ** 2  # the (100) ring, 1/d^2 = 0.0658...
    width = 2 * abs(1.0 / d[0] ** 2 - ring)  # halving is exact: the spot is width/2 from the ring
    assert not on_ice_rings(d, width)[0]
    assert on_ice_rings(d, np.nextafter(width, 1.0))[0]


def test_noisiness_of_sorted_lists():
    assert est.noisiness_of_slopes([1.0, 2.0, 3.0, 4.0]) == 0.0  # increasing: no pair out of order
    assert est.noisiness_of_slopes([4.0, 3.0, 2.0, 1.0]) == 1.0
    assert est.noisiness_of_slopes([2.0, 2.0, 2.0]) == 1.0  # ties count (>=)
    assert est.noisiness_of_slopes([1.0, 3.0, 2.0]) == pytest.approx(1 / 3)  # only (3, 2)
    assert est.noisiness_of_counts([9, 5, 3, 1]) == 0.0  # decreasing: no pair with c_i <= c_j
    assert est.noisiness_of_counts([1, 3, 5, 9]) == 1.0
    assert est.noisiness_of_counts([3, 1, 2]) == pytest.approx(1 / 3)  # only (1, 2)


def test_distl_method_2_shell_rule():
    # mean of the first two shells 100: a shell is empty below 15; two empty shells in a row stop it
    assert est.distl_method_2_cut(np.array([100, 100, 40, 14, 20, 14, 14, 3, 2])) == 5
    assert est.distl_method_2_cut(np.array([100, 100, 40, 14, 15, 14, 16, 3])) == 6  # 15 is not below 15
    assert est.distl_method_2_cut(np.array([100, 100, 50, 40, 30])) == 3  # never: the second-to-last


def test_equal_population_shells():
    d = np.arange(25, 0, -1, dtype=np.float64)  # d = 25 .. 1
    shells = est.equal_population_shells(1.0 / d**2)
    # 25 // 20 = 1 shell, raised to 5; each ends at ranks 4, 9, 14, 19, 24 of decreasing d
    assert shells == [(21.0, 25.0), (16.0, 21.0), (11.0, 16.0), (6.0, 11.0), (1.0, 6.0)]


def test_linear_fit_and_its_degenerate_cases():
    assert est.linear_fit([1.0, 2.0, 4.0], [1.0, 3.0, 2.0]) == pytest.approx((3 / 14, 1.5))
    assert est.linear_fit([], []) == (0.0, 0.0)
    assert est.linear_fit([1.0], [2.0]) == (0.0, 0.0)  # one x value: undefined
    assert est.linear_fit([1.0, 2.0], [5.0, 5.0]) == (0.0, 5.0)  # flat


def test_wilson_outliers_iterate():
    # cutoff sqrt(-ln 0.01) = 2.146. Mean 338: only 3000 is out (2.98); then mean 42.2: 300 is out
    # (2.67); then mean 10: nothing more.
    intensity = np.array([10.0] * 8 + [300.0, 3000.0])
    assert est.wilson_outliers(intensity, np.zeros(10, bool)).tolist() == [False] * 8 + [True, True]
    # an ice spot is judged against the mean of the others: 60 is out against 10 (2.45), not against
    # the mean 15.6 it would raise (1.96)
    intensity = np.array([10.0] * 8 + [60.0])
    assert not est.wilson_outliers(intensity, np.zeros(9, bool)).any()
    assert est.wilson_outliers(intensity, np.arange(9) == 8).tolist() == [False] * 8 + [True]


def test_below_line():
    x = np.array([0.0, 1.0, 1.0, 2.0])
    y = np.array([0.5, 3.5, 2.5, 5.0])
    assert est.below_line(x, y, 2.0, 1.0).tolist() == [True, False, True, False]  # on the line: not below


def test_tabulate_layout_of_float_and_text_columns():
    """As tabulate 0.8.9 prints it: floats re-printed with "g" and aligned on the point."""
    text = tabulate_psql(["d_min", "note"], [["1.50", "a (b)"], ["12.25", "c"]])
    assert text.split("\n") == [
        "+---------+--------+",
        "|   d_min | note   |",
        "|---------+--------|",
        "|    1.5  | a (b)  |",
        "|   12.25 | c      |",
        "+---------+--------+",
    ]


def test_overall_block_without_estimates():
    figures = {
        "n_spots_total": 3,
        "n_spots_no_ice": 2,
        "estimated_d_min": -1.0,
        "d_min_distl_method_1": -1.0,
        "noisiness_method_1": -1.0,
        "d_min_distl_method_2": -1.0,
        "noisiness_method_2": -1.0,
    }
    assert overall_text(figures).split("\n")[3:6] == [
        "| #spots                 | 3             |",
        "| #spots_no_ice          | 2             |",
        "| d_min                  | -1.00         |",
    ]
