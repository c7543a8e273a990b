"""Security: input files are never unpickled, the run's own sockets listen on loopback only."""

from __future__ import annotations

import ast
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from findspots.batch.checkpoint import Checkpoints
from findspots.output.refl import read_reflections
from reliability.cbftools import L_CYST

REPO = Path(__file__).resolve().parents[2]


class _Trap:
    """Unpickling this object creates ``marker``: proof that a file was unpickled."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.fixture
def trap(tmp_path):
    marker = tmp_path / "UNPICKLED"
    evil = tmp_path / "evil.pickle"
    evil.write_bytes(pickle.dumps(_Trap(marker), protocol=2))
    yield evil
    assert not marker.exists(), "a file given to findspots was unpickled"


def run(args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "findspots.app.cli", *map(str, args)], cwd=cwd, capture_output=True, text=True
    )


def test_pickle_given_as_an_image_is_refused(tmp_path, trap):
    disguised = tmp_path / "image_00001.cbf"
    disguised.write_bytes(trap.read_bytes())
    for path in (trap, disguised):
        result = run([path], tmp_path)
        assert result.returncode != 0 and path.name in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_pickle_given_as_a_mask_is_refused(tmp_path, trap):
    result = run([L_CYST[0], f"lookup.mask={trap}"], tmp_path)
    assert result.returncode == 2
    assert "pickles are not read" in result.stderr


def test_pickle_given_as_a_reflection_table_is_refused(trap):
    with pytest.raises(ValueError, match="never unpickled"):
        read_reflections(trap)


def test_checkpoint_block_holding_a_pickle_is_not_loaded(tmp_path, trap):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    marker = trap.parent / "UNPICKLED"
    np.savez(folder / "key.npz", frames=np.array([_Trap(marker)], dtype=object))
    assert Checkpoints(folder).load("key") is None


def _dangerous_calls(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        owner = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else ""
        if owner in ("pickle", "cPickle", "dill", "cloudpickle", "marshal") and name in ("load", "loads"):
            found.append((node.lineno, f"{owner}.{name}"))
        if owner == "yaml" and name in ("load", "unsafe_load", "full_load"):
            found.append((node.lineno, f"yaml.{name}"))
        if isinstance(func, ast.Name) and name in ("eval", "exec"):
            found.append((node.lineno, name))
        for kw in node.keywords:
            if kw.arg == "allow_pickle" and not (
                isinstance(kw.value, ast.Constant) and kw.value.value is False
            ):
                found.append((node.lineno, "allow_pickle not False"))
    return found


def test_source_never_unpickles_or_evaluates():
    found = []
    for path in sorted((REPO / "findspots").rglob("*.py")):
        for line, what in _dangerous_calls(ast.parse(path.read_text())):
            found.append(f"{path.relative_to(REPO)}:{line}: {what}")
    assert not found, found


def _listening(pids: set[int]) -> list[str]:
    """Local addresses (hex ip:port from /proc/net/tcp*) of the listening sockets of ``pids``."""
    inodes = set()
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    out = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # LISTEN
                out.append(fields[1])
    return out


def _is_loopback(address: str) -> bool:
    ip = address.split(":")[0]
    return ip == "0100007F" or ip == "00000000000000000000000001000000"  # 127.0.0.1, ::1


def test_local_workers_and_dashboard_listen_on_loopback_only():
    from findspots.batch.executor import local_dask_executor

    executor = local_dask_executor(1)
    try:
        link = executor.client.dashboard_link
        assert link is None or "127.0.0.1" in link, link
        pids = {os.getpid()}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(stat[1]) == os.getpid():
                    pids.add(int(entry.name))
        listening = _listening(pids)
        assert listening, "expected the scheduler, worker and dashboard sockets"
        assert all(_is_loopback(a) for a in listening), listening
    finally:
        executor.close()
