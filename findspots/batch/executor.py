"""Executors: run block tasks in-process, on forked local processes or on a dask cluster, yielding
results as they finish.

One interface (``Executor.run``, :mod:`findspots.batch.executor_base`). Local runs (``nproc > 1``) use a
pool of forked processes (:mod:`findspots.batch.local_pool`), or a dask LocalCluster with
``mp.dashboard=True``; the cluster behind a dask executor is the only difference between that and
scheduler jobs.
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path

from findspots.batch.executor_base import ALLOWED_WORKER_DEATHS, Executor, InProcessExecutor, worker_died

log = logging.getLogger("findspots")


def dashboard_link(client) -> str | None:
    """The link that opens the scheduler's dashboard, which findspots always binds to loopback.

    ``Client.dashboard_link`` names the scheduler's own address (a cluster interface for jobqueue
    clusters), where nothing listens: the port is the one the dashboard actually bound."""
    port = client.scheduler_info().get("services", {}).get("dashboard")
    return f"http://127.0.0.1:{port}/status" if port else None


class DaskExecutor(Executor):
    """Runs tasks on a dask cluster (a LocalCluster, or a dask-jobqueue cluster)."""

    def __init__(self, cluster, client=None):
        from distributed import Client

        self.cluster = cluster
        self.client = client or Client(cluster)
        link = dashboard_link(self.client)
        if link:
            port = link.split(":")[2].split("/")[0]
            log.info(
                "Dask dashboard: %s (on this machine; from another, tunnel it first: "
                "ssh -L %s:127.0.0.1:%s %s)",
                link,
                port,
                port,
                socket.gethostname(),
            )

    def run(self, fn, shared, tasks, describe=None):
        from distributed import KilledWorker, as_completed

        shared_future = self.client.scatter(shared, broadcast=True, hash=False)
        futures = {
            self.client.submit(
                fn, shared_future, *args, pure=False, key=f"findspots-block-{i}-{id(tasks)}"
            ): i
            for i, args in enumerate(tasks)
        }
        try:
            for future in as_completed(futures):
                try:
                    result = future.result()
                except KilledWorker as err:
                    what = describe(futures[future]) if describe else f"task {futures[future]}"
                    raise worker_died(err.allowed_failures + 1, what) from None
                yield futures[future], result
        finally:
            for future in futures:
                future.cancel()

    def close(self) -> None:
        self.client.close()
        self.cluster.close()


def local_dask_executor(nproc: int) -> DaskExecutor:
    """``nproc`` single-threaded worker processes on this machine, dashboard on loopback."""
    import dask
    from distributed import LocalCluster

    from findspots.app.logs import capture_library_logs

    capture_library_logs("distributed")
    dask.config.set({"distributed.scheduler.allowed-failures": ALLOWED_WORKER_DEATHS})
    cluster = LocalCluster(
        n_workers=nproc,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
        silence_logs=logging.CRITICAL,
    )
    return DaskExecutor(cluster)


class ClusterExecutor(DaskExecutor):
    """A dask executor over batch-job workers: cancels every job when closed."""

    def __init__(self, method: str, nproc: int, njobs: int, mp, workdir: Path):
        from findspots.app.logs import capture_library_logs
        from findspots.batch.clusters import backend

        capture_library_logs("distributed")
        capture_library_logs("dask_jobqueue")
        self.backend = backend(method)
        self.workdir = workdir
        cluster = self.backend.start(nproc, njobs, mp, workdir)
        try:
            super().__init__(cluster)
            self.backend.wait_for_workers(self.client, cluster, mp.worker_timeout or 300, workdir)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        # dask-jobqueue cancels (qdel/scancel/...) the worker jobs; it deletes the temporary TLS
        # files itself when the cluster object goes away
        if getattr(self, "client", None) is not None:
            self.client.close()
        self.cluster.close()


def make_executor(mp, nproc: int, njobs: int, workdir: Path | None) -> Executor:
    """The executor for ``mp.method``/``nproc``/``njobs`` (and ``mp.dashboard`` for local runs)."""
    method = mp.method
    if method in (None, "none"):
        if nproc <= 1:
            return InProcessExecutor()
        if getattr(mp, "dashboard", False):
            return local_dask_executor(nproc)
        from findspots.batch.local_pool import LocalPool

        return LocalPool(nproc)
    if workdir is None:
        raise ValueError("a cluster executor needs a working folder")
    return ClusterExecutor(method, nproc, njobs, mp, workdir)


class Executors:
    """The executors of one run, started on first use and shared by its scan ranges."""

    def __init__(self, mp, workdir: Path | None = None):
        self.mp = mp
        self.workdir = workdir
        self._started: dict[tuple[int, int], Executor] = {}

    def get(self, nproc: int, njobs: int) -> Executor:
        key = (nproc, njobs)
        if key not in self._started:
            self._started[key] = make_executor(self.mp, nproc, njobs, self.workdir)
        return self._started[key]

    def close(self) -> None:
        for executor in self._started.values():
            executor.close()
        self._started.clear()

    def __enter__(self) -> Executors:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
