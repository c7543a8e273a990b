"""mp.method=drmaa against a fake ``drmaa`` module: no libdrmaa, no scheduler.

The DRMAA job class overrides dask-jobqueue's private ``Job._submit_job`` and ``Job._close_job``
(pyproject bounds dask-jobqueue to the versions with their present form). Here a real
dask-jobqueue cluster starts and stops one job through its public ``scale``/``close``. The
session lives in the helper process (``drmaa_helper``), so the fake ``drmaa`` package is put on
that process's PYTHONPATH; its session writes every call to a JSON file. The live run against
SGE's libdrmaa is in test_clusters_live.py.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from findspots.batch.clusters import backend
from findspots.batch.clusters import drmaa as drmaa_backend
from findspots.batch.clusters.base import load_defaults
from findspots.errors import FindSpotsError

JOB_ID = "4242"
TLS_ERROR = "libjemalloc.so.2: cannot allocate memory in static TLS block"

# The part of the drmaa package the helper uses. Each call is appended to $FAKE_DRMAA_LOG as
# [name, argument]; jobs listed in $FAKE_DRMAA_FINISHED have already ended.
FAKE_DRMAA = """
import json, os
from pathlib import Path
from types import SimpleNamespace


class InvalidJobException(Exception):
    pass


errors = SimpleNamespace(InvalidJobException=InvalidJobException)
JobControlAction = SimpleNamespace(TERMINATE="terminate")


def record(name, argument=None):
    with open(os.environ["FAKE_DRMAA_LOG"], "a") as fh:
        fh.write(json.dumps([name, argument]) + "\\n")


class Template:
    pass


class Session:
    def initialize(self):
        record("initialize")

    def createJobTemplate(self):
        return Template()

    def runJob(self, template):
        job = dict(vars(template))
        job["script"] = Path(template.args[0]).read_text()  # the job runs this file later
        record("runJob", job)
        return "JOB_ID"

    def deleteJobTemplate(self, template):
        record("deleteJobTemplate")

    def control(self, job_id, action):
        if job_id in os.environ.get("FAKE_DRMAA_FINISHED", "").split():
            raise InvalidJobException(job_id)
        record("control", [job_id, action])

    def exit(self):
        record("exit")
""".replace("JOB_ID", JOB_ID)


@pytest.fixture
def fake_drmaa(tmp_path, monkeypatch):
    """The helper process imports the fake ``drmaa``; returns a function giving the calls it saw."""
    package = tmp_path / "fake"
    (package / "drmaa").mkdir(parents=True)
    (package / "drmaa" / "__init__.py").write_text(FAKE_DRMAA)
    log = tmp_path / "drmaa-calls.jsonl"
    monkeypatch.setenv("PYTHONPATH", str(package))
    monkeypatch.setenv("FAKE_DRMAA_LOG", str(log))
    monkeypatch.setattr(drmaa_backend, "_SESSION", None)

    def calls() -> list[list]:
        """The session's calls so far, once the helper process has ended (the session closed)."""
        if drmaa_backend._SESSION is not None:
            drmaa_backend._SESSION.close()
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    yield calls
    if drmaa_backend._SESSION is not None:
        drmaa_backend._SESSION.close()


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


def one_job(tmp_path: Path, monkeypatch, calls) -> tuple[list[list], str, str]:
    """Start a DRMAA cluster, scale it to one job, close it; (session calls, worker script, job name)."""
    load_defaults()
    monkeypatch.chdir(tmp_path)
    b = backend("drmaa")
    cluster = b.cluster_class()(**b.options(2, mp(), tmp_path))
    try:
        cluster.scale(jobs=1)
        deadline = time.monotonic() + 30
        while not cluster.workers:
            assert time.monotonic() < deadline, "no job was submitted"
            time.sleep(0.05)
        (name,) = cluster.workers  # the job's name, as dask-jobqueue gave it
        while cluster.workers[name].job_id is None:
            assert time.monotonic() < deadline, "no job was submitted"
            time.sleep(0.05)
        script = cluster.job_script()
    finally:
        cluster.close()
    return calls(), script, name


def test_submit_runs_the_worker_script_with_the_native_specification(tmp_path, monkeypatch, fake_drmaa):
    calls, script, name = one_job(tmp_path, monkeypatch, fake_drmaa)
    logs = tmp_path / "logs"
    kept = str(logs / f"{name}.sh")
    # one session, opened before the job was submitted and ended after it was cancelled
    assert [call for call, _ in calls] == ["initialize", "runJob", "deleteJobTemplate", "control", "exit"]
    job = calls[1][1]
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
    # the kept script is the worker script dask-jobqueue wrote for this job (its name aside), with
    # the queue and the extra options in the native specification instead of #$ lines
    ran = Path(kept).read_text()
    assert ran.replace(name, "dummy-name") == script
    assert f"{sys.executable} -m distributed.cli.dask_worker tcp://127.0.0.1:" in ran
    assert "--nworkers 2" in ran and "--nthreads 1" in ran
    assert "#$ -q" not in ran and "h_vmem" not in ran


def test_close_terminates_the_submitted_job(tmp_path, monkeypatch, fake_drmaa):
    calls, _, _ = one_job(tmp_path, monkeypatch, fake_drmaa)
    assert ["control", [JOB_ID, "terminate"]] in calls


def test_close_of_a_job_that_already_ended_is_quiet(tmp_path, monkeypatch, fake_drmaa):
    monkeypatch.setenv("FAKE_DRMAA_FINISHED", JOB_ID)
    calls, _, _ = one_job(tmp_path, monkeypatch, fake_drmaa)
    assert [call for call, _ in calls] == ["initialize", "runJob", "deleteJobTemplate", "exit"]


def test_a_job_never_submitted_is_not_terminated(fake_drmaa):
    asyncio.run(drmaa_backend._job_class()._close_job(None, "qdel"))
    assert fake_drmaa() == []  # not even a session was opened


def test_libdrmaa_stays_out_of_the_findspots_process(tmp_path, monkeypatch, fake_drmaa):
    """Issue 15: libdrmaa's allocator in the findspots process made it abort at exit."""
    monkeypatch.delitem(sys.modules, "drmaa", raising=False)
    drmaa_backend.session()
    assert "drmaa" not in sys.modules
    assert fake_drmaa() == [["initialize", None], ["exit", None]]


def test_a_session_that_cannot_open_is_one_line_with_the_hint(tmp_path, monkeypatch, fake_drmaa):
    broken = tmp_path / "broken" / "drmaa"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text(f"raise OSError({TLS_ERROR!r})")
    monkeypatch.setenv("PYTHONPATH", str(broken.parent))
    with pytest.raises(FindSpotsError) as err:
        drmaa_backend.session()
    assert str(err.value) == (
        f"spotfinder.mp.method=drmaa: cannot open a DRMAA session (OSError: {TLS_ERROR}). Install the "
        "'drmaa' Python package, set DRMAA_LIBRARY_PATH (and SGE_ROOT/SGE_CELL on SGE); if the message "
        "mentions 'static TLS', start findspots with GLIBC_TUNABLES=glibc.rtld.optional_static_tls=4096"
    )
