"""mp.method=drmaa against a fake ``drmaa`` module: no libdrmaa, no scheduler.

The DRMAA job class overrides dask-jobqueue's private ``Job._submit_job`` and ``Job._close_job``
(pyproject bounds dask-jobqueue to the versions with their present form). Here a real
dask-jobqueue cluster starts and stops one job through its public ``scale``/``close``: the fake
session records the job template that was run and the job that was terminated. The live run
against SGE's libdrmaa is in test_clusters_live.py.
"""

from __future__ import annotations

import asyncio
import sys
import time
import types
from pathlib import Path
from types import SimpleNamespace

import pytest

from findspots.batch.clusters import backend
from findspots.batch.clusters import drmaa as drmaa_backend
from findspots.batch.clusters.base import load_defaults

JOB_ID = "4242"


class Template:
    """A job template: records the attributes set on it."""


class FakeSession:
    """The part of ``drmaa.Session`` the backend uses, recording every call."""

    def __init__(self, finished_jobs: tuple[str, ...] = ()):
        self.initialized = False
        self.submitted: list[dict] = []  # each run template's attributes, plus the script's text
        self.deleted_templates = 0
        self.terminated: list[tuple[str, str]] = []
        self.finished_jobs = finished_jobs

    def initialize(self) -> None:
        self.initialized = True

    def createJobTemplate(self) -> Template:  # noqa: N802 (the drmaa package's names)
        return Template()

    def runJob(self, template: Template) -> str:  # noqa: N802
        job = dict(vars(template))
        job["script"] = Path(template.args[0]).read_text()  # the job runs this file later
        self.submitted.append(job)
        return JOB_ID

    def deleteJobTemplate(self, template: Template) -> None:  # noqa: N802
        self.deleted_templates += 1

    def control(self, job_id: str, action: str) -> None:
        if job_id in self.finished_jobs:
            raise InvalidJobException(job_id)
        self.terminated.append((job_id, action))


class InvalidJobException(Exception):
    pass


@pytest.fixture
def fake_drmaa(monkeypatch):
    """A ``drmaa`` module whose Session is a FakeSession; the backend's session reset."""
    module = types.ModuleType("drmaa")
    module.Session = FakeSession
    module.JobControlAction = SimpleNamespace(TERMINATE="terminate")
    module.errors = SimpleNamespace(InvalidJobException=InvalidJobException)
    monkeypatch.setitem(sys.modules, "drmaa", module)
    monkeypatch.setattr(drmaa_backend, "_SESSION", None)
    return module


def mp(**kw):
    values = dict(
        queue="short.q",
        project=None,
        memory=None,
        walltime=None,
        interface="lo",
        job_extra=["-l h_vmem=3G", "-pe smp 2"],
        tls=False,
    )
    values.update(kw)
    return SimpleNamespace(**values)


def one_job(tmp_path: Path, monkeypatch) -> tuple[FakeSession, str, str]:
    """Start a DRMAA cluster, scale it to one job, close it; (session, worker script, job name)."""
    load_defaults()
    monkeypatch.chdir(tmp_path)
    b = backend("drmaa")
    cluster = b.cluster_class()(**b.options(2, mp(), tmp_path))
    try:
        session = drmaa_backend.session()
        cluster.scale(jobs=1)
        deadline = time.monotonic() + 30
        while not session.submitted:
            assert time.monotonic() < deadline, "no job was submitted"
            time.sleep(0.05)
        (name,) = cluster.workers  # the job's name, as dask-jobqueue gave it
        script = cluster.job_script()
    finally:
        cluster.close()
    return session, script, name


def test_submit_runs_the_worker_script_with_the_native_specification(tmp_path, monkeypatch, fake_drmaa):
    session, script, name = one_job(tmp_path, monkeypatch)
    assert session.initialized
    logs = tmp_path / "logs"
    kept = str(logs / f"{name}.sh")
    (job,) = session.submitted
    assert job.pop("script") == Path(kept).read_text()
    assert job == {
        "remoteCommand": "/bin/bash",
        "args": [kept],
        "jobName": "findspots-worker",  # defaults.yaml's jobqueue.sge.name
        "workingDirectory": str(tmp_path),
        "joinFiles": True,
        "outputPath": ":" + str(logs / f"{name}.drmaa.out"),
        # mp.queue then mp.job_extra, as qsub options; no environment is passed: the script names
        # the Python of this run and the scheduler's address itself
        "nativeSpecification": "-q short.q -l h_vmem=3G -pe smp 2",
    }
    assert session.deleted_templates == 1
    # the kept script is the worker script dask-jobqueue wrote for this job (its name aside), with
    # the queue and the extra options in the native specification instead of #$ lines
    ran = Path(kept).read_text()
    assert ran.replace(name, "dummy-name") == script
    assert f"{sys.executable} -m distributed.cli.dask_worker tcp://127.0.0.1:" in ran
    assert "--nworkers 2" in ran and "--nthreads 1" in ran
    assert "#$ -q" not in ran and "h_vmem" not in ran


def test_close_terminates_the_submitted_job(tmp_path, monkeypatch, fake_drmaa):
    session, _, _ = one_job(tmp_path, monkeypatch)
    assert session.terminated == [(JOB_ID, "terminate")]


def test_close_of_a_job_that_already_ended_is_quiet(tmp_path, monkeypatch, fake_drmaa):
    monkeypatch.setattr(fake_drmaa, "Session", lambda: FakeSession(finished_jobs=(JOB_ID,)))
    session, _, _ = one_job(tmp_path, monkeypatch)
    assert session.submitted and session.terminated == []


def test_a_job_never_submitted_is_not_terminated(fake_drmaa):
    session = drmaa_backend.session()
    asyncio.run(drmaa_backend._job_class()._close_job(None, "qdel"))
    assert session.terminated == []
