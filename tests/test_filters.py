"""Background-gradient and spot-density filters on small arrays worked out by hand."""

import numpy as np

from findspots.spotfinder.filters import (
    background_gradient,
    peak_centroid,
    plane_gradient,
    ring_mask,
    spot_density,
)


def plane(a, b, c=10.0, shape=(5, 6)):
    y, x = np.indices(shape)
    return c + a * x + b * y


def test_ring_is_the_outermost_pixel():
    ring = ring_mask(4, 5)
    assert ring.sum() == 4 * 5 - 2 * 3  # everything but the 2x3 interior


def test_plane_through_ring_pixels():
    box = plane(2.0, -3.0)
    box[1:-1, 1:-1] = 1000  # the spot itself is not background
    a, b = plane_gradient(box, ring_mask(*box.shape))
    assert np.isclose(a, 2.0) and np.isclose(b, -3.0)


def test_steep_background_is_rejected_and_untrusted_pixels_ignored():
    flat = plane(1.0, 0.5)
    steep = plane(4.5, 0.0)
    spoiled = plane(0.0, 3.9)
    spoiled[0, 0] = 1e9  # above the trusted range: left out of the fit, so the plane stays 3.9
    keep = background_gradient([flat, steep, spoiled], [(0, 1e6)] * 3, cutoff=4)
    assert keep.tolist() == [True, False, True]


def test_peak_centroid_distance_is_3d():
    peak = np.array([[1.5, 1.5, 0.5], [1.5, 1.5, 0.5]])
    centroid = np.array([[1.5, 1.5, 2.5], [1.5, 1.5, 2.6]])  # 2.0 and 2.1 apart along z
    assert peak_centroid(peak, centroid, 2.0).tolist() == [True, False]


def test_spot_density_rejects_the_crowded_bin():
    # 3x3 grid between 0.5 and 2.5: eight bins with one spot (on the corners and edge centres),
    # one central bin with 30 spots. Bin counts: eight 1s and one 30 -> 30 slots of width 29/30;
    # slot 0 holds 8 bins, slot 29 one. Cumulative (normalised): 8/9 ... 8/9, 1. The gradients of
    # slots 0 and 1 are both 0 < 0.002, so the cutoff is the lower edge of slot 0: count 1.
    # Only the central bin holds more than 1 spot.
    ring = [(0.5, 0.5), (1.5, 0.5), (2.5, 0.5), (0.5, 1.5), (2.5, 1.5), (0.5, 2.5), (1.5, 2.5), (2.5, 2.5)]
    rng = np.random.default_rng(0)
    crowd = 1.5 + rng.uniform(-0.3, 0.3, size=(30, 2))
    xy = np.vstack([ring, crowd])
    keep = spot_density(xy, nbins=3)
    assert keep[:8].all()
    assert not keep[8:].any()


def test_spot_density_keeps_everything_on_sparse_data():
    xy = np.array([[1.0, 1.0], [5.0, 9.0], [3.0, 2.0]])
    assert spot_density(xy).all()
