"""Sensor attenuation coefficients: dxtbx's mu values from the NIST tables, bit for bit."""

from __future__ import annotations

import math

import pytest

from findspots.errors import FindSpotsError
from findspots.geometry.attenuation import EV_ANGSTROM, SILICON, has_table, linear_attenuation


@pytest.mark.parametrize(
    ("wavelength", "mu"),
    [
        # (wavelength, mu) of the Si sensors in DIALS's imported.expt files of the shared test data
        (0.9795, 3.9603861351765324),  # p300k_60, p6m_5 (0.45 mm)
        (0.96859, 3.8326187041206916),  # thaumatin grid (0.45 mm)
        (0.6889, 1.4153536370336604),  # l-cysteine (0.32 mm)
        (2.7552, 76.29757805861905),  # I23 PILATUS 12M (0.32 mm)
    ],
)
def test_silicon_mu_matches_dxtbx_exactly(wavelength, mu):
    assert linear_attenuation("Si", wavelength) == mu


def test_hc_constant():
    assert EV_ANGSTROM == pytest.approx(12398.419843320026, abs=1e-9)


def test_log_log_interpolation_by_hand():
    # 12.4 keV lies between the 10 keV (33.89 cm^2/g) and 15 keV (10.34 cm^2/g) rows
    e = 12.4
    slope = math.log(10.34 / 33.89) / math.log(15 / 10)
    mu_rho = 33.89 * (e / 10) ** slope
    assert SILICON.mu_rho_at_ev(e * 1000) == pytest.approx(mu_rho, rel=1e-12)
    assert linear_attenuation("Si", EV_ANGSTROM / (e * 1000)) == pytest.approx(mu_rho * 2.33 / 10, rel=1e-12)


def test_absorption_edge_takes_upper_branch():
    # exactly at the Si K edge (1.8389 keV) the table jumps from 309.2 to 3192 cm^2/g
    assert SILICON.mu_rho_at_ev(1838.9) == pytest.approx(3192.0, rel=1e-12)
    assert SILICON.mu_rho_at_ev(1838.8) == pytest.approx(309.2, rel=1e-3)


def test_cdte_above_and_below_its_k_edges():
    below = linear_attenuation("CdTe", EV_ANGSTROM / 25000)  # 25 keV
    above = linear_attenuation("CdTe", EV_ANGSTROM / 35000)  # 35 keV, above the Te K edge (31.8 keV)
    assert 5 < below < 10  # about 7 /mm
    assert above > below  # the K edges raise the absorption


def test_materials_and_range():
    assert has_table("Si") and has_table("CdTe") and not has_table("GaAs")
    with pytest.raises(FindSpotsError, match="no attenuation table"):
        linear_attenuation("GaAs", 1.0)
    with pytest.raises(FindSpotsError, match="outside the attenuation table"):
        linear_attenuation("Si", 20.0)  # 0.62 keV, below the table
