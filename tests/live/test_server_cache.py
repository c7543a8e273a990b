"""The server's parameter cache: each request gets its own, fresh copy of parameters parsed once."""

from __future__ import annotations

import pytest

from findspots.live.request import PARAMETER_SETS_KEPT, RequestError, checked_parameters, parse_request
from findspots.live.spots import answer

from .conftest import L_CYSTEINE, THAUMATIN
from .test_requests import AS_DIALS, THAUMATIN_DIALS, assert_figures


@pytest.fixture(autouse=True)
def empty_cache():
    checked_parameters.cache_clear()
    yield
    checked_parameters.cache_clear()


def test_parameters_are_parsed_once_and_copied_per_request():
    first = parse_request(f"{THAUMATIN};filter=False;d_min=2;d_max=20;min_spot_size=4")
    first.params.spotfinder.filter.min_spot_size = 99  # as answering a request changes its parameters
    again = parse_request(f"{THAUMATIN};filter=False;d_min=2;d_max=20;min_spot_size=4")
    assert checked_parameters.cache_info()[:2] == (1, 1)  # (hits, misses)
    # d_min/d_max are taken out of the spot finding on every request, not only on the first
    assert (again.filter_ice, again.d_min, again.d_max) == (False, 2.0, 20.0)
    assert again.params.spotfinder.filter.d_min is None and again.params.spotfinder.filter.d_max is None
    assert again.params.spotfinder.filter.min_spot_size == 4
    assert again.params is not first.params


def test_other_images_with_the_same_parameters_keep_their_own_path():
    image = L_CYSTEINE[0]
    thaumatin = parse_request(f"{THAUMATIN}{AS_DIALS}")
    cysteine = parse_request(f"{image}{AS_DIALS}")
    assert checked_parameters.cache_info()[:2] == (1, 1)
    assert (thaumatin.image, thaumatin.path) == (str(THAUMATIN), str(THAUMATIN))
    assert (cysteine.image, cysteine.path) == (str(image), str(image))


def test_an_answer_from_cached_parameters_is_dials_figures():
    answer(parse_request(f"{THAUMATIN}{AS_DIALS}"))
    assert_figures(answer(parse_request(f"{THAUMATIN}{AS_DIALS}")), THAUMATIN_DIALS)
    assert checked_parameters.cache_info().hits == 1


def test_bad_parameters_are_refused_every_time_and_not_kept():
    for _ in range(2):
        with pytest.raises(RequestError) as err:
            parse_request(f"{THAUMATIN};min_spot_size=x")
        assert err.value.status == 400
        assert str(err.value) == "spotfinder.filter.min_spot_size=x: 'x' is not an integer"
    assert checked_parameters.cache_info().currsize == 0


def test_the_cache_is_bounded():
    for n in range(PARAMETER_SETS_KEPT + 5):
        parse_request(f"{THAUMATIN};min_spot_size={n + 1}")
    assert checked_parameters.cache_info().currsize == PARAMETER_SETS_KEPT
    # the oldest lists were dropped, the newest are kept
    parse_request(f"{THAUMATIN};min_spot_size=1")
    parse_request(f"{THAUMATIN};min_spot_size={PARAMETER_SETS_KEPT + 5}")
    assert checked_parameters.cache_info()[:2] == (1, PARAMETER_SETS_KEPT + 6)
