"""input.stream: a series received from a Dectris stream gives the spots of the detector's file."""

from __future__ import annotations

from pathlib import Path

import h5py
import hdf5plugin
import numpy as np
import pytest
from images.nxmx_writer import Geometry, write_sweep

from findspots.app.cli import run
from findspots.images.inputs import load_inputs
from findspots.images.nexus import nexus_sequence
from findspots.output.refl import read_reflections

from . import stream_publisher as publish
from .test_events import SWEEP, assert_events_are_server_answers, read_events
from .test_watch import wait_for_lines

SERIES = 7
CUTOFF = 388704  # the Pilatus 2M's trusted maximum
TIMEOUT = "watch_timeout=3"


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """The l-cysteine sweep (Pilatus 2M) as an NXmx sweep (uint32, one bitshuffle-LZ4 chunk per frame)
    and its pixel mask (the module gaps)."""
    (seq,) = load_inputs([str(p) for p in SWEEP])
    frames = np.stack([seq.get_raw(i)[0] for i in range(len(seq))]).astype(np.uint32)
    gaps = ~seq.static_masks()[0]
    mask = gaps.astype(np.uint32)
    folder = tmp_path_factory.mktemp("stream_nxmx")
    g = Geometry(trusted=(0, CUTOFF), pixel_mask=mask, width=0.5)
    return write_sweep(folder, "lcyst", frames, g, per_file=len(frames)), mask


def config(nimages: int = 15) -> dict:
    """A detector configuration as the header sends it (SI units, beam centre in pixels)."""
    return {
        "beam_center_x": 250.3,
        "beam_center_y": 300.7,
        "detector_distance": 0.1,
        "wavelength": 0.9795,
        "x_pixel_size": 0.000172,
        "y_pixel_size": 0.000172,
        "sensor_thickness": 0.00045,
        "sensor_material": "Si",
        "countrate_correction_count_cutoff": CUTOFF,
        "omega_start": 0.0,
        "omega_increment": 0.5,
        "frame_time": 0.1,
        "count_time": 0.0999,
        "nimages": nimages,
        "ntrigger": 1,
        "description": "Dectris EIGER2 Si 4M",
    }


def data_file(master: Path) -> Path:
    return master.with_name(master.name.replace("_master", "_data_000001"))


def findspots(tmp_path: Path, name: str, *args: str) -> int:
    argv = [*args, f"output.reflections={tmp_path / name}.refl", f"output.log={tmp_path / name}.log"]
    return run([*argv, "output.debug_log=None", "output.report=None"])


def streamed(tmp_path: Path, messages: list[list[bytes]], *args: str) -> int:
    """Run findspots on ``messages`` sent by a publisher; returns its exit status."""
    publisher = publish.Publisher(messages)
    try:
        return findspots(tmp_path, "stream", f"input.stream={publisher.url}", TIMEOUT, *args)
    finally:
        publisher.join()


def test_a_streamed_series_gives_the_spots_of_its_nxmx_file(tmp_path, sweep):
    master, mask = sweep
    assert findspots(tmp_path, "file", str(master)) == 0
    events = tmp_path / "events.jsonl"
    messages = [
        publish.header(SERIES, config(), mask),
        *publish.frames(data_file(master), SERIES),
        publish.end(SERIES),
    ]
    assert streamed(tmp_path, messages, f"output.per_image_events={events}", "nproc=2") == 0
    from_file = (tmp_path / "file.refl").read_bytes()
    assert (tmp_path / "stream.refl").read_bytes() == from_file
    assert len(read_reflections(tmp_path / "file.refl")["bbox"]) == 53  # as from the sweep's CBF files
    # the kept file: the frames as stored (same pixels), the header's geometry and trusted range
    kept = tmp_path / "stream.refl.stream.h5"
    seq, nx = nexus_sequence(str(kept)), nexus_sequence(str(master))
    for i in (0, 7, 14):
        np.testing.assert_array_equal(seq.get_raw(i)[0], nx.get_raw(i)[0])
        np.testing.assert_array_equal(seq.get_mask(i)[0], nx.get_mask(i)[0])
    panel = seq.detector[0]
    assert panel.trusted_range == (0.0, float(CUTOFF)) and panel.name == "Dectris EIGER2 Si 4M"
    np.testing.assert_allclose(panel.origin, (-250.3 * 0.172, 300.7 * 0.172, -100.0))
    assert panel.thickness == pytest.approx(0.45) and seq.beam.wavelength == 0.9795
    assert seq.scan.oscillation == (0.0, 0.5) and seq.scan.image_range == (1, 15)
    with h5py.File(kept, "r") as fh:  # each payload stored unchanged, as one chunk
        ds = fh["/entry/data/data"]
        assert ds.shape == (15, 1679, 1475) and ds.dtype == np.uint32
        for k in (0, 14):
            assert ds.id.read_direct_chunk((k, 0, 0))[1] == messages[k + 1][2]
    # events: per image, findspots-server's answer for that image of the kept file
    assert_events_are_server_answers(read_events(events), [kept] * 15, [], multi_image=True)


@pytest.mark.parametrize("nproc", [1, 2])
def test_events_are_written_while_the_series_arrives(tmp_path, sweep, nproc):
    master, mask = sweep
    events = tmp_path / "events.jsonl"
    frames = publish.frames(data_file(master), SERIES)[:4]
    paused = []

    def pause() -> None:  # the publisher goes on once the first two frames' events are in the file
        wait_for_lines(events, 2)
        paused.append(read_events(events))

    messages = [publish.header(SERIES, config(4), mask), *frames[:2], pause, *frames[2:], publish.end(SERIES)]
    assert streamed(tmp_path, messages, f"output.per_image_events={events}", f"nproc={nproc}") == 0
    kept = tmp_path / "stream.refl.stream.h5"
    assert sorted(paused[0]) == [1, 2]  # read before frames 3 and 4 were sent
    assert_events_are_server_answers(read_events(events), [kept] * 4, [], multi_image=True)
    assert all(paused[0][n] == read_events(events)[n] for n in (1, 2))
    assert findspots(tmp_path, "file4", str(master), "scan_range=1,4") == 0
    assert (tmp_path / "stream.refl").read_bytes() == (tmp_path / "file4.refl").read_bytes()


def test_lz4_frames_decode_to_the_same_pixels(tmp_path, sweep):
    master, mask = sweep
    nx = nexus_sequence(str(master))
    frames = np.stack([nx.reader.frame(i) for i in range(3)])
    lz4 = tmp_path / "lz4.h5"
    with h5py.File(lz4, "w") as fh:
        fh.create_dataset("/entry/data/data", data=frames, chunks=(1, *frames.shape[1:]), **hdf5plugin.LZ4())
    messages = [
        publish.header(SERIES, config(3)),
        *publish.frames(lz4, SERIES),
        publish.end(SERIES),
    ]
    assert streamed(tmp_path, messages) == 0
    kept = nexus_sequence(str(tmp_path / "stream.refl.stream.h5"))
    for i in range(3):
        np.testing.assert_array_equal(kept.reader.frame(i), frames[i])


def test_a_stream_stopped_mid_series_keeps_the_spots_of_its_frames(tmp_path, sweep, capsys):
    master, mask = sweep
    frames = publish.frames(data_file(master), SERIES)
    assert streamed(tmp_path, [publish.header(SERIES, config(), mask), *frames[:6]]) == 0
    warnings = [line for line in capsys.readouterr().out.splitlines() if line.startswith("WARN: ")]
    assert len(warnings) == 1 and warnings[0].endswith(
        f": no message for 3 s after 6 frame(s) of series {SERIES} and no end of series: the stream "
        "stopped mid-series; finding spots on the frames received"
    )
    assert findspots(tmp_path, "file6", str(master), "scan_range=1,6") == 0
    assert (tmp_path / "stream.refl").read_bytes() == (tmp_path / "file6.refl").read_bytes()


def test_geometry_from_an_experiment_file_when_the_header_has_none(tmp_path, sweep):
    master, _ = sweep
    assert findspots(tmp_path, "file", str(master)) == 0
    # the models written by a run on the file (its table gets that run's identifiers: not compared)
    assert findspots(tmp_path, "models", str(master), f"output.experiments={tmp_path / 'models.expt'}") == 0
    messages = [publish.header(SERIES, None), *publish.frames(data_file(master), SERIES), publish.end(SERIES)]
    assert streamed(tmp_path, messages, str(tmp_path / "models.expt")) == 0
    assert (tmp_path / "stream.refl").read_bytes() == (tmp_path / "file.refl").read_bytes()


def test_a_consumer_that_missed_frames_refuses_the_series(tmp_path, sweep, capsys):
    master, mask = sweep
    frames = publish.frames(data_file(master), SERIES)
    every_other = [publish.header(SERIES, config(), mask), *frames[::2], publish.end(SERIES)]
    assert streamed(tmp_path, every_other) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        f"findspots: error: input.stream=tcp://127.0.0.1:{err[-1].split(':')[4]}: this consumer received 8 "
        f"of frames 0..14 of series {SERIES} (frame 1 and 6 more missing): another consumer on the same "
        "stream took them (PULL hands each frame to one consumer); run one findspots per stream"
    )
    assert not (tmp_path / "stream.refl").exists() and not (tmp_path / "stream.refl.stream.h5").exists()


@pytest.mark.parametrize(
    "message, why",
    [
        ([b"not json"], "part 1 is not JSON"),
        (
            [b'{"htype": "dimage-1.0", "series": 7, "frame": 0}', b"{}", b""],
            "the image's part 2 has htype None, expected dimage_d-1.0",
        ),
        (
            [
                b'{"htype": "dimage-1.0", "series": 7, "frame": 0}',
                b'{"htype": "dimage_d-1.0", "shape": [487, 600], "type": "uint32", "encoding": "bs16-lz4<"}',
                b"",
            ],
            "the image's description: encoding bs16-lz4< does not fit type uint32",
        ),
    ],
)
def test_a_bad_message_is_one_line(tmp_path, sweep, capsys, message, why):
    _, mask = sweep
    assert streamed(tmp_path, [publish.header(SERIES, config(), mask), message]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("findspots: error: input.stream=tcp://127.0.0.1:")
    assert err[0].endswith(
        f": message 2 is not a Dectris stream v1 message ({why}); check that this is the detector's stream "
        "interface (SIMPLON stream version 1)"
    )


def test_a_frame_before_its_header_is_one_line(tmp_path, sweep, capsys):
    master, _ = sweep
    assert streamed(tmp_path, publish.frames(data_file(master), SERIES)[3:4]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith(
        f": frame 3 of series {SERIES} arrived before its header (joined mid-series); start findspots before "
        "the detector is armed"
    )
