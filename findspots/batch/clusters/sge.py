"""Son of Grid Engine / Univa / Altair GE through dask-jobqueue's SGECluster."""

from __future__ import annotations

from findspots.batch.clusters.base import ClusterBackend


class SGEBackend(ClusterBackend):
    name = "sge"

    def cluster_class(self):
        from dask_jobqueue import SGECluster

        return SGECluster
