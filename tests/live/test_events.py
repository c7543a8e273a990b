"""output.per_image_events: one JSON line per image, findspots-server's answer for that image."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from images.nxmx_writer import Geometry, write_sweep

from findspots.app.cli import run
from findspots.live.request import parse_request
from findspots.live.spots import answer
from findspots.output.refl import read_reflections

from .conftest import L_CYSTEINE

SWEEP = [p for p in L_CYSTEINE if p.name.startswith("l-cyst_01_")]
# findspots-server's parameters for these tests: d_min/d_max go to the centroids (not the spot finding)
PARAMETERS = ["min_spot_size=2", "d_min=1.2"]


def server_answer(path: str, parameters: list[str]) -> dict:
    """What findspots-server answers for ``path`` with ``parameters``, from findspots.live.spots."""
    figures = answer(parse_request(";".join([path, *parameters])))
    return {name: float(value) for name, value in figures.items() if name != "image"}


def read_events(path: Path) -> dict[int, dict]:
    """The events by index (each index once)."""
    events = [json.loads(line) for line in path.read_text().splitlines()]
    by_index = {e["index"]: e for e in events}
    assert len(by_index) == len(events)
    return by_index


def assert_events_are_server_answers(
    events: dict[int, dict], images: list, parameters: list[str], multi_image: bool = False
) -> None:
    """``multi_image``: ``images`` is one file of that many images (asked for with ``scan_range``)."""
    assert sorted(events) == list(range(1, len(images) + 1))
    for number, image in enumerate(images, start=1):
        event = events[number]
        assert event["image"] == str(image)
        asked = [f"scan_range={number},{number}"] if multi_image else []
        expected = server_answer(str(image), [*parameters, *asked])
        assert list(event) == ["image", "index", *expected]
        for name, value in expected.items():
            assert math.isclose(event[name], value, rel_tol=1e-9), (number, name)


def run_with_events(tmp_path: Path, images: list, parameters: list[str]) -> dict[int, dict]:
    events = tmp_path / "events.jsonl"
    argv = [*map(str, images), *parameters, f"output.per_image_events={events}", "output.report=None"]
    argv += [f"output.reflections={tmp_path / 'strong.refl'}", f"output.log={tmp_path / 'log'}"]
    assert run([*argv, "output.debug_log=None"]) == 0
    return read_events(events)


def test_events_of_an_offline_run_are_the_server_answers(tmp_path):
    events = run_with_events(tmp_path, SWEEP, [*PARAMETERS, "nproc=2"])
    assert_events_are_server_answers(events, SWEEP, PARAMETERS)
    # d_min=1.2 drops image 1's spots at 0.803 and 1.117 A: 7 of its 9 spots (from findspots-server)
    unfiltered = server_answer(str(SWEEP[0]), PARAMETERS[:1])
    assert (events[1]["n_spots_total"], unfiltered["n_spots_total"]) == (7, 9)


def test_an_image_alone_gives_its_event(tmp_path):
    # the event of image 1 counts the spots findspots finds on that image alone
    events = run_with_events(tmp_path, SWEEP, [])
    alone = tmp_path / "alone"
    alone.mkdir()
    argv = [str(SWEEP[0]), f"output.reflections={alone / 'strong.refl'}", "output.report=None"]
    assert run([*argv, f"output.log={alone / 'log'}", "output.debug_log=None"]) == 0
    assert events[1]["n_spots_total"] == len(read_reflections(alone / "strong.refl")["id"]) == 7
    assert events[1]["estimated_d_min"] == -1.0  # no more than 10 spots: no resolution estimate


def test_the_events_of_an_hdf5_sweep_are_numbered_by_frame(tmp_path):
    rng = np.random.default_rng(5)
    frames = rng.poisson(2.0, (5, 60, 70)).astype(np.uint16)
    for k in range(5):  # spot k+1 of 3x3 pixels appears on frame k, another on every frame
        frames[k:, 10 + 8 * k : 13 + 8 * k, 20:23] += 200
        frames[k, 40:43, 50:53] += 300
    master = write_sweep(tmp_path, "s", frames, Geometry(), per_file=2)
    events = run_with_events(tmp_path, [master], ["min_spot_size=2"])
    assert_events_are_server_answers(events, [master] * 5, ["min_spot_size=2"], multi_image=True)
    assert [events[n]["n_spots_total"] for n in range(1, 6)] == [2, 3, 4, 5, 6]
