"""Static masks from the filter parameters (docs/dials-behaviour.md#static-masks): regions, resolution, ice
rings, lookup mask."""

from __future__ import annotations

import itertools
import math
import pickle
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
from spotcompare import assert_same_shoeboxes, assert_same_spots
from test_dials_parity import BUNDLED, dials_arguments, npz_shoeboxes, run_findspots

from findspots.app.parameters import parse_arguments
from findspots.errors import ParameterError
from findspots.geometry.resolution import resolution_map
from findspots.images.models import Beam, Detector, Panel
from findspots.spotfinder.masks import check_mask_parameters, inside_polygon, load_lookup_mask, static_masks


def filter_params(*argv: str):
    return parse_arguments(list(argv)).params.spotfinder.filter


def small_panel(nfast: int = 10, nslow: int = 8, **kw) -> Panel:
    args = dict(
        image_size=(nfast, nslow),
        pixel_size=(1.0, 1.0),
        trusted_range=(0, 1e6),
        origin=(-nfast / 2, nslow / 2, -100.0),
        fast_axis=(1, 0, 0),
        slow_axis=(0, -1, 0),
    )
    args.update(kw)
    return Panel(**args)


def sequence(*panels: Panel, wavelength: float = 1.0):
    return SimpleNamespace(detector=Detector(panels or [small_panel()]), beam=Beam(wavelength))


def masked(*argv: str, seq=None, panel: int = 0) -> set[tuple[int, int]]:
    """The (x, y) pixels cleared by the given parameters."""
    m = static_masks(seq or sequence(), filter_params(*argv))[panel]
    return {(int(x), int(y)) for y, x in zip(*np.nonzero(~m), strict=True)}


def block(x0: int, x1: int, y0: int, y1: int) -> set[tuple[int, int]]:
    return {(x, y) for x in range(x0, x1) for y in range(y0, y1)}


# ------------------------------------------------------------------------------------------ regions


def test_no_parameters_masks_nothing():
    assert masked() == set()


def test_border():
    assert masked("border=2") == block(0, 10, 0, 8) - block(2, 8, 2, 6)


def test_circle_uses_pixel_corners_and_a_strict_test():
    # (i - 5)^2 + (j - 4)^2 < 4: the 3 x 3 block around (5, 4) plus nothing at distance 2
    assert masked("untrusted.circle=5,4,2") == block(4, 7, 3, 6)
    # a circle over the corner is clipped to the panel
    assert masked("untrusted.circle=0,0,2") == {(0, 0), (1, 0), (0, 1), (1, 1)}


def test_circle_errors():
    with pytest.raises(ParameterError, match=r"untrusted.circle=5,4,0: the radius must be greater than 0"):
        masked("untrusted.circle=5,4,0")
    with pytest.raises(ParameterError, match=r"untrusted.circle=50,4,3: the circle lies outside the panel"):
        masked("untrusted.circle=50,4,3")


def test_rectangle_is_x0_x1_y0_y1_half_open():
    assert masked("untrusted.rectangle=2,5,1,3") == block(2, 5, 1, 3)
    assert masked("untrusted.rectangle=0,10,7,8") == block(0, 10, 7, 8)  # up to the edges


@pytest.mark.parametrize("rect", ["2,11,1,3", "2,5,1,9", "5,5,1,3", "5,2,1,3"])
def test_rectangle_outside_or_empty_is_an_error(rect):
    with pytest.raises(ParameterError, match=rf"untrusted.rectangle={rect}: needs 0 <= x0 < x1 <= 10"):
        masked(f"untrusted.rectangle={rect}")


def test_polygon_tests_pixel_centres():
    # a square with corners on pixel corners: centres 2.5 .. 5.5 are inside
    assert masked("untrusted.polygon=2,2,6,2,6,6,2,6") == block(2, 6, 2, 6)
    # a triangle: centre (i + 0.5, j + 0.5) below x + y = 8, i.e. i + j <= 6
    expected = {(x, y) for x in range(10) for y in range(8) if x + y <= 6}
    assert masked("untrusted.polygon=0,0,8,0,0,8") == expected


def test_polygon_even_odd_rule():
    # the square traced twice: every inside point crosses two edges, so nothing is inside
    assert masked("untrusted.polygon=2,2,6,2,6,6,2,6,2,2,6,2,6,6,2,6") == set()
    # inside_polygon on its own: a concave "U" shape
    u = np.array([[0, 0], [6, 0], [6, 6], [4, 6], [4, 2], [2, 2], [2, 6], [0, 6]], dtype=float)
    x = np.array([1.0, 3.0, 5.0, 3.0])
    y = np.array([4.0, 4.0, 4.0, 1.0])
    assert inside_polygon(u, x, y).tolist() == [True, False, True, True]


def test_polygon_errors():
    with pytest.raises(ParameterError, match="even number of values"):
        masked("untrusted.polygon=1,1,5,1,5")
    with pytest.raises(ParameterError, match="at least 3 vertices"):
        masked("untrusted.polygon=1,1,5,5")
    with pytest.raises(ParameterError, match="polygon lies outside the panel"):
        masked("untrusted.polygon=20,20,30,20,30,30")


def test_pixel_is_y_x():
    assert masked("untrusted.pixel=1,7") == {(7, 1)}  # row 1, column 7
    with pytest.raises(ParameterError, match=r"untrusted.pixel=8,1: \(y, x\) outside the panel"):
        masked("untrusted.pixel=8,1")


def regions_file(tmp_path: Path, *regions: str) -> str:
    """A PHIL file with one ``untrusted`` scope per text (on the command line each assignment is its own)."""
    path = tmp_path / f"regions{len(list(tmp_path.iterdir()))}.phil"
    path.write_text("".join(f"spotfinder.filter.untrusted {{\n{r}\n}}\n" for r in regions))
    return str(path)


def test_regions_choose_their_panel(tmp_path):
    seq = sequence(small_panel(), small_panel())
    # panel None means panel 0
    circle = regions_file(tmp_path, "panel = None\ncircle = 5 4 2")
    assert masked(circle, seq=seq, panel=0) == block(4, 7, 3, 6)
    assert masked(circle, seq=seq, panel=1) == set()
    circle1 = regions_file(tmp_path, "panel = 1\ncircle = 5 4 2")
    assert masked(circle1, seq=seq, panel=0) == set()
    assert masked(circle1, seq=seq, panel=1) == block(4, 7, 3, 6)
    # a region without geometry masks its whole panel
    assert masked("untrusted.panel=1", seq=seq, panel=1) == block(0, 10, 0, 8)
    assert masked("untrusted.panel=1", seq=seq, panel=0) == set()
    # several geometries in one region all apply; a region on a missing panel is ignored
    both = regions_file(tmp_path, "pixel = 0 0\nrectangle = 8 10 6 8", "panel = 7\npixel = 1 1")
    assert masked(both, seq=seq) == {(0, 0)} | block(8, 10, 6, 8)
    assert masked(both, seq=seq, panel=1) == set()


def test_each_command_line_assignment_is_its_own_region():
    got = masked("untrusted.pixel=0,0", "untrusted.rectangle=8,10,6,8")
    assert got == {(0, 0)} | block(8, 10, 6, 8)
    # so "untrusted.panel=1 untrusted.pixel=0,0" is a whole-panel region plus a pixel region on panel 0
    seq = sequence(small_panel(), small_panel())
    assert masked("untrusted.panel=1", "untrusted.pixel=0,0", seq=seq, panel=1) == block(0, 10, 0, 8)
    assert masked("untrusted.panel=1", "untrusted.pixel=0,0", seq=seq, panel=0) == {(0, 0)}


# ------------------------------------------------------------------------------------------ resolution


def hand_d(x_mm: float, y_mm: float, dist: float = 100.0, wavelength: float = 1.0) -> float:
    return wavelength / (2 * math.sin(math.atan2(math.hypot(x_mm, y_mm), dist) / 2))


def test_resolution_of_pixels_by_hand():
    seq = sequence(small_panel(60, 40, pixel_size=(2.0, 2.0), origin=(-60.0, 40.0, -100.0)))
    d = resolution_map(seq.detector[0], 1.0, seq.beam.s0)
    # pixel (0, 0) centre: (-59, 39) mm; pixel (45, 10): (31, 19) mm
    assert d[0, 0] == pytest.approx(hand_d(-59, 39), rel=1e-13)
    assert d[10, 45] == pytest.approx(hand_d(31, 19), rel=1e-13)
    assert d[0, 0] == pytest.approx(1.6504, abs=1e-4)


@pytest.mark.parametrize(
    ("args", "rule"),
    [
        (("d_min=3",), lambda d: d <= 3),
        (("filter.d_max=10",), lambda d: d >= 10),
        (("resolution_range=4,6",), lambda d: (4 <= d) & (d <= 6)),
        (
            ("resolution_range=6,4", "resolution_range=2,2.5"),
            lambda d: ((4 <= d) & (d <= 6)) | ((2 <= d) & (d <= 2.5)),
        ),
        (("d_min=3", "filter.d_max=10"), lambda d: (d <= 3) | (d >= 10)),
    ],
)
def test_resolution_masks_are_inclusive_pixel_masks(args, rule):
    seq = sequence(small_panel(60, 40, pixel_size=(2.0, 2.0), origin=(-60.0, 40.0, -100.0)))
    d = resolution_map(seq.detector[0], 1.0, seq.beam.s0)
    m = static_masks(seq, filter_params(*args))[0]
    assert (~m == rule(d)).all()
    assert 0 < (~m).sum() < m.size


def test_resolution_limits_hit_exactly_are_masked():
    seq = sequence(small_panel(60, 40, pixel_size=(2.0, 2.0), origin=(-60.0, 40.0, -100.0)))
    d = resolution_map(seq.detector[0], 1.0, seq.beam.s0)
    value = float(d[10, 45])
    for arg in (f"d_min={value!r}", f"filter.d_max={value!r}", f"resolution_range={value!r},{value + 1!r}"):
        assert not static_masks(seq, filter_params(arg))[0][10, 45], arg


def test_resolution_parameter_errors():
    with pytest.raises(
        ParameterError, match="d_min=5.0 > spotfinder.filter.d_max=3.0: no spots will be found"
    ):
        static_masks(sequence(), filter_params("d_min=5", "filter.d_max=3"))
    with pytest.raises(ParameterError, match="d_min=0.0 must be greater than 0"):
        static_masks(sequence(), filter_params("d_min=0"))
    with pytest.raises(ParameterError, match="resolution_range=3.0,3.0: the two limits must differ"):
        static_masks(sequence(), filter_params("resolution_range=3,3"))


def test_parameters_checked_without_a_detector():
    """The panel-independent checks can run before any image is read."""
    assert check_mask_parameters(filter_params("d_min=2", "filter.d_max=30")) == [(0.0, 2.0), (30.0, 1e9)]
    assert check_mask_parameters(filter_params("resolution_range=5,4")) == [(4.0, 5.0)]
    for bad in (
        "untrusted.circle=1,1,0",
        "untrusted.polygon=1,1,2",
        "ice_rings.filter=True ice_rings.width=0",
    ):
        with pytest.raises(ParameterError):
            check_mask_parameters(filter_params(*bad.split()))


def test_parallax_correction_for_silicon_sensors():
    """A Si panel's resolution mask uses the parallax-corrected geometry unless disabled."""
    geometry = dict(pixel_size=(0.172, 0.172), origin=(-100.0, 80.0, -150.0))
    si = small_panel(1200, 900, thickness=0.45, material="Si", **geometry)
    seq = sequence(si, wavelength=0.9795)
    corrected = static_masks(seq, filter_params("d_min=2.5"))[0]
    simple = static_masks(seq, filter_params("d_min=2.5", "disable_parallax_correction=True"))[0]
    d_simple = resolution_map(si, 0.9795, seq.beam.s0)
    d_corrected = resolution_map(si, 0.9795, seq.beam.s0, 3.9603861351765324)
    assert (~simple == (d_simple <= 2.5)).all()
    assert (~corrected == (d_corrected <= 2.5)).all()
    # the corrected geometry has larger d, so fewer pixels fall below 2.5 Angstrom
    assert (~corrected).sum() < (~simple).sum()
    # a panel without sensor material is never corrected
    plain = sequence(small_panel(1200, 900, **geometry), wavelength=0.9795)
    assert (static_masks(plain, filter_params("d_min=2.5"))[0] == simple).all()


# ------------------------------------------------------------------------------------------ ice rings


def ice_ih_d_spacings(d_min: float) -> list[float]:
    """Ice Ih rings by hand: hexagonal d formula; l odd is absent on hh-2hl and its equivalents."""
    a, c = 4.498, 7.338
    found = set()
    for h, k, l in itertools.product(range(-6, 7), repeat=3):  # noqa: E741
        if (h, k, l) == (0, 0, 0) or (l % 2 and (h == k or h == -2 * k or k == -2 * h)):
            continue
        d = 1 / math.sqrt(4 / 3 * (h * h + h * k + k * k) / (a * a) + l * l / (c * c))
        if d >= d_min:
            found.add(round(d, 9))
    return sorted(found, reverse=True)


def test_ice_rings_mask_the_ring_intervals():
    panel = small_panel(300, 300, pixel_size=(0.5, 0.5), origin=(-75.0, 75.0, -100.0))
    seq = sequence(panel)
    m = static_masks(seq, filter_params("ice_rings.filter=True"))[0]
    d = resolution_map(panel, 1.0, seq.beam.s0)
    corner = hand_d(75, 75)  # the rings go down to the corners' resolution, 1.26 A
    assert corner == pytest.approx(1.2619, abs=1e-4)
    rings = ice_ih_d_spacings(corner)
    assert len(rings) == 21 and rings[:3] == pytest.approx([3.8954, 3.669, 3.4406], abs=1e-4)
    expected = np.zeros(d.shape, bool)
    for ring in rings:
        inv = 1 / ring**2
        expected |= (d >= 1 / math.sqrt(inv + 0.001)) & (d <= 1 / math.sqrt(inv - 0.001))
    assert (~m == expected).all()
    assert 0.05 < (~m).mean() < 0.5


def test_ice_rings_options():
    panel = small_panel(300, 300, pixel_size=(0.5, 0.5), origin=(-75.0, 75.0, -100.0))
    seq = sequence(panel)
    default = static_masks(seq, filter_params("ice_rings.filter=True"))[0]
    low = static_masks(seq, filter_params("ice_rings.filter=True", "ice_rings.d_min=3.0"))[0]
    assert 0 < (~low).sum() < (~default).sum() and not (~low & default).any()  # the first 3 rings only
    wide = static_masks(seq, filter_params("ice_rings.filter=True", "ice_rings.width=0.004"))[0]
    assert (~wide).sum() > (~default).sum() and not (~default & wide).any()  # wider rings
    cubic = filter_params("ice_rings.filter=True", "ice_rings.unit_cell=6.358,6.358,6.358,90,90,90")
    with pytest.raises(ParameterError, match="incompatible with space group 194"):
        static_masks(seq, cubic)
    cubic_ice = filter_params(
        "ice_rings.filter=True",
        "ice_rings.unit_cell=6.358,6.358,6.358,90,90,90",
        "ice_rings.space_group=Fd-3m",
    )
    assert (~static_masks(seq, cubic_ice)[0]).sum() > 0
    with pytest.raises(ParameterError, match="space_group=96: space group not supported"):
        static_masks(seq, filter_params("ice_rings.filter=True", "ice_rings.space_group=96"))


# ------------------------------------------------------------------------------------------ lookup mask


def test_lookup_mask_npy(tmp_path):
    det = Detector([small_panel()])
    good = np.ones((8, 10), bool)
    good[2, 3] = False
    np.save(tmp_path / "m.npy", good)
    (loaded,) = load_lookup_mask(tmp_path / "m.npy", det)
    assert (loaded == good).all()
    np.save(tmp_path / "i.npy", good.astype(np.int32)[None] * 7)  # 3D, integer: non-zero = good
    (loaded,) = load_lookup_mask(str(tmp_path / "i.npy"), det)
    assert (loaded == good).all()
    assert load_lookup_mask(None, det) is None


def test_lookup_mask_multi_panel(tmp_path):
    a = small_panel(raw_offset=(0, 0))
    b = small_panel(raw_offset=(0, 10))
    det = Detector([a, b])
    stacked = np.ones((2, 8, 10), bool)
    stacked[1, 0, 0] = False
    np.save(tmp_path / "s.npy", stacked)
    masks = load_lookup_mask(tmp_path / "s.npy", det)
    assert [m.sum() for m in masks] == [80, 79]
    image = np.ones((18, 10), bool)  # one image-sized array, cut at the raw offsets
    image[12, 4] = False
    np.save(tmp_path / "im.npy", image)
    masks = load_lookup_mask(tmp_path / "im.npy", det)
    assert masks[0].all() and not masks[1][2, 4] and masks[1].sum() == 79


def test_lookup_mask_hdf5_rules(tmp_path):
    det = Detector([small_panel()])
    good = np.ones((8, 10), bool)
    good[1, 1] = False
    with h5py.File(tmp_path / "a.h5", "w") as fh:
        fh["mask"] = good
        fh["other"] = np.zeros((8, 10), np.int32)
    assert (load_lookup_mask(tmp_path / "a.h5", det)[0] == good).all()
    with h5py.File(tmp_path / "nexus.nxs", "w") as fh:  # NeXus: 0 = good, set bits = bad
        fh["entry/instrument/detector/pixel_mask"] = np.where(good, 0, 4).astype(np.uint32)
    assert (load_lookup_mask(tmp_path / "nexus.nxs", det)[0] == good).all()
    with h5py.File(tmp_path / "one.h5", "w") as fh:
        fh["data/my_mask"] = good.astype(np.uint8)
        fh["data/scalar"] = 3
    assert (load_lookup_mask(tmp_path / "one.h5", det)[0] == good).all()
    with h5py.File(tmp_path / "two.h5", "w") as fh:
        fh["x"] = good
        fh["y"] = good
    with pytest.raises(ParameterError, match=r"two.h5: several possible mask datasets \(x, y\)"):
        load_lookup_mask(tmp_path / "two.h5", det)


def test_lookup_mask_errors(tmp_path):
    det = Detector([small_panel()])
    (tmp_path / "mask.pickle").write_bytes(pickle.dumps((np.ones((8, 10), bool),)))  # never loaded
    with pytest.raises(
        ParameterError, match=r"mask.pickle: DIALS mask pickles are not read.*dials.python -c"
    ):
        load_lookup_mask(tmp_path / "mask.pickle", det)
    np.save(tmp_path / "wrong.npy", np.ones((10, 8), bool))
    with pytest.raises(
        ParameterError, match=r"lookup.mask=.*wrong.npy: panel 0 mask is \(10, 8\).*\(8, 10\)"
    ):
        load_lookup_mask(tmp_path / "wrong.npy", det)
    np.save(tmp_path / "three.npy", np.ones((3, 8, 10), bool))
    with pytest.raises(ParameterError, match="holds 3 panel masks, the detector has 1"):
        load_lookup_mask(tmp_path / "three.npy", det)
    np.save(tmp_path / "float.npy", np.ones((8, 10)))
    with pytest.raises(ParameterError, match="must be boolean or integer"):
        load_lookup_mask(tmp_path / "float.npy", det)
    with pytest.raises(ParameterError, match="no such file"):
        load_lookup_mask(tmp_path / "absent.npy", det)
    (tmp_path / "text.msk").write_text("hello")
    with pytest.raises(ParameterError, match="not a .npy or HDF5/NeXus mask file"):
        load_lookup_mask(tmp_path / "text.msk", det)


def test_lookup_mask_is_anded_last():
    lookup = [np.ones((8, 10), bool)]
    lookup[0][0, 9] = False
    m = static_masks(sequence(), filter_params("untrusted.pixel=7,0"), lookup_mask=lookup)[0]
    assert {(int(x), int(y)) for y, x in zip(*np.nonzero(~m), strict=True)} == {(9, 0), (0, 7)}
    with pytest.raises(ParameterError, match=r"panel 0 mask is \(8, 9\)"):
        static_masks(sequence(), filter_params(), lookup_mask=[np.ones((8, 9), bool)])


def test_lookup_mask_end_to_end_equals_untrusted_rectangle(tmp_path):
    """spotfinder.lookup.mask=file.npy removes the same spots as the same untrusted rectangle."""
    images = sorted((BUNDLED / "l_cysteine").glob("l-cyst_01_*.cbf.bz2"))[:5]
    good = np.ones((1679, 1475), bool)
    good[800:1000, 600:900] = False
    np.save(tmp_path / "mask.npy", good)
    runs = {}
    for name, extra in {
        "none": [],
        "rect": ["untrusted.rectangle=600,900,800,1000"],
        "lookup": [f"spotfinder.lookup.mask={tmp_path / 'mask.npy'}"],
    }.items():
        (tmp_path / name).mkdir()
        runs[name] = run_findspots(tmp_path / name, images, extra)
    assert assert_same_spots(runs["lookup"], runs["rect"]) == len(runs["rect"]["bbox"])
    assert len(runs["none"]["bbox"]) > len(runs["rect"]["bbox"])


# ------------------------------------------------------------------------------------------ DIALS parity


@pytest.mark.shared
@pytest.mark.parametrize(("dataset", "count"), [("p300k_60", 1873), ("p6m_5", 4017)])
def test_dials_c_masks(tmp_path, shared_data, dataset, count):
    """d_min, d_max, border, ice rings, untrusted circle and rectangle, parallax-corrected: DIALS's spots."""
    ref_dir = Path(shared_data) / dataset / "dials_reference" / "c_masks"
    ref = np.load(ref_dir / "spots.npz")
    images = sorted((Path(shared_data) / dataset).glob("*.cbf"))
    ours = run_findspots(tmp_path, images, dials_arguments(ref_dir / "command.txt"))
    assert assert_same_spots(ours, ref) == count
    assert_same_shoeboxes(ours["shoebox"], npz_shoeboxes(ref))
