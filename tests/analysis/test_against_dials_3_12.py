"""Per-image figures equal to DIALS 3.12's ``dials.spot_counts_per_image`` (counts exact, floats 1e-6).

References: ``data/reference/<set>/per_image/`` (bundled images; DIALS 3.12's own table ``strong.refl.xz``)
and ``tests/analysis/references/<set>/`` (shared sets, skipped without ``../shared/data``); each folder's
``command.txt`` has the DIALS commands. Each is checked on DIALS's table through ``findspots-stats``
(printed text byte for byte, JSON) and, for the bundled images, on findspots's own table of the same
images and parameters.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from findspots.analysis.per_image import FIGURE_NAMES, per_image_figures, spot_d
from findspots.app.cli import run as findspots_run
from findspots.app.stats import run as stats_run
from findspots.images import read_experiments
from findspots.output.refl import read_reflections

REPO = Path(__file__).resolve().parents[2]
BUNDLED = {
    "l_cysteine_sweep01": sorted((REPO / "data" / "l_cysteine").glob("l-cyst_01_*.cbf.bz2")),
    "l_cysteine_sweep02": sorted((REPO / "data" / "l_cysteine").glob("l-cyst_02_*.cbf.bz2")),
    "thaumatin_grid": [REPO / "data" / "thaumatin_grid" / "thau_3_2_0002.cbf.bz2"],
}
DIALS_PARAMETERS = ["threshold.algorithm=dispersion", "filter.max_spot_size=1000"]
REFERENCES = Path(__file__).resolve().parent / "references"


def bundled_folder(name: str) -> Path:
    return REPO / "data" / "reference" / name / "per_image"


def assert_same_figures(ours: dict, reference: dict) -> None:
    """Same keys in the same order, counts equal, floats within 1e-6 relative."""
    assert list(ours) == list(reference) == list(FIGURE_NAMES)
    for name in FIGURE_NAMES:
        assert len(ours[name]) == len(reference[name]), name
        for i, (a, b) in enumerate(zip(ours[name], reference[name], strict=True)):
            if name.startswith("n_spots"):
                assert a == b, (name, i, a, b)
            else:
                assert math.isclose(a, b, rel_tol=1e-6), (name, i, a, b)


def run_stats(folder: Path, table: Path, capsys, tmp_path) -> tuple[str, dict]:
    out = tmp_path / "stats.json"
    assert stats_run([str(folder / "models.expt"), str(table), f"json={out}"]) == 0
    return capsys.readouterr().out, json.loads(out.read_text())


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_dials_table_through_findspots_stats(name, capsys, tmp_path):
    folder = bundled_folder(name)
    text, figures = run_stats(folder, folder / "strong.refl.xz", capsys, tmp_path)
    assert text == (folder / "spot_counts_per_image.txt").read_text()
    assert_same_figures(figures, json.loads((folder / "per_image.json").read_text()))


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_findspots_table_of_the_same_images(name, tmp_path):
    out = tmp_path / "ours.refl"
    argv = [str(p) for p in BUNDLED[name]] + DIALS_PARAMETERS
    argv += [f"output.reflections={out}", f"output.log={tmp_path / 'log'}", "output.shoeboxes=False"]
    assert findspots_run(argv) == 0
    table = read_reflections(out)
    sequences = read_experiments(str(bundled_folder(name) / "models.expt"))
    reference = json.loads((bundled_folder(name) / "per_image.json").read_text())
    assert_same_figures(per_image_figures(table, sequences), reference)


def test_thaumatin_still_figures():
    """The still's figures as DIALS 3.12 prints them (a regression anchor in plain numbers)."""
    folder = bundled_folder("thaumatin_grid")
    figures = per_image_figures(
        read_reflections(folder / "strong.refl.xz"), read_experiments(str(folder / "models.expt"))
    )
    assert (figures["n_spots_total"], figures["n_spots_no_ice"]) == ([1266], [1128])
    assert [
        round(figures[k][0], 2) for k in ("estimated_d_min", "d_min_distl_method_1", "d_min_distl_method_2")
    ] == [
        1.96,
        2.76,
        2.41,
    ]


def test_resolution_filter_keeps_the_inclusive_range():
    """d_min/d_max drop centroids outside [d_min, d_max] before the analysis, as the server does."""
    folder = bundled_folder("thaumatin_grid")
    table = read_reflections(folder / "strong.refl.xz")
    sequences = read_experiments(str(folder / "models.expt"))
    d = spot_d(table, sequences)
    cut = float(np.sort(d)[len(d) // 2])  # a spot exactly at the limit is kept on both sides
    low = per_image_figures(table, sequences, d_min=cut)
    high = per_image_figures(table, sequences, d_max=cut)
    assert low["n_spots_total"] == [int((d >= cut).sum())]
    assert high["n_spots_total"] == [int((d <= cut).sum())]
    assert low["n_spots_total"][0] + high["n_spots_total"][0] == len(d) + 1
    assert per_image_figures(table, sequences, d_min=0.0)["n_spots_total"] == [len(d)]  # 0 means no filter


def test_ice_filter_off_counts_every_spot():
    folder = bundled_folder("thaumatin_grid")
    table = read_reflections(folder / "strong.refl.xz")
    figures = per_image_figures(table, read_experiments(str(folder / "models.expt")), filter_ice=False)
    assert figures["n_spots_no_ice"] == figures["n_spots_total"] == [1266]
    assert figures["total_intensity"][0] == pytest.approx(
        float(np.sum(table["intensity.sum.value"])), rel=1e-12
    )


SHARED = {
    "thaumatin_grid_19": "real/dials_3.12_reference/thaumatin_grid/strong.refl.xz",
    "p300k_60": "p300k_60/dials_reference/a_seed/strong.refl.xz",
}


@pytest.mark.parametrize("name", sorted(SHARED))
def test_shared_dials_tables(name, shared_data, capsys, tmp_path):
    folder = REFERENCES / name
    text, figures = run_stats(folder, shared_data / SHARED[name], capsys, tmp_path)
    assert text == (folder / "spot_counts_per_image.txt").read_text()
    assert_same_figures(figures, json.loads((folder / "per_image.json").read_text()))


def test_shared_p6m_spots(shared_data):
    """p6m_5's reference is stored as arrays: the entry point on those columns."""
    spots = np.load(shared_data / "p6m_5" / "dials_reference" / "a_seed" / "spots.npz")
    table = {
        k: spots[k]
        for k in ("xyzobs.px.value", "intensity.sum.value", "intensity.sum.variance", "panel", "id")
    }
    sequences = read_experiments(str(REFERENCES / "p6m_5" / "models.expt"))
    reference = json.loads((REFERENCES / "p6m_5" / "per_image.json").read_text())
    assert_same_figures(per_image_figures(table, sequences), reference)
