"""mp.method=sge|drmaa|slurm|pbs on real single-node schedulers (deploy/sge, deploy/slurm).

Runs only with FINDSPOTS_LIVE_SCHEDULERS=1 (set by .ci/run after starting both schedulers). PBS
goes through Debian's Torque wrappers over Slurm (deploy/pbs/torque-wrappers.sh).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from spotcompare import assert_same_spots

from findspots.output.refl import read_reflections

pytestmark = pytest.mark.skipif(
    os.environ.get("FINDSPOTS_LIVE_SCHEDULERS") != "1",
    reason="set FINDSPOTS_LIVE_SCHEDULERS=1 after deploy/sge/start.sh and deploy/slurm/start.sh",
)

REPO = Path(__file__).resolve().parents[2]
SGE_ENV = Path("/run/findspots-sched/sge.env")


def scheduler_env(method: str) -> dict[str, str]:
    env = dict(os.environ)
    for section in ("SGE", "SLURM", "PBS"):
        env[f"DASK_JOBQUEUE__{section}__INTERFACE"] = "lo"
    if method == "drmaa":
        for name, value in re.findall(r"export (\w+)=(\S+)", SGE_ENV.read_text()):
            env[name] = value
        env["GLIBC_TUNABLES"] = "glibc.rtld.optional_static_tls=4096"
    if method == "pbs":
        wrappers = subprocess.run(
            ["bash", str(REPO / "deploy/pbs/torque-wrappers.sh"), "--bin"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        env["PATH"] = f"{wrappers}:{env['PATH']}"
    return env


def our_jobs() -> list[str]:
    """findspots worker jobs still known to SGE or Slurm (those of them installed here)."""
    listings = [["qstat", "-u", "*"], ["squeue", "-h", "-o", "%i %j"]]
    text = "".join(
        subprocess.run(cmd, capture_output=True, text=True).stdout for cmd in listings if shutil.which(cmd[0])
    )
    return [line for line in text.splitlines() if "findspots" in line]


def findspots(method: str, images, out: Path, *extra: str, report: bool = False, **popen) -> subprocess.Popen:
    """Run findspots through the scheduler; without the report unless ``report`` (then the default one)."""
    cmd = [
        sys.executable,
        "-m",
        "findspots.app.cli",
        *map(str, images),
        f"mp.method={method}",
        "njobs=2",
        f"output.reflections={out}",
        f"output.log={out}.log",
        f"output.debug_log={out}.debug.log",
        *([] if report else ["output.report=None"]),
        *extra,
    ]
    return subprocess.Popen(
        cmd, env=scheduler_env(method), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen
    )


@pytest.mark.parametrize("method", ["sge", "drmaa", "slurm", "pbs"])
def test_p300k_through_the_scheduler_equals_dials(tmp_path, shared_data, method):
    images = sorted((shared_data / "p300k_60").glob("*.cbf"))
    out = tmp_path / "strong.refl"
    started = time.monotonic()
    proc = findspots(method, images, out, "chunksize=5")
    stdout, stderr = proc.communicate(timeout=600)
    total = time.monotonic() - started
    assert proc.returncode == 0, stderr
    first = float(re.search(r"First \w+ worker connected after ([\d.]+) s", stdout).group(1))
    print(f"\n{method}: first worker after {first:.1f} s, total {total:.1f} s")
    ref = np.load(shared_data / "p300k_60/dials_reference/a_seed/spots.npz")
    assert assert_same_spots(read_reflections(out), ref) == 2242
    time.sleep(2)  # cancellation is asynchronous on the scheduler side
    assert our_jobs() == []


def test_drmaa_run_with_the_default_report_exits_0(tmp_path):
    """Issue 15: with libdrmaa loaded in the findspots process, a run saved its table, then aborted
    with ``free(): invalid pointer`` (exit 134) before writing the report."""
    images = sorted((REPO / "data/l_cysteine").glob("l-cyst_01_*.cbf.bz2"))
    out = tmp_path / "strong.refl"
    args = ("threshold.algorithm=dispersion", "filter.max_spot_size=1000")
    proc = findspots("drmaa", images, out, *args, report=True, cwd=tmp_path)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr
    assert "free(): invalid pointer" not in stderr
    ref = read_reflections(REPO / "data/reference/l_cysteine_sweep01/dispersion/strong.refl.xz")
    assert assert_same_spots(read_reflections(out), ref) == 53
    page = (tmp_path / "findspots.html").read_text()  # output.report's default
    assert "Report written to findspots.html" in stdout
    assert "53" in page and page.count("data:image/png;base64,") >= 4
    time.sleep(2)
    assert our_jobs() == []


def delete_one_job(method: str) -> None:
    if method == "sge":
        jobs = [line.split()[0] for line in our_jobs() if "r " in line or " r" in line]
        subprocess.run(["qdel", jobs[0]], check=True, capture_output=True)
    else:
        jobs = subprocess.run(
            ["squeue", "-h", "-t", "R", "-n", "findspots-worker", "-o", "%i"], capture_output=True, text=True
        ).stdout.split()
        subprocess.run(["scancel", jobs[0]], check=True)


@pytest.mark.parametrize("method", ["sge", "slurm"])
def test_a_job_deleted_mid_run_still_gives_the_same_spots(tmp_path, shared_data, method):
    images = sorted((shared_data / "real/thaumatin_grid_i24_pilatus3_6m").glob("*.cbf.bz2"))
    out = tmp_path / "strong.refl"
    checkpoint = Path(f"{out}.findspots-checkpoint")
    proc = findspots(method, images, out, "chunksize=1", "min_chunksize=1", "filter.max_spot_size=1000")
    deadline = time.monotonic() + 300
    while not (checkpoint.exists() and any(checkpoint.glob("*.npz"))):
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline
        time.sleep(0.1)
    delete_one_job(method)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr
    ref = read_reflections(shared_data / "real/dials_head_reference/thaumatin_grid/dispersion/strong.refl.xz")
    assert assert_same_spots(read_reflections(out), ref) == 13348
    time.sleep(2)
    assert our_jobs() == []


def test_the_printed_dashboard_link_opens_during_a_cluster_run(tmp_path, shared_data):
    """Issue: the link named the scheduler's cluster address where the (loopback) dashboard never listened."""
    import urllib.request

    images = sorted((shared_data / "real/thaumatin_grid_i24_pilatus3_6m").glob("*.cbf.bz2"))
    out = tmp_path / "strong.refl"
    proc = findspots("sge", images, out, "chunksize=1", "min_chunksize=1")
    link = None
    for line in proc.stdout:
        found = re.search(r"Dask dashboard: (\S+) .*ssh -L (\d+):127\.0\.0\.1:(\d+) ", line)
        if found:
            link = found.group(1)
            assert found.group(2) == found.group(3) == link.split(":")[2].split("/")[0]
            break
    assert link and link.startswith("http://127.0.0.1:"), link
    with urllib.request.urlopen(link, timeout=30) as answer:
        assert answer.status == 200
        assert b"Dask" in answer.read()
    proc.communicate(timeout=600)
    assert proc.returncode == 0
