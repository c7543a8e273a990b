"""Labelling conventions: 6-connected in 3D, 4-connected in 2D, labels by smallest (z, y, x)."""

import numpy as np
import pytest

from findspots.spotfinder.labelling import label_pixels

W, H = 10, 8
NPIX = W * H


def key(z, y, x):
    return z * NPIX + y * W + x


def labels_of(points, three_d=True):
    keys = np.array(sorted(key(*p) for p in points), np.int64)
    labels, n = label_pixels(keys, W, H, three_d)
    return dict(zip(keys.tolist(), labels.tolist(), strict=True)), n


def test_diagonal_neighbours_are_not_connected():
    lab, n = labels_of([(0, 2, 2), (0, 3, 3)])
    assert n == 2


def test_face_neighbours_connect_in_x_y_and_z():
    lab, n = labels_of([(0, 2, 2), (0, 2, 3), (0, 3, 3), (1, 3, 3), (2, 3, 3)])
    assert n == 1


def test_no_wrap_around_row_ends():
    lab, n = labels_of([(0, 2, W - 1), (0, 3, 0)])  # consecutive keys, different rows
    assert n == 2


def test_frames_do_not_connect_in_2d():
    lab, n = labels_of([(0, 2, 2), (1, 2, 2)], three_d=False)
    assert n == 2


def test_labels_follow_the_smallest_pixel_of_each_component():
    # component A's first pixel (0,5,1) comes before component B's first pixel (0,6,0)
    points = [(1, 6, 0), (0, 6, 0), (0, 5, 1), (0, 5, 2), (0, 4, 7)]
    lab, n = labels_of(points)
    assert n == 3
    assert lab[key(0, 4, 7)] == 0
    assert lab[key(0, 5, 1)] == lab[key(0, 5, 2)] == 1
    assert lab[key(0, 6, 0)] == lab[key(1, 6, 0)] == 2


def test_u_shape_joins_through_a_later_frame():
    points = [(0, 1, 1), (0, 1, 5), (1, 1, 1), (1, 1, 5)] + [(1, 1, x) for x in range(2, 5)]
    lab, n = labels_of(points)
    assert n == 1


def test_random_volumes_match_scipy_ndimage_label():
    """Same partition as scipy's labelling with face connectivity, numbered by first pixel."""
    ndimage = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(3)
    for three_d in (True, False):
        for fill in (0.2, 0.45, 0.6):
            volume = rng.random((5, H, W)) < fill
            structure = ndimage.generate_binary_structure(3, 1)
            if not three_d:
                structure[0] = structure[2] = False
            expect, count = ndimage.label(volume, structure)
            keys = np.flatnonzero(volume)
            labels, n = label_pixels(keys, W, H, three_d)
            assert n == count
            flat = expect.ravel()[keys]
            # scipy numbers components in raster order of their first pixel too
            np.testing.assert_array_equal(labels, flat - 1)
