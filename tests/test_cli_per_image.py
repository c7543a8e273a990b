"""``output.per_image=FILE`` and ``output.grid`` on the command line.

The JSON file of a run equals, byte for byte, what DIALS 3.12's ``dials.spot_counts_per_image json=FILE``
wrote on DIALS's spots of the same images (``data/reference/<set>/per_image/``, parameters from its
``command.txt``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from findspots.app.cli import run

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"
IMAGES = {
    "l_cysteine_sweep01": sorted((DATA / "l_cysteine").glob("l-cyst_01_*.cbf.bz2")),
    "thaumatin_grid": [DATA / "thaumatin_grid" / "thau_3_2_0002.cbf.bz2"],
}
# as in each reference's command.txt (dials.find_spots ... nproc=1 output.shoeboxes=False)
DIALS_PARAMETERS = ["threshold.algorithm=dispersion", "filter.max_spot_size=1000", "nproc=1"]


def _argv(tmp_path: Path, images, *extra: str) -> list[str]:
    return [
        *map(str, images),
        *DIALS_PARAMETERS,
        "output.shoeboxes=False",
        f"output.reflections={tmp_path / 'strong.refl'}",
        f"output.log={tmp_path / 'log'}",
        f"output.debug_log={tmp_path / 'debug'}",
        "output.report=None",
        *extra,
    ]


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_per_image_json_is_dials_file(name, tmp_path):
    out = tmp_path / "per_image.json"
    assert run(_argv(tmp_path, IMAGES[name], f"output.per_image={out}")) == 0
    reference = DATA / "reference" / name / "per_image" / "per_image.json"
    assert out.read_bytes() == reference.read_bytes()
    assert not list(tmp_path.glob(".*.tmp"))  # written through a temporary file, renamed


def test_per_image_timing_is_logged(tmp_path):
    out = tmp_path / "per_image.json"
    assert run(_argv(tmp_path, IMAGES["thaumatin_grid"], f"output.per_image={out}")) == 0
    assert "Per-image analysis: " in (tmp_path / "debug").read_text()
    assert json.loads(out.read_text())["n_spots_total"] == [1266]


def test_per_image_file_that_cannot_be_written(tmp_path, capsys):
    target = tmp_path / "missing" / "per_image.json"
    assert run(_argv(tmp_path, IMAGES["thaumatin_grid"], f"output.per_image={target}")) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"findspots: error: output.per_image={target}: directory")
    assert not (tmp_path / "strong.refl").exists()


def test_a_wrong_grid_size_fails_before_any_image_is_read(tmp_path, capsys, monkeypatch):
    from findspots.images.models import ImageSequence

    def no_pixels(self, index):
        raise AssertionError("pixel data read")

    monkeypatch.setattr(ImageSequence, "get_raw", no_pixels)
    argv = _argv(tmp_path, IMAGES["l_cysteine_sweep01"], "output.grid=4,3")
    assert run(argv) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == (
        "findspots: error: output.grid=4,3: 4 x 3 = 12 grid cells but 15 images are to be processed; "
        "give NX,NY with NX x NY = 15"
    )
    # the images processed are those of the scan range
    argv = _argv(tmp_path, IMAGES["l_cysteine_sweep01"], "output.grid=5,3", "scan_range=1,12")
    assert run(argv) == 2
    assert "5 x 3 = 15 grid cells but 12 images" in capsys.readouterr().err


def test_grid_report_from_a_run(tmp_path):
    report = tmp_path / "report.html"
    argv = _argv(tmp_path, IMAGES["l_cysteine_sweep01"], "output.grid=5,3", "output.grid_order=snake")
    argv[argv.index("output.report=None")] = f"output.report={report}"
    assert run(argv) == 0
    page = report.read_text()
    assert page.count("data:image/png;base64,") == 5  # the four figures and the grid's heat maps
    assert "output.grid=5,3" in page and "every odd row right to left (snake)" in page
