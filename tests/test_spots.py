"""Spot measures: the worked example of docs/dials-behaviour.md#worked-spot and the centroid conventions of
docs/dials-behaviour.md#centroid."""

import numpy as np
import pytest

from findspots.spotfinder.labelling import label_pixels
from findspots.spotfinder.spots import FOREGROUND, VALID, group_components, measure, shoeboxes

W, H = 21, 21


def components(pixels):
    """pixels: {(z, y, x): value}."""
    keys = np.array([z * W * H + y * W + x for z, y, x in pixels], np.int64)
    values = np.array(list(pixels.values()), float)
    order = np.argsort(keys)
    keys, values = keys[order], values[order]
    labels, n = label_pixels(keys, W, H, True)
    return group_components(keys, values, labels, n)


SPOT = {
    (0, 9 + j, 9 + i): v
    for j, row in enumerate([[20, 40, 20], [40, 100, 40], [20, 40, 20]])
    for i, v in enumerate(row)
}


def test_extended_nine_pixel_spot():
    m = measure(components(SPOT), W, H)
    assert m.bbox.tolist() == [[9, 12, 9, 12, 0, 1]]
    assert m.intensity[0] == 340
    np.testing.assert_allclose(m.xyz[0], [10.5, 10.5, 0.5])
    np.testing.assert_allclose(m.variance[0], [160 / 97600 + 1 / 12, 160 / 97600 + 1 / 12, 1 / 12])
    np.testing.assert_allclose(m.peak[0], [10.5, 10.5, 0.5])


def test_classic_plus_shape():
    plus = {k: v for k, v in SPOT.items() if v != 20}
    m = measure(components(plus), W, H)
    assert m.intensity[0] == 260
    assert m.variance[0][0] == pytest.approx(80 / 51200 + 1 / 12)


def test_two_frame_spot_centroid_in_z_uses_frame_centres():
    m = measure(components({(2, 5, 5): 10, (3, 5, 5): 10, (3, 5, 6): 0.0001}), W, H)
    assert m.xyz[0][2] == pytest.approx(3.0, abs=1e-4)
    assert m.bbox[0].tolist() == [5, 7, 5, 6, 2, 4]


def test_single_pixel_spot_has_variance_one_twelfth():
    m = measure(components({(0, 3, 4): 7}), W, H)
    np.testing.assert_allclose(m.xyz[0], [4.5, 3.5, 0.5])
    np.testing.assert_allclose(m.variance[0], [1 / 12] * 3)


def test_peak_is_first_maximum_in_zyx_order():
    m = measure(components({(0, 3, 4): 9, (0, 3, 5): 9, (0, 4, 4): 5}), W, H)
    np.testing.assert_allclose(m.peak[0], [4.5, 3.5, 0.5])


def test_shoebox_layout():
    comps = components({(0, 3, 4): 9, (1, 4, 5): 5, (1, 3, 4): 2, (1, 4, 4): 1})
    m = measure(comps, W, H)
    sb = shoeboxes(comps, m.bbox, W, H, panel=0)
    data, mask, background = sb.get(0)
    assert data.shape == (2, 2, 2)
    assert data[0, 0, 0] == 9 and data[1, 1, 1] == 5 and data[0, 1, 1] == 0
    assert mask[0, 0, 0] == VALID | FOREGROUND and mask[0, 1, 1] == 0
    assert not background.any()


def test_invalid_pixels_keep_foreground_only():
    """Overloaded pixels (``invalid``, in component pixel order) are Foreground without Valid."""
    comps = components({(0, 3, 4): 9, (0, 3, 5): 8, (0, 7, 1): 4, (0, 7, 2): 6})
    m = measure(comps, W, H)
    invalid = comps.values == 8
    sb = shoeboxes(comps, m.bbox, W, H, panel=0, invalid=invalid)
    masks = {}
    for k in range(len(comps)):
        data, mask, _ = sb.get(k)
        masks.update(zip(data.ravel().tolist(), mask.ravel().tolist(), strict=True))
    both = VALID | FOREGROUND
    assert masks == {9.0: both, 8.0: FOREGROUND, 4.0: both, 6.0: both}  # two 2x1 boxes: no empty voxel
