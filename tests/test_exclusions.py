"""exclude_images syntax and exclude_images_multiple."""

import pytest

from findspots.errors import ParameterError
from findspots.spotfinder.exclusions import rejected_frames

ONE_SWEEP = [list(range(1, 61))]


def test_start_end_with_one_experiment():
    assert rejected_frames([["10:12"]], None, ONE_SWEEP) == [{10, 11, 12}]


def test_several_ranges_comma_or_space_separated_and_repeated():
    got = rejected_frames([["0:1:2,0:5:5"], ["0:7:8 0:59:70"]], None, ONE_SWEEP)
    assert got == [{1, 2, 5, 7, 8, 59, 60}]


def test_multiple_of_n_in_each_scan():
    got = rejected_frames([], 25, [list(range(1, 61)), [74, 75, 76]])
    assert got == [{25, 50}, {75}]


def test_experiment_index_picks_the_experiment():
    assert rejected_frames([["1:3:3"]], None, [[1, 2, 3], [3]]) == [set(), {3}]


@pytest.mark.parametrize(
    ("value", "message"),
    [("3:1", "after end"), ("a:b", "integers"), ("2:1:3", "does not exist"), ("1:2:3:4", "expected")],
)
def test_errors_name_the_parameter(value, message):
    with pytest.raises(ParameterError, match=message) as err:
        rejected_frames([[value]], None, ONE_SWEEP)
    assert "spotfinder.exclude_images=" in str(err.value)


def test_start_end_needs_one_experiment():
    with pytest.raises(ParameterError, match="exp:start:end"):
        rejected_frames([["1:2"]], None, [[1], [2]])
