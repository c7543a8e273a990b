"""radial_profile threshold (docs/dials-behaviour.md#radial-profile): 2θ, shells, median/IQR, the 1/g vs 2/g
level rule, blur."""

import math
import pickle
from types import SimpleNamespace

import numpy as np
import pytest

from findspots.errors import ParameterError
from findspots.images.models import Beam, Detector, Panel
from findspots.threshold import make_threshold
from findspots.threshold.radial_profile import (
    NARROW,
    WIDE,
    SequenceGeometry,
    blur,
    radial_profile,
    shell_index,
    two_theta,
)


def params(n_iqr=6, blur_kind=None, n_bins=100):
    rp = SimpleNamespace(n_iqr=n_iqr, blur=blur_kind, n_bins=n_bins)
    return SimpleNamespace(algorithm="radial_profile", radial_profile=rp)


# Two shells by column: a 4x6 image whose "2θ" is the column index. With n_bins = 2:
# lookup = i - 0, multiplier = 2 / (5 + 1e-10) = 0.39999999999..., so
# columns 0, 1, 2 -> 0.0, 0.39, 0.79 -> shell 0 and columns 3, 4, 5 -> 1.19, 1.59, 1.99999 -> shell 1.
COLUMNS = np.tile(np.arange(6.0), (4, 1))

# Shell 0 (columns 0-2, 12 pixels), sorted 1..11, 40:
#   median = (v5 + v6) / 2 = (6 + 7) / 2 = 6.5
#   q1 at h = 11 * 0.25 = 2.75: 0.25 * v2 + 0.75 * v3 = 0.75 + 3 = 3.75
#   q3 at h = 11 * 0.75 = 8.25: 0.75 * v8 + 0.25 * v9 = 6.75 + 2.5 = 9.25
#   IQR = 5.5; n_iqr = 6 -> L = 33 -> level 39.5: only the 40 is strong
SHELL0 = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 40]
# Shell 1 (columns 3-5), sorted 10 x 9, 11, 11.5, 11.6:
#   median = (10 + 10) / 2 = 10; q1 = 0.25 * 10 + 0.75 * 10 = 10;
#   q3 = 0.75 * v8 + 0.25 * v9 = 7.5 + 2.75 = 10.25
#   IQR = 0.25; n_iqr = 6 -> L = 1.5: above 1/g = 1, so kept (not raised to 2/g = 2) -> level 11.5:
#   11.6 is strong, 11.5 is not (strict). A max(L, 2/g) rule would give 12 and no strong pixel here.
SHELL1_BETWEEN = [10] * 9 + [11, 11.5, 11.6]
# Shell 1 variant: 10 x 10, 11.9, 12.1: q3 = 0.75 * 10 + 0.25 * 10 = 10 -> IQR = 0 -> L = 0 <= 1
#   -> L = 2 -> level 12
SHELL1_FLAT = [10] * 10 + [11.9, 12.1]


def image_from(shell0, shell1):
    image = np.empty((4, 6))
    image[:, :3] = np.reshape(shell0, (4, 3))
    image[:, 3:] = np.reshape(shell1, (4, 3))
    return image


def strong_values(image, strong):
    return sorted(image[strong].tolist())


def test_shells_by_column():
    assert shell_index(COLUMNS, 2)[0].tolist() == [0, 0, 0, 1, 1, 1]
    # n_bins = 1 puts everything in shell 0 (the top value maps to 0.99999...)
    assert not shell_index(COLUMNS, 1).any()


def test_median_iqr_and_level_between_one_and_two_counts_is_kept():
    image = image_from(SHELL0, SHELL1_BETWEEN)
    strong = radial_profile(image, np.ones(image.shape, bool), COLUMNS, n_iqr=6, n_bins=2)
    assert strong_values(image, strong) == [11.6, 40]


def test_level_at_or_below_one_count_becomes_two_counts():
    image = image_from(SHELL0, SHELL1_FLAT)
    strong = radial_profile(image, np.ones(image.shape, bool), COLUMNS, n_iqr=6, n_bins=2)
    assert strong_values(image, strong) == [12.1, 40]
    # n_iqr = 4 on SHELL1_BETWEEN: L = 4 * 0.25 = 1.0 = 1/g exactly -> "<=" holds -> L = 2 -> level 12:
    # 11.6 is no longer strong. Shell 0: L = 4 * 5.5 = 22 -> level 28.5 -> the 40 stays strong.
    image = image_from(SHELL0, SHELL1_BETWEEN)
    strong = radial_profile(image, np.ones(image.shape, bool), COLUMNS, n_iqr=4, n_bins=2)
    assert strong_values(image, strong) == [40]


def test_panel_gain_sets_the_count():
    # gain 0.5: one count is 1/g = 2 corrected units. SHELL1_BETWEEN: L = 1.5 <= 2 -> L = 4 -> level 14: none.
    # Shell 0: L = 33 > 2 is kept -> level 39.5: the 40.
    image = image_from(SHELL0, SHELL1_BETWEEN)
    strong = radial_profile(image, np.ones(image.shape, bool), COLUMNS, n_iqr=6, n_bins=2, gain=0.5)
    assert strong_values(image, strong) == [40]


def test_masked_pixels_leave_the_statistics_and_are_never_strong():
    # Mask the 40 (row 3, column 2) and put 37 in place of the 1 at (0, 0). Masked-in shell 0 is then
    # 2, 3, ..., 11, 37 (n = 11): median v5 = 7, q1 at h = 10 * 0.25 = 2.5: 0.5 * 4 + 0.5 * 5 = 4.5,
    # q3 at h = 7.5: 0.5 * 9 + 0.5 * 10 = 9.5, IQR 5 -> L = 30 -> level 37: 37 is not strong (strict),
    # 37.5 is; the masked 40 never is. Shell 1 is unchanged (11.6 strong).
    image = image_from(SHELL0, SHELL1_BETWEEN)
    mask = np.ones(image.shape, bool)
    mask[3, 2] = False
    image[0, 0] = 37.0
    strong = radial_profile(image, mask, COLUMNS, n_iqr=6, n_bins=2)
    assert strong_values(image, strong) == [11.6]
    image[0, 0] = 37.5
    strong = radial_profile(image, mask, COLUMNS, n_iqr=6, n_bins=2)
    assert strong_values(image, strong) == [11.6, 37.5]


def test_narrow_blur_at_a_corner_clamps_to_the_edge():
    # 16 at (0, 0) of a 3x3 zero image. Blurred (0, 0): kernel taps at row/column offsets -1 and 0 all
    # land on (0, 0) after clamping: 1/16 + 2/16 + 2/16 + 4/16 = 9/16 of 16 = 9.
    # (1, 1): the tap at offset (-1, -1): 1/16 of 16 = 1. (0, 1): taps (-1, -1) and (0, -1): 1/16 + 2/16 -> 3.
    image = np.zeros((3, 3))
    image[0, 0] = 16
    out = blur(image, "narrow")
    assert out.tolist() == [[9, 3, 0], [3, 1, 0], [0, 0, 0]]


def test_kernels():
    assert NARROW.tolist() == [[1 / 16, 1 / 8, 1 / 16], [1 / 8, 1 / 4, 1 / 8], [1 / 16, 1 / 8, 1 / 16]]
    assert WIDE.sum() == pytest.approx(1.0) and WIDE[2, 2] == 41 / 273 and WIDE[0, 0] == 1 / 273
    flat = np.full((6, 7), 5.0)
    np.testing.assert_array_equal(blur(flat, "narrow"), flat)  # binary fractions: exact
    np.testing.assert_allclose(blur(flat, "wide"), flat, rtol=1e-15)
    assert blur(flat, None) is flat


def test_blurred_values_are_thresholded():
    # 7x7 of 10 with 160 at the centre, one shell. Narrow blur: centre 10 * 12/16 + 160/4 = 47.5,
    # edge neighbours 10 * 14/16 + 160/8 = 28.75, diagonals 10 * 15/16 + 160/16 = 19.375, the rest 10.
    # 49 sorted values: 40 tens, 4 x 19.375, 4 x 28.75, 47.5 -> median v24 = 10, q1 = v12 = 10, q3 = v36 = 10:
    # IQR 0 -> L = 2 -> level 12: the whole 3x3 block is strong. Unblurred, only the 160 passes.
    image = np.full((7, 7), 10.0)
    image[3, 3] = 160
    mask = np.ones(image.shape, bool)
    tt = np.arange(49.0).reshape(7, 7)
    blurred = radial_profile(image, mask, tt, n_bins=1, blur_kind="narrow")
    assert sorted(map(tuple, np.argwhere(blurred))) == [(j, i) for j in (2, 3, 4) for i in (2, 3, 4)]
    plain = radial_profile(image, mask, tt, n_bins=1)
    assert np.argwhere(plain).tolist() == [[3, 3]]


def flat_panel(nfast, nslow, origin):
    return Panel(
        image_size=(nfast, nslow),
        pixel_size=(1.0, 1.0),
        trusted_range=(-1, 1e6),
        origin=origin,
        fast_axis=(1, 0, 0),
        slow_axis=(0, -1, 0),
    )


def test_two_theta_is_taken_at_pixel_corners():
    # Panel 100 mm from the sample, pixel corner (i, j) at (i, -j, -100); beam along -z.
    # 2θ(i, j) = atan(sqrt(i² + j²) / 100): 0 at (0, 0), atan(1) = π/4 at corner (100, 0).
    panel = flat_panel(101, 2, (0, 0, -100))
    tt = two_theta(panel, Beam(wavelength=1.0))
    assert tt.shape == (2, 101)
    assert tt[0, 0] == 0.0
    assert tt[0, 100] == pytest.approx(math.pi / 4, abs=1e-15)
    # near the beam 2θ comes from acos of a cosine close to 1 (as in dxtbx), good to ~1e-14 rad only
    assert tt[1, 0] == pytest.approx(math.atan(0.01), abs=1e-13)
    assert tt[1, 1] == pytest.approx(math.atan(math.sqrt(2) / 100), abs=1e-13)


def ring_setup():
    # 21x21 panel, beam through the corner of pixel (10, 10): flat 10 background, one 13 in an outer ring.
    # Every shell is flat 10 (IQR 0 -> L = 2 -> level 12), so only the 13 is strong.
    panel = flat_panel(21, 21, (-10, 10, -100))
    geometry = SequenceGeometry(Detector([panel]), Beam(wavelength=1.0))
    image = np.full((21, 21), 10.0)
    image[4, 15] = 13
    return geometry, image, np.ones(image.shape, bool)


def test_threshold_callable_uses_the_panel_geometry_and_roi():
    geometry, image, mask = ring_setup()
    fn = make_threshold(params(n_bins=10), geometry=geometry)
    assert np.argwhere(fn(image, mask)).tolist() == [[4, 15]]
    assert np.argwhere(fn(image, mask, panel=0)).tolist() == [[4, 15]]
    x0, x1, y0, y1 = 12, 20, 2, 9
    crop = fn(image[y0:y1, x0:x1], mask[y0:y1, x0:x1], panel=0, roi=(x0, x1, y0, y1))
    assert np.argwhere(crop).tolist() == [[4 - y0, 15 - x0]]
    with pytest.raises(ValueError, match="does not match"):
        fn(image[y0:y1, x0:x1], mask[y0:y1, x0:x1], panel=0)
    # a lambda giving the array works too (gain 1)
    lam = make_threshold(params(n_bins=10), geometry=lambda p: geometry(p))
    assert np.argwhere(lam(image, mask)).tolist() == [[4, 15]]
    # the callable and the geometry pickle
    again = pickle.loads(pickle.dumps(fn))
    assert np.argwhere(again(image, mask)).tolist() == [[4, 15]]


def test_geometry_is_required_to_run_but_not_to_check_parameters():
    fn = make_threshold(params())
    _, image, mask = ring_setup()
    with pytest.raises(ParameterError, match="needs the detector geometry"):
        fn(image, mask)
    with pytest.raises(ParameterError):
        make_threshold(params(n_iqr=None))
