"""DRMAA: dask workers submitted through the site's libdrmaa (``DRMAA_LIBRARY_PATH``).

dask-jobqueue has no DRMAA backend (dask-drmaa is abandoned), so this module supplies the job
class: the worker script dask-jobqueue writes is submitted with ``drmaa.Session.runJob`` and
cancelled with ``TERMINATE``. ``mp.queue`` and ``mp.job_extra`` form the native specification.
On SGE, libdrmaa needs ``SGE_ROOT``/``SGE_CELL`` and, with jemalloc, enough static TLS
(``GLIBC_TUNABLES=glibc.rtld.optional_static_tls=4096`` set before Python starts).
"""

from __future__ import annotations

import os
import shutil

from findspots.batch.clusters.base import ClusterBackend
from findspots.errors import FindSpotsError

_SESSION = None


def session():
    """The process's DRMAA session, opened on first use."""
    global _SESSION
    if _SESSION is None:
        try:
            import drmaa
        except (ImportError, OSError, RuntimeError) as err:
            raise FindSpotsError(
                f"spotfinder.mp.method=drmaa: cannot load libdrmaa ({err}). Install the 'drmaa' Python "
                "package, set DRMAA_LIBRARY_PATH (and SGE_ROOT/SGE_CELL on SGE); if the message mentions "
                "'static TLS', start findspots with GLIBC_TUNABLES=glibc.rtld.optional_static_tls=4096"
            ) from None
        _SESSION = drmaa.Session()
        _SESSION.initialize()
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
            s = session()
            template = s.createJobTemplate()
            try:
                template.remoteCommand = "/bin/bash"
                template.args = [kept]
                template.jobName = self.job_name or "findspots-worker"
                template.workingDirectory = os.getcwd()
                template.joinFiles = True
                template.outputPath = ":" + os.path.join(folder, f"{self.name}.drmaa.out")
                template.nativeSpecification = self.native_specification
                return s.runJob(template)
            finally:
                s.deleteJobTemplate(template)

        @classmethod
        async def _close_job(cls, job_id, cancel_command):
            if not job_id:
                return
            import drmaa

            try:
                session().control(job_id, drmaa.JobControlAction.TERMINATE)
            except drmaa.errors.InvalidJobException:
                pass  # already finished

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

        session()  # fail early, with the hint, when libdrmaa cannot be loaded
        return type("DRMAACluster", (JobQueueCluster,), {"job_cls": _job_class()})
