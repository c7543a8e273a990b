"""The shared part of every cluster backend: options, TLS, start-up, lifecycle."""

from __future__ import annotations

import functools
import logging
import sys
import time
from importlib import resources
from pathlib import Path

from findspots.errors import FindSpotsError

log = logging.getLogger("findspots")

MEMORY_PER_PROCESS_GB = 1


@functools.cache  # dask keeps every set of defaults it is given: add ours once
def load_defaults() -> None:
    """Add findspots's jobqueue defaults (``defaults.yaml``, shipped in the package) to dask's, as
    dask-jobqueue adds its own: they replace dask-jobqueue's packaged values, while a value a site
    or user set (configuration file, ``DASK_JOBQUEUE__*``) wins."""
    import dask
    import dask_jobqueue  # noqa: F401  (its defaults first, so that ours are laid over them)
    import yaml

    text = resources.files(__package__).joinpath("defaults.yaml").read_text()
    dask.config.update_defaults(yaml.safe_load(text))


class ClusterBackend:
    """Starts a dask cluster whose workers are batch jobs of one scheduler."""

    name = ""  # the mp.method value
    config_section = ""  # dask's jobqueue configuration section (default: name)
    queue_keyword = "queue"  # the dask-jobqueue keyword for mp.queue
    project_keyword = "project"

    def cluster_class(self):
        """The dask-jobqueue cluster class."""
        raise NotImplementedError

    def options(self, nproc: int, mp, workdir: Path) -> dict:
        """Keyword arguments for the cluster: jobqueue configuration plus the mp parameters."""
        import dask

        config = dask.config.get(f"jobqueue.{self.config_section or self.name}", default={}) or {}
        memory = mp.memory or config.get("memory") or f"{MEMORY_PER_PROCESS_GB * nproc}GB"
        opts = {
            "cores": nproc,
            "processes": nproc,
            "memory": memory,
            "python": config.get("python") or sys.executable,
            "log_directory": str(workdir / "logs"),
            "scheduler_options": {"dashboard_address": "127.0.0.1:0"},
        }
        if mp.walltime:
            opts["walltime"] = mp.walltime
        if mp.queue:
            opts[self.queue_keyword] = mp.queue
        if mp.project:
            opts[self.project_keyword] = mp.project
        if mp.interface:
            opts["interface"] = mp.interface
        if mp.job_extra:
            opts["job_extra_directives"] = list(config.get("job-extra-directives") or []) + list(mp.job_extra)
        if mp.tls:
            tls_dir = workdir / "tls"
            tls_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            opts["security"] = True
            opts["protocol"] = "tls://"
            opts["shared_temp_directory"] = str(tls_dir)
        return opts

    def start(self, nproc: int, njobs: int, mp, workdir: Path):
        """Submit ``njobs`` jobs of ``nproc`` single-threaded workers; returns the cluster."""
        load_defaults()
        workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        (workdir / "logs").mkdir(exist_ok=True)
        started = time.monotonic()
        opts = self.options(nproc, mp, workdir)
        cluster_class = self.cluster_class()
        try:
            cluster = cluster_class(**opts)
        except Exception as err:
            raise FindSpotsError(
                f"spotfinder.mp.method={self.name}: cannot start the cluster ({err})"
            ) from err
        # adapt (not scale) so that a job killed by the scheduler is replaced
        cluster.adapt(minimum_jobs=njobs, maximum_jobs=njobs)
        log.debug("%s job script:\n%s", self.name, cluster.job_script())
        cluster.findspots_started = started
        return cluster

    def wait_for_workers(self, client, cluster, timeout: float, workdir: Path) -> None:
        """Wait for the first worker; fail with a hint when none can connect."""
        try:
            client.wait_for_workers(1, timeout=timeout)
        except Exception:  # distributed raises TimeoutError or its own subclass
            address = cluster.scheduler_address
            logs = workdir / "logs"
            raise FindSpotsError(
                f"spotfinder.mp.method={self.name}: no worker connected within {timeout:.0f} s. Check that "
                f"the jobs run (scheduler queue, logs in {logs}) and that compute nodes can reach the "
                f"scheduler at {address} (set spotfinder.mp.interface, e.g. ib0 or eth0)"
            ) from None
        waited = time.monotonic() - cluster.findspots_started
        log.info("First %s worker connected after %.1f s", self.name, waited)


def cluster_workdir(output: str) -> Path:
    """Where job logs and temporary TLS credentials go: beside the output, private."""
    return Path(f"{output}.findspots-cluster").resolve()
