"""The batch engine as a user runs it: chunked multi-process runs, resume after a kill, dead workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from spotcompare import assert_same_spots
from test_dials_parity import npz_shoeboxes, run_findspots

from findspots.app.cli import run
from findspots.batch.checkpoint import Checkpoints
from findspots.batch.local_pool import WORKER_NAME
from findspots.output.refl import read_reflections

REPO = Path(__file__).resolve().parents[2]
L_CYST = sorted((REPO / "data" / "l_cysteine").glob("l-cyst_01_*.cbf.bz2"))


def test_chunked_two_process_run_is_byte_identical(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    single = run_findspots(tmp_path / "a", L_CYST, ["filter.max_spot_size=1000"])
    multi = run_findspots(
        tmp_path / "b", L_CYST, ["filter.max_spot_size=1000", "nproc=2", "chunksize=2", "min_chunksize=1"]
    )
    assert (tmp_path / "a" / "strong.refl").read_bytes() == (tmp_path / "b" / "strong.refl").read_bytes()
    ref = read_reflections(REPO / "data/reference/l_cysteine_sweep01/dispersion/strong.refl.xz")
    assert assert_same_spots(multi, ref) == 53
    assert len(single["bbox"]) == 53


@pytest.mark.shared
def test_p300k_reference_with_nproc2_chunksize7(tmp_path, shared_data):
    ref = np.load(shared_data / "p300k_60/dials_reference/a_seed/spots.npz")
    images = sorted((shared_data / "p300k_60").glob("*.cbf"))
    ours = run_findspots(tmp_path, images, ["nproc=2", "chunksize=7", "min_chunksize=1"])
    assert assert_same_spots(ours, ref) == 2242
    np.testing.assert_array_equal(ours["shoebox"].data, npz_shoeboxes(ref).data)


def command(images, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "findspots.app.cli",
        *map(str, images),
        f"output.reflections={out}",
        f"output.log={out}.log",
        f"output.debug_log={out}.debug.log",
        "output.report=None",
        *extra,
    ]


def finished_blocks(checkpoint: Path) -> int:
    """Block files saved so far (temporary files of an interrupted write start with a dot)."""
    return sum(1 for p in checkpoint.glob("*.npz") if not p.name.startswith("."))


def wait_for(predicate, proc, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None, "the run ended before the test could interrupt it"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


@pytest.mark.shared
def test_sigkill_of_the_whole_run_then_rerun_resumes(tmp_path, shared_data):
    images = sorted((shared_data / "p300k_60").glob("*.cbf"))
    clean = tmp_path / "clean.refl"
    subprocess.run(command(images, clean, "chunksize=2", "min_chunksize=1"), check=True, capture_output=True)
    out = tmp_path / "strong.refl"
    checkpoint = Path(f"{out}.findspots-checkpoint")
    cmd = command(images, out, "chunksize=2", "min_chunksize=1")
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: finished_blocks(checkpoint) >= 3, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    saved = finished_blocks(checkpoint)
    assert 3 <= saved < 30
    rerun = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert f"Resumed {saved} of 30 blocks" in rerun.stdout
    assert out.read_bytes() == clean.read_bytes()
    assert not checkpoint.exists()


@pytest.mark.parametrize("extra", [[], ["filter.background_gradient.filter=True", "gradient_cutoff=0.5"]])
def test_a_rerun_after_an_interruption_resumes_byte_identical(tmp_path, monkeypatch, extra):
    # A run interrupted after some blocks, simulated on the bundled sweep: a run whose checkpoint folder
    # is kept, then its output and all but 5 of its 15 one-image blocks deleted (what a kill leaves).
    def argv(out: Path) -> list[str]:
        args = ["chunksize=1", "min_chunksize=1", "output.report=None", f"output.reflections={out}"]
        return [*map(str, L_CYST), *args, *extra, f"output.log={out}.log", "output.debug_log=None"]

    clean = tmp_path / "clean.refl"
    assert run(argv(clean)) == 0
    out = tmp_path / "strong.refl"
    checkpoint = Path(f"{out}.findspots-checkpoint")
    with monkeypatch.context() as m:
        m.setattr(Checkpoints, "remove", lambda self: None)
        assert run(argv(out)) == 0
    out.unlink()
    blocks = sorted(checkpoint.glob("*.npz"))
    assert len(blocks) == 15
    for p in blocks[5:]:
        p.unlink()
    assert run(argv(out)) == 0
    assert f"Resumed 5 of 15 blocks from {checkpoint}" in Path(f"{out}.log").read_text()
    assert out.read_bytes() == clean.read_bytes()
    assert not checkpoint.exists()


def test_changed_parameter_never_reuses_a_block(tmp_path):
    out = tmp_path / "strong.refl"
    checkpoint = Path(f"{out}.findspots-checkpoint")
    from findspots.batch.checkpoint import run_key

    settings = {"a": 1}
    key = run_key([str(p) for p in L_CYST], settings, "v")
    assert key != run_key([str(p) for p in L_CYST], {"a": 2}, "v")
    assert key != run_key([str(p) for p in L_CYST[:-1]], settings, "v")
    assert not checkpoint.exists()


def worker_pids(parent: int) -> list[int]:
    """The worker processes of the run ``parent``: its forked pool workers (named after the pool, as
    their command line is the parent's) or spawned dask workers (``mp.dashboard=True``)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            comm = (entry / "comm").read_text().strip()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and (comm == WORKER_NAME.decode() or "multiprocessing" in cmdline):
            pids.append(int(entry.name))
    return pids


@pytest.mark.shared
def test_a_killed_worker_is_replaced_and_the_result_is_identical(tmp_path, shared_data):
    images = sorted((shared_data / "p300k_60").glob("*.cbf"))
    clean = tmp_path / "clean.refl"
    subprocess.run(command(images, clean), check=True, capture_output=True)
    out = tmp_path / "strong.refl"
    checkpoint = Path(f"{out}.findspots-checkpoint")
    proc = subprocess.Popen(
        command(images, out, "nproc=2", "chunksize=2", "min_chunksize=1"),
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    wait_for(lambda: len(worker_pids(proc.pid)) == 2 and checkpoint.exists(), proc)
    os.kill(worker_pids(proc.pid)[0], signal.SIGKILL)
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, output
    assert out.read_bytes() == clean.read_bytes()


def test_unreadable_image_stops_the_run_naming_the_file(tmp_path):
    images = [tmp_path / p.name for p in L_CYST]
    for src, dst in zip(L_CYST, images, strict=True):
        dst.write_bytes(src.read_bytes())
    images[6].write_bytes(L_CYST[6].read_bytes()[:20000])  # truncated bz2 stream
    out = tmp_path / "strong.refl"
    result = subprocess.run(
        command(images, out, "nproc=2", "chunksize=2", "min_chunksize=1"), capture_output=True, text=True
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and images[6].name in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()
