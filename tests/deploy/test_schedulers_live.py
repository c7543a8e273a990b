"""The job scripts in jobs/ run findspots for real through real batch systems.

With ``FINDSPOTS_LIVE_SCHEDULERS=1`` and SGE and Slurm started by deploy/sge/start.sh and
deploy/slurm/start.sh, each scheduler's script is submitted as one batch job on the bundled
L-cysteine sweep 1 and the table it writes must match DIALS spot for spot (53 spots); PBS runs
through the Torque wrappers over Slurm (deploy/pbs/torque-wrappers.sh). Without the variable those
tests skip.

LSF has no real scheduler here: ``test_lsf_job_script_with_fake_bsub`` puts fake ``bsub``, ``bjobs``
and ``bkill`` on PATH that really run the job script in the background (honouring its ``#BSUB -J``,
``-o`` and ``-n`` lines); it needs no scheduler and always runs.

The jobs get a PATH without the project's venv, so they only find findspots through
deploy/worker-env.sh, as on a real worker node.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from spotcompare import assert_same_spots

from findspots.output.refl import read_reflections

REPO = Path(__file__).resolve().parents[2]
JOBS = REPO / "jobs"
IMAGES = REPO / "data" / "l_cysteine" / "l-cyst_01_*.cbf.bz2"
REFERENCE = REPO / "data" / "reference" / "l_cysteine_sweep01" / "dispersion" / "strong.refl.xz"
EXPECTED_SPOTS = 53
JOB_TIMEOUT = 300  # seconds for one findspots job (it takes a few)
STATE = Path(os.environ.get("FINDSPOTS_SCHED_STATE", "/run/findspots-sched"))
FINDSPOTS_VARS = ("FINDSPOTS_HOME", "FINDSPOTS_IMAGES", "FINDSPOTS_OUTPUT", "FINDSPOTS_PARAMS")

LIVE = os.environ.get("FINDSPOTS_LIVE_SCHEDULERS") == "1"
live = pytest.mark.skipif(
    not LIVE,
    reason="set FINDSPOTS_LIVE_SCHEDULERS=1 after deploy/sge/start.sh and deploy/slurm/start.sh",
)


# ---- helpers ------------------------------------------------------------------------------------
def job_environment(work: Path, extra_path: list[str] | None = None) -> dict[str, str]:
    """The submitting shell's environment: the FINDSPOTS_* settings, and no venv on PATH."""
    venv = Path(sys.prefix)
    path = [
        p
        for p in os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin").split(os.pathsep)
        if p and not Path(p).resolve().is_relative_to(venv.resolve())
    ]
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONHOME")}
    env["PATH"] = os.pathsep.join((extra_path or []) + path)
    env.update(
        FINDSPOTS_HOME=str(REPO),
        FINDSPOTS_IMAGES=str(IMAGES),
        FINDSPOTS_OUTPUT=str(work / "strong.refl"),
        FINDSPOTS_PARAMS="filter.max_spot_size=1000",  # DIALS's default, which the reference used
    )
    return env


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    kwargs.setdefault("timeout", 60)
    return subprocess.run(cmd, capture_output=True, text=True, **kwargs)


def job_logs(work: Path) -> str:
    """Everything the job wrote to stdout/stderr files, for failure messages."""
    texts = []
    for p in sorted(work.iterdir()):
        if p.is_file() and not p.name.startswith("strong"):
            texts.append(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}")
    return "\n".join(texts)


def assert_dials_spots(work: Path) -> None:
    """The job's table equals DIALS's, and the logs went beside it."""
    out = work / "strong.refl"
    assert out.is_file(), f"no {out}\n{job_logs(work)}"
    assert (work / "strong.log").is_file() and (work / "strong.debug.log").is_file()
    n = assert_same_spots(read_reflections(out), read_reflections(REFERENCE))
    assert n == EXPECTED_SPOTS


def assert_job_log(log: Path, job_id: str, cpus: int) -> None:
    """The job script's first line names the job, and findspots ran one process per granted CPU."""
    text = log.read_text()
    assert f"findspots job {job_id} on" in text, text
    assert ("nproc=2 ->" in text) == (cpus == 2), text
    assert f"Using multiprocessing with {cpus} parallel job(s)" in text, text


def wait_for(what: str, check, timeout: float = JOB_TIMEOUT, interval: float = 0.3):
    """Call ``check()`` until it returns something truthy; fail after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > end:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def slurm_job(job_id: str) -> dict[str, str]:
    """``scontrol show job`` as a dict (empty once Slurm has forgotten the job)."""
    out = run(["scontrol", "-o", "show", "job", job_id]).stdout
    return dict(re.findall(r"(\w+)=(\S*)", out))


def slurm_finished(job_id: str) -> dict[str, str] | None:
    info = slurm_job(job_id)
    if info.get("JobState") in (None, "PENDING", "CONFIGURING", "RUNNING", "COMPLETING"):
        return None
    return info


@pytest.fixture
def work(tmp_path) -> Path:
    """The folder jobs are submitted from (and write to); readable by the job's user (root)."""
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


# ---- schedulers up ------------------------------------------------------------------------------
@live
def test_sge_is_up():
    out = run(["qstat", "-f"])
    assert out.returncode == 0, out.stderr
    queues = [line.split() for line in out.stdout.splitlines() if "@" in line.split(" ")[0]]
    assert queues, out.stdout
    # columns: queue@host, type, resv/used/total, load, arch[, states]; no state = usable
    usable = [q for q in queues if len(q) == 5]
    assert usable, f"no usable SGE queue instance:\n{out.stdout}"


@live
def test_slurm_is_up():
    out = run(["sinfo", "-h", "-o", "%P %a %T"])
    assert out.returncode == 0, out.stderr
    states = [line.split() for line in out.stdout.splitlines()]
    assert any(a == "up" and s in ("idle", "mixed") for _, a, s in states), out.stdout


# ---- real job scripts through real schedulers ---------------------------------------------------
@live
@pytest.mark.parametrize("cpus", [1, 2])
def test_sge_job_script(work, cpus):
    script = JOBS / "sge" / "findspots.sge"
    # 2 slots of the "smp" parallel environment that deploy/sge/start.sh defines: NSLOTS=2, nproc=2
    slots = ["-pe", "smp", str(cpus)] if cpus > 1 else []
    cmd = ["qsub", "-sync", "y", "-terse", *slots, "-v", ",".join(FINDSPOTS_VARS), str(script)]
    # -sync y: qsub prints the job id, then returns when the job has ended, with its exit status
    qsub = subprocess.Popen(
        cmd, cwd=work, env=job_environment(work), text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        stdout, stderr = qsub.communicate(timeout=JOB_TIMEOUT)
    except subprocess.TimeoutExpired:
        qsub.kill()
        stdout, stderr = qsub.communicate()
        run(["qdel", *stdout.split()[:1]])
        raise
    assert qsub.returncode == 0, f"{stdout}{stderr}\n{job_logs(work)}"
    job_id = stdout.split()[0]
    log = work / f"findspots.o{job_id}"  # the script's -N findspots, -cwd and -j y
    assert_job_log(log, job_id, cpus)
    assert_dials_spots(work)


@live
@pytest.mark.parametrize("cpus", [1, 2])
def test_slurm_job_script(work, cpus):
    # the command line's --cpus-per-task overrides the script's: SLURM_CPUS_PER_TASK=2, nproc=2
    grant = [f"--cpus-per-task={cpus}"] if cpus > 1 else []
    out = run(
        ["sbatch", "--parsable", *grant, str(JOBS / "slurm" / "findspots.sbatch")],
        cwd=work,
        env=job_environment(work),
    )
    assert out.returncode == 0, out.stderr
    job_id = out.stdout.strip().split(";")[0]
    try:
        info = wait_for(f"Slurm job {job_id}", lambda: slurm_finished(job_id))
    finally:
        run(["scancel", job_id])
    assert info["JobState"] == "COMPLETED" and info["ExitCode"] == "0:0", f"{info}\n{job_logs(work)}"
    assert info["JobName"] == "findspots"  # from the script's #SBATCH lines
    log = work / f"findspots-{job_id}.out"  # the script's --output
    assert_job_log(log, job_id, cpus)
    assert_dials_spots(work)


@live
def test_pbs_job_script_through_torque_wrappers(work):
    wrappers = run(["bash", str(REPO / "deploy" / "pbs" / "torque-wrappers.sh"), "--bin"], timeout=300)
    assert wrappers.returncode == 0, wrappers.stderr
    bin_dir = wrappers.stdout.strip()
    env = job_environment(work, extra_path=[bin_dir])
    assert shutil.which("qsub", path=env["PATH"]) == f"{bin_dir}/qsub"  # not SGE's qsub
    # -V: pass the environment (FINDSPOTS_*) on, as a PBS user would
    out = run(["qsub", "-V", str(JOBS / "pbs" / "findspots.pbs")], cwd=work, env=env)
    assert out.returncode == 0 and out.stdout.strip().isdigit(), out.stdout + out.stderr
    job_id = out.stdout.strip()

    def pbs_state() -> str | None:
        status = run(["qstat", "-f", job_id], env=env).stdout
        state = re.search(r"job_state = (\w)", status)
        return state and state.group(1) == "C" and status

    try:
        status = wait_for(f"PBS job {job_id}", pbs_state)
    finally:
        run(["qdel", job_id], env=env)
    assert "Job_Name = findspots" in status  # from the script's #PBS -N line
    # the wrappers' qstat shows no exit status; Slurm underneath does
    info = slurm_job(job_id)
    assert info.get("ExitCode") == "0:0", f"{info}\n{job_logs(work)}"
    assert_dials_spots(work)


# ---- LSF: fake commands that really run the script ----------------------------------------------
FAKE_BSUB = r"""#!/bin/bash
# fake bsub: "bsub < script" or "bsub command args"; runs the job in the background, now
set -euo pipefail
state=$FAKE_LSF_STATE
mkdir -p "$state"
id=$(( $(cat "$state/last" 2>/dev/null || echo 100) + 1 ))
echo "$id" >"$state/last"
if [ $# -gt 0 ]; then printf '#!/bin/bash\n%s\n' "$*" >"$state/$id.sh"; else cat >"$state/$id.sh"; fi
name=NONAME out=/dev/null cpus=1
while read -r tag opt value; do
    [ "$tag" = "#BSUB" ] || continue
    value=${value%\"}; value=${value#\"}
    case $opt in -J) name=$value ;; -o) out=${value//%J/$id} ;; -n) cpus=$value ;; esac
done <"$state/$id.sh"
export LSB_JOBID=$id LSB_JOBNAME=$name LS_SUBCWD=$PWD LSB_DJOB_NUMPROC=$cpus
echo "$name" >"$state/$id.name"
setsid bash -c 'bash "$1" >>"$2" 2>&1; echo $? >"$3.exit"' job "$state/$id.sh" "$out" "$state/$id" \
    </dev/null >/dev/null 2>&1 &
echo $! >"$state/$id.pid"
echo "Job <$id> is submitted to default queue <normal>."
"""

FAKE_BJOBS = r"""#!/bin/bash
# fake bjobs [-noheader] [jobid...]
set -uo pipefail
state=$FAKE_LSF_STATE header=1 ids=()
for a in "$@"; do case $a in -noheader) header=0 ;; *) ids+=("$a") ;; esac; done
[ ${#ids[@]} -gt 0 ] || ids=($(ls "$state" 2>/dev/null | sed -n 's/\.pid$//p'))
[ $header = 0 ] || echo "JOBID   USER    STAT  QUEUE      FROM_HOST   EXEC_HOST   JOB_NAME"
rc=0
for id in "${ids[@]}"; do
    if [ ! -e "$state/$id.pid" ]; then echo "Job <$id> is not found" >&2; rc=255; continue; fi
    if [ -e "$state/$id.exit" ]; then
        if [ "$(cat "$state/$id.exit")" = 0 ]; then stat=DONE; else stat=EXIT; fi
    else
        stat=RUN
    fi
    echo "$id $(id -un) $stat normal $(hostname) $(hostname) $(cat "$state/$id.name")"
done
exit $rc
"""

FAKE_BKILL = r"""#!/bin/bash
# fake bkill jobid...: kills the job's whole process group
set -uo pipefail
state=$FAKE_LSF_STATE rc=0
for id in "$@"; do
    if [ ! -e "$state/$id.pid" ] || [ -e "$state/$id.exit" ]; then
        echo "Job <$id>: Job has already finished" >&2; rc=255; continue
    fi
    kill -TERM -- "-$(cat "$state/$id.pid")" 2>/dev/null || true
    echo 143 >"$state/$id.exit"
    echo "Job <$id> is being terminated"
done
exit $rc
"""


def lsf_status(env: dict[str, str], job_id: str) -> str:
    out = run(["bjobs", "-noheader", job_id], env=env)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()[2]


def test_lsf_job_script_with_fake_bsub(tmp_path, work):
    bin_dir = tmp_path / "lsf-bin"
    bin_dir.mkdir()
    for name, text in (("bsub", FAKE_BSUB), ("bjobs", FAKE_BJOBS), ("bkill", FAKE_BKILL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    env = job_environment(work, extra_path=[str(bin_dir)])
    env["FAKE_LSF_STATE"] = str(tmp_path / "lsf-state")

    # the documented way: bsub < findspots.lsf (bsub reads the #BSUB lines from stdin)
    with open(JOBS / "lsf" / "findspots.lsf") as script:
        out = run(["bsub"], stdin=script, cwd=work, env=env)
    assert out.returncode == 0, out.stderr
    job_id = re.fullmatch(r"Job <(\d+)> is submitted to .*", out.stdout.strip()).group(1)
    status = wait_for(f"LSF job {job_id}", lambda: (st := lsf_status(env, job_id)) in ("DONE", "EXIT") and st)
    log = work / f"findspots.{job_id}.out"  # from the script's #BSUB -o findspots.%J.out
    assert status == "DONE", job_logs(work)
    assert f"findspots job {job_id} on" in log.read_text()
    assert_dials_spots(work)
    listing = run(["bjobs", job_id], env=env).stdout
    assert "findspots" in listing  # the #BSUB -J name

    # bkill really stops a running job
    out = run(["bsub", "sleep", "300"], cwd=work, env=env)
    sleeper = re.search(r"<(\d+)>", out.stdout).group(1)
    assert lsf_status(env, sleeper) == "RUN"
    assert run(["bkill", sleeper], env=env).stdout.strip() == f"Job <{sleeper}> is being terminated"
    assert lsf_status(env, sleeper) == "EXIT"
    pid = (tmp_path / "lsf-state" / f"{sleeper}.pid").read_text().strip()
    assert wait_for("the killed job to go", lambda: not process_alive(pid), timeout=30)


def process_alive(pid: str) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "(zombie)" not in status


# ---- DRMAA on SGE -------------------------------------------------------------------------------
DRMAA_CHECK = r"""
import ctypes, os, sys
import numpy, findspots.app.cli  # load what a real client would, before libdrmaa (static TLS)
lib = ctypes.CDLL(os.environ["DRMAA_LIBRARY_PATH"])
err = ctypes.create_string_buffer(1024)
E = ctypes.c_size_t(1024)
def ok(rc, what):
    if rc != 0:
        sys.exit(f"{what}: drmaa error {rc}: {err.value.decode()}")
ok(lib.drmaa_init(None, err, E), "drmaa_init")
jt = ctypes.c_void_p()
ok(lib.drmaa_allocate_job_template(ctypes.byref(jt), err, E), "allocate")
for name, value in ((b"drmaa_remote_command", b"/bin/sh"), (b"drmaa_output_path", b":/dev/null"),
                    (b"drmaa_join_files", b"y")):
    ok(lib.drmaa_set_attribute(jt, name, value, err, E), name.decode())
args = (ctypes.c_char_p * 3)(b"-c", b"exit 7", None)
ok(lib.drmaa_set_vector_attribute(jt, b"drmaa_v_argv", args, err, E), "argv")
job = ctypes.create_string_buffer(128)
ok(lib.drmaa_run_job(job, ctypes.c_size_t(128), jt, err, E), "drmaa_run_job")
stat, exited, code = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
rusage = ctypes.c_void_p()
done = ctypes.create_string_buffer(128)
ok(lib.drmaa_wait(job, done, ctypes.c_size_t(128), ctypes.byref(stat), ctypes.c_long(120),
                  ctypes.byref(rusage), err, E), "drmaa_wait")
ok(lib.drmaa_wifexited(ctypes.byref(exited), stat, err, E), "wifexited")
ok(lib.drmaa_wexitstatus(ctypes.byref(code), stat, err, E), "wexitstatus")
lib.drmaa_release_attr_values(rusage)
lib.drmaa_delete_job_template(jt, err, E)
ok(lib.drmaa_exit(err, E), "drmaa_exit")
print(f"job {job.value.decode()} exited={exited.value} status={code.value}")
"""


@live
def test_sge_drmaa_with_start_hints(tmp_path):
    """libdrmaa runs a job with just the environment deploy/sge/start.sh writes to sge.env."""
    env_file = STATE / "sge.env"
    assert env_file.is_file(), f"{env_file} missing: was SGE started with deploy/sge/start.sh?"
    script = tmp_path / "drmaa_check.py"
    script.write_text(DRMAA_CHECK)
    env = {k: v for k, v in os.environ.items() if k not in ("SGE_ROOT", "SGE_CELL", "GLIBC_TUNABLES")}
    python = shlex.join([sys.executable, str(script)])
    cmd = f"source {shlex.quote(str(env_file))} && exec {python}"
    out = run(["bash", "-c", cmd], cwd=tmp_path, env=env, timeout=180)
    assert out.returncode == 0, out.stdout + out.stderr
    assert re.search(r"job \d+ exited=1 status=7", out.stdout), out.stdout


# ---- nothing left behind ------------------------------------------------------------------------
@live
def test_queues_empty_afterwards():
    """Runs last: every job above has left both queues."""
    sge = wait_for("an empty SGE queue", lambda: run(["qstat", "-u", "*"]).stdout.strip() == "", timeout=30)
    slurm = wait_for("an empty Slurm queue", lambda: run(["squeue", "-h"]).stdout.strip() == "", timeout=30)
    assert sge and slurm
