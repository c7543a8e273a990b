"""The forked local pool (nproc > 1): results, task errors, dead workers, shutdown, whole runs."""

from __future__ import annotations

import bz2
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from test_dials_parity import run_findspots

from findspots.batch.executor import make_executor
from findspots.batch.executor_base import ALLOWED_WORKER_DEATHS, InProcessExecutor
from findspots.batch.local_pool import LocalPool, RemoteTraceback
from findspots.errors import NotYetSupported, ParameterError, TooManyStrongPixels, WorkerDied
from findspots.images import ImageError

REPO = Path(__file__).resolve().parents[2]
L_CYST = sorted((REPO / "data" / "l_cysteine").glob("l-cyst_01_*.cbf.bz2"))


def scaled(shared: int, x: int) -> int:
    return shared * x


def fails_on_three(shared, x: int) -> int:
    if x == 3:
        raise ImageError(f"{shared}: corrupt or truncated compressed file (bz2)")
    if x == 4:
        raise TooManyStrongPixels("image 4 has too many strong pixels")
    return x


def dies_once(marker: Path, x: int) -> tuple[int, int]:
    """Kills its worker the first time it runs task 2."""
    if x == 2 and not marker.exists():
        marker.touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return x, os.getpid()


def always_dies(shared, x: int) -> int:
    if x == 1:
        with open(shared, "a") as f:
            f.write(f"{os.getpid()}\n")
        os.kill(os.getpid(), signal.SIGKILL)
    return x


def sleeps(shared, seconds: float) -> float:
    time.sleep(seconds)
    return seconds


class Unpickled:
    """Says whether a worker got it by unpickling (as it must) rather than through the fork."""

    def __init__(self, value: int):
        self.value = value
        self.unpickled = False

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, unpickled=True)


def read_shared(shared: Unpickled, x: int) -> tuple[int, bool]:
    return shared.value + x, shared.unpickled


class Unloadable:
    """Cannot be unpickled, as a reader whose file vanished."""

    def __init__(self):
        self.path = "/data/master.h5"

    def __setstate__(self, state: dict) -> None:
        raise ImageError("/data/master.h5: no such file")


def raises_rewritten(shared, x: int) -> int:
    if x == 0:
        raise NotYetSupported("spotfinder.thing=1")
    raise Odd(1, 2)


class Odd(Exception):
    """An exception whose constructor does not take its message: it cannot be rebuilt."""

    def __init__(self, a: int, b: int):
        super().__init__(f"{a} and {b}")


def gone(pid: int) -> bool:
    """True once ``pid`` has exited (reaped, or a zombie)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state in "ZX"


def wait_gone(pids, timeout: float = 10.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while any(not gone(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    return [p for p in pids if not gone(p)]


@pytest.fixture
def pool():
    pool = LocalPool(2)
    yield pool
    pool.close()


def test_results_equal_the_in_process_executor_and_the_pool_is_reused(pool):
    tasks = [(x,) for x in range(25)]
    expected = dict(InProcessExecutor().run(scaled, 3, tasks))
    assert dict(pool.run(scaled, 3, tasks)) == expected
    pids = pool.pids()
    assert len(pids) == 2 and os.getpid() not in pids
    assert dict(pool.run(scaled, 5, tasks)) == {i: 5 * x for i, (x,) in enumerate(tasks)}
    assert pool.pids() == pids  # the same workers, with the new shared object


def test_the_shared_object_is_pickled_once_per_run(pool):
    shared = Unpickled(10)
    assert dict(pool.run(read_shared, shared, [(1,), (2,)])) == {0: (11, True), 1: (12, True)}
    shared.value = 20
    assert dict(pool.run(read_shared, shared, [(1,)])) == {0: (21, True)}


def test_a_task_exception_is_raised_again_with_its_type_and_message(pool):
    with pytest.raises(ImageError) as err:
        dict(pool.run(fails_on_three, "/data/x_0003.cbf.bz2", [(1,), (3,), (5,)]))
    assert str(err.value) == "/data/x_0003.cbf.bz2: corrupt or truncated compressed file (bz2)"
    assert isinstance(err.value.__cause__, RemoteTraceback)
    assert "fails_on_three" in str(err.value.__cause__)
    with pytest.raises(TooManyStrongPixels, match="^image 4 has too many strong pixels$"):
        dict(pool.run(fails_on_three, "", [(4,)]))
    assert dict(pool.run(scaled, 2, [(1,), (2,)])) == {0: 2, 1: 4}  # the pool still works


def test_an_exception_that_cannot_be_rebuilt_keeps_its_message(pool):
    with pytest.raises(ParameterError, match="^spotfinder.thing=1 is not yet supported by findspots"):
        dict(pool.run(raises_rewritten, None, [(0,)]))
    with pytest.raises(RuntimeError, match="^Odd: 1 and 2$"):
        dict(pool.run(raises_rewritten, None, [(1,)]))


def test_a_shared_object_that_cannot_be_loaded_fails_its_tasks(pool):
    with pytest.raises(ImageError, match="^/data/master.h5: no such file$"):
        dict(pool.run(scaled, Unloadable(), [(1,), (2,)]))
    assert dict(pool.run(scaled, 2, [(1,)])) == {0: 2}


def test_a_worker_killed_mid_task_is_replaced_and_its_task_rerun(pool, tmp_path):
    marker = tmp_path / "died"
    before = pool.pids()
    results = dict(pool.run(dies_once, marker, [(x,) for x in range(6)]))
    assert marker.exists()
    assert sorted(x for x, _ in results.values()) == list(range(6))
    assert len(pool.pids()) == 2 and set(pool.pids()) != set(before)
    assert wait_gone(set(before) - set(pool.pids())) == []


def test_a_task_that_keeps_killing_its_worker_fails_with_one_clear_line(pool, tmp_path):
    log = tmp_path / "pids"
    with pytest.raises(WorkerDied) as err:
        dict(pool.run(always_dies, str(log), [(x,) for x in range(4)], lambda i: f"images {i + 20}-{i + 29}"))
    message = str(err.value)
    assert message.startswith(
        f"a worker process died {ALLOWED_WORKER_DEATHS} times on images 21-30 (killed by SIGKILL), "
        "e.g. out of memory"
    )
    assert "\n" not in message
    assert len(log.read_text().split()) == ALLOWED_WORKER_DEATHS


def test_close_leaves_no_child_process():
    pool = LocalPool(3)
    pids = pool.pids()
    assert dict(pool.run(scaled, 1, [(x,) for x in range(5)])) == {x: x for x in range(5)}
    pool.close()
    assert wait_gone(pids, timeout=0.5) == []
    pool.close()  # twice is harmless


def test_close_during_a_run_kills_the_busy_workers():
    pool = LocalPool(2)
    pids = pool.pids()
    run = pool.run(sleeps, None, [(30,), (0,)])
    assert next(run) == (1, 0)  # the other worker is still asleep in its task
    started = time.monotonic()
    pool.close()
    assert time.monotonic() - started < 5
    assert wait_gone(pids, timeout=0.5) == []
    run.close()


WORKERS_OF_A_KILLED_PARENT = """
import signal, sys, time
from findspots.batch.local_pool import LocalPool
pool = LocalPool(2)
print(*pool.pids(), flush=True)
time.sleep(60)
"""


def test_workers_ignore_sigint_and_die_with_their_parent():
    parent = subprocess.Popen(
        [sys.executable, "-c", WORKERS_OF_A_KILLED_PARENT], stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    try:
        pids = [int(p) for p in parent.stdout.readline().split()]
        assert len(pids) == 2
        os.kill(pids[0], signal.SIGINT)
        time.sleep(0.2)
        assert not gone(pids[0])
    finally:
        parent.kill()  # SIGKILL: no chance to stop its workers
        parent.wait()
    assert wait_gone(pids) == []


def test_nproc_above_one_picks_the_pool_and_dashboard_picks_dask():
    mp = SimpleNamespace(method="none", dashboard=False)
    executor = make_executor(mp, 2, 1, None)
    try:
        assert isinstance(executor, LocalPool)
    finally:
        executor.close()
    assert isinstance(
        make_executor(SimpleNamespace(method="none", dashboard=False), 1, 1, None), InProcessExecutor
    )


def test_pool_and_dashboard_runs_are_byte_identical_to_one_process(tmp_path):
    outputs = {}
    for name, extra in {
        "one": ["nproc=1"],
        "pool": ["nproc=2", "chunksize=3", "min_chunksize=1"],
        "dask": ["nproc=2", "chunksize=3", "min_chunksize=1", "mp.dashboard=True"],
    }.items():
        (tmp_path / name).mkdir()
        table = run_findspots(tmp_path / name, L_CYST, ["output.report=None", *extra])
        assert len(table["bbox"]) == 53
        outputs[name] = (tmp_path / name / "strong.refl").read_bytes()
    assert outputs["pool"] == outputs["one"]
    assert outputs["dask"] == outputs["one"]
    assert "Dask dashboard: http://127.0.0.1:" in (tmp_path / "dask" / "log").read_text()


def test_an_image_that_fails_in_a_worker_is_one_line_naming_it(tmp_path):
    images = [tmp_path / p.name for p in L_CYST]
    for src, dst in zip(L_CYST, images, strict=True):
        dst.write_bytes(src.read_bytes())
    # a valid header and compression, a binary section cut short: only the worker reading it fails
    data = bz2.decompress(L_CYST[6].read_bytes())
    start = data.index(b"\x0c\x1a\x04\xd5") + 4
    images[6].write_bytes(bz2.compress(data[: start + 5000]))
    out = tmp_path / "strong.refl"
    args = [*map(str, images), f"output.reflections={out}", "output.report=None", "nproc=2", "chunksize=2"]
    result = subprocess.run(
        [sys.executable, "-m", "findspots.app.cli", *args, "min_chunksize=1"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert result.stderr.startswith(f"findspots: error: {images[6]}: truncated CBF"), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "In the worker process" in (tmp_path / "findspots.debug.log").read_text()
    assert not out.exists()
