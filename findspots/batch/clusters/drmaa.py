"""DRMAA: dask workers submitted through the site's libdrmaa (``DRMAA_LIBRARY_PATH``).

dask-jobqueue has no DRMAA backend (dask-drmaa is abandoned), so this module supplies the job
class: the worker script dask-jobqueue writes is submitted with ``drmaa.Session.runJob`` and
cancelled with ``TERMINATE``, both in a helper process (``drmaa_helper``): libdrmaa never enters
the findspots process. ``mp.queue`` and ``mp.job_extra`` form the native specification.
On SGE, libdrmaa needs ``SGE_ROOT``/``SGE_CELL`` and, with jemalloc, enough static TLS
(``GLIBC_TUNABLES=glibc.rtld.optional_static_tls=4096``); the helper inherits the environment.
"""

from __future__ import annotations

import os
import shutil

from findspots.batch.clusters.base import ClusterBackend
from findspots.batch.clusters.drmaa_helper import DrmaaHelper
from findspots.errors import FindSpotsError

_SESSION: DrmaaHelper | None = None


def session() -> DrmaaHelper:
    """The process's DRMAA session (a helper process that holds it), opened on first use."""
    global _SESSION
    if _SESSION is None:
        try:
            _SESSION = DrmaaHelper()
        except RuntimeError as err:
            raise FindSpotsError(
                f"spotfinder.mp.method=drmaa: cannot open a DRMAA session ({err}). Install the 'drmaa' "
                "Python package, set DRMAA_LIBRARY_PATH (and SGE_ROOT/SGE_CELL on SGE); if the message "
                "mentions 'static TLS', start findspots with "
                "GLIBC_TUNABLES=glibc.rtld.optional_static_tls=4096"
            ) from None
    return _SESSION


def _job_class():
    from dask_jobqueue.sge import SGEJob

    class DRMAAJob(SGEJob):
        """A dask-jobqueue job submitted and cancelled through DRMAA."""

        config_name = "sge"

        def __init__(self, *args, native_specification: str = "", **kwargs):
            super().__init__(*args, **kwargs)
            self.native_specification = native_specification  # qsub-style options for the scheduler

        async def _submit_job(self, script_filename):
            # dask-jobqueue deletes its script after submitting; DRMAA runs the file later
            folder = self.log_directory or os.getcwd()
            kept = os.path.join(folder, f"{self.name}.sh")
            shutil.copyfile(script_filename, kept)
            return session().submit(
                {
                    "remoteCommand": "/bin/bash",
                    "args": [kept],
                    "jobName": self.job_name or "findspots-worker",
                    "workingDirectory": os.getcwd(),
                    "joinFiles": True,
                    "outputPath": ":" + os.path.join(folder, f"{self.name}.drmaa.out"),
                    "nativeSpecification": self.native_specification,
                }
            )

        @classmethod
        async def _close_job(cls, job_id, cancel_command):
            if job_id:
                session().terminate(job_id)

    return DRMAAJob


class DRMAABackend(ClusterBackend):
    name = "drmaa"
    config_section = "sge"  # the job script is an SGE-style script run through DRMAA

    def options(self, nproc, mp, workdir):
        opts = super().options(nproc, mp, workdir)
        native = [f"-q {opts.pop('queue')}"] if "queue" in opts else []
        native += opts.pop("job_extra_directives", [])
        opts.pop("project", None)
        opts["native_specification"] = " ".join(native)  # the cluster passes it on to each job
        opts["config_name"] = "sge"
        return opts

    def cluster_class(self):
        from dask_jobqueue.core import JobQueueCluster

        session()  # fail early, with the hint, when no DRMAA session can be opened
        return type("DRMAACluster", (JobQueueCluster,), {"job_cls": _job_class()})
