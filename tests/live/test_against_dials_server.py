"""DIALS's own client against findspots-server and against DIALS 3.12's dials.find_spots_server.

The same images and parameters through ``dials.find_spots_client`` give the same XML from both
servers, and the JSON answers agree to 1e-6 relative. ``threshold.algorithm=dispersion
max_spot_size=1000`` makes findspots's defaults DIALS's (findspots keeps the seed's defaults). The
``dispersion_extended`` threshold is left out: DIALS 3.12's differs from current DIALS's, which findspots
follows, next to masked pixels (docs/departures.md#dials-versions; a count or two of intensity on these
images); test_requests.py checks it against ``findspots IMAGE``.
"""

from __future__ import annotations

import math
import subprocess

import pytest

from .conftest import L_CYSTEINE, THAUMATIN

pytestmark = pytest.mark.slow

AS_DIALS = ["threshold.algorithm=dispersion", "max_spot_size=1000"]
# l-cyst_01 images 10-15 have more than 10 spots: their resolution estimates are computed
BUSY = [p for p in L_CYSTEINE if p.name.startswith("l-cyst_01_0001")]
CASES = {
    "every bundled image": (L_CYSTEINE + [THAUMATIN], AS_DIALS),
    "d_min, ice rings kept": ([THAUMATIN, *BUSY], [*AS_DIALS, "d_min=3", "ice_rings.filter=False"]),
    "d_max, wide ice rings": ([THAUMATIN, *BUSY], [*AS_DIALS, "d_max=6", "ice_rings.width=0.02"]),
    "threshold and size": ([THAUMATIN, *BUSY], [*AS_DIALS, "sigma_strong=4", "min_spot_size=2", "gain=1.5"]),
    "no spots at all": ([THAUMATIN], [*AS_DIALS, "sigma_strong=1000"]),
    "one spot left by d_min": ([THAUMATIN], [*AS_DIALS, "d_min=50"]),
}
FIGURES = (
    "n_spots_total",
    "n_spots_no_ice",
    "n_spots_4A",
    "total_intensity",
    "estimated_d_min",
    "d_min_distl_method_1",
    "d_min_distl_method_2",
    "noisiness_method_1",
    "noisiness_method_2",
)


def client(port: int, images: list, params: list[str]) -> str:
    """What ``dials.find_spots_client`` prints for these images and parameters."""
    result = subprocess.run(
        ["dials.find_spots_client", "host=127.0.0.1", f"port={port}", "nproc=4", *map(str, images), *params],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return result.stdout


@pytest.fixture(scope="module")
def ours(tmp_path_factory):
    from .conftest import _stop_group, start_findspots_server

    server = start_findspots_server(["nproc=2"], tmp_path_factory.mktemp("ours") / "server.log")
    yield server
    _stop_group(server.process)


@pytest.mark.parametrize("case", CASES)
def test_same_xml_and_figures(case, ours, dials_server):
    images, params = CASES[case]
    theirs_xml = client(dials_server.port, images, params)
    assert theirs_xml.count("<spot_count>") == len(images)  # DIALS answered every image with figures
    assert client(ours.port, images, params) == theirs_xml
    target = ";".join(params)
    for image in images:
        status, expected = dials_server.get(f"{image};{target}")
        assert status == 200
        status, got = ours.get(f"{image};{target}")
        assert status == 200
        assert list(got) == list(expected)  # the same keys, in DIALS's order
        assert got["image"] == expected["image"] == str(image)
        for name in FIGURES:
            assert math.isclose(got[name], expected[name], rel_tol=1e-6), (image.name, name)


def test_estimates_are_exercised(ours):
    """The cases above reach the resolution estimates (more than 10 spots off ice), not only -1."""
    status, got = ours.get(f"{BUSY[-1]};{';'.join(AS_DIALS)}")
    assert status == 200 and got["n_spots_no_ice"] > 10 and got["estimated_d_min"] > 0
