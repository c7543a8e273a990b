"""Slurm through dask-jobqueue's SLURMCluster (``mp.queue`` is the partition, ``mp.project`` the account)."""

from __future__ import annotations

from findspots.batch.clusters.base import ClusterBackend


class SlurmBackend(ClusterBackend):
    name = "slurm"
    project_keyword = "account"

    def cluster_class(self):
        from dask_jobqueue import SLURMCluster

        return SLURMCluster
