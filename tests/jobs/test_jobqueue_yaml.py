"""jobs/jobqueue.yaml: it loads through dask's own configuration machinery, and every section makes a
dask-jobqueue cluster whose worker job script carries the directives the file asks for.

Only job scripts are generated (``cluster.job_script()``); nothing is submitted, so no batch system
is needed. Each cluster object starts a local dask scheduler bound to 127.0.0.1 and closes it again.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest
import yaml

dask_config = pytest.importorskip("dask.config")
dask_jobqueue = pytest.importorskip("dask_jobqueue")

REPO = Path(__file__).resolve().parents[2]
YAML_FILE = REPO / "jobs" / "jobqueue.yaml"
SECTIONS = ("sge", "slurm", "pbs", "lsf")
CLUSTERS = {
    "sge": "SGECluster",
    "slurm": "SLURMCluster",
    "pbs": "PBSCluster",
    "lsf": "LSFCluster",
}
# directives that follow from the file's own values (cores 1, memory 4GiB, walltime 1 h, job name)
EXPECTED = {
    "sge": ["#$ -N findspots-worker", "#$ -l h_rt=01:00:00", "#$ -cwd", "#$ -j y"],
    "slurm": [
        "#SBATCH -J findspots-worker",
        "#SBATCH -n 1",
        "#SBATCH --cpus-per-task=1",
        "#SBATCH --mem=4G",
        "#SBATCH -t 01:00:00",
    ],
    "pbs": [
        "#PBS -N findspots-worker",
        "#PBS -l select=1:ncpus=1:mem=4096MB",
        "#PBS -l walltime=01:00:00",
    ],
    "lsf": ["#BSUB -J findspots-worker", "#BSUB -n 1", "#BSUB -M ", "#BSUB -W 01:00"],
}
# prefixes of the directives each batch system reads
PREFIX = {"sge": "#$", "slurm": "#SBATCH", "pbs": "#PBS", "lsf": "#BSUB"}


@pytest.fixture
def load_config(tmp_path):
    """Load the file as a user has it: a copy in a dask configuration folder, plus DASK_* variables.

    Returns a function ``load(env) -> dict``; the global dask configuration is restored afterwards.
    """
    folder = tmp_path / "dask"
    folder.mkdir()
    shutil.copy(YAML_FILE, folder / "jobqueue.yaml")
    saved = copy.deepcopy(dask_config.config)

    def load(env: dict[str, str] | None = None) -> dict:
        # refresh() = collect(paths, env) on top of the registered defaults (dask-jobqueue's own)
        dask_config.refresh(paths=[str(folder)], env=env or {})
        return dask_config.config

    yield load
    dask_config.config.clear()
    dask_config.config.update(saved)


def job_script(section: str) -> str:
    cls = getattr(dask_jobqueue, CLUSTERS[section])
    with cls(
        config_name=section, scheduler_options={"host": "127.0.0.1", "dashboard_address": None}
    ) as cluster:
        return cluster.job_script()


def test_yaml_is_plain_and_generic():
    text = YAML_FILE.read_text()
    data = yaml.safe_load(text)
    assert set(data) == {"jobqueue"}
    assert set(data["jobqueue"]) == set(SECTIONS)
    for name, section in data["jobqueue"].items():
        assert section["cores"] == 1, name
        assert section["processes"] == 1, name
        assert section["memory"], name
        assert section["walltime"], name
        for key in ("queue", "interface", "python", "local-directory"):
            assert section[key] is None, f"{name}.{key} must be left to the site"
        for key in ("job-extra-directives", "job-script-prologue"):
            assert section[key] == [], f"{name}.{key} must be left to the site"
    # nothing site-specific: no parallel environment, no host, no path of this machine
    code = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    for word in ("-pe", "smp", "/work", "/home", "localhost", "127.0.0.1"):
        assert word not in code, word
    assert "-pe " not in text and "smp" not in text


def test_dask_reads_the_file(load_config):
    config = load_config()
    for name in SECTIONS:
        assert dask_config.get(f"jobqueue.{name}.cores", config=config) == 1
        assert dask_config.get(f"jobqueue.{name}.name", config=config) == "findspots-worker"
        # dask-jobqueue's defaults remain underneath for keys the file leaves out
        assert dask_config.get(f"jobqueue.{name}.worker-command", config=config)


@pytest.mark.parametrize("section", SECTIONS)
def test_section_builds_job_script(load_config, section):
    load_config()
    script = job_script(section)
    header = [line for line in script.splitlines() if line.startswith(PREFIX[section])]
    for directive in EXPECTED[section]:
        assert any(line.startswith(directive) for line in header), (directive, script)
    # one single-threaded worker process per job, with the configured memory limit
    assert "distributed.cli.dask_worker" in script
    assert "--nthreads 1" in script
    assert "--memory-limit 4.00GiB" in script
    assert "--nworkers" not in script
    assert not any("-pe " in line for line in header), script


@pytest.mark.parametrize(
    ("section", "env", "wanted"),
    [
        ("sge", {"DASK_JOBQUEUE__SGE__QUEUE": "all.q"}, "#$ -q all.q"),
        ("slurm", {"DASK_JOBQUEUE__SLURM__QUEUE": "debug"}, "#SBATCH -p debug"),
        ("pbs", {"DASK_JOBQUEUE__PBS__WALLTIME": "'00:10:00'"}, "#PBS -l walltime=00:10:00"),
        ("lsf", {"DASK_JOBQUEUE__LSF__QUEUE": "normal"}, "#BSUB -q normal"),
        (
            "slurm",
            {"DASK_JOBQUEUE__SLURM__JOB_SCRIPT_PROLOGUE": '["source /opt/findspots/deploy/worker-env.sh"]'},
            "source /opt/findspots/deploy/worker-env.sh",
        ),
        (
            "sge",
            {"DASK_JOBQUEUE__SGE__JOB_EXTRA_DIRECTIVES": '["-l h_vmem=4G"]'},
            "#$ -l h_vmem=4G",
        ),
    ],
)
def test_environment_overrides_the_file(load_config, section, env, wanted):
    """The README's DASK_JOBQUEUE__<SECTION>__<KEY> variables reach the job script."""
    load_config(env)
    assert wanted in job_script(section).splitlines()
