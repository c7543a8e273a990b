"""The DLS I23 PILATUS 12M (S/N 120-0100): a curved detector read as 24 panels, and its kappa goniometer.

The miniCBF holds one 2463 x 5071 array: 24 rows of 5 modules (2463 x 195 pixels per row, 17-pixel gaps
between rows). As dxtbx does, each row is one flat panel at ``raw_offset`` (0, 212 j), tilted about x so
that the rows lie on a cylinder of radius 250 mm around the sample. The rotation axis is omega of a
kappa goniometer (alpha 50 deg, kappa arm along -y) whose shadow is masked per image (dxtbx
``dynamic_shadowing=Auto`` is on for this detector). Known dead modules are masked by date.
"""

from __future__ import annotations

import calendar
import re

import numpy as np

from findspots.images.models import Detector, Goniometer, Panel
from findspots.images.shadow import GoniometerShadow, dls_i23_kappa

SERIAL = "120-0100"
ROWS = 24
ROW_SIZE = (2463, 195)  # (fast, slow) pixels
ROW_PITCH = 195 + 17  # slow pixels from one row to the next in the raw array
PIXEL = 0.172  # mm
RADIUS = 250.0  # mm, sample to each row's centre line
FAST_OFFSET = 184.9  # mm from the row's centre line to its first pixel along fast
SLOW_OFFSET = 16.8  # mm from the row's centre line to its first pixel along slow
FIRST_ROW_DEG = -12.2 + 0.5 * 7.903  # tilt of row 0 about x
ROW_STEP_DEG = 7.903 + 0.441  # tilt from one row to the next (module height + gap angle)
IDEAL_BEAM = (1075.0, 2594.0)  # design beam centre (pixels) of the detector frame
TRUSTED = (0.0, 1.0e6)  # -1 marks the module gaps
KAPPA_ALPHA = 50.0  # degrees between the kappa and omega axes
REVERSE_PHI_BEFORE = 1459468800  # 2016-04-01 UTC: earlier images used a reversed single axis

MODULE = (487, 195)
MODULE_GAP = 7
CHIP = (60, 97)


def _utc(y: int, m: int, d: int) -> int:
    return calendar.timegm((y, m, d, 0, 0, 0))


# Dead modules by service period: (from date, [(row, module column)], [(row, column, chip col, chip row)]).
DEAD_MODULES = [
    (_utc(2022, 7, 1), [], []),
    (_utc(2022, 1, 24), [(10, 3)], []),
    (_utc(2020, 9, 8), [], []),
    (_utc(2020, 2, 21), [(1, 4), (17, 0), (17, 4)], [(15, 4, 1, 0)]),
    (_utc(2019, 11, 26), [(17, 0), (17, 4)], []),
    (_utc(2019, 9, 3), [(15, 2), (17, 0)], []),
]


def is_p12m(detector_line: str) -> bool:
    """True for the header's '# Detector:' line of the I23 PILATUS 12M."""
    return "PILATUS" in detector_line.upper() and f"S/N {SERIAL}" in detector_line


def root_frame(beam_xy: tuple[float, float], distance: float) -> tuple[np.ndarray, np.ndarray]:
    """(3x3 rotation with columns fast, slow, normal; origin) of the whole detector.

    The detector frame has fast along -x and slow along +y, sits ``distance`` mm upstream of the sample
    along -z, and is shifted by the offset of the header's beam centre from the design one."""
    x, y, z = np.array([-1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, 1.0])
    shift = PIXEL * (np.array(IDEAL_BEAM) - np.asarray(beam_xy, dtype=np.float64))
    origin = -distance * z + shift[0] * x + shift[1] * y
    return np.column_stack([x, y, np.cross(x, y)]), origin


def row_panel(j: int, thickness: float, frame: tuple[np.ndarray, np.ndarray]) -> Panel:
    """Row ``j`` of the detector as a flat panel, placed in the detector ``frame``."""
    rotation, root_origin = frame
    angle = np.radians(FIRST_ROW_DEG + j * ROW_STEP_DEG)
    fast = np.array([1.0, 0.0, 0.0])
    slow = np.array([0.0, np.sin(angle), np.cos(angle)])
    normal = np.cross(fast, slow)
    origin = RADIUS * normal - FAST_OFFSET * fast - SLOW_OFFSET * slow
    return Panel(
        image_size=ROW_SIZE,
        pixel_size=(PIXEL, PIXEL),
        trusted_range=TRUSTED,
        origin=root_origin + rotation @ origin,
        fast_axis=rotation @ fast,
        slow_axis=rotation @ slow,
        name=f"row-{j:02d}",
        thickness=thickness,
        material="Si",
        raw_offset=(0, j * ROW_PITCH),
    )


def dead_module_rects(epoch: float) -> dict[int, list[tuple[int, int, int, int]]]:
    """Mask rectangles (x0, y0, x1, y1) per row for modules known to be dead at ``epoch``."""
    rects: dict[int, list[tuple[int, int, int, int]]] = {}
    for start, modules, chips in DEAD_MODULES:
        if epoch > start:
            for row, col in modules:
                x0 = col * (MODULE[0] + MODULE_GAP)
                rects.setdefault(row, []).append((x0, 0, x0 + MODULE[0], MODULE[1]))
            for row, col, cx, cy in chips:
                x0 = col * (MODULE[0] + MODULE_GAP) + cx * CHIP[0]
                rects.setdefault(row, []).append((x0, cy * CHIP[1], x0 + CHIP[0], (cy + 1) * CHIP[1]))
            break
    return rects


def detector(thickness: float, epoch: float, beam_xy: tuple[float, float], distance: float) -> Detector:
    """The 24 row panels in the lab frame, with dead modules masked."""
    rects = dead_module_rects(epoch)
    frame = root_frame(beam_xy, distance)
    panels = [row_panel(j, thickness, frame) for j in range(ROWS)]
    for j, panel in enumerate(panels):
        panel.mask_rects = list(rects.get(j, []))
    return Detector(panels)


def _angle(mini: dict[str, str], key: str) -> float:
    m = re.search(r"[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?", mini.get(key, ""))
    return float(m.group(0)) if m else 0.0


def goniometer(mini: dict[str, str], epoch: float) -> Goniometer:
    """The I23 kappa goniometer (omega scanned), or a reversed single axis before April 2016."""
    if epoch < REVERSE_PHI_BEFORE:
        return Goniometer(np.array([-1.0, 0.0, 0.0]))
    a = np.radians(KAPPA_ALPHA)
    axes = [(1.0, 0.0, 0.0), (np.cos(a), -np.sin(a), 0.0), (1.0, 0.0, 0.0)]
    angles = [_angle(mini, "Phi"), _angle(mini, "Kappa"), _angle(mini, "Omega")]
    return Goniometer.multi_axis(axes, angles, ["PHI", "KAPPA", "OMEGA"], scan_axis=2)


def shadow(gonio: Goniometer) -> GoniometerShadow | None:
    """The kappa goniometer's dynamic shadow (none for the old single-axis goniometer)."""
    return dls_i23_kappa(gonio) if gonio.is_multi_axis else None
