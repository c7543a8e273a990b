"""Linear X-ray attenuation coefficient of detector sensor materials (Si, CdTe).

The numbers are the NIST X-ray mass attenuation coefficients (Hubbell & Seltzer, NIST Standard Reference
Database 126): photon energy (MeV) and total mu/rho (cm^2/g), with the densities (g/cm^3) that the cctbx
``eltbx.attenuation_coefficient`` tables carry. dxtbx sets a pixel-array panel's ``mu`` (1/mm) to

    mu = (mu/rho)(E) * density / 10,   E = hc / wavelength,

with mu/rho interpolated linearly in log(E)-log(mu/rho) between the two table rows that bracket E (at an
absorption edge, where an energy appears twice, an energy equal to the edge takes the upper branch), and
hc = 6.62607015e-34 J s * 299792458 m/s / 1.602176634e-19 C (CODATA 2018, in eV Angstrom). This module
reproduces that calculation exactly: the mu of every Pilatus data set in the shared test data (Si at 0.6889,
0.96859, 0.9795 and 2.7552 Angstrom) comes out bit-identical to the value in DIALS's ``imported.expt``.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

from findspots.errors import FindSpotsError

# hc in eV Angstrom, evaluated in this order so that it rounds like the constant dxtbx uses.
EV_ANGSTROM = 6.62607015 * 2.99792458 / 1.602176634 * 1000


@dataclass(frozen=True)
class MassAttenuationTable:
    """One material's mu/rho against photon energy, and its density."""

    density: float  # g/cm^3
    energy_mev: tuple[float, ...]
    mu_rho: tuple[float, ...]  # cm^2/g

    def mu_rho_at_ev(self, energy_ev: float) -> float:
        """mu/rho (cm^2/g) at ``energy_ev`` by log-log interpolation."""
        e = energy_ev / 1000000
        upper = bisect.bisect_right(self.energy_mev, e)
        if upper <= 0 or upper >= len(self.energy_mev):
            lo, hi = self.energy_mev[0] * 1e3, self.energy_mev[-1] * 1e3
            raise FindSpotsError(
                f"photon energy {energy_ev / 1000:.4g} keV outside the attenuation table ({lo:g}..{hi:g} keV)"
            )
        i = upper - 1
        x0, x1 = math.log(self.energy_mev[i]), math.log(self.energy_mev[i + 1])
        y0, y1 = math.log(self.mu_rho[i]), math.log(self.mu_rho[i + 1])
        return math.exp(y0 + (y1 - y0) * (math.log(e) - x0) / (x1 - x0))

    def mu_at_angstrom(self, wavelength: float) -> float:
        """Linear attenuation coefficient (1/mm) at ``wavelength`` (Angstrom)."""
        return self.mu_rho_at_ev(EV_ANGSTROM / wavelength) * self.density / 10.0


# fmt: off
# NIST table for silicon (Z = 14); the energy 0.0018389 MeV (K edge) appears twice.
SILICON = MassAttenuationTable(
    density=2.33,
    energy_mev=(
        0.001, 0.0015, 0.0018389, 0.0018389, 0.002, 0.003, 0.004, 0.005, 0.006, 0.008,
        0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.1, 0.15,
        0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0,
        3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 20.0,
    ),
    mu_rho=(
        1570.0, 535.5, 309.2, 3192.0, 2777.0, 978.4, 452.9, 245.0, 147.0, 64.68,
        33.89, 10.34, 4.464, 1.436, 0.7012, 0.4385, 0.3207, 0.2228, 0.1835, 0.1448,
        0.1275, 0.1082, 0.09614, 0.08748, 0.08077, 0.07082, 0.06361, 0.05688, 0.05183, 0.0448,
        0.03678, 0.0324, 0.02967, 0.02788, 0.02574, 0.02462, 0.02352, 0.02338,
    ),
)

# Cadmium telluride (the compound table used for CdTe sensors; edges of Te and Cd appear twice).
CADMIUM_TELLURIDE = MassAttenuationTable(
    density=6.2,
    energy_mev=(
        0.0010, 0.001003, 0.001006, 0.001006, 0.00150, 0.0020, 0.0030, 0.003537, 0.003537, 0.003631,
        0.003727, 0.003727, 0.0040, 0.004018, 0.004018, 0.004177, 0.004341, 0.004341, 0.004475, 0.004612,
        0.004612, 0.004773, 0.004939, 0.004939, 0.0050, 0.0060, 0.0080, 0.010, 0.0150, 0.020,
        0.026711, 0.026711, 0.030, 0.031814, 0.031814, 0.040, 0.050, 0.060, 0.080, 0.10,
        0.150, 0.20, 0.30, 0.40, 0.50, 0.60, 0.80, 1.0, 1.250, 1.50,
        2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 20.0,
    ),
    mu_rho=(
        7927.0, 7875.0, 7824.0, 8014.0, 3291.0, 1664.0, 614.60, 406.40, 778.70, 730.0,
        684.0, 860.10, 723.0, 715.10, 793.40, 722.10, 656.20, 932.80, 873.90, 813.50,
        943.80, 870.20, 799.90, 865.30, 839.20, 528.60, 249.20, 138.10, 46.570, 21.440,
        9.8340, 29.430, 21.820, 18.730, 34.920, 19.30, 10.670, 6.5420, 3.0190, 1.6710,
        0.60710, 0.32460, 0.16280, 0.11470, 0.092910, 0.080420, 0.0660, 0.057420, 0.050430, 0.045910,
        0.04070, 0.036490, 0.035250, 0.035130, 0.035480, 0.036870, 0.038570, 0.042730, 0.046160,
    ),
)
# fmt: on

TABLES = {"Si": SILICON, "CdTe": CADMIUM_TELLURIDE}


def has_table(material: str) -> bool:
    """True for the sensor materials whose attenuation is known here (Si, CdTe)."""
    return material in TABLES


def linear_attenuation(material: str, wavelength: float) -> float:
    """mu (1/mm) of ``material`` ("Si" or "CdTe") at ``wavelength`` (Angstrom), as dxtbx computes it."""
    try:
        table = TABLES[material]
    except KeyError:
        raise FindSpotsError(
            f"no attenuation table for sensor material {material!r} (known: {', '.join(TABLES)})"
        ) from None
    return table.mu_at_angstrom(wavelength)
