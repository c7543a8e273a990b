"""input.watch on an NXmx master: frames appended under SWMR, or data files appearing one by one, are
taken as they become whole, with events; the outputs are those of an offline run on the master."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import h5py
import hdf5plugin
import numpy as np
import pytest
from images.nxmx_writer import Geometry, write_sweep

from findspots.app.cli import run
from findspots.images.inputs import load_inputs
from findspots.images.nexus_follow import GrowingMaster

from .test_events import SWEEP, assert_events_are_server_answers, read_events
from .test_watch import copy_in_chunks, wait_for_lines

FRAMES = 4
WRITER = Path(__file__).with_name("swmr_writer.py")


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory) -> dict[int, Path]:
    """The first frames of the l-cysteine sweep (Pilatus 2M) as NXmx sweeps (uint32, one bitshuffle-LZ4
    chunk per frame, the module gaps as pixel mask) of one data file and of two: frames per data file ->
    master. The tests write their data files again while findspots follows a copy of the master."""
    (seq,) = load_inputs([str(p) for p in SWEEP[:FRAMES]])
    frames = np.stack([seq.get_raw(i)[0] for i in range(len(seq))]).astype(np.uint32)
    geometry = Geometry(trusted=(0, 388704), pixel_mask=(~seq.static_masks()[0]).astype(np.uint32))
    out = {}
    for per_file in (FRAMES, 2):
        folder = tmp_path_factory.mktemp(f"nxmx{per_file}")
        out[per_file] = write_sweep(folder, "lcyst", frames, geometry, per_file=per_file)
    return out


def findspots(folder: Path, *args: str) -> int:
    folder.mkdir(exist_ok=True)
    argv = [*args, f"output.reflections={folder / 'strong.refl'}", f"output.log={folder / 'log'}"]
    return run([*argv, "output.debug_log=None", "output.report=None"])


@pytest.fixture(scope="module")
def offline(sweeps, tmp_path_factory) -> bytes:
    """The reflection table of an offline run on the complete sweep."""
    folder = tmp_path_factory.mktemp("offline")
    assert findspots(folder, str(sweeps[FRAMES])) == 0
    return (folder / "strong.refl").read_bytes()


def data_file(master: Path, k: int) -> Path:
    return master.with_name(master.name.replace("_master", f"_data_{k:06d}"))


def beamline_copy(master: Path, folder: Path) -> Path:
    """A copy of ``master`` alone in ``folder``: its data files are still to be written."""
    folder.mkdir()
    return Path(shutil.copy(master, folder))


def follow(folder: Path, master: Path, events: Path | None, *extra: str) -> int:
    asked = [f"output.per_image_events={events}"] if events else []
    return findspots(folder, str(master), "input.watch=True", *asked, *extra)


class SwmrWriter:
    """``swmr_writer.py`` in its own process: appends the frames of ``source`` to ``target``."""

    def __init__(self, source: Path, target: Path, frames: int, events: Path | None, hold: float):
        args = [str(source), str(target), str(frames), str(events or "-"), str(hold)]
        self.process = subprocess.Popen(
            [sys.executable, str(WRITER), *args], stdout=subprocess.PIPE, text=True
        )

    def finish(self) -> str:
        """Its output, once it has ended."""
        out, _ = self.process.communicate(timeout=120)
        assert self.process.returncode == 0, out
        return out


@pytest.mark.parametrize("nproc", [1, 2])  # the events read in this process, or in worker processes
def test_frames_appended_under_swmr_give_events_as_they_arrive_and_the_offline_spots(
    tmp_path, sweeps, offline, nproc
):
    master = beamline_copy(sweeps[FRAMES], tmp_path / "beamline")
    events = tmp_path / "run" / "events.jsonl"
    # each frame after the first is written only once the previous one's event is in the file
    writer = SwmrWriter(data_file(sweeps[FRAMES], 1), data_file(master, 1), FRAMES, events, hold=0)
    code = follow(tmp_path / "run", master, events, "input.watch_timeout=3", f"nproc={nproc}")
    assert writer.finish().count("written") == FRAMES and code == 0
    assert_events_are_server_answers(read_events(events), [master] * FRAMES, [], multi_image=True)
    assert (tmp_path / "run" / "strong.refl").read_bytes() == offline
    log = (tmp_path / "run" / "log").read_text()
    assert f"Image {FRAMES} arrived: {master}" in log
    assert f"No new image for 3 s: following ends with {FRAMES} image(s)" in log


def test_watch_images_ends_while_the_writer_still_holds_the_file(tmp_path, sweeps):
    master = beamline_copy(sweeps[FRAMES], tmp_path / "beamline")
    writer = SwmrWriter(data_file(sweeps[FRAMES], 1), data_file(master, 1), 3, None, hold=60)
    try:
        # the run after following reads the file while the writer holds it, as an SWMR reader
        assert follow(tmp_path / "run", master, None, "input.watch_images=2", "input.watch_timeout=60") == 0
        assert writer.process.poll() is None
    finally:
        writer.process.kill()
        writer.process.communicate()
    log = (tmp_path / "run" / "log").read_text()
    assert "2 image(s) arrived: following ends" in log
    assert findspots(tmp_path / "offline", str(sweeps[FRAMES]), "scan_range=1,2") == 0
    assert (tmp_path / "run" / "strong.refl").read_bytes() == (
        tmp_path / "offline" / "strong.refl"
    ).read_bytes()


class DataFiles(threading.Thread):
    """Writes the data files of ``source``'s sweep next to ``master`` one after the other, each once the
    events of the frames before it are in ``events``: renamed into place from a temporary name, or
    (``in_place``) copied slowly under its own name, so that findspots meets half-written files."""

    def __init__(self, source: Path, master: Path, events: Path, in_place: bool):
        super().__init__(daemon=True)
        self.source, self.master, self.events, self.in_place = source, master, events, in_place
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for k in (1, 2):
                if k > 1:
                    wait_for_lines(self.events, 2 * (k - 1))
                target = data_file(self.master, k)
                if self.in_place:
                    copy_in_chunks(data_file(self.source, k), target, pause=0.02)
                else:
                    partial = target.with_name(f".{target.name}.part")
                    copy_in_chunks(data_file(self.source, k), partial, pause=0.0)
                    os.replace(partial, target)
        except BaseException as err:  # noqa: BLE001 (raised again in the test's thread)
            self.error = err


@pytest.mark.parametrize("in_place", [False, True], ids=["renamed", "written-in-place"])
def test_data_files_appearing_one_by_one_give_events_and_the_offline_spots(
    tmp_path, sweeps, offline, in_place
):
    master = beamline_copy(sweeps[2], tmp_path / "beamline")
    events = tmp_path / "run" / "events.jsonl"
    writer = DataFiles(sweeps[2], master, events, in_place)
    writer.start()
    code = follow(tmp_path / "run", master, events, "input.watch_timeout=3")
    writer.join()
    assert writer.error is None and code == 0
    assert_events_are_server_answers(read_events(events), [master] * FRAMES, [], multi_image=True)
    assert (tmp_path / "run" / "strong.refl").read_bytes() == offline


@pytest.mark.parametrize("written", [True, False], ids=["no-data-file", "no-master"])
def test_no_frame_within_the_timeout_is_one_line(tmp_path, sweeps, capsys, written):
    master = beamline_copy(sweeps[2], tmp_path / "beamline")
    if not written:
        master.unlink()
    assert follow(tmp_path / "run", master, None, "input.watch_timeout=1") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"findspots: error: input.watch=True: no complete frame of {master} appeared within 1 s; check that "
        "the detector writes there, or raise input.watch_timeout"
    ]


def test_a_master_whose_frames_are_a_virtual_dataset_is_refused_in_one_line(tmp_path, sweeps, capsys):
    master = beamline_copy(sweeps[FRAMES], tmp_path / "beamline")
    shutil.copy(data_file(sweeps[FRAMES], 1), data_file(master, 1))
    with h5py.File(master, "a") as fh:
        del fh["entry/data/data_000001"]
        layout = h5py.VirtualLayout((FRAMES, 1679, 1475), np.uint32)
        layout[:] = h5py.VirtualSource(data_file(master, 1).name, "/entry/data/data", (FRAMES, 1679, 1475))
        fh["entry/data"].create_virtual_dataset("data", layout)
    assert follow(tmp_path / "run", master, None, "input.watch_timeout=5") == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"findspots: error: input.watch=True on {master}, whose frames are a virtual dataset, is not yet "
        "supported by findspots; leave it at its default"
    ]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["scan_range=1,2"],
            "input.watch=True on {master} takes its frames as they are written; leave out "
            "spotfinder.scan_range (input.watch_images=N stops after N frames)",
        ),
        (
            ["{master}"],
            "input.watch=True: needs input.template=DIR/name_#####.cbf (the images to follow) or the one "
            "NXmx master file whose frames to follow",
        ),
    ],
)
def test_watch_parameter_errors_on_a_master_are_one_line(tmp_path, sweeps, capsys, extra, message):
    master = sweeps[FRAMES]
    extra = [e.format(master=master) for e in extra]
    assert follow(tmp_path / "run", master, None, *extra) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"findspots: error: {message.format(master=master)}"
    ]


def test_a_frame_counts_once_its_data_file_is_whole_and_its_chunk_written(tmp_path, sweeps):
    master = beamline_copy(sweeps[2], tmp_path / "beamline")
    growing = GrowingMaster(str(master))
    assert growing.frames() == 0  # no data file yet
    first, target = data_file(sweeps[2], 1).read_bytes(), data_file(master, 1)
    target.write_bytes(first[: len(first) // 2])
    assert [growing.frames(), growing.frames()] == [0, 0]  # half a file: HDF5 cannot open it
    target.write_bytes(first)
    assert [growing.frames(), growing.frames()] == [0, 2]  # whole once its size held between two looks
    # the second file has room for two frames but only its first chunk is written
    with h5py.File(data_file(sweeps[2], 2)) as src, h5py.File(data_file(master, 2), "w") as dst:
        given = src["entry/data/data"]
        data = dst.create_dataset(
            "entry/data/data",
            shape=given.shape,
            chunks=given.chunks,
            dtype=given.dtype,
            **hdf5plugin.Bitshuffle(cname="lz4"),
        )
        data.id.write_direct_chunk((0, 0, 0), given.id.read_direct_chunk((0, 0, 0))[1])
    assert [growing.frames(), growing.frames(), growing.frames()] == [2, 3, 3]
