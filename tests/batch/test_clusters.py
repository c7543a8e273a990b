"""Cluster backends without a live scheduler: generated job scripts, and LSF through fake commands.

The live SGE, DRMAA, Slurm and PBS runs are in test_clusters_live.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
from spotcompare import assert_same_spots

from findspots.batch.clusters import backend
from findspots.batch.clusters.base import load_defaults
from findspots.output.refl import read_reflections

REPO = Path(__file__).resolve().parents[2]
L_CYST = sorted((REPO / "data" / "l_cysteine").glob("l-cyst_01_*.cbf.bz2"))


def mp(**kw):
    values = dict(
        queue=None, project=None, memory=None, walltime=None, interface="lo", job_extra=[], tls=True
    )
    values.update(kw)
    return SimpleNamespace(**values)


def job_script(method: str, tmp_path: Path, **kw) -> str:
    load_defaults()
    b = backend(method)
    cluster = b.cluster_class()(**b.options(2, mp(**kw), tmp_path))
    try:
        return cluster.job_script()
    finally:
        cluster.close()


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        (
            "sge",
            ["#$ -q short.q", "#$ -P xtal", "#$ -l h_rt=02:00:00", "#$ -l h_vmem=3G", "#$ -l m_mem_free=1G"],
        ),
        ("slurm", ["#SBATCH -p short", "#SBATCH -A xtal", "#SBATCH -t 02:00:00", "#SBATCH --exclusive"]),
        ("pbs", ["#PBS -q short", "#PBS -A xtal", "#PBS -l walltime=02:00:00", "#PBS -V"]),
        ("lsf", ["#BSUB -q short", '#BSUB -P "xtal"', "#BSUB -W 02:00", "#BSUB -x"]),
    ],
)
def test_per_run_settings_reach_the_job_script(tmp_path, method, expected):
    queue = "short.q" if method == "sge" else "short"
    walltime = "02:00" if method == "lsf" else "02:00:00"
    extra = {
        "sge": ["-l h_vmem=3G", "-l m_mem_free=1G"],
        "slurm": ["--exclusive"],
        "pbs": ["-V"],
        "lsf": ["-x"],
    }[method]
    script = job_script(method, tmp_path, queue=queue, project="xtal", walltime=walltime, job_extra=extra)
    for line in expected:
        assert line in script
    # two single-threaded worker processes per job, TLS credentials for the workers
    assert "--nworkers 2" in script and "--nthreads 1" in script
    assert "--tls-ca-file" in script and "tls://" in script
    assert "-pe " not in script  # nothing site-specific


@pytest.mark.parametrize("method", ["sge", "slurm", "pbs", "lsf"])
def test_defaults_request_no_time_limit_and_1gb_per_process(tmp_path, method):
    script = job_script(method, tmp_path, tls=False)
    assert "h_rt" not in script and "walltime" not in script and "#SBATCH -t" not in script
    assert "#BSUB -W" not in script
    assert "--memory-limit 0.93GiB" in script  # 1 GB (10^9 bytes) per worker process
    assert "findspots-worker" in script


FAKE_LSF = {
    # bsub < script: run it detached in its own process group, remember the group by job number
    "bsub": """
        #!/bin/bash
        set -e
        dir="$FAKE_LSF_DIR"
        exec 9> "$dir/lock" && flock 9  # concurrent submissions get distinct job numbers
        n=$(( $(cat "$dir/next" 2>/dev/null || echo 100) + 1 )); echo $n > "$dir/next"
        cat > "$dir/job$n.sh"
        setsid bash "$dir/job$n.sh" > "$dir/job$n.out" 2>&1 < /dev/null 9>&- &
        echo $! > "$dir/job$n.pid"
        echo "Job <$n> is submitted to default queue <normal>."
    """,
    "bkill": """
        #!/bin/bash
        dir="$FAKE_LSF_DIR"
        for n in "$@"; do
            pid=$(cat "$dir/job$n.pid") && kill -TERM -- "-$pid" 2>/dev/null
            rm -f "$dir/job$n.pid"
        done
        echo "Job <$1> is being terminated"
    """,
    "bjobs": """
        #!/bin/bash
        dir="$FAKE_LSF_DIR"
        for f in "$dir"/job*.pid; do [ -e "$f" ] && n=${f##*/job} && echo "${n%.pid} root RUN normal"; done
        exit 0
    """,
}


def test_lsf_method_with_fake_bsub_bkill(tmp_path):
    """mp.method=lsf against fake bsub/bjobs/bkill that really start the worker job scripts."""
    bin_dir, state = tmp_path / "bin", tmp_path / "lsf"
    bin_dir.mkdir()
    state.mkdir()
    for name, body in FAKE_LSF.items():
        (bin_dir / name).write_text(textwrap.dedent(body).lstrip())
        (bin_dir / name).chmod(0o755)
    env = dict(
        os.environ,
        PATH=f"{bin_dir}:{os.environ['PATH']}",
        FAKE_LSF_DIR=str(state),
        DASK_JOBQUEUE__LSF__INTERFACE="lo",
    )
    out = tmp_path / "strong.refl"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "findspots.app.cli",
            *map(str, L_CYST),
            "mp.method=lsf",
            "njobs=2",
            "chunksize=4",
            "min_chunksize=1",
            "filter.max_spot_size=1000",
            f"output.reflections={out}",
            f"output.log={tmp_path / 'log'}",
            f"output.debug_log={tmp_path / 'debug'}",
            "output.report=None",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "First lsf worker connected" in result.stdout
    ref = read_reflections(REPO / "data/reference/l_cysteine_sweep01/dispersion/strong.refl.xz")
    assert assert_same_spots(read_reflections(out), ref) == 53
    submitted = sorted(state.glob("job*.sh"))
    assert len(submitted) >= 2
    # every job was cancelled with bkill: no pid file left, no process of the jobs alive
    assert not list(state.glob("job*.pid"))
    for sh in submitted:
        alive = subprocess.run(["pgrep", "-f", str(sh)], capture_output=True)
        if alive.returncode == 0:  # give bkill's SIGTERM a moment, then fail loudly
            for pid in alive.stdout.split():
                os.kill(int(pid), signal.SIGKILL)
            pytest.fail(f"a fake LSF job outlived bkill: {sh.name}")
