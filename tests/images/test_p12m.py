"""The DLS I23 PILATUS 12M: 24 curved-row panels, kappa goniometer shadow, spots equal to DIALS."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from spotcompare import assert_same_shoeboxes, assert_same_spots

from findspots.app.cli import run
from findspots.images import dls_p12m, group_images
from findspots.images.expt import detector_from_dict
from findspots.images.shadow import clip_to_rectangle, convex_hull, polygon_mask
from findspots.output.refl import read_reflections

DATA = Path(__file__).parent / "data"
P12M = "real/single_images/DLS_I23_P12M_thau_00001.cbf.gz"
REF_312 = "real/dials_3.12_reference/DLS_I23_P12M_thau_00001/imported.expt"
EPOCH = 1623937896.874  # the image's timestamp (2021-06-17)


def _header_models():
    """The detector and goniometer the image header gives (Beam_xy 1080, 2595; distance 10 mm)."""
    gonio = dls_p12m.goniometer({"Omega": "-210.0000 deg.", "Kappa": "0.0", "Phi": "0.0"}, EPOCH)
    return dls_p12m.detector(0.32, EPOCH, (1080.0, 2595.0), 10.0), gonio


def test_shadow_equals_dials_312_mask() -> None:
    """The kappa shadow at omega = -210 deg, pixel for pixel as dxtbx computes it (7 rows shadowed)."""
    detector, gonio = _header_models()
    masks = dls_p12m.shadow(gonio).mask(detector, -210.0)
    ref = json.loads((DATA / "p12m_shadow_dials312.json").read_text())["panels"]
    total = 0
    for p, mask in enumerate(masks):
        expected = np.ones(mask.shape, bool)
        for row, x0, x1 in ref.get(str(p), []):
            expected[row, x0:x1] = False
        np.testing.assert_array_equal(mask, expected, err_msg=f"panel {p}")
        total += int((~mask).sum())
    assert sorted(int(k) for k in ref) == list(range(16, 23))
    assert total == 491224


def test_shadow_moves_with_omega() -> None:
    detector, gonio = _header_models()
    masker = dls_p12m.shadow(gonio)
    assert sum(int((~m).sum()) for m in masker.mask(detector, 0.0)) != 491224


def test_geometry_matches_dials_312_import(shared_data: Path) -> None:
    """Panel frames equal dials.import's (its JSON hierarchy composed into the lab frame)."""
    (seq,) = group_images([str(shared_data / P12M)])
    assert len(seq.detector) == 24 and seq.shadow is not None
    raw = json.loads((shared_data / REF_312).read_text())
    panels = raw["detector"][0]["panels"]
    for j, panel in enumerate(seq.detector):
        assert panel.name == panels[j]["name"] == f"row-{j:02d}"
        assert panel.image_size == (2463, 195) and panel.raw_offset == (0, 212 * j)
        assert panel.mask_rects == []  # no dead modules in June 2021
    frames = _composed(raw["detector"][0])
    for panel, (fast, slow, origin) in zip(seq.detector, frames, strict=True):
        np.testing.assert_allclose(panel.fast_axis, fast, atol=1e-12)
        np.testing.assert_allclose(panel.slow_axis, slow, atol=1e-12)
        np.testing.assert_allclose(panel.origin, origin, atol=1e-9)
    g = raw["goniometer"][0]
    np.testing.assert_allclose(seq.goniometer.axes, g["axes"], atol=1e-12)
    assert list(seq.goniometer.angles) == g["angles"] and seq.goniometer.scan_axis == g["scan_axis"]
    np.testing.assert_allclose(seq.goniometer.rotation_axis, (1.0, 0.0, 0.0))


def _composed(det: dict) -> list[tuple]:
    """Lab frames of the reference panels, through findspots' reading of an experiment file."""
    d = detector_from_dict(det)
    return [(p.fast_axis, p.slow_axis, p.origin) for p in d]


def test_raw_split_into_rows(shared_data: Path) -> None:
    (seq,) = group_images([str(shared_data / P12M)])
    raw = seq.get_raw(0)
    assert len(raw) == 24 and all(r.shape == (195, 2463) for r in raw)
    assert int(sum(r.sum(dtype=np.int64) for r in raw)) > 0
    mask = seq.get_mask(0)
    # shadowed pixels on rows 16-22 plus the untrusted (-1, -2) ones
    assert sum(int((~m).sum()) for m in mask) == 230025 + 487623


@pytest.mark.parametrize(("algorithm", "count"), [("dispersion", 168), ("dispersion_extended", 208)])
def test_spots_equal_dials(tmp_path: Path, shared_data: Path, algorithm: str, count: int) -> None:
    out = tmp_path / "strong.refl"
    argv = [str(shared_data / P12M), f"threshold.algorithm={algorithm}", "filter.max_spot_size=1000"]
    argv += [
        f"output.reflections={out}",
        f"output.log={tmp_path / 'log'}",
        f"output.debug_log={tmp_path / 'd'}",
        "output.report=None",
    ]
    assert run(argv) == 0
    ours = read_reflections(out)
    ref = read_reflections(
        shared_data / "real/dials_head_reference/DLS_I23_P12M_thau_00001" / algorithm / "strong.refl.xz"
    )
    assert assert_same_spots(ours, ref) == count
    assert_same_shoeboxes(ours["shoebox"], ref["shoebox"])
    assert set(np.asarray(ours["panel"]).tolist()) == set(range(24))


def test_dead_modules_by_date() -> None:
    rects = dls_p12m.dead_module_rects(1645000000)  # Feb 2022: row 10, module 3
    assert rects == {10: [(3 * 494, 0, 3 * 494 + 487, 195)]}
    early_2020 = dls_p12m.dead_module_rects(1585000000)
    assert early_2020[15] == [(4 * 494 + 60, 0, 4 * 494 + 120, 97)]
    assert dls_p12m.dead_module_rects(1623937896) == {}


def test_convex_hull_clip_and_polygon_fill() -> None:
    pts = np.array([[0, 0], [4, 0], [4, 4], [0, 4], [2, 2], [1, 3]], float)
    hull = convex_hull(pts)
    assert len(hull) == 4
    clipped = clip_to_rectangle(hull, 3.0, 10.0)
    assert clipped[:, 0].max() == 3.0
    mask = polygon_mask((5, 5), clipped)
    assert mask.sum() == 12 and mask[:4, :3].all() and not mask[:, 3:].any()
