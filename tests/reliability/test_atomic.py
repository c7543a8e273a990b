"""Outputs are atomic: the reflection file, the logs' final form, hot masks and checkpoint blocks are
written under a temporary name and renamed, so an interruption at any moment leaves either the old file
or the new one, never a mixture."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from findspots.batch.checkpoint import Checkpoints
from findspots.output import refl
from findspots.spotfinder import hot_mask
from findspots.spotfinder.blocks import BlockResult, PanelResult
from findspots.spotfinder.spots import Components
from findspots.spotfinder.strong import ImageStrong
from reliability.cbftools import L_CYST

REPO = Path(__file__).resolve().parents[2]


def table(n: int, value: float) -> dict:
    return {
        "intensity.sum.value": np.full(n, value),
        "id": np.zeros(n, np.int32),
        "xyzobs.px.value": np.full((n, 3), value),
    }


class Interrupted(BaseException):
    """Stands for a signal arriving in the middle of a write."""


def test_reflection_file_interrupted_mid_write_keeps_the_old_one(tmp_path, monkeypatch):
    path = tmp_path / "strong.refl"
    refl.write_reflections(path, table(10, 1.0))
    before = path.read_bytes()
    real = refl._write_table

    def half_then_interrupted(fh, *args):
        real(fh, *args)
        fh.flush()
        raise Interrupted()

    monkeypatch.setattr(refl, "_write_table", half_then_interrupted)
    with pytest.raises(Interrupted):
        refl.write_reflections(path, table(1000, 2.0))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["strong.refl"], "the temporary file was left"


WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from findspots.output.refl import write_reflections
    path = sys.argv[1]
    n = 200_000
    tables = [{"intensity.sum.value": np.full(n, float(v)), "xyzobs.px.value": np.full((n, 3), float(v))}
              for v in (1, 2)]
    k = 0
    while True:
        write_reflections(path, tables[k % 2])
        print(k, flush=True)
        k += 1
    """
)


def test_reflection_file_after_kill_9_at_any_moment_is_old_or_new(tmp_path):
    path = tmp_path / "strong.refl"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    rng = np.random.default_rng(7)
    for _ in range(6):
        proc = subprocess.Popen([sys.executable, str(script), str(path)], stdout=subprocess.PIPE, text=True)
        proc.stdout.readline()  # the first file is complete
        time.sleep(float(rng.uniform(0.0, 0.3)))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        t = refl.read_reflections(path)
        values = np.unique(t["intensity.sum.value"])
        assert len(t) == 200_000 and len(values) == 1 and values[0] in (1.0, 2.0)
        assert np.all(t["xyzobs.px.value"] == values[0])
    # a kill can leave a temporary file, never under the final name, never visible as a result
    assert all(
        p.name.startswith(".strong.refl.")
        for p in tmp_path.iterdir()
        if p.name not in {path.name, script.name}
    )


def test_hot_mask_interrupted_mid_write_keeps_the_old_one(tmp_path, monkeypatch):
    path = tmp_path / "hot_0.npy"
    old = np.ones((4, 5), bool)
    hot_mask.write_hot_mask(path, [old])

    def save_then_interrupted(fh, array):
        fh.write(b"\x93NUMPY partial")
        raise Interrupted()

    monkeypatch.setattr(hot_mask.np, "save", save_then_interrupted)
    with pytest.raises(Interrupted):
        hot_mask.write_hot_mask(path, [np.zeros((4, 5), bool)])
    monkeypatch.undo()
    np.testing.assert_array_equal(np.load(path), old)
    assert [p.name for p in tmp_path.iterdir()] == ["hot_0.npy"]


def _block(frame: int) -> BlockResult:
    empty = Components(np.zeros(0, np.int64), np.zeros(0, np.float64), np.zeros(1, np.int64))
    return BlockResult([ImageStrong(frame, 3)], [PanelResult(empty, empty, 0, 0)], [np.zeros(0, np.int64)])


def test_checkpoint_block_interrupted_mid_write_is_never_half_there(tmp_path, monkeypatch):
    checkpoints = Checkpoints(tmp_path / "ckpt")
    checkpoints.save("a", _block(0))

    def savez_then_interrupted(fh, **arrays):
        fh.write(b"PK\x03\x04 partial zip")
        raise Interrupted()

    monkeypatch.setattr(np, "savez", savez_then_interrupted)
    with pytest.raises(Interrupted):
        checkpoints.save("b", _block(1))
    monkeypatch.undo()
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["a.npz"]
    assert checkpoints.load("a").images[0].frame == 0
    assert checkpoints.load("b") is None


def test_a_damaged_checkpoint_block_is_recomputed_not_trusted(tmp_path):
    checkpoints = Checkpoints(tmp_path / "ckpt")
    checkpoints.save("a", _block(0))
    path = tmp_path / "ckpt" / "a.npz"
    path.write_bytes(path.read_bytes()[:100])
    assert checkpoints.load("a") is None


def test_logs_keep_their_old_form_until_the_run_ends(tmp_path):
    (tmp_path / "findspots.log").write_text("OLD LOG\n")
    (tmp_path / "findspots.debug.log").write_text("OLD DEBUG LOG\n")
    out = tmp_path / "strong.refl"
    folder = Path(f"{out}.findspots-checkpoint")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "findspots.app.cli",
            *map(str, L_CYST),
            f"output.reflections={out}",
            "chunksize=1",
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not list(folder.glob("*.npz")):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    partial = sorted(p.name for p in tmp_path.glob("*.partial"))
    assert partial == [f"findspots.debug.log.{proc.pid}.partial", f"findspots.log.{proc.pid}.partial"]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (tmp_path / "findspots.log").read_text() == "OLD LOG\n"
    assert (tmp_path / "findspots.debug.log").read_text() == "OLD DEBUG LOG\n"
    assert "Finding spots in image 1 to 15" in (tmp_path / f"findspots.log.{proc.pid}.partial").read_text()

    done = subprocess.run(
        [sys.executable, "-m", "findspots.app.cli", *map(str, L_CYST[:2]), f"output.reflections={out}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "Saved" in (tmp_path / "findspots.log").read_text()
    assert sorted(p.name for p in tmp_path.glob("*.partial")) == partial, "only the killed run's logs remain"


def test_a_run_that_fails_before_its_table_leaves_no_hot_mask(tmp_path, monkeypatch):
    """The hot mask is written after the reflection table: a failure writing the table leaves neither."""
    from findspots.app import cli

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(refl, "write_reflections", disk_full)
    argv = [*map(str, L_CYST), "write_hot_mask=True", "output.report=None", "output.reflections=strong.refl"]
    assert cli.run(argv) != 0
    assert not list(tmp_path.glob("hot_mask*")) and not (tmp_path / "strong.refl").exists()
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    assert cli.run(argv) == 0
    assert np.load(tmp_path / "hot_mask_0.npy").shape == (1679, 1475)
