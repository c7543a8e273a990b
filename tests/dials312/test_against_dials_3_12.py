"""Both programs on the same images and parameters: Debian's DIALS 3.12 run live.

DIALS 3.12 agrees with current DIALS for the classic ``dispersion`` threshold on these images
(docs/departures.md#dials-versions); its trusted range excludes a pixel exactly at the count cutoff, which
none of these images holds. Skipped when ``dials.find_spots`` is not installed
(``apt-get install -y dials``; `.ci/run` installs it).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from spotcompare import assert_same_spots
from test_dials_parity import run_findspots

from findspots.output.refl import read_reflections

pytestmark = pytest.mark.skipif(shutil.which("dials.find_spots") is None, reason="DIALS is not installed")

REPO = Path(__file__).resolve().parents[2]
IMAGES = sorted((REPO / "data" / "l_cysteine").glob("l-cyst_01_*.cbf.bz2"))
BASE = ["threshold.algorithm=dispersion", "filter.max_spot_size=1000"]


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("dials_import")
    subprocess.run(["dials.import", *map(str, IMAGES)], cwd=folder, check=True, capture_output=True)
    return folder / "imported.expt"


def run_dials(imported: Path, folder: Path, args: list[str]) -> tuple[object, str]:
    folder.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["dials.find_spots", str(imported), "nproc=1", *args, "output.reflections=dials.refl"],
        cwd=folder,
        capture_output=True,
        text=True,
        check=True,
    )
    return read_reflections(folder / "dials.refl"), result.stdout


CASES = {
    "defaults": [],
    "threshold": [
        "kernel_size=2,2",
        "sigma_strong=4",
        "sigma_background=5",
        "min_local=0",
        "global_threshold=3",
        "gain=1.5",
    ],
    "filters": ["border=20", "min_spot_size=4", "max_spot_size=30", "max_separation=1.5"],
    "ranges": ["scan_range=2,7", "scan_range=9,14", "region_of_interest=100,1300,150,1500"],
    "spot_density": ["spot_density.filter=True", "min_spot_size=1"],
    "trusted": ["maximum_trusted_value=400"],
    "force_2d": ["force_2d=True", "output.shoeboxes=False"],
    "global_auto": ["global_threshold=Auto"],
    "radial_profile": ["threshold.algorithm=radial_profile"],
    "radial_profile_wide": ["threshold.algorithm=radial_profile", "blur=wide", "n_iqr=4", "n_bins=50"],
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_same_spots_as_dials_3_12(tmp_path, imported, case):
    args = BASE + CASES[case]
    ref, _ = run_dials(imported, tmp_path / "dials", args)
    ours = run_findspots(tmp_path, IMAGES, args)
    assert assert_same_spots(ours, ref) > 0


def test_hot_pixel_count_matches_dials_3_12(tmp_path, imported, monkeypatch):
    args = [*BASE, "write_hot_mask=True", "scan_range=1,3"]
    _, log = run_dials(imported, tmp_path / "dials", args)
    dials_hot = int(re.search(r"Found (\d+) possible hot pixel", log).group(1))
    monkeypatch.chdir(tmp_path)
    run_findspots(tmp_path, IMAGES, args)
    mask = np.load(tmp_path / "hot_mask_0.npy")
    assert (~mask).sum() == dials_hot > 0


def table_of(log: str) -> str:
    """The per-image statistics table printed after "Number of centroids per image"."""
    lines = log[log.index("Number of centroids per image") :].splitlines()
    return "\n".join(line for line in lines[1:] if line.startswith(("+", "|")))


def test_per_image_statistics_table_matches_dials_3_12(tmp_path, imported, capsys):
    args = [*BASE, "per_image_statistics=True"]
    _, dials_log = run_dials(imported, tmp_path / "dials", args)
    run_findspots(tmp_path, IMAGES, args)
    ours = capsys.readouterr().out
    assert table_of(ours) == table_of(dials_log)
    assert table_of(ours).count("\n") == 15 + 3  # header, two rules, 15 images, closing rule


def test_dials_finds_the_same_spots_from_our_models_expt(tmp_path, imported):
    """Our output.experiments read by DIALS 3.12 gives the spots of its own dials.import (53, not the
    33 it found when zero counts fell on the exclusive lower trusted bound)."""
    ours = tmp_path / "ours.expt"
    (tmp_path / "fs").mkdir()
    run_findspots(tmp_path / "fs", IMAGES, [*BASE, f"output.experiments={ours}", "output.report=None"])
    from_ours, _ = run_dials(ours, tmp_path / "from_ours", BASE)
    from_dials, _ = run_dials(imported, tmp_path / "from_dials", BASE)
    assert assert_same_spots(from_ours, from_dials) == len(from_dials["id"]) == 53


def _index_and_refine(folder: Path, expt: Path, refl: Path) -> dict[str, str]:
    """dials.index (joint) + dials.refine; the parts of their logs that a user compares."""
    for argv in (
        ["dials.index", str(expt), str(refl), "joint_indexing=True"],
        ["dials.refine", "indexed.expt", "indexed.refl"],
    ):
        subprocess.run(argv, cwd=folder, check=True, capture_output=True, text=True, timeout=900)
    index_log = (folder / "dials.index.log").read_text()
    refine_log = (folder / "dials.refine.log").read_text()
    crystals = json.loads((folder / "refined.expt").read_text())["crystal"]
    cell_line = re.findall(r"Unit cell: (.*)", index_log)[-1]
    return {
        "indexed": index_log[index_log.rindex("% indexed") :].split("\n\n")[0],
        # the numbers only: with or without esds DIALS prints them to different digits
        "cell": [round(float(v), 3) for v in re.findall(r"([\d.]+)(?:\(\d+\))?", cell_line)],
        "rmsds": refine_log[refine_log.rindex("RMSDs by experiment") :].split("\n\n")[0],
        "refined": [[round(v, 6) for k in ("a", "b", "c") for v in c[f"real_space_{k}"]] for c in crystals],
    }


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("dials.index") is None, reason="dials.index is not installed")
def test_joint_index_and_refine_from_our_outputs_equal_dials_pipeline(tmp_path):
    """Both bundled sweeps: dials.index + dials.refine on our models.expt and table give the cell, counts
    and RMSDs of DIALS's own dials.import + dials.find_spots pipeline (they used to crash in refinement)."""
    images = sorted((REPO / "data" / "l_cysteine").glob("l-cyst_0[12]_*.cbf.bz2"))
    ours, theirs = tmp_path / "ours", tmp_path / "dials"
    ours.mkdir()
    theirs.mkdir()
    run_findspots(ours, images, [*BASE, f"output.experiments={ours / 'models.expt'}", "output.report=None"])
    subprocess.run(["dials.import", *map(str, images)], cwd=theirs, check=True, capture_output=True)
    run_dials(theirs / "imported.expt", theirs, BASE)
    from_ours = _index_and_refine(ours, ours / "models.expt", ours / "strong.refl")
    from_dials = _index_and_refine(theirs, theirs / "imported.expt", theirs / "dials.refl")
    assert from_ours == from_dials
    assert from_ours["cell"][:3] == [5.452, 8.166, 12.067]  # L-cysteine: 5.45, 8.17, 12.07 A
