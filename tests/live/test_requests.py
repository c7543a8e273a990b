"""findspots-server's answers: figures, bad requests, the served folder, starting and stopping."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from findspots.live.request import RequestError, parse_request
from findspots.live.server import is_loopback
from findspots.live.spots import answer, image_table
from findspots.output.refl import read_reflections

from .conftest import L_CYSTEINE, THAUMATIN, _stop_group, start_findspots_server

AS_DIALS = ";threshold.algorithm=dispersion;max_spot_size=1000"
# dials.find_spots_server (DIALS 3.12) on the thaumatin image with AS_DIALS
THAUMATIN_DIALS = {
    "image": str(THAUMATIN),
    "d_min_distl_method_1": 2.7584511664484728,
    "d_min_distl_method_2": 2.4127850570265337,
    "estimated_d_min": 1.9573401851298324,
    "n_spots_4A": 485,
    "n_spots_no_ice": 1128,
    "n_spots_total": 1266,
    "noisiness_method_1": 0.06827880512091039,
    "noisiness_method_2": 0.08076923076923077,
    "total_intensity": 609673.0,
}


def assert_figures(got: dict, expected: dict) -> None:
    assert list(got) == list(expected)
    for name, value in expected.items():
        if isinstance(value, str):
            assert got[name] == value
        else:
            assert math.isclose(got[name], value, rel_tol=1e-6), name


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    started = start_findspots_server(["nproc=1"], tmp_path_factory.mktemp("server") / "server.log")
    yield started
    _stop_group(started.process)


def test_answer_is_dials_figures(server):
    status, got = server.get(f"{THAUMATIN}{AS_DIALS}")
    assert status == 200
    assert_figures(got, THAUMATIN_DIALS)


def test_bad_requests_answer_one_line_and_the_server_goes_on(server, tmp_path):
    (tmp_path / "notes.cbf").write_text("not an image\n")
    (tmp_path / "cut.cbf.bz2").write_bytes(THAUMATIN.read_bytes()[:200_000])
    cases = [
        ("/no/such/image.cbf", 404, "/no/such/image.cbf: no such file"),
        (f"{THAUMATIN};foo=3", 400, "Unknown parameter: foo"),
        (f"{THAUMATIN};min_spot_size=x", 400, "spotfinder.filter.min_spot_size=x: 'x' is not an integer"),
        (f"{THAUMATIN};d_min", 400, "d_min: not a name=value parameter"),
        (f"{THAUMATIN};--phil=/etc/passwd", 400, "--phil=/etc/passwd: not a name=value parameter"),
        (f"{THAUMATIN};ice_rings.width=-1", 400, "ice_rings.width=-1: value must be >= 0"),
        (f"{THAUMATIN};index=True", 400, "index/integrate: findspots-server finds spots only"),
        (f"{THAUMATIN};scan_range=3,3", 400, "must be within image range 2..2"),
        (f"{tmp_path}/notes.cbf", 422, "notes.cbf: unrecognised file format"),
        (f"{tmp_path}/cut.cbf.bz2", 422, "cut.cbf.bz2: corrupt or truncated compressed file"),
        (f"{tmp_path}", 400, "is a folder; give the path of an image file"),
    ]
    for target, status, message in cases:
        got_status, body = server.get(target)
        assert got_status == status, target
        assert body == {"image": target.split(";")[0], "error": body["error"]}
        assert message in body["error"] and "\n" not in body["error"], body["error"]
    status, got = server.get(f"{THAUMATIN}{AS_DIALS}")
    assert status == 200 and got["n_spots_total"] == THAUMATIN_DIALS["n_spots_total"]
    status, got = server.get("/")
    assert status == 200 and got["server"] == "findspots-server"


@pytest.mark.parametrize("params", [[], ["threshold.algorithm=dispersion_extended", "max_spot_size=1000"]])
def test_same_spots_as_findspots_on_the_image_alone(params, tmp_path):
    subprocess.run(
        [sys.executable, "-m", "findspots.app.cli", str(THAUMATIN), "output.report=None", *params],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    expected = read_reflections(tmp_path / "strong.pickle")
    table, sequences = image_table(str(THAUMATIN), parse_request(";".join([str(THAUMATIN), *params])).params)
    assert len(sequences) == 1 and len(table["bbox"]) == len(expected["bbox"]) > 1000
    for name in (
        "bbox",
        "xyzobs.px.value",
        "xyzobs.px.variance",
        "intensity.sum.value",
        "panel",
        "id",
        "flags",
    ):
        np.testing.assert_array_equal(np.asarray(table[name]), np.asarray(expected[name]), err_msg=name)


def test_scan_range_picks_one_image_of_a_multi_image_file(server, tmp_path):
    sweep = [p for p in L_CYSTEINE if p.name.startswith("l-cyst_01_")]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "findspots.app.cli",
            *map(str, sweep),
            "output.experiments=sweep.expt",
            "output.report=None",
        ],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    status, whole = server.get(f"{tmp_path}/sweep.expt")
    assert status == 200
    # one request over a whole sweep sums it up, as DIALS's server does: every spot of the sweep
    assert whole["n_spots_total"] == len(read_reflections(tmp_path / "strong.pickle")["bbox"])
    for number in (1, 12):
        status, one = server.get(f"{tmp_path}/sweep.expt;scan_range={number},{number}")
        assert status == 200
        status, alone = server.get(str(sweep[number - 1]))
        assert_figures({**one, "image": alone["image"]}, alone)
    assert one["n_spots_no_ice"] > 10  # image 12 reaches the resolution estimates


def test_request_parameters():
    request = parse_request(
        f"{THAUMATIN};filter=False;width=0.01;d_min=2;d_max=20;spotfinder.filter.ice_rings.filter=True"
    )
    # the server's own names first (filter= is ice_rings.filter, as in DIALS), then findspots's
    assert (request.filter_ice, request.ice_width, request.d_min, request.d_max) == (False, 0.01, 2.0, 20.0)
    sf = request.params.spotfinder
    assert sf.filter.d_min is None and sf.filter.d_max is None  # applied to the centroids instead
    assert sf.filter.ice_rings.filter is True
    assert request.path == str(THAUMATIN) and request.image == str(THAUMATIN)
    with pytest.raises(RequestError) as err:
        parse_request(f"{THAUMATIN};d_min=Auto")
    assert err.value.status == 400


def test_d_min_filters_centroids_after_spot_finding():
    full = answer(parse_request(f"{THAUMATIN}{AS_DIALS};ice_rings.filter=False"))
    cut = answer(parse_request(f"{THAUMATIN}{AS_DIALS};ice_rings.filter=False;d_min=4"))
    # the spots beyond 4 A are kept, unchanged; the others are dropped after spot finding
    assert cut["n_spots_total"] == cut["n_spots_4A"] == full["n_spots_4A"] == 485


@pytest.fixture
def served(tmp_path):
    """A served folder with an image, links in and out, and an image beside it outside."""
    top = tmp_path / "served"
    top.mkdir()
    shutil.copy(THAUMATIN, top / "image.cbf.bz2")
    shutil.copy(THAUMATIN, tmp_path / "outside.cbf.bz2")
    (top / "inner_link.cbf.bz2").symlink_to(top / "image.cbf.bz2")
    (top / "outer_link.cbf.bz2").symlink_to(THAUMATIN)
    (top / "data").symlink_to(THAUMATIN.parents[1])
    (top / "sweep.expt").write_text("{}")
    return top


def test_root_serves_only_its_folder(findspots_server, served):
    server = findspots_server("nproc=1", f"root={served}")
    top = str(served)
    cases = [
        (f"{top}/image.cbf.bz2", 200),
        (f"{top}/inner_link.cbf.bz2", 200),
        (f"{top}/../outside.cbf.bz2", 403),
        (f"{top}/outer_link.cbf.bz2", 403),
        (f"{top}/data/thaumatin_grid/{THAUMATIN.name}", 403),
        (f"{top}/data/../image.cbf.bz2", 403),  # .. after a link leaves through the link's target
        (str(THAUMATIN), 403),
        ("/etc/passwd", 403),
        (f"{top}/missing.cbf", 404),
        (f"{served.parent}/missing.cbf", 403),  # outside: not even whether it exists
        (f"{top}/sweep.expt", 403),  # an experiment list could name images anywhere
    ]
    for target, status in cases:
        got_status, body = server.get(target + AS_DIALS)
        assert got_status == status, target
        if status == 200:
            assert_figures(body, {**THAUMATIN_DIALS, "image": target})
        elif status == 403:
            assert (
                body["error"] == f"{target}: outside the served folder {served}"
                or "experiment" in body["error"]
            )


@pytest.mark.parametrize(
    "args, message",
    [
        (["host=0.0.0.0"], "host=0.0.0.0 is reachable from other machines: give root=DIR"),
        (["root=/no/such/folder"], "root=/no/such/folder: no such folder"),
        (["d_min=2"], "d_min=2: spot-finding parameters go in each request"),
        (["port=x"], "port=x"),
        (["nproc"], "nproc: not a name=value parameter"),
    ],
)
def test_refuses_to_start(args, message):
    result = subprocess.run(
        [sys.executable, "-c", "from findspots.live.server import main; main()", "port=0", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("findspots-server: error: ") and message in result.stderr


def test_is_loopback():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("127.1.2.3")
    assert not is_loopback("0.0.0.0") and not is_loopback("")


def test_dials_client_pings_and_stops_it(findspots_server):
    if shutil.which("dials.find_spots_client") is None:
        pytest.skip("DIALS is not installed (apt-get install -y dials)")
    server = findspots_server("nproc=1")
    run = ["dials.find_spots_client", "host=127.0.0.1", f"port={server.port}"]
    ping = subprocess.run([*run, "ping"], capture_output=True, text=True, timeout=60)
    assert ping.returncode == 0 and ping.stdout.strip() == "Success"
    subprocess.run([*run, "stop", "nproc=2"], capture_output=True, timeout=60, check=True)
    assert server.process.wait(30) == 0
    assert server.process.stdout.read().strip() == "findspots-server: stopped"


def test_ctrl_c_request_stops_it(findspots_server):
    server = findspots_server("nproc=1")
    assert server.get("/Ctrl-C") == (200, {"stopping": True})
    assert server.process.wait(30) == 0


@pytest.mark.slow
def test_dask_workers_answer_as_local_ones():
    """The cluster path (mp.method): requests as tasks of a dask cluster, here a local one."""
    from findspots.batch.executor import local_dask_executor
    from findspots.live.workers import DaskWorkers

    request = parse_request(f"{THAUMATIN}{AS_DIALS}")
    workers = DaskWorkers(local_dask_executor(1), "one local dask worker")
    try:
        assert_figures(workers.run(request), THAUMATIN_DIALS)
    finally:
        workers.close()
    assert os.path.exists(THAUMATIN)
