"""Cluster backends: ``mp.method=sge|slurm|pbs|lsf|drmaa`` start dask workers as batch jobs.

One small module per scheduler on a shared base (``base.ClusterBackend``), as dask-jobqueue is
built. Settings come from dask's jobqueue configuration (``~/.config/dask/jobqueue.yaml``,
``DASK_JOBQUEUE__*``) over the defaults in ``defaults.yaml``; the few set per run are
``spotfinder.mp.*`` parameters.
"""

from __future__ import annotations

from findspots.batch.clusters.base import ClusterBackend


def backend(method: str) -> ClusterBackend:
    """The backend for ``mp.method``."""
    if method == "sge":
        from findspots.batch.clusters.sge import SGEBackend as cls
    elif method == "slurm":
        from findspots.batch.clusters.slurm import SlurmBackend as cls
    elif method == "pbs":
        from findspots.batch.clusters.pbs import PBSBackend as cls
    elif method == "lsf":
        from findspots.batch.clusters.lsf import LSFBackend as cls
    elif method == "drmaa":
        from findspots.batch.clusters.drmaa import DRMAABackend as cls
    else:
        raise ValueError(f"unknown cluster method {method!r}")
    return cls()
