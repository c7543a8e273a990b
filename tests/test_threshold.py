"""Dispersion thresholds: the worked examples of docs/dials-behaviour.md#worked-classic and
docs/dials-behaviour.md#worked-extended, and edge rules."""

import importlib

import numpy as np
import pytest

from findspots.errors import ParameterError
from findspots.threshold.dispersion import dispersion, dispersion_extended, min_count


def flat_with(value, at, shape=(5, 5)):
    image = np.ones(shape)
    image[at] = value
    return image, np.ones(shape, bool)


def checkerboard_spot():
    """docs/dials-behaviour.md#worked-extended: checkerboard 9/11 background, 3x3 spot centred at (10, 10)."""
    rows, cols = np.indices((21, 21))
    image = np.where((rows + cols) % 2 == 0, 9.0, 11.0)
    image[9:12, 9:12] = [[20, 40, 20], [40, 100, 40], [20, 40, 20]]
    return image, np.ones(image.shape, bool)


def test_example_a_centre_is_the_only_strong_pixel():
    image, mask = flat_with(10, (2, 2))
    assert np.argwhere(dispersion(image, mask, kernel_size=(1, 1))).tolist() == [[2, 2]]


def test_example_b_corner_uses_clipped_window():
    image, mask = flat_with(10, (0, 0))
    assert np.argwhere(dispersion(image, mask, kernel_size=(1, 1))).tolist() == [[0, 0]]
    # min_local <= 0 needs the full 3x3 window: the corner can never be strong
    assert not dispersion(image, mask, kernel_size=(1, 1), min_local=0).any()


def test_classic_plus_shape_on_checkerboard():
    image, mask = checkerboard_spot()
    strong = dispersion(image, mask)
    assert sorted(map(tuple, np.argwhere(strong))) == [(9, 10), (10, 9), (10, 10), (10, 11), (11, 10)]


def test_extended_recovers_the_whole_spot():
    image, mask = checkerboard_spot()
    strong = dispersion_extended(image, mask)
    assert strong.sum() == 9
    assert strong[9:12, 9:12].all()


def test_masked_pixels_are_never_strong_and_leave_the_statistics():
    image, mask = flat_with(10, (2, 2))
    mask[2, 2] = False
    assert not dispersion(image, mask, kernel_size=(1, 1)).any()


def test_values_at_or_above_2_24_are_left_out_of_the_window_sums():
    image, mask = flat_with(10, (2, 2))
    image[1, 2] = 2.0**24  # inside the statistics it would swamp the centre's local mean
    strong = dispersion(image, mask, kernel_size=(1, 1))
    # both are tested as candidates against windows that leave the 2**24 pixel out
    assert strong[2, 2] and strong[1, 2]


def test_global_threshold_is_strict():
    image, mask = flat_with(10, (2, 2))
    assert not dispersion(image, mask, kernel_size=(1, 1), global_threshold=10).any()
    assert dispersion(image, mask, kernel_size=(1, 1), global_threshold=9.99)[2, 2]


def test_gain_only_changes_the_variance_model():
    image, mask = flat_with(10, (2, 2))
    # D = 4.5 at the centre against a bound of 4.0: gain 1.2 raises the bound to 4.8
    assert dispersion(image, mask, kernel_size=(1, 1), gain=1.0)[2, 2]
    assert not dispersion(image, mask, kernel_size=(1, 1), gain=1.2).any()


def test_kernel_size_is_rows_then_columns():
    image = np.ones((9, 9))
    image[4, 4] = 10
    mask = np.ones(image.shape, bool)
    # a 1x9 window (rows +-0, columns +-4): the centre is strong; a 9x1 window is the same by symmetry,
    # but kernel (0, 4) on a 1-row-high window must see only its own row
    strong = dispersion(image, mask, kernel_size=(0, 4))
    assert strong[4, 4]
    image[3, 4] = image[5, 4] = 10  # a vertical line: invisible to a horizontal window's mean
    assert dispersion(image, mask, kernel_size=(0, 4))[4, 4]


@pytest.mark.parametrize("min_local", [1, 50])
def test_min_local_out_of_range_is_an_error(min_local):
    with pytest.raises(ParameterError, match="min_local"):
        min_count((3, 3), min_local)


def test_min_local_zero_means_full_kernel():
    assert min_count((3, 3), 0) == 49
    assert min_count((2, 1), -5) == 15


def _both_paths(image, mask, value_test, gain, min_count=2, kernel=(3, 3)):
    from findspots.threshold.dispersion import _dispersion_kernel, _sliding_dispersion, _stat_mask

    settings = (kernel[0], kernel[1], 6.0, 3.0, min_count, 0.0, gain, value_test)
    sat = np.empty(image.shape, bool)
    _dispersion_kernel(image, mask, _stat_mask(image, mask), *settings, sat)
    sliding = np.empty(image.shape, bool)
    assert _sliding_dispersion(image, mask.view(np.uint8), *settings, sliding)
    return sat, sliding


@pytest.mark.parametrize("seed", range(4))
def test_sliding_window_path_equals_summed_area_table_on_integer_images(seed):
    rng = np.random.default_rng(seed)
    image = rng.poisson(rng.uniform(0.5, 20), size=(57, 83)).astype(float)
    image[rng.random(image.shape) < 0.01] = rng.integers(100, 5000)
    image[3, 7] = 2.0**24  # above the statistics cutoff
    mask = rng.random(image.shape) > 0.05
    for value_test in (True, False):
        for gain in (0.0, 1.3):
            for count, kernel in ((2, (3, 3)), (49, (3, 3)), (3, (1, 4))):
                sat, sliding = _both_paths(image, mask, value_test, gain, count, kernel)
                np.testing.assert_array_equal(sat, sliding)
    # and the public functions pick the sliding path for these images with identical results
    from findspots.threshold.dispersion import _integer_valued

    assert _integer_valued(image) and not _integer_valued(image + 0.5)
    assert dispersion_extended(image, mask).sum() > 0


def test_very_negative_usable_values_take_the_table_path():
    """A usable value <= -2**24 could overflow the integer sums: the result is the table path's."""
    module = importlib.import_module("findspots.threshold.dispersion")  # the package shadows the name

    rng = np.random.default_rng(7)
    image = rng.poisson(5, size=(40, 50)).astype(np.int64)
    image[20, 20:23] = 60
    image[30:36, 30:36] = 90
    image[5, 5] = -(2**40)
    mask = np.ones(image.shape, bool)
    valid = mask.view(np.uint8)
    use = module._stat_mask(image, mask)
    out = np.empty(image.shape, bool)
    assert not module._sliding_dispersion(image, valid, 3, 3, 6.0, 3.0, 2, 0.0, 0.0, True, out)
    module._dispersion_kernel(image, mask, use, 3, 3, 6.0, 3.0, 2, 0.0, 0.0, True, out)
    np.testing.assert_array_equal(dispersion(image, mask), out)
    flag = np.empty(image.shape, bool)
    module._dispersion_kernel(image, mask, use, 3, 3, 6.0, 0.0, 2, 0.0, 0.0, False, flag)
    core = module._chessboard_core(flag.view(np.uint8), valid, 3)
    assert not module._sliding_final(image, valid, core, 5, 5, 3.0, 0.0, 0.0, out)
    module._extended_final(image, mask, core, 5, 5, 3.0, 0.0, 0.0, out)
    np.testing.assert_array_equal(dispersion_extended(image, mask), out)
    assert out.sum() > 0


@pytest.mark.parametrize("erosion", [0, 1, 2, 3, 5])
def test_erosion_keeps_pixels_at_chessboard_distance_at_least_erosion(erosion):
    """Brute force: distance to the nearest unflagged pixel in the image (outside never counts)."""
    from findspots.threshold.dispersion import _chessboard_core

    rng = np.random.default_rng(erosion)
    flag = rng.random((23, 31)) < 0.85
    valid = rng.random(flag.shape) < 0.95
    rows, cols = np.nonzero(~flag)
    expect = np.zeros(flag.shape, bool)
    for j in range(flag.shape[0]):
        for i in range(flag.shape[1]):
            dist = np.max(np.abs([rows - j, cols - i]), axis=0).min() if rows.size else 10**9
            expect[j, i] = flag[j, i] and valid[j, i] and dist >= erosion
    core = _chessboard_core(flag.view(np.uint8), valid.view(np.uint8), erosion)
    np.testing.assert_array_equal(core, expect)
