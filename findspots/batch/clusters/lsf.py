"""IBM Spectrum LSF through dask-jobqueue's LSFCluster."""

from __future__ import annotations

from findspots.batch.clusters.base import ClusterBackend


class LSFBackend(ClusterBackend):
    name = "lsf"

    def cluster_class(self):
        from dask_jobqueue import LSFCluster

        return LSFCluster
