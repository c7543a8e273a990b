"""Powder-ring d-spacings: reflection conditions of the space groups, ring list, ring intervals."""

from __future__ import annotations

import math
from itertools import product

import numpy as np
import pytest

from findspots.errors import ParameterError
from findspots.geometry.ice_rings import ring_d_spacings, ring_ranges
from findspots.geometry.space_groups import (
    SPACE_GROUPS,
    _closure,
    averaged_metric,
    parse_operation,
    space_group,
)

ICE = (4.498, 4.498, 7.338, 90, 90, 120)


def box(n: int = 6) -> np.ndarray:
    return np.array([h for h in product(range(-n, n + 1), repeat=3) if any(h)], dtype=np.int64)


def hexagonal_d(a: float, c: float, h: int, k: int, l: int) -> float:  # noqa: E741
    return 1 / math.sqrt(4 / 3 * (h * h + h * k + k * k) / (a * a) + l * l / (c * c))


def test_hexagonal_ice_rings():
    d = ring_d_spacings(ICE, 194, 1.8)
    # 001, 111, 003 ... are absent (000l and hh-2hl need l = 2n)
    rings = [(1, 0, 0), (0, 0, 2), (1, 0, 1), (1, 0, 2), (1, 1, 0), (1, 0, 3), (2, 0, 0), (1, 1, 2)]
    rings += [(2, 0, 1), (0, 0, 4)]
    assert d.tolist() == pytest.approx([hexagonal_d(4.498, 7.338, *hkl) for hkl in rings], rel=1e-12)
    approx = [3.895, 3.669, 3.441, 2.671, 2.249, 2.072, 1.948, 1.918, 1.883, 1.834]
    assert d.tolist() == pytest.approx(approx, abs=1e-3)


def test_ring_limit_is_inclusive():
    d = ring_d_spacings(ICE, 194, 3.669)
    assert d.tolist() == pytest.approx([3.8954, 3.669], abs=1e-4)
    assert len(ring_d_spacings(ICE, 194, 3.67)) == 1


def test_p63mmc_reflection_conditions():
    sg = space_group(194)
    cases = {
        (0, 0, 1): True, (0, 0, 3): True, (0, 0, 2): False,  # 000l: l = 2n
        (1, 1, 1): True, (1, 1, -3): True, (1, 1, 2): False,  # hh-2hl: l = 2n
        (-2, 1, 1): True, (1, -2, 1): True, (2, -1, 3): True,  # its equivalents
        (1, 0, 1): False, (1, -1, 1): False, (2, 0, 1): False, (1, 0, 0): False,
    }  # fmt: skip
    hkl = np.array(list(cases))
    assert sg.is_absent(hkl).tolist() == list(cases.values())


def test_lattice_centring_only():
    hkl = box(3)
    h, k, m = hkl.T
    assert not space_group(1).is_absent(hkl).any()
    assert (space_group("I4/mmm").is_absent(hkl) == ((h + k + m) % 2 != 0)).all()
    same_parity = (h % 2 == k % 2) & (k % 2 == m % 2)
    assert (space_group(225).is_absent(hkl) == ~same_parity).all()
    assert (space_group("C2/m").is_absent(hkl) == ((h + k) % 2 != 0)).all()
    assert (space_group(166).is_absent(hkl) == ((-h + k + m) % 3 != 0)).all()  # R, hexagonal axes


def test_fd3m_reflection_conditions():
    hkl = box(8)
    expected = []
    for h in hkl.tolist():
        present = len({v % 2 for v in h}) == 1  # F: all even or all odd
        if present and 0 in h:  # 0kl (and permutations): k + l = 4n
            present = sum(h) % 4 == 0
        expected.append(not present)
    assert space_group("F d -3 m").is_absent(hkl).tolist() == expected


def test_ia3d_reflection_conditions():
    hkl = box(8)
    expected = []
    for h in hkl.tolist():
        present = sum(h) % 2 == 0  # I
        for a, b, c in ((0, 1, 2), (1, 2, 0), (2, 0, 1)):
            if h[a] == 0:  # 0kl: k, l = 2n
                present &= h[b] % 2 == 0 and h[c] % 2 == 0
            for p, q, r in ((a, b, c), (b, a, c)):
                if abs(h[p]) == abs(h[q]):  # hhl: 2h + l = 4n (and h00: h = 4n)
                    present &= (2 * h[p] + h[r]) % 4 == 0
        expected.append(not present)
    assert space_group(230).is_absent(hkl).tolist() == expected


def test_other_nonsymmorphic_examples():
    def absent(group, *hkls):
        return space_group(group).is_absent(np.array(hkls)).tolist()

    pattern = [True, False, True, False, False]
    # P2_1/c: h0l l = 2n, 0k0 k = 2n
    assert absent(14, (1, 0, 1), (1, 0, 2), (0, 1, 0), (0, 2, 0), (1, 1, 1)) == pattern
    # Pnma: 0kl k + l = 2n, hk0 h = 2n
    assert absent("Pnma", (0, 1, 2), (0, 1, 1), (1, 1, 0), (2, 1, 0), (1, 1, 1)) == pattern
    # R-3c (hexagonal axes): 000l l = 6n, h-h0l l = 2n
    assert absent(167, (0, 0, 3), (0, 0, 6), (2, -2, 1), (1, -1, 2), (1, 0, 4)) == pattern
    # P3_121: 000l l = 3n
    assert absent(152, (0, 0, 1), (0, 0, 3), (1, 0, 1)) == [True, False, False]


@pytest.mark.parametrize("number", sorted(n for n, g in SPACE_GROUPS.items() if g.generators))
def test_absences_are_symmetric(number):
    """A reflection and all its symmetry equivalents are absent together."""
    sg = SPACE_GROUPS[number]
    hkl = box(4)
    absent = sg.is_absent(hkl)
    for rot, _ in _closure(sg.generators, sg.centring):
        r = np.array(rot).reshape(3, 3)
        assert (sg.is_absent(hkl @ r) == absent).all()


@pytest.mark.parametrize(
    ("cell", "group", "first"),
    [
        ((5.431, 5.431, 5.431, 90, 90, 90), 227, [3.1356, 1.9202, 1.6375, 1.5678, 1.3578, 1.2460]),  # Si
        ((5.411, 5.411, 5.411, 90, 90, 90), 225, [3.1241, 2.7055, 1.9131, 1.6315, 1.5620, 1.3528]),  # CeO2
        ((4.1569, 4.1569, 4.1569, 90, 90, 90), 221, [4.1569, 2.9394, 2.4000, 2.0785, 1.8590, 1.6971]),  # LaB6
        # Al2O3: 012, 104, 110, 006, 113, 202
        ((4.759, 4.759, 12.993, 90, 90, 120), 167, [3.4802, 2.5511, 2.3795, 2.1655, 2.0855, 1.9643]),
    ],
)
def test_calibrant_ring_lists(cell, group, first):
    d = ring_d_spacings(cell, group, 1.2)
    assert d[: len(first)] == pytest.approx(first, abs=2e-4)


def test_symbols_and_errors():
    assert space_group("P 63/m m c").number == 194
    assert space_group("P6_3/mmc").number == 194
    assert space_group("P 1 21/c 1").number == 14
    assert space_group("R -3 c :H").number == 167
    assert space_group("194").number == 194
    with pytest.raises(ParameterError, match="space_group=P 43 21 2: unknown or unsupported"):
        space_group("P 43 21 2")
    with pytest.raises(ParameterError, match="space_group=96: space group not supported"):
        space_group(96)
    with pytest.raises(ParameterError, match="unsupported"):
        space_group("R -3 c :R")  # rhombohedral axes


def test_cell_must_fit_the_space_group():
    with pytest.raises(ParameterError, match="incompatible with space group 194"):
        averaged_metric(space_group(194), (4.498, 4.6, 7.338, 90, 90, 120))
    with pytest.raises(ParameterError, match="incompatible"):
        averaged_metric(space_group(225), (5.4, 5.4, 5.4, 90, 90, 120))
    g = averaged_metric(space_group(194), (4.49, 4.50, 7.338, 90, 90, 120))  # within 1 %: averaged
    assert g[0, 0] == pytest.approx(g[1, 1])
    assert g[0, 1] / g[0, 0] == pytest.approx(-0.5)


def test_parse_operation():
    rot, t = parse_operation("-y+1/4, x-y, z+1/2")
    assert rot == (0, -1, 0, 1, -1, 0, 0, 0, 1)
    assert [float(v) for v in t] == [0.25, 0.0, 0.5]
    with pytest.raises(ValueError):
        parse_operation("x,y")


def test_ring_ranges_formula():
    ((lo, hi),) = ring_ranges([3.669], 0.002)
    assert lo == math.sqrt(1 / (1 / 3.669**2 + 0.001))
    assert hi == math.sqrt(1 / (1 / 3.669**2 - 0.001))
    assert lo == pytest.approx(3.6446, abs=1e-4) and hi == pytest.approx(3.6939, abs=1e-4)
    with pytest.raises(ParameterError, match="width=0"):
        ring_ranges([3.669], 0)
    with pytest.raises(ParameterError, match="too wide"):
        ring_ranges([40.0], 0.002)


def test_refuses_huge_enumerations():
    with pytest.raises(ParameterError, match="too many reflections"):
        ring_d_spacings((500, 500, 500, 90, 90, 90), 1, 1.0)
    with pytest.raises(ParameterError, match="greater than zero"):
        ring_d_spacings(ICE, 194, 0)


def test_cached_ice_rings_equal_a_fresh_enumeration():
    """ice_ring_d_spacings cuts a cached deeper enumeration: the same rings, bit for bit."""
    from findspots.geometry.ice_rings import ICE_CELL, ICE_SPACE_GROUP, ice_ring_d_spacings

    limits = [0.1, 0.25, 0.5, 1.0, 1.25, 3.0, 3.6687, 3.9, 7.0]
    limits += list(np.random.default_rng(1).uniform(0.3, 5.0, 100))
    for d_min in limits:
        cached = ice_ring_d_spacings(d_min)
        fresh = ring_d_spacings(ICE_CELL, ICE_SPACE_GROUP, d_min)
        assert cached.tobytes() == fresh.tobytes(), d_min
