"""The deploy/ and jobs/ scripts without a batch system: syntax, shellcheck, the worker environment,
the job scripts' directives and their refusal of unedited placeholders, and the container recipe's
inputs. (tests/deploy/test_schedulers_live.py runs them through real schedulers.)
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
SCRIPTS = [
    DEPLOY / "sge" / "start.sh",
    DEPLOY / "sge" / "stop.sh",
    DEPLOY / "slurm" / "start.sh",
    DEPLOY / "slurm" / "stop.sh",
    DEPLOY / "pbs" / "torque-wrappers.sh",
]
JOB_SCRIPTS = {
    "sge": REPO / "jobs" / "sge" / "findspots.sge",
    "slurm": REPO / "jobs" / "slurm" / "findspots.sbatch",
    "pbs": REPO / "jobs" / "pbs" / "findspots.pbs",
    "lsf": REPO / "jobs" / "lsf" / "findspots.lsf",
}
DIRECTIVES = {
    "sge": ("#$", ["-N findspots", "-cwd", "-j y"]),
    "slurm": ("#SBATCH", ["--job-name=findspots", "--ntasks=1", "--cpus-per-task=1"]),
    "pbs": ("#PBS", ["-N findspots", "-j oe"]),
    "lsf": ("#BSUB", ["-J findspots", "-n 1"]),
}
ALL_SHELL = [*SCRIPTS, *JOB_SCRIPTS.values(), DEPLOY / "worker-env.sh"]


def bash(code: str, env: dict[str, str] | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", code], capture_output=True, text=True, env=env, timeout=60, **kwargs)


def clean_env(**extra: str) -> dict[str, str]:
    """A worker node's bare environment: no venv, no thread settings."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root")}
    env.update(extra)
    return env


@pytest.mark.parametrize("script", ALL_SHELL, ids=lambda p: str(p.relative_to(REPO)))
def test_bash_syntax(script):
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")
def test_shellcheck_clean():
    out = subprocess.run(["shellcheck", "-x", *map(str, ALL_SHELL)], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stdout


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(REPO)))
def test_strict_mode(script):
    assert re.search(r"^set -E?euo pipefail$", script.read_text(), re.M)


@pytest.mark.parametrize("name", ["sge", "slurm"])
def test_stop_without_start_is_a_no_op(tmp_path, name):
    out = subprocess.run(
        ["bash", str(DEPLOY / name / "stop.sh")],
        capture_output=True,
        text=True,
        env={**os.environ, "FINDSPOTS_SCHED_STATE": str(tmp_path)},
    )
    assert out.returncode == 0, out.stderr
    assert "nothing to stop" in out.stdout


def test_torque_wrappers_refuse_unknown_option():
    out = subprocess.run(
        ["bash", str(DEPLOY / "pbs" / "torque-wrappers.sh"), "--nonsense"], capture_output=True, text=True
    )
    assert out.returncode != 0 and out.stdout == ""
    assert out.stderr.strip().count("\n") == 0 and "FAILED" in out.stderr


# ---- worker-env.sh ----------------------------------------------------------------------------
def test_worker_env_activates_the_venv_under_strict_mode():
    venv = Path(sys.prefix)
    if not (venv / "bin" / "findspots").exists():
        pytest.skip("not running from a venv with findspots installed")
    code = (
        "set -euo pipefail; "
        f"source {DEPLOY / 'worker-env.sh'}; "
        'echo "$-"; command -v findspots; echo "$FINDSPOTS_HOME"; '
        'echo "$FINDSPOTS_CPUS $OMP_NUM_THREADS $NUMBA_NUM_THREADS $OPENBLAS_NUM_THREADS"'
    )
    env = clean_env(FINDSPOTS_VENV=str(venv), NSLOTS="3")
    out = bash(code, env=env)
    assert out.returncode == 0, out.stderr
    flags, findspots, home, threads = out.stdout.splitlines()
    assert "e" in flags and "u" in flags  # the caller's options are left as they were
    assert findspots == str(venv / "bin" / "findspots")
    assert home == str(REPO)
    assert threads == "3 1 1 1"  # SGE's 3 slots for 3 processes, one thread each


@pytest.mark.parametrize(
    ("grant", "cpus"),
    [
        ({"SLURM_CPUS_PER_TASK": "2"}, "2"),
        ({"NCPUS": "4"}, "4"),
        ({"PBS_NUM_PPN": "5"}, "5"),
        ({"LSB_DJOB_NUMPROC": "6"}, "6"),
        ({}, "none"),
        ({"NSLOTS": "junk"}, "none"),
    ],
)
def test_worker_env_reads_the_cpu_grant(grant, cpus):
    venv = Path(sys.prefix)
    if not (venv / "bin" / "findspots").exists():
        pytest.skip("not running from a venv with findspots installed")
    code = f'source {DEPLOY / "worker-env.sh"}; echo "${{FINDSPOTS_CPUS:-none}} $OMP_NUM_THREADS"'
    env = clean_env(FINDSPOTS_VENV=str(venv), OMP_NUM_THREADS="7", **grant)
    assert bash(code, env=env).stdout.split() == [cpus, "7"]  # a thread setting already made stays


def test_worker_env_missing_venv_is_one_line(tmp_path):
    code = f'source {DEPLOY / "worker-env.sh"} || echo "returned $?"'
    out = bash(code, env=clean_env(FINDSPOTS_VENV=str(tmp_path / "none")))
    assert out.stdout.strip() == "returned 1"
    assert out.stderr.count("\n") == 1 and "worker-env.sh:" in out.stderr


def test_worker_env_must_be_sourced():
    out = subprocess.run(["bash", str(DEPLOY / "worker-env.sh")], capture_output=True, text=True)
    assert out.returncode == 1 and "source" in out.stderr


def test_worker_env_numba_cache_without_writable_home(tmp_path):
    venv = Path(sys.prefix)
    if not (venv / "bin" / "findspots").exists():
        pytest.skip("not running from a venv with findspots installed")
    code = f'source {DEPLOY / "worker-env.sh"}; echo "${{NUMBA_CACHE_DIR:-unset}}"'
    env = clean_env(FINDSPOTS_VENV=str(venv), HOME="/nonexistent", TMPDIR=str(tmp_path))
    assert bash(code, env=env).stdout.strip().startswith(str(tmp_path / "findspots-numba-cache-"))
    env = clean_env(FINDSPOTS_VENV=str(venv), HOME=str(tmp_path))
    assert bash(code, env=env).stdout.strip() == "unset"


# ---- job scripts ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", JOB_SCRIPTS)
def test_job_script_directives(name):
    prefix, wanted = DIRECTIVES[name]
    lines = JOB_SCRIPTS[name].read_text().splitlines()
    assert lines[0] == "#!/bin/bash"
    # directives come before the first command (PBS and Slurm stop reading there)
    first_command = next(i for i, line in enumerate(lines) if line.strip() and not line.startswith("#"))
    directives = [
        line[len(prefix) :].strip() for line in lines[:first_command] if line.startswith(prefix + " ")
    ]
    assert all(w in directives for w in wanted), directives
    assert not any(line.startswith(prefix + " ") for line in lines[first_command:])
    # resource lines are there to adapt, switched off
    switched_off = [line for line in lines if line.startswith("#" + prefix)]
    assert len(switched_off) >= 3, switched_off
    text = "\n".join(lines)
    # no parallel environment: its name is site-specific (SGE's -pe option)
    assert not any(
        re.search(r"\s-pe\s", line) for line in lines if line.lstrip("#").startswith(prefix.lstrip("#"))
    )
    assert 'source "$FINDSPOTS_HOME/deploy/worker-env.sh"' in text
    for var in ("FINDSPOTS_HOME", "FINDSPOTS_IMAGES", "FINDSPOTS_OUTPUT", "FINDSPOTS_PARAMS"):
        assert f"{var}=${{{var}:-" in text, var


@pytest.mark.parametrize("name", JOB_SCRIPTS)
def test_job_script_refuses_placeholders(tmp_path, name):
    out = subprocess.run(
        ["bash", str(JOB_SCRIPTS[name])], capture_output=True, text=True, env=clean_env(), cwd=tmp_path
    )
    assert out.returncode == 2
    assert out.stderr.startswith("findspots job: set FINDSPOTS_HOME and FINDSPOTS_IMAGES")
    assert list(tmp_path.iterdir()) == []


def test_job_script_runs_without_scheduler(tmp_path):
    """Run directly, a job script is just a findspots run (the stem of the output names the logs)."""
    venv = Path(sys.prefix)
    if not (venv / "bin" / "findspots").exists():
        pytest.skip("not running from a venv with findspots installed")
    images = REPO / "data" / "l_cysteine" / "l-cyst_01_0000[1-3].cbf.bz2"
    env = clean_env(
        FINDSPOTS_HOME=str(REPO),
        FINDSPOTS_VENV=str(venv),
        FINDSPOTS_IMAGES=str(images),
        FINDSPOTS_OUTPUT="run.v1.refl",
        FINDSPOTS_PARAMS="filter.max_spot_size=1000 nproc=1",
    )
    out = subprocess.run(
        ["bash", str(JOB_SCRIPTS["slurm"])],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.startswith("findspots job ? on ")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "run.v1.debug.log",
        "run.v1.html",
        "run.v1.log",
        "run.v1.refl",
    ]


# ---- container recipe --------------------------------------------------------------------------
def test_containerfile_copies_what_exists():
    text = (DEPLOY / "container" / "Containerfile").read_text()
    assert re.search(r"^FROM \S*debian:bookworm", text, re.M)
    copies = re.findall(r"^COPY (.+) \S+$", text, re.M)
    assert copies
    for sources in copies:
        for source in sources.split():
            assert (REPO / source).exists(), source
    assert "worker-env.sh" in text and "NUMBA_CACHE_DIR" in text
