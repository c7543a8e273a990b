"""PBS Pro / OpenPBS / Torque through dask-jobqueue's PBSCluster (``mp.project`` is the account)."""

from __future__ import annotations

from findspots.batch.clusters.base import ClusterBackend


class PBSBackend(ClusterBackend):
    name = "pbs"
    project_keyword = "account"

    def cluster_class(self):
        from dask_jobqueue import PBSCluster

        return PBSCluster
