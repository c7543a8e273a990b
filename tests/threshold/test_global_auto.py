"""global_threshold=Auto (docs/dials-behaviour.md#global-auto): the ladder, the distl method-1 elbow, and the
one-time estimate."""

import logging
import pickle
from types import SimpleNamespace

import numpy as np
import pytest

from findspots.errors import ParameterError
from findspots.phil import Auto
from findspots.threshold import DispersionThreshold, make_threshold
from findspots.threshold.dispersion import dispersion
from findspots.threshold.global_auto import (
    LADDER,
    counts_above,
    elbow_index,
    estimate_global_threshold,
    threshold_from_counts,
)


def stepped_image():
    """40x40: 600 zeros, 900 pixels of 4 and 100 pixels of 10.

    Counts above the ladder g = 1, 2, 3, 5, 7, 11, ...:
      > 1, > 2, > 3: 900 + 100 = 1000;  > 5, > 7: the 100 tens;  > 11 and up: 0.
    """
    image = np.zeros((40, 40))
    image.flat[:900] = 4
    image.flat[900:1000] = 10
    return image


def test_ladder_is_int_of_powers_of_one_and_a_half():
    # int(1.5**1) = 1, int(2.25) = 2, int(3.375) = 3, int(5.0625) = 5, int(7.59) = 7, int(11.39) = 11, ...
    # int(1.5**18) = int(1477.89) = 1477, int(1.5**19) = int(2216.84) = 2216
    assert LADDER == (1, 2, 3, 5, 7, 11, 17, 25, 38, 57, 86, 129, 194, 291, 437, 656, 985, 1477, 2216)


def test_counts_are_strictly_above_each_step():
    assert counts_above(stepped_image()).tolist() == [1000, 1000, 1000, 100, 100] + [0] * 14
    # a value equal to a step is not above it: 5 is counted at g=3 but not at g=5
    assert counts_above(np.array([[5.0]])).tolist()[:4] == [1, 1, 1, 0]


def test_elbow_on_constructed_histogram():
    # Points P_k = (g_k, n_k) with n = 1000, 1000, 1000, 100, 100, 0, ..., 0; the last is P_18 = (2216, 0).
    # Chord slopes to P_18: k=0: -1000/2215, k=1: -1000/2214, k=2: -1000/2213 (steepest), k=3: -100/2211,
    # k=4: -100/2209, k>=5: 0  ->  m = 2, chord from P_2 = (3, 1000) to (2216, 0).
    # Normal v ~ (0 - 1000, -(2216 - 3)) = (-1000, -2213); |v . (P_2 - P_i)| (before the common 1/|v|):
    #   i=3 (5, 100):  |-1000*(3-5)  - 2213*(1000-100)| = |2000 - 1991700| = 1989700
    #   i=4 (7, 100):  |-1000*(3-7)  - 2213*900|        = |4000 - 1991700| = 1987700
    #   i=5 (11, 0):   |-1000*(3-11) - 2213*1000|       = |8000 - 2213000| = 2205000  <- largest
    #   i=6 (17, 0):   |14000 - 2213000| = 2199000, and smaller still for larger g, 0 at i=18
    # elbow e = 5; two steps left: g_3 = 5.
    n = [1000, 1000, 1000, 100, 100] + [0] * 14
    assert elbow_index(LADDER, n) == 5
    assert threshold_from_counts(n) == 5
    assert estimate_global_threshold(stepped_image()) == 5


def test_blank_image_wraps_round_the_ladder():
    # all n_k = 0: every slope is 0, so m = 0; every point lies on the chord, so e = 0;
    # DIALS then reads x[e - 2] = x[-2], Python's second-from-last: g_17 = 1477
    assert estimate_global_threshold(np.zeros((5, 5))) == 1477


def test_elbow_at_index_one_wraps_to_the_top():
    # n = 1, 0, 0, ...: slope from P_0 = -1/2215 is the only negative one -> m = 0; the chord from (1, 1) to
    # (2216, 0) has normal ~ (-1, -2215): P_1 = (2, 0) is |-1*(1-2) - 2215*(1-0)| = 2214 from it, P_2 = (3, 0)
    # 2213, ... -> e = 1, and x[1 - 2] = x[-1] = 2216
    assert threshold_from_counts([1] + [0] * 18) == 2216


def params(global_threshold, algorithm="dispersion"):
    dispersion_params = SimpleNamespace(
        kernel_size=[3, 3],
        sigma_background=6.0,
        sigma_strong=3.0,
        min_local=2,
        global_threshold=global_threshold,
        gain=None,
    )
    return SimpleNamespace(algorithm=algorithm, dispersion=dispersion_params)


def test_auto_is_estimated_from_the_image_given_and_logged(caplog):
    first = stepped_image()
    mask = np.ones(first.shape, bool)
    auto = make_threshold(params(Auto))
    assert isinstance(auto, DispersionThreshold) and auto.auto and auto.global_threshold is None
    with caplog.at_level(logging.INFO, logger="findspots"):
        fn = auto.estimated_from(first)
    assert fn.global_threshold == 5.0 and auto.global_threshold is None  # a new object; none changes
    assert "Setting global_threshold: 5" in caplog.text
    np.testing.assert_array_equal(fn(first, mask), dispersion(first, mask, global_threshold=5.0))
    # a later, blank image would estimate 1477 on its own; the value stays 5
    np.testing.assert_array_equal(
        fn(np.zeros((40, 40)), mask), dispersion(np.zeros((40, 40)), mask, global_threshold=5.0)
    )
    assert fn.global_threshold == 5.0


def test_auto_without_a_value_refuses_to_threshold():
    # the value is always fixed before an image is thresholded: nothing estimates behind the caller's back
    fn = make_threshold(params(Auto))
    with pytest.raises(ValueError, match="global_threshold=Auto has no value yet"):
        fn(stepped_image(), np.ones((40, 40), bool))


def test_estimate_ignores_the_mask_and_travels_with_the_object():
    fn = make_threshold(params("Auto", algorithm="dispersion_extended")).estimated_from(stepped_image())
    image = stepped_image()
    fn(image, np.zeros(image.shape, bool))  # everything masked: the value still counts all pixels
    assert fn.global_threshold == 5.0
    copy = pickle.loads(pickle.dumps(fn))
    assert copy.global_threshold == 5.0 and copy.algorithm == "dispersion_extended"


def test_a_value_estimated_before_is_passed_explicitly():
    # a later sequence of the run gets the first sequence's value, as DIALS's serial run keeps it
    fn = make_threshold(params(Auto), auto_global_threshold=7.0)
    assert fn.auto and fn.global_threshold == 7.0
    image = stepped_image()
    mask = np.ones(image.shape, bool)
    np.testing.assert_array_equal(fn(image, mask), dispersion(image, mask, global_threshold=7.0))
    # a number given as the parameter is not replaced by an Auto value
    assert make_threshold(params(3.0), auto_global_threshold=7.0).global_threshold == 3.0


def test_number_is_used_as_given_and_none_is_rejected():
    assert make_threshold(params(3.0)).global_threshold == 3.0
    with pytest.raises(ParameterError, match="global_threshold=None"):
        make_threshold(params(None))
