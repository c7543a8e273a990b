"""helen blob finder (docs/dials-behaviour.md#helen): cone model, raster scan, viability, Pearson score,
exclusion, passes."""

import math
import pickle
from types import SimpleNamespace

import numpy as np
import pytest

from findspots.errors import ParameterError
from findspots.threshold import HelenThreshold, make_threshold
from findspots.threshold.helen import helen, ideal_spot

# d = 3: model 7x7 (d + 4), m = 3, R = 1.5. Value 300 * (1.5 - ρ) / 1.5, clipped at 0:
#   ρ = 0 -> 300;  ρ = 1 -> 300 * 0.5 / 1.5 = 100;
#   ρ = √2 -> 300 * (1.5 - 1.41421) / 1.5 = 17.157;  ρ >= 1.5 -> 0
DIAG = 17.157287525381
CORE = np.array([[DIAG, 100, DIAG], [100, 300, 100], [DIAG, 100, DIAG]])


def test_ideal_spot_is_a_cone_of_height_300():
    model = ideal_spot(3)
    assert model.shape == (7, 7)
    np.testing.assert_allclose(model[2:5, 2:5], CORE, rtol=1e-12)
    assert model[3, 3] == 300 and model[3, 2] == 100
    assert model[2, 2] == pytest.approx(300 * (1.5 - math.sqrt(2)) / 1.5, rel=1e-15)
    model[2:5, 2:5] = 0
    assert not model.any()


def cone_image(centres, shape=(21, 21), background=10.0):
    """Background plus the cone core at each centre."""
    image = np.full(shape, background)
    for j, i in centres:
        image[j - 1 : j + 2, i - 1 : i + 2] += ideal_spot(3)[2:5, 2:5]
    return image


def found(image, mask=None, **kw):
    mask = np.ones(image.shape, bool) if mask is None else mask
    kw.setdefault("global_threshold", 150)
    return sorted(map(tuple, np.argwhere(helen(image, mask, **kw)).tolist()))


def test_cone_spot_is_found_at_its_single_tested_pixel():
    # Only the 310 (300 + 10) exceeds 150, so only the centre is tested. Its 7x7 window is the model plus 10:
    # a Pearson correlation ignores an added constant, so r = 1 > 0.7 -> exactly that pixel is strong.
    assert found(cone_image([(10, 10)])) == [(10, 10)]


def test_first_pixel_above_threshold_in_raster_order_is_the_one_tested():
    # With threshold 50 the 110s of the cone are tested too; the first in raster order is (9, 10), the top
    # neighbour. Its window is the cone one row low: r = 0.46 < 0.7 (checked with numpy below), so it fails;
    # then (10, 9), whose window is the cone one column right, fails alike, and (10, 10) passes with r = 1.
    image = cone_image([(10, 10)])
    shifted = image[6:13, 7:14]
    r = np.corrcoef(shifted.ravel(), ideal_spot(3).ravel())[0, 1]
    assert r < 0.7
    assert found(image, global_threshold=50) == [(10, 10)]


def test_flat_patch_is_rejected():
    # Every pixel 150 > 100: every viable window is constant, x - mean = 0, so r = 0/0 = NaN, never > 0.7.
    image = np.full((15, 15), 150.0)
    assert found(image, global_threshold=100) == []
    _, corr = helen(image, np.ones(image.shape, bool), return_correlation=True)
    assert math.isnan(corr[7, 7])
    assert corr[0, 7] == 0  # edge: not viable


def test_edge_window_is_rejected():
    # The window reaches D//2 = 3 pixels each way: a centre on row 2 needs row -1 -> rejected;
    # on row 3 the window is rows 0..6 -> viable, r = 1 -> found. Same at the right edge (21 - 1 - 3 = 17).
    assert found(cone_image([(2, 10)])) == []
    assert found(cone_image([(3, 10)])) == [(3, 10)]
    assert found(cone_image([(10, 18)])) == []
    assert found(cone_image([(10, 17)])) == [(10, 17)]


def test_half_masked_window_is_rejected():
    # Window of (10, 10): rows 7..13, columns 7..13 (49 pixels). Mask rows 7..9 (21 pixels) and 3 pixels
    # of row 10 left of the centre. 24 masked: 24/49 = 0.49 < 0.5 -> viable; the masked-in pixels are
    # still model + 10, so r = 1 -> found. One more, 25 masked: 25/49 = 0.51 >= 0.5 -> rejected.
    image = cone_image([(10, 10)])
    mask = np.ones(image.shape, bool)
    mask[7:10, 7:14] = False
    mask[10, 7:10] = False
    assert (~mask).sum() == 24
    assert found(image, mask) == [(10, 10)]
    mask[11, 7] = False
    assert found(image, mask) == []


def test_found_window_counts_as_unusable_for_later_pixels():
    # Cones at (10, 10) and (10, 15): the first find excludes columns 7..13; the second window,
    # columns 12..18, has 2 x 7 = 14 excluded pixels (14/49 < 0.5) and contains no part of the first
    # cone: r = 1, found.
    image = cone_image([(10, 10), (10, 15)], shape=(21, 31))
    assert found(image) == [(10, 10), (10, 15)]
    # Cones at (10, 10) and (10, 13): each window holds part of the other cone; numpy gives r = 0.688
    # for both, so use min_blob_score = 0.5. The first is found; the second window, columns 10..16, then has
    # 4 x 7 = 28 excluded pixels (28/49 >= 0.5): rejected before its score counts.
    image = cone_image([(10, 10), (10, 13)], shape=(21, 31))
    model = ideal_spot(3).ravel()
    for i in (10, 13):
        assert 0.5 < np.corrcoef(image[7:14, i - 3 : i + 4].ravel(), model)[0, 1] < 0.7
    assert found(image, min_blob_score=0.5) == [(10, 10)]
    # alone, the second cone would be found
    assert found(cone_image([(10, 13)], shape=(21, 31))) == [(10, 13)]


def test_extra_passes_blend_found_spots_into_the_model():
    # One find: S = window of (10, 10) = model + 10; f = Σ model / Σ S;
    # new model = 0.5 model + 0.5 f (model + 10), an affine function of the model, so r with the window
    # stays 1 and the same pixel is found on every pass.
    image = cone_image([(10, 10)])
    assert found(image, num_passes=2) == [(10, 10)]
    # A scan that finds nothing leaves Σ S = 0: the model becomes NaN and later passes find nothing either.
    assert found(np.zeros((21, 21)), num_passes=1) == []


def params(**kw):
    h = dict(exp_spot_dimension=3, global_threshold=100.0, min_blob_score=0.7, num_passes=0, debug=False)
    h.update(kw)
    return SimpleNamespace(algorithm="helen", helen=SimpleNamespace(**h))


def test_make_threshold_builds_helen_and_checks_parameters():
    fn = make_threshold(params(global_threshold=150.0))
    assert isinstance(fn, HelenThreshold)
    image = cone_image([(10, 10)])
    assert np.argwhere(fn(image, np.ones(image.shape, bool), panel=0)).tolist() == [[10, 10]]
    assert pickle.loads(pickle.dumps(fn)).global_threshold == 150.0
    bad_values = [
        dict(exp_spot_dimension=0),
        dict(min_blob_score=None),
        dict(num_passes=-1),
        dict(global_threshold="Auto"),
    ]
    for bad in bad_values:
        with pytest.raises(ParameterError):
            make_threshold(params(**bad))


def test_debug_writes_the_correlation_map(tmp_path):
    fn = make_threshold(params(global_threshold=150.0, debug=True))
    fn.debug_dir = str(tmp_path)
    image = cone_image([(10, 10)])
    mask = np.ones(image.shape, bool)
    fn(image, mask, panel=1)
    fn(image, mask, panel=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "helen_correlation_p1_00000.npy",
        "helen_correlation_p1_00001.npy",
    ]
    corr = np.load(tmp_path / "helen_correlation_p1_00000.npy")
    assert corr[10, 10] == pytest.approx(1.0, abs=1e-12)  # the only tested pixel
    corr[10, 10] = 0
    assert not corr.any()
