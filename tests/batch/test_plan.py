"""Block planning: DIALS's chunk-size examples (docs/dials-behaviour.md#chunking) and the nproc/njobs
rules."""

import pytest

from findspots.batch.plan import auto_chunksize, plan_blocks
from findspots.errors import ParameterError


@pytest.mark.parametrize(
    ("nimg", "nproc", "logged", "used"),
    [(9, 1, 20, 9), (9, 4, 20, 2), (100, 8, 20, 12), (900, 16, 29, 29), (3600, 8, 25, 25), (1000, 6, 84, 84)],
)
def test_dials_examples(nimg, nproc, logged, used):
    assert auto_chunksize(nimg, nproc, 20) == logged
    plan = plan_blocks(range(nimg), nproc, 1, None, 20, "none")
    assert plan.chunksize_logged == logged
    assert plan.chunksize == used


def test_blocks_cover_the_range_in_order():
    plan = plan_blocks(range(10, 70), 2, 1, 7, 1, "none")
    assert [len(b) for b in plan.blocks] == [7] * 8 + [4]
    assert [i for b in plan.blocks for i in b] == list(range(10, 70))
    assert plan.chunksize_logged is None


def test_short_sweeps_reduce_nproc_and_njobs():
    plan = plan_blocks(range(3), 8, 1, None, 20, "none")
    assert (plan.nproc, plan.njobs) == (3, 1)
    assert [len(b) for b in plan.blocks] == [1, 1, 1]
    plan = plan_blocks(range(5), 2, 4, None, 20, "sge")
    assert (plan.nproc, plan.njobs) == (2, 3)


def test_njobs_needs_a_cluster_method():
    with pytest.raises(ParameterError, match="mp.method"):
        plan_blocks(range(100), 1, 2, None, 20, "none")
