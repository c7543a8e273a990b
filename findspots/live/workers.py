"""The workers that answer requests: local processes, or cluster jobs through dask (as batch runs).

:meth:`Workers.run` blocks the calling (HTTP handler) thread only, so requests run side by side, as many
at a time as there are workers. Local workers come from a forkserver, never from the threaded server
itself; one that dies (e.g. out of memory) fails the requests it held and the pool is replaced.
"""

from __future__ import annotations

import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from findspots.batch.executor import ALLOWED_WORKER_DEATHS, ClusterExecutor, DaskExecutor, worker_died
from findspots.live.spots import answer
from findspots.spotfinder.labelling import load_compiled


class Workers:
    """Runs :func:`~findspots.live.spots.answer` for requests, concurrently."""

    description = ""

    def run(self, request) -> dict:
        raise NotImplementedError

    def close(self) -> None:
        """Stop the workers (after the requests they hold)."""


class LocalWorkers(Workers):
    """``nproc`` worker processes on this machine."""

    def __init__(self, nproc: int):
        self.nproc = nproc
        self.description = f"{nproc} local worker process{'es' if nproc > 1 else ''}"
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["findspots.live.spots"])  # workers start with the modules loaded
        self._context = context
        self._lock = threading.Lock()
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        """A pool whose workers are all started (modules and compiled code loaded) before it serves:
        the pool starts a worker for each task that finds none idle, so one task each starts them."""
        pool = ProcessPoolExecutor(self.nproc, mp_context=self._context, initializer=load_compiled)
        for started in [pool.submit(int) for _ in range(self.nproc)]:
            started.result()
        return pool

    def run(self, request) -> dict:
        pool = self._pool
        try:
            return pool.submit(answer, request).result()
        except BrokenProcessPool:
            with self._lock:
                if self._pool is pool:  # the first request to see it replaces it
                    self._pool = self._new_pool()
            pool.shutdown(wait=False)
            raise worker_died(1, request.image) from None

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class DaskWorkers(Workers):
    """Requests as tasks of a dask cluster (batch-system jobs with ``mp.method``)."""

    def __init__(self, executor: DaskExecutor, description: str):
        self.executor = executor
        self.description = description

    def run(self, request) -> dict:
        from distributed import KilledWorker

        try:
            return self.executor.client.submit(answer, request, pure=False).result()
        except KilledWorker:
            raise worker_died(ALLOWED_WORKER_DEATHS, request.image) from None

    def close(self) -> None:
        self.executor.close()


def start_workers(mp, nproc: int, workdir: Path) -> Workers:
    """Local processes (``mp.method=none``), or ``mp.njobs`` cluster jobs of ``nproc`` processes each."""
    if mp.method in (None, "none"):
        return LocalWorkers(nproc)
    njobs = mp.njobs or 1
    executor = ClusterExecutor(mp.method, nproc, njobs, mp, workdir)
    return DaskWorkers(executor, f"{njobs} {mp.method} job(s) of {nproc} worker process(es)")
