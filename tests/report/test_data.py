"""The numbers behind the report: geometry helpers, spot assignment, resolution estimates, checks."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from findspots.analysis.per_image import spot_resolution
from findspots.geometry.parallax import panel_mu
from findspots.geometry.resolution import d_spacing, max_resolution_at_corners
from findspots.report.data import (
    RESOLUTION_ESTIMATES,
    ReportData,
    analyse,
    beam_centre,
    experiment_sequences,
    figure_positions,
    grid_cells,
    image_counts,
    percentile_d,
)

from .conftest import DATA, PER_IMAGE, spots_per_image


def test_beam_centre_is_where_d_is_largest(lcyst_sequences):
    seq = lcyst_sequences[0]
    panel, beam = seq.detector[0], seq.beam
    bx, by = beam_centre(panel, beam.s0)
    full = panel.resolution(beam.wavelength, beam.s0)
    j, i = np.unravel_index(np.argmax(full), full.shape)
    assert abs(bx - (i + 0.5)) <= 1 and abs(by - (j + 0.5)) <= 1
    assert d_spacing(panel, bx, by, beam.wavelength, beam.s0, None) > 1e6  # the plain geometric intersection


def test_percentile_d():
    assert percentile_d(np.array([])) is None
    d = np.array([4.0, 3.0, 2.0, 1.5, 1.0])
    s = np.quantile(1 / d**2, 0.95)
    assert percentile_d(d) == pytest.approx(1 / np.sqrt(s))
    assert percentile_d(np.array([2.0])) == pytest.approx(2.0)


class _Sequence:
    def __init__(self, n: int, still: bool):
        self.n, self.is_still = n, still

    def __len__(self) -> int:
        return self.n


def test_experiment_ids_follow_the_pipeline():
    # one id per rotation sequence, one per image of a still sequence
    assert experiment_sequences([_Sequence(5, False), _Sequence(3, True), _Sequence(4, False)]) == [
        0,
        1,
        1,
        1,
        2,
    ]


def test_image_counts_from_pipeline_results():
    per_sequence = [
        [SimpleNamespace(frame=0, count=10), SimpleNamespace(frame=1, count=12)],
        [SimpleNamespace(frame=4, count=3)],
    ]
    assert image_counts(per_sequence) == [(0, 1, 10), (0, 2, 12), (1, 5, 3)]


def test_analysis_agrees_with_the_table(lcyst_data, lcyst_table):
    a = analyse(lcyst_data)
    n = len(lcyst_table["id"])
    assert a.n_spots == n == 53
    assert sum(r.spots for r in a.rows) == n
    expected = spots_per_image(lcyst_table)
    assert {r.image: r.spots for r in a.rows} == {i: expected.get(i, 0) for i in range(1, 16)}
    assert [r.strong for r in a.rows] == [c for _, _, c in lcyst_data.images]
    assert [r.image for r in a.rows if r.spots == 0] == [3, 11]
    # per-spot d from the geometry (parallax-corrected, as the per-image analysis); the per-image and
    # overall estimates from those
    seq = lcyst_data.sequences[0]
    xyz = np.asarray(lcyst_table["xyzobs.px.value"])
    d = spot_resolution(seq, np.asarray(lcyst_table["panel"]), xyz[:, :2])
    np.testing.assert_array_equal(a.d, d)
    # the parallax correction (Pilatus, 0.32 mm Si) moves d by well under 1 %, but moves it
    simple = d_spacing(seq.detector[0], xyz[:, 0], xyz[:, 1], seq.beam.wavelength, seq.beam.s0, None)
    assert not np.array_equal(d, simple)
    np.testing.assert_allclose(d, simple, rtol=1e-2)
    mu = panel_mu(seq.detector[0], seq.beam.wavelength)
    assert mu is not None
    assert a.sequences[0].d_detector == max_resolution_at_corners(seq.detector[0], seq.beam.s0, mu)
    assert a.d95 == pytest.approx(percentile_d(d))
    # per image, the per-image analysis's figures: DIALS 3.12's (too few spots for any estimate)
    reference = json.loads(PER_IMAGE.read_text())
    assert (
        [r.spots_no_ice for r in a.rows]
        == reference["n_spots_no_ice"]
        == [1, 1, 0, 0, 3, 3, 3, 3, 3, 6, 0, 4, 4, 7, 4]
    )
    assert all(r.estimates == dict.fromkeys(RESOLUTION_ESTIMATES) for r in a.rows)
    assert a.best_image == (0, 14)  # 8 spots, the most
    assert a.sequences[0].spots == n and a.sequences[0].strong == sum(c for _, _, c in lcyst_data.images)
    # 0.25 of a Pilatus 2M is far above any image's count
    assert a.sequences[0].strong_limit == int(np.ceil(0.25 * 1475 * 1679))
    assert not any(r.over_limit for r in a.rows)
    assert a.hot == [] and a.ice == []


def test_over_limit_and_hot_pixel_flags(lcyst_sequences, lcyst_table):
    table = {k: np.array(v) for k, v in lcyst_table.items() if k != "shoebox"}
    # a 1-pixel spot present on all 15 images: a hot pixel
    table["bbox"] = np.vstack([table["bbox"], [[700, 701, 500, 501, 0, 15]]]).astype(np.int32)
    table["xyzobs.px.value"] = np.vstack([table["xyzobs.px.value"], [[700.5, 500.5, 7.5]]])
    for name, value in (("id", 0), ("panel", 0), ("n_signal", 15), ("intensity.sum.value", 3e5)):
        table[name] = np.append(table[name], value)
    images = [(0, i, 40) for i in range(1, 16)]
    images[4] = (0, 5, 10**6)
    data = ReportData(table=table, sequences=lcyst_sequences, images=images, max_strong_fraction=0.25)
    a = analyse(data)
    assert [r.image for r in a.rows if r.over_limit] == [5]
    assert a.hot == [len(table["id"]) - 1]
    data.max_strong_fraction = None
    assert not any(r.over_limit for r in analyse(data).rows)


def test_ice_ring_excess_is_reported(lcyst_sequences):
    # 40 spots on the 3.669 A ring and a few elsewhere
    seq = lcyst_sequences[0]
    panel, beam = seq.detector[0], seq.beam
    full = panel.resolution(beam.wavelength, beam.s0)
    ys, xs = np.nonzero(np.abs(full - 3.669) < 0.002)
    pick = np.linspace(0, len(xs) - 1, 40).astype(int)
    other_y, other_x = np.nonzero(np.abs(full - 2.9) < 0.01)
    pick2 = np.linspace(0, len(other_x) - 1, 5).astype(int)
    x = np.r_[xs[pick], other_x[pick2]] + 0.5
    y = np.r_[ys[pick], other_y[pick2]] + 0.5
    n = len(x)
    table = {
        "xyzobs.px.value": np.c_[x, y, np.full(n, 0.5)],
        "bbox": np.c_[x - 1, x + 1, y - 1, y + 1, np.zeros(n), np.ones(n)].astype(np.int32),
        "id": np.zeros(n, np.int32),
        "panel": np.zeros(n, np.uint64),
        "n_signal": np.full(n, 4),
        "intensity.sum.value": np.full(n, 100.0),
    }
    a = analyse(ReportData(table=table, sequences=lcyst_sequences, images=[(0, 1, 200)]))
    assert [round(ring, 3) for ring, _, _ in a.ice] == [3.669]
    assert a.ice[0][1] == 40


def test_empty_table(lcyst_sequences):
    data = ReportData(table={}, sequences=lcyst_sequences, images=[(0, i, 0) for i in range(1, 16)])
    a = analyse(data)
    assert a.n_spots == 0 and a.d95 is None
    assert all(r.spots == 0 and r.spots_no_ice is None and not r.estimates for r in a.rows)
    assert a.best_image == (0, 1)


def test_still_rows_take_their_own_figures():
    """Each still is its own entry of the per-image lists: the thaumatin still's estimates, DIALS 3.12's."""
    from findspots.analysis.per_image import per_image_figures
    from findspots.images import group_images
    from findspots.output.refl import read_reflections

    sequences = group_images([str(DATA / "thaumatin_grid" / "thau_3_2_0002.cbf.bz2")])
    folder = DATA / "reference" / "thaumatin_grid" / "per_image"
    table = dict(read_reflections(folder / "strong.refl.xz").columns)
    data = ReportData(
        table=table,
        sequences=sequences,
        images=[(0, 2, 11368)],
        per_image=per_image_figures(table, sequences),
    )
    (row,) = analyse(data).rows
    assert figure_positions(sequences) == {(0, 2): 0}
    assert row.spots_no_ice == 1128
    assert row.estimates == pytest.approx(
        {
            "estimated_d_min": 1.9573401851298324,
            "d_min_distl_method_1": 2.7584511664484728,
            "d_min_distl_method_2": 2.4127850570265337,
        },
        rel=1e-6,
    )


def test_figure_positions_follow_the_experiments(lcyst_sequences):
    # one rotation sequence: image number n is entry n - 1
    assert figure_positions(lcyst_sequences) == {(0, n): n - 1 for n in range(1, 16)}


@pytest.mark.parametrize(
    "order, expected",
    [
        ("raster", [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]),
        ("snake", [[0, 1, 2, 3], [7, 6, 5, 4], [8, 9, 10, 11]]),
    ],
)
def test_grid_cells(order, expected):
    assert grid_cells(12, 4, 3, order).tolist() == expected


def test_grid_cells_need_one_cell_per_image():
    with pytest.raises(ValueError):
        grid_cells(12, 5, 3)
