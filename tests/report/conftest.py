"""Fixtures for the report tests: the bundled L-cysteine sweep and DIALS's reference spots for it."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "data"
REFERENCE = DATA / "reference" / "l_cysteine_sweep01" / "dispersion"
PER_IMAGE = DATA / "reference" / "l_cysteine_sweep01" / "per_image" / "per_image.json"  # DIALS 3.12's


def dials_strong_counts(log: Path, sequence: int = 0) -> list[tuple[int, int, int]]:
    """(sequence, image, strong pixels) from the "Found N strong pixels on image M" lines of a DIALS log."""
    found = re.findall(r"Found (\d+) strong pixels on image (\d+)", log.read_text())
    return [(sequence, int(image), int(n)) for n, image in found]


@pytest.fixture(scope="session")
def lcyst_files() -> list[str]:
    return sorted(str(p) for p in (DATA / "l_cysteine").glob("l-cyst_01_*.cbf.bz2"))


@pytest.fixture(scope="session")
def lcyst_sequences(lcyst_files):
    from findspots.images import group_images

    return group_images(lcyst_files)


@pytest.fixture(scope="session")
def lcyst_table() -> dict:
    from findspots.output.refl import read_reflections

    return dict(read_reflections(REFERENCE / "strong.refl.xz").columns)


@pytest.fixture(scope="session")
def lcyst_data(lcyst_files, lcyst_sequences, lcyst_table):
    """ReportData of DIALS's spots on the sweep, strong-pixel counts from DIALS's log, the per-image
    analysis of those spots."""
    from findspots.analysis.per_image import per_image_figures
    from findspots.report import ReportData

    n = len(lcyst_table["id"])
    return ReportData(
        table=lcyst_table,
        sequences=lcyst_sequences,
        images=dials_strong_counts(REFERENCE / "dials.find_spots.log"),
        max_strong_fraction=0.25,
        counts={"extracted": 218, "too small": 161, "too large": 0, "peak-centroid filter": 4, "written": n},
        modified_parameters="spotfinder {\n  threshold {\n    algorithm = dispersion\n  }\n}",
        inputs=lcyst_files,
        timings={"reading + threshold": 1.5, "labelling + measures": 0.4, "total": 2.1},
        per_image=per_image_figures(lcyst_table, lcyst_sequences),
    )


@pytest.fixture(scope="session")
def lcyst_figures(lcyst_data):
    from findspots.report import build_figures

    return build_figures(lcyst_data)


@pytest.fixture(scope="session")
def lcyst_report(lcyst_data, lcyst_figures, tmp_path_factory) -> Path:
    from findspots.report import write_report

    path = tmp_path_factory.mktemp("report") / "findspots.html"
    write_report(lcyst_data, path, lcyst_figures)
    return path


@pytest.fixture(scope="session")
def lcyst_grid_data(lcyst_data):
    """The sweep's 15 images taken as a 5 x 3 grid scan."""
    import dataclasses

    return dataclasses.replace(lcyst_data, grid=(5, 3))


@pytest.fixture(scope="session")
def lcyst_grid_report(lcyst_grid_data, tmp_path_factory) -> Path:
    from findspots.report import write_report

    path = tmp_path_factory.mktemp("grid") / "findspots.html"
    write_report(lcyst_grid_data, path)
    return path


def spots_per_image(table) -> dict[int, int]:
    """Spots per image number from the table alone: the image holding each centroid (floor(z) + 1)."""
    z = np.asarray(table["xyzobs.px.value"])[:, 2]
    images, counts = np.unique(np.floor(z).astype(int) + 1, return_counts=True)
    return dict(zip(images.tolist(), counts.tolist(), strict=True))
