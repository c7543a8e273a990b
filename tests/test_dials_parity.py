"""findspots against DIALS reference output, spot for spot (count, order, bbox, centroids, intensities).

Bundled data (``data/``) always runs; the full shared sets run when ``../shared/data`` is present.
The DIALS commands are replayed from each reference's ``command.txt`` with DIALS's own defaults made
explicit where ours differ (docs/departures.md#defaults: DIALS uses ``max_spot_size=1000``).
"""

from __future__ import annotations

import shlex
from pathlib import Path

import numpy as np
import pytest
from spotcompare import assert_same_shoeboxes, assert_same_spots

from findspots.app.cli import run
from findspots.output.refl import Shoeboxes, read_reflections

REPO = Path(__file__).resolve().parents[1]
BUNDLED = REPO / "data"


def dials_arguments(command_file: Path) -> list[str]:
    """The parameters of a reference run's ``dials.find_spots`` command, in findspots terms.

    DIALS's defaults that differ from ours (``max_spot_size=1000``, ``dispersion_extended``) are
    made explicit.
    """
    words = shlex.split(command_file.read_text().splitlines()[0])[1:]
    args = [w for w in words if "=" in w and not w.startswith("nproc=")]
    if not any("max_spot_size" in a for a in args):
        args.append("filter.max_spot_size=1000")
    if not any("algorithm" in a for a in args):
        args.append("threshold.algorithm=dispersion_extended")
    return args


def run_findspots(tmp_path: Path, images: list[Path], args: list[str]):
    """Run the command line as a user would; return the table written."""
    out = tmp_path / "strong.refl"
    argv = [str(p) for p in images] + args
    argv += [
        f"output.reflections={out}",
        f"output.log={tmp_path / 'log'}",
        f"output.debug_log={tmp_path / 'dbg'}",
    ]
    assert run(argv) == 0
    return read_reflections(out)


@pytest.mark.parametrize("sweep", ["01", "02"])
@pytest.mark.parametrize("algorithm", ["dispersion", "dispersion_extended"])
def test_l_cysteine_bundled(tmp_path, sweep, algorithm):
    ref_dir = BUNDLED / "reference" / f"l_cysteine_sweep{sweep}" / algorithm
    images = sorted((BUNDLED / "l_cysteine").glob(f"l-cyst_{sweep}_*.cbf.bz2"))
    ours = run_findspots(tmp_path, images, dials_arguments(ref_dir / "command.txt"))
    ref = read_reflections(ref_dir / "strong.refl.xz")
    n = assert_same_spots(ours, ref)
    assert (
        n
        == {
            "01": {"dispersion": 53, "dispersion_extended": 56},
            "02": {"dispersion": 32, "dispersion_extended": 33},
        }[sweep][algorithm]
    )
    assert_same_shoeboxes(ours["shoebox"], ref["shoebox"])


@pytest.mark.parametrize("algorithm", ["dispersion", "dispersion_extended"])
def test_thaumatin_still_bundled(tmp_path, algorithm):
    """One still of the grid: DIALS's rows for image 2 (experiment 1), labelled in 2D."""
    ref_dir = BUNDLED / "reference" / "thaumatin_grid" / algorithm
    ours = run_findspots(
        tmp_path,
        [BUNDLED / "thaumatin_grid" / "thau_3_2_0002.cbf.bz2"],
        dials_arguments(ref_dir / "command.txt"),
    )
    ref = read_reflections(ref_dir / "strong.refl.xz")
    rows = np.flatnonzero(ref["id"] == 1)
    expected = {name: np.asarray(ref[name])[rows] for name in ref.columns if name != "shoebox"}
    expected["id"] = expected["id"] - 1  # our run holds one experiment
    assert assert_same_spots(ours, expected) == {"dispersion": 1266, "dispersion_extended": 1187}[algorithm]


REAL_SETS = {
    "l_cysteine_sweep01": ("l_cysteine_i19_pilatus2m", "l-cyst_01_*.cbf.bz2"),
    "l_cysteine_sweep02": ("l_cysteine_i19_pilatus2m", "l-cyst_02_*.cbf.bz2"),
    "thaumatin_grid": ("thaumatin_grid_i24_pilatus3_6m", "thau_3_2_*.cbf.bz2"),
}


@pytest.mark.shared
@pytest.mark.parametrize("name", ["thaumatin_grid"])
@pytest.mark.parametrize("algorithm", ["dispersion", "dispersion_extended"])
def test_real_sets(tmp_path, shared_data, name, algorithm):
    folder, pattern = REAL_SETS[name]
    ref_dir = shared_data / "real" / "dials_head_reference" / name / algorithm
    images = sorted((shared_data / "real" / folder).glob(pattern))
    ours = run_findspots(tmp_path, images, dials_arguments(ref_dir / "command.txt"))
    ref = read_reflections(ref_dir / "strong.refl.xz")
    assert assert_same_spots(ours, ref) == {"dispersion": 13348, "dispersion_extended": 13748}[algorithm]
    assert_same_shoeboxes(ours["shoebox"], ref["shoebox"])


SIMULATED_RUNS = [
    ("p300k_60", "a_seed", 2242),
    ("p300k_60", "b_extended", 2245),
    ("p300k_60", "d_params", None),
    ("p300k_60", "e_ranges", None),
    ("p6m_5", "a_seed", 13329),
    ("p6m_5", "b_extended", 12298),
    ("p6m_5", "d_params", None),
    ("p6m_5", "e_ranges", None),
]


def npz_shoeboxes(ref) -> Shoeboxes:
    return Shoeboxes(
        panel=ref["shoebox.panel"],
        bbox=ref["shoebox.bbox"],
        offsets=ref["shoebox.offsets"],
        data=ref["shoebox.data"],
        mask=ref["shoebox.mask"],
        background=ref["shoebox.background"],
    )


@pytest.mark.shared
@pytest.mark.parametrize(("dataset", "run_name", "count"), SIMULATED_RUNS)
def test_simulated_references(tmp_path, shared_data, dataset, run_name, count):
    ref_dir = shared_data / dataset / "dials_reference" / run_name
    ref = np.load(ref_dir / "spots.npz")
    images = sorted((shared_data / dataset).glob("*.cbf"))
    ours = run_findspots(tmp_path, images, dials_arguments(ref_dir / "command.txt"))
    n = assert_same_spots(ours, ref)
    assert count is None or n == count
    assert_same_shoeboxes(ours["shoebox"], npz_shoeboxes(ref))
