"""Space groups for powder-ring d-spacings: systematic absences and unit-cell compatibility.

A reflection h is systematically absent when some symmetry operation x -> R x + t of the space group
(including the lattice-centring translations) leaves it unchanged, h R = h, while h . t is not an integer.
Each supported group is described by its lattice centring, its crystal system and, for groups with screw
axes or glide planes, a set of generators of its operations in the standard setting of International
Tables Vol. A (monoclinic groups with unique axis b, rhombohedral groups on hexagonal axes). The absence test
runs over the closure of the generators and the centring translations, so the reflection conditions of
every equivalent zone and row come out without listing them. Symmorphic groups need no generators: only
their centring can extinguish reflections.

The unit cell is checked against the crystal system like cctbx does (a symmetry-averaged cell within 1 %
in lengths and 1 degree in angles) and replaced by that averaged cell.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from findspots.errors import ParameterError

_Op = tuple[tuple[int, ...], tuple[Fraction, Fraction, Fraction]]  # (R row-major 3x3, t mod 1)

_CENTRING = {
    "P": (),
    "A": ((0, Fraction(1, 2), Fraction(1, 2)),),
    "B": ((Fraction(1, 2), 0, Fraction(1, 2)),),
    "C": ((Fraction(1, 2), Fraction(1, 2), 0),),
    "I": ((Fraction(1, 2), Fraction(1, 2), Fraction(1, 2)),),
    "F": (
        (0, Fraction(1, 2), Fraction(1, 2)),
        (Fraction(1, 2), 0, Fraction(1, 2)),
        (Fraction(1, 2), Fraction(1, 2), 0),
    ),
    "R": ((Fraction(2, 3), Fraction(1, 3), Fraction(1, 3)), (Fraction(1, 3), Fraction(2, 3), Fraction(2, 3))),
}

# Rotations generating each crystal system's holohedry (lattice point group), used to average the metric.
_HOLOHEDRY = {
    "triclinic": ("-x,-y,-z",),
    "monoclinic": ("-x,y,-z", "-x,-y,-z"),
    "orthorhombic": ("-x,-y,z", "-x,y,-z", "-x,-y,-z"),
    "tetragonal": ("-y,x,z", "x,-y,-z", "-x,-y,-z"),
    "trigonal": ("x-y,x,z", "y,x,-z", "-x,-y,-z"),
    "hexagonal": ("x-y,x,z", "y,x,-z", "-x,-y,-z"),
    "cubic": ("-y,x,z", "z,x,y", "-x,-y,-z"),
}


@dataclass(frozen=True)
class SpaceGroup:
    """A space group: number, short Hermann-Mauguin symbol, crystal system, centring, generators."""

    number: int
    symbol: str
    system: str
    generators: tuple[str, ...] = ()

    @property
    def centring(self) -> str:
        return self.symbol[0]

    def is_absent(self, hkl: np.ndarray) -> np.ndarray:
        """Boolean array: which rows of ``hkl`` (N, 3 integers) are systematically absent."""
        hkl = np.asarray(hkl, dtype=np.int64).reshape(-1, 3)
        absent = np.zeros(len(hkl), dtype=bool)
        for rot, trans in _closure(self.generators, self.centring):
            den = math.lcm(*(t.denominator for t in trans))
            if den == 1:
                continue
            r = np.array(rot, dtype=np.int64).reshape(3, 3)
            fixed = np.all(hkl @ r == hkl, axis=1)
            phase = hkl @ np.array([int(t * den) for t in trans], dtype=np.int64)
            absent |= fixed & (phase % den != 0)
        return absent


def _t(x: int, y: int, z: int) -> tuple[Fraction, Fraction, Fraction]:
    return (Fraction(x), Fraction(y), Fraction(z))


_TERM = re.compile(r"([+-]?)(x|y|z|\d+/\d+|\d+)")


def parse_operation(text: str) -> _Op:
    """An operation in 'x,y,z' notation (e.g. '-y,x-y,z+1/2') as (R, t), t reduced modulo 1."""
    parts = text.replace(" ", "").lower().split(",")
    if len(parts) != 3:
        raise ValueError(f"bad symmetry operation {text!r}")
    rows: list[int] = []
    trans: list[Fraction] = []
    for part in parts:
        row = [0, 0, 0]
        shift = Fraction(0)
        pos = 0
        for m in _TERM.finditer(part):
            if m.start() != pos:
                raise ValueError(f"bad symmetry operation {text!r}")
            pos = m.end()
            sign = -1 if m.group(1) == "-" else 1
            what = m.group(2)
            if what in "xyz":
                row["xyz".index(what)] += sign
            else:
                shift += sign * Fraction(what)
        if pos != len(part):
            raise ValueError(f"bad symmetry operation {text!r}")
        rows += row
        trans.append(shift % 1)
    return tuple(rows), (trans[0], trans[1], trans[2])


def _multiply(a: _Op, b: _Op) -> _Op:
    ra, ta = a
    rb, tb = b
    r = tuple(sum(ra[3 * i + k] * rb[3 * k + j] for k in range(3)) for i in range(3) for j in range(3))
    t = tuple((sum(ra[3 * i + k] * tb[k] for k in range(3)) + ta[i]) % 1 for i in range(3))
    return r, (t[0], t[1], t[2])


@functools.lru_cache(maxsize=64)
def _closure(generators: tuple[str, ...], centring: str) -> tuple[_Op, ...]:
    identity: _Op = ((1, 0, 0, 0, 1, 0, 0, 0, 1), _t(0, 0, 0))
    seeds = [parse_operation(g) for g in generators]
    seeds += [(identity[0], (Fraction(a), Fraction(b), Fraction(c))) for a, b, c in _CENTRING[centring]]
    group = {identity}
    frontier = [identity]
    while frontier:
        new = []
        for op in frontier:
            for g in seeds:
                prod = _multiply(g, op)
                if prod not in group:
                    group.add(prod)
                    new.append(prod)
        frontier = new
        if len(group) > 192:
            raise ValueError(f"generators {generators} do not close to a space group")
    return tuple(sorted(group))


# fmt: off
# Symmorphic groups: the centring alone gives the reflection conditions.
_SYMMORPHIC = {
    "triclinic": {1: "P1", 2: "P-1"},
    "monoclinic": {3: "P2", 5: "C2", 6: "Pm", 8: "Cm", 10: "P2/m", 12: "C2/m"},
    "orthorhombic": {
        16: "P222", 21: "C222", 22: "F222", 23: "I222", 25: "Pmm2", 35: "Cmm2", 38: "Amm2", 42: "Fmm2",
        44: "Imm2", 47: "Pmmm", 65: "Cmmm", 69: "Fmmm", 71: "Immm",
    },
    "tetragonal": {
        75: "P4", 79: "I4", 81: "P-4", 82: "I-4", 83: "P4/m", 87: "I4/m", 89: "P422", 97: "I422",
        99: "P4mm", 107: "I4mm", 111: "P-42m", 115: "P-4m2", 119: "I-4m2", 121: "I-42m", 123: "P4/mmm",
        139: "I4/mmm",
    },
    "trigonal": {
        143: "P3", 146: "R3", 147: "P-3", 148: "R-3", 149: "P312", 150: "P321", 155: "R32", 156: "P3m1",
        157: "P31m", 160: "R3m", 162: "P-31m", 164: "P-3m1", 166: "R-3m",
    },
    "hexagonal": {
        168: "P6", 174: "P-6", 175: "P6/m", 177: "P622", 183: "P6mm", 187: "P-6m2", 189: "P-62m",
        191: "P6/mmm",
    },
    "cubic": {
        195: "P23", 196: "F23", 197: "I23", 200: "Pm-3", 202: "Fm-3", 204: "Im-3", 207: "P432",
        209: "F432", 211: "I432", 215: "P-43m", 216: "F-43m", 217: "I-43m", 221: "Pm-3m", 225: "Fm-3m",
        229: "Im-3m",
    },
}
# fmt: on

# Groups with screw axes or glide planes: generators of all their operations (ITA standard setting).
_NONSYMMORPHIC = (
    SpaceGroup(4, "P2_1", "monoclinic", ("-x,y+1/2,-z",)),
    SpaceGroup(14, "P2_1/c", "monoclinic", ("-x,y+1/2,-z+1/2", "-x,-y,-z")),
    SpaceGroup(15, "C2/c", "monoclinic", ("-x,y,-z+1/2", "-x,-y,-z")),
    SpaceGroup(19, "P2_12_12_1", "orthorhombic", ("-x+1/2,-y,z+1/2", "-x,y+1/2,-z+1/2")),
    SpaceGroup(62, "Pnma", "orthorhombic", ("-x+1/2,-y,z+1/2", "-x,y+1/2,-z", "-x,-y,-z")),
    SpaceGroup(63, "Cmcm", "orthorhombic", ("-x,-y,z+1/2", "-x,y,-z+1/2", "-x,-y,-z")),
    SpaceGroup(136, "P4_2/mnm", "tetragonal", ("-y+1/2,x+1/2,z+1/2", "x+1/2,-y+1/2,-z+1/2", "-x,-y,-z")),
    SpaceGroup(
        141,
        "I4_1/amd",
        "tetragonal",
        ("-x+1/2,-y,z+1/2", "-y+1/4,x+3/4,z+1/4", "-x+1/2,y,-z+1/2", "-x,-y,-z"),
    ),
    SpaceGroup(152, "P3_121", "trigonal", ("-y,x-y,z+1/3", "y,x,-z")),
    SpaceGroup(154, "P3_221", "trigonal", ("-y,x-y,z+2/3", "y,x,-z")),
    SpaceGroup(167, "R-3c", "trigonal", ("-y,x-y,z", "y,x,-z+1/2", "-x,-y,-z")),
    SpaceGroup(176, "P6_3/m", "hexagonal", ("x-y,x,z+1/2", "-x,-y,-z")),
    SpaceGroup(186, "P6_3mc", "hexagonal", ("-y,x-y,z", "-x,-y,z+1/2", "-y,-x,z")),
    SpaceGroup(194, "P6_3/mmc", "hexagonal", ("-y,x-y,z", "-x,-y,z+1/2", "y,x,-z", "-x,-y,-z")),
    SpaceGroup(205, "Pa-3", "cubic", ("-x+1/2,-y,z+1/2", "-x,y+1/2,-z+1/2", "z,x,y", "-x,-y,-z")),
    SpaceGroup(223, "Pm-3n", "cubic", ("-x,-y,z", "-x,y,-z", "z,x,y", "y+1/2,x+1/2,-z+1/2", "-x,-y,-z")),
    SpaceGroup(
        224, "Pn-3m", "cubic", ("-x+1/2,-y+1/2,z", "-x+1/2,y,-z+1/2", "z,x,y", "y,x,-z+1/2", "-x,-y,-z")
    ),
    SpaceGroup(
        227,
        "Fd-3m",
        "cubic",
        ("-x+3/4,-y+1/4,z+1/2", "-x+1/4,y+1/2,-z+3/4", "z,x,y", "y+3/4,x+1/4,-z+1/2", "-x,-y,-z"),
    ),
    SpaceGroup(
        230,
        "Ia-3d",
        "cubic",
        ("-x+1/2,-y,z+1/2", "-x,y+1/2,-z+1/2", "z,x,y", "y+3/4,x+1/4,-z+1/4", "-x,-y,-z"),
    ),
)

SPACE_GROUPS: dict[int, SpaceGroup] = {
    **{n: SpaceGroup(n, sym, system) for system, groups in _SYMMORPHIC.items() for n, sym in groups.items()},
    **{g.number: g for g in _NONSYMMORPHIC},
}


def _normalise_symbol(text: str) -> str:
    return re.sub(r"[\s_]", "", text).lower()


def _symbol_index() -> dict[str, int]:
    index = {}
    for g in SPACE_GROUPS.values():
        index[_normalise_symbol(g.symbol)] = g.number
        if g.system == "monoclinic":  # full symbols, unique axis b: P 1 2_1/c 1
            index[_normalise_symbol(f"{g.symbol[0]}1{g.symbol[1:]}1")] = g.number
    return index


_SYMBOLS = _symbol_index()


def space_group(value: int | str) -> SpaceGroup:
    """The supported space group for a number or a Hermann-Mauguin symbol ('P 63/m m c', 'P6_3/mmc')."""
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"\d+", text):
            value = int(text)
        else:
            key = _normalise_symbol(re.sub(r":\s*(h|1|2)\s*$", "", text, flags=re.IGNORECASE))
            if key not in _SYMBOLS:
                raise ParameterError(
                    f"spotfinder.filter.ice_rings.space_group={value}: unknown or unsupported space group "
                    f"symbol; give a number or a symbol of: {supported_summary()}"
                )
            value = _SYMBOLS[key]
    if value not in SPACE_GROUPS:
        raise ParameterError(
            f"spotfinder.filter.ice_rings.space_group={value}: space group not supported for ice rings; "
            f"supported: {supported_summary()}"
        )
    return SPACE_GROUPS[value]


def supported_summary() -> str:
    """'1 P1, 2 P-1, ...': the supported groups."""
    return ", ".join(f"{n} {SPACE_GROUPS[n].symbol}" for n in sorted(SPACE_GROUPS))


def metric_tensor(cell) -> np.ndarray:
    """Direct-space metric tensor G of (a, b, c, alpha, beta, gamma) (Angstrom, degrees)."""
    a, b, c, al, be, ga = (float(v) for v in cell)
    ca, cb, cg = (math.cos(math.radians(v)) for v in (al, be, ga))
    return np.array(
        [
            [a * a, a * b * cg, a * c * cb],
            [a * b * cg, b * b, b * c * ca],
            [a * c * cb, b * c * ca, c * c],
        ]
    )


def cell_parameters(g: np.ndarray) -> tuple[float, ...]:
    """(a, b, c, alpha, beta, gamma) of a metric tensor."""
    a, b, c = (math.sqrt(g[i, i]) for i in range(3))
    al = math.degrees(math.acos(g[1, 2] / (b * c)))
    be = math.degrees(math.acos(g[0, 2] / (a * c)))
    ga = math.degrees(math.acos(g[0, 1] / (a * b)))
    return a, b, c, al, be, ga


def averaged_metric(group: SpaceGroup, cell) -> np.ndarray:
    """The metric of ``cell`` averaged over the lattice symmetry; ParameterError if incompatible.

    Compatible means the averaged cell is within 1 % of each length and 1 degree of each angle.
    """
    g = metric_tensor(cell)
    rotations = {rot for rot, _ in _closure(_HOLOHEDRY[group.system], "P")}
    mats = [np.array(r, dtype=np.float64).reshape(3, 3) for r in sorted(rotations)]
    avg = sum(m.T @ g @ m for m in mats) / len(mats)
    given = tuple(float(v) for v in cell)
    sym = cell_parameters(avg)
    lengths_ok = all(abs(min(p, q) / max(p, q) - 1) <= 0.01 for p, q in zip(given[:3], sym[:3], strict=True))
    angles_ok = all(abs(p - q) <= 1.0 for p, q in zip(given[3:], sym[3:], strict=True))
    if not (lengths_ok and angles_ok):
        cell_text = ",".join(f"{v:g}" for v in given)
        raise ParameterError(
            f"spotfinder.filter.ice_rings.unit_cell={cell_text} is incompatible with space group "
            f"{group.number} ({group.symbol}, {group.system})"
        )
    return avg
