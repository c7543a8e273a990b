"""Cutting a scan range into image blocks: DIALS's nproc/njobs/chunksize rules
(docs/dials-behaviour.md#chunking)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from findspots.errors import ParameterError


def auto_chunksize(nimg: int, nprocs: int, min_chunksize: int) -> int:
    """DIALS (>= 3.29) automatic chunk size, before clamping: few, even blocks per process."""
    if nprocs * min_chunksize >= nimg:
        return min_chunksize
    c = math.ceil(nimg / nprocs)
    r = nimg % (c * nprocs)
    for t in range(c - 1, min_chunksize - 1, -1):
        rem = nimg % (t * nprocs)
        if rem <= r:  # ties prefer the smaller chunk
            c, r = t, rem
    if nimg % (c * nprocs) == 0:
        return c
    blocks = nimg // (c * nprocs)
    return c + math.ceil((nimg % (c * nprocs)) / (c * blocks))


@dataclass(frozen=True)
class Plan:
    """How one scan range is processed: its image blocks and the workers they run on."""

    blocks: tuple[range, ...]  # image indices of each block, in order
    nproc: int
    njobs: int
    chunksize: int  # used
    chunksize_logged: int | None  # the value DIALS logs (before clamping), None when not auto

    @property
    def workers(self) -> int:
        return self.nproc * self.njobs


def plan_blocks(
    indices: range, nproc: int, njobs: int, chunksize: int | None, min_chunksize: int, method: str
) -> Plan:
    """Blocks of consecutive images for ``indices``; ``chunksize=None`` means auto."""
    nimg = len(indices)
    if njobs > 1 and method == "none":
        raise ParameterError("spotfinder.mp.njobs > 1 needs a cluster method: set spotfinder.mp.method")
    if nproc * njobs > nimg:
        nproc = min(nproc, nimg)
        njobs = math.ceil(nimg / nproc)
    workers = nproc * njobs
    logged = None
    if chunksize is None:
        chunksize = logged = auto_chunksize(nimg, workers, min_chunksize)
    chunksize = max(min(chunksize, nimg // workers), 1)
    blocks = tuple(indices[i : i + chunksize] for i in range(0, nimg, chunksize))
    return Plan(blocks, nproc, njobs, chunksize, logged)
