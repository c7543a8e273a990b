"""SIGTERM/SIGINT stop a run cleanly: exit code 143/130, every worker process gone, finished blocks kept
(intact, resumable), no output file. The run is ``python -m findspots.app.cli`` on the bundled real images."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from findspots.batch.checkpoint import Checkpoints
from findspots.output.refl import read_reflections
from reliability.cbftools import L_CYST

STOPPED = "finished blocks are kept, rerun the same command to resume"


def command(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "findspots.app.cli", *map(str, L_CYST), f"output.reflections={out}", *extra]


def _stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, state) of a live process, None once it is gone (or a zombie)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[1]), fields[0]) if fields[0] not in "ZX" else None


def descendants(root: int, known: set[int]) -> set[int]:
    """Add to ``known`` every live process whose ancestry reaches ``root`` or a process in ``known``."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat:
                parents[int(entry.name)] = stat[0]
    grew = True
    while grew:
        grew = False
        for pid, ppid in parents.items():
            if pid not in known and (ppid == root or ppid in known):
                known.add(pid)
                grew = True
    return known


def alive(pids: set[int]) -> set[int]:
    return {pid for pid in pids if _stat(pid) is not None}


def blocks(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.npz") if not p.name.startswith("."))


class Run:
    """A findspots process started in its own session, watched for child processes."""

    def __init__(self, cmd: list[str], cwd: Path):
        self.proc = subprocess.Popen(
            cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
        )
        self.children: set[int] = set()

    def wait_until(self, predicate, timeout: float = 240.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert self.proc.poll() is None, "the run ended before the test could stop it:\n" + self.output()
            assert time.monotonic() < deadline, "timed out"
            descendants(self.proc.pid, self.children)
            time.sleep(0.01)
        descendants(self.proc.pid, self.children)

    def finish(self, timeout: float = 120.0) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            descendants(self.proc.pid, self.children)
            assert time.monotonic() < deadline, "the run did not stop"
            time.sleep(0.01)
        self.stdout, self.stderr = self.proc.communicate()
        return self.proc.returncode

    def output(self) -> str:
        if self.proc.poll() is None:
            return ""
        out, err = self.proc.communicate()
        return out[-3000:] + err[-3000:]

    def assert_no_process_left(self, grace: float = 20.0) -> None:
        """Every process the run started is gone (a grace period for the last ones to exit)."""
        deadline = time.monotonic() + grace
        while alive(self.children) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = alive(self.children)
        assert not left, {pid: Path(f"/proc/{pid}/cmdline").read_bytes()[:200] for pid in left}


def assert_checkpoints_intact(folder: Path) -> list[Path]:
    saved = blocks(folder)
    assert saved, "no finished block was kept"
    assert not [p for p in folder.iterdir() if p.name.startswith(".")], "a temporary block file was left"
    for path in saved:  # each one loads as the rerun will load it (a damaged file loads as None)
        block = Checkpoints(folder).load(path.stem)
        assert block is not None and len(block.images) >= 1, path.name
    return saved


def test_sigterm_stops_a_two_process_run_and_leaves_no_process(tmp_path):
    out = tmp_path / "strong.refl"
    folder = Path(f"{out}.findspots-checkpoint")
    cmd = command(out, "nproc=2", "chunksize=1", "min_chunksize=1")
    run = Run(cmd, tmp_path)
    run.wait_until(lambda: len(blocks(folder)) >= 2)
    assert len(run.children) >= 2, "expected worker processes"
    os.kill(run.proc.pid, signal.SIGTERM)
    assert run.finish() == 143, run.stderr
    assert run.stderr.strip().splitlines()[-1] == f"findspots: stopped by SIGTERM; {STOPPED}"
    run.assert_no_process_left()
    assert not out.exists()
    saved = assert_checkpoints_intact(folder)
    assert len(saved) < 15
    assert (tmp_path / "findspots.log").exists() and not list(tmp_path.glob("*.partial"))

    rerun = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"Resumed {len(saved)} of 15 blocks" in rerun.stdout
    assert len(read_reflections(out)["bbox"]) == 53
    assert not folder.exists()


def test_sigterm_to_the_whole_process_group_twice(tmp_path):
    # as a batch system cancels a job: every process gets SIGTERM, and a second one follows
    out = tmp_path / "strong.refl"
    folder = Path(f"{out}.findspots-checkpoint")
    run = Run(command(out, "nproc=2", "chunksize=1", "min_chunksize=1"), tmp_path)
    run.wait_until(lambda: len(blocks(folder)) >= 1)
    os.killpg(run.proc.pid, signal.SIGTERM)
    time.sleep(0.2)
    if run.proc.poll() is None:
        os.kill(run.proc.pid, signal.SIGTERM)
    assert run.finish() == 143, run.stderr
    assert f"findspots: stopped by SIGTERM; {STOPPED}" in run.stderr
    run.assert_no_process_left()
    assert not out.exists()
    assert_checkpoints_intact(folder)


def test_sigint_stops_an_in_process_run(tmp_path):
    out = tmp_path / "strong.refl"
    folder = Path(f"{out}.findspots-checkpoint")
    run = Run(command(out, "chunksize=1", "min_chunksize=1"), tmp_path)
    run.wait_until(lambda: len(blocks(folder)) >= 1)
    os.kill(run.proc.pid, signal.SIGINT)
    assert run.finish() == 130, run.stderr
    assert run.stderr.strip().splitlines() == [f"findspots: stopped by SIGINT; {STOPPED}"]
    run.assert_no_process_left()
    assert not out.exists()
    assert_checkpoints_intact(folder)


def test_sigterm_during_start_up_is_one_line(tmp_path):
    out = tmp_path / "strong.refl"
    for delay in (0.3, 0.8):  # while Python starts or findspots imports its modules
        proc = subprocess.Popen(
            command(out), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        time.sleep(delay)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        # -15: the signal came before Python could install the handler (the shell shows 143 too)
        assert proc.returncode in (143, -15), err
        assert "Traceback" not in err
        if proc.returncode == 143:
            assert err.strip().splitlines() == [f"findspots: stopped by SIGTERM; {STOPPED}"]
        assert not out.exists()


def test_output_piped_into_head_finishes_quietly(tmp_path):
    """``findspots ... | head -3``: the reader goes away early; the run still writes its table and
    exits 0, without an error message per log line."""
    out = tmp_path / "strong.refl"
    run = subprocess.Popen(
        command(out, "output.report=None"), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    run.stdout.readline()
    run.stdout.close()  # as head does after its lines
    _, stderr = run.communicate(timeout=120)
    assert run.returncode == 0, stderr.decode()
    assert b"Logging error" not in stderr and b"Traceback" not in stderr, stderr.decode()
    assert len(read_reflections(out)["bbox"]) == 53
    assert "Saved 53 reflections" in (tmp_path / "findspots.log").read_text()


FINALISER_RUN = """
import os, signal, time
from findspots.app import cli

cli._install_stop_handlers()


class Finaliser:
    def __del__(self):
        os.kill(os.getpid(), signal.{name})  # the stop signal arrives while a finaliser runs
        sum(range(1000))


try:
    Finaliser()  # finalised at once, in the main thread
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        sum(range(1000))
    print("the run went on")
except (cli.Terminated, KeyboardInterrupt) as err:
    print("stopped by", type(err).__name__)
"""


def test_a_stop_signal_during_a_finaliser_still_stops_the_run_quietly():
    """Python drops an exception raised in a finaliser (``__del__``, a weakref callback, a generator
    closed by the garbage collector) with an "Exception ignored in" traceback on stderr: the stop
    signal's exception is raised again once the finaliser is over, and nothing is printed."""
    for name, stopped in (("SIGTERM", "Terminated"), ("SIGINT", "KeyboardInterrupt")):
        result = subprocess.run(
            [sys.executable, "-c", FINALISER_RUN.replace("{name}", name)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == f"stopped by {stopped}", result.stdout + result.stderr
        assert result.stderr == ""
