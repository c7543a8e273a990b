"""DIALS experiment files in and out: models.expt / datablock.json inputs, write_experiments."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest
from spotcompare import assert_same_spots

from findspots.app.cli import run
from findspots.images import ImageError
from findspots.images.expt import read_experiments, write_experiments
from findspots.images.inputs import load_inputs
from findspots.output.refl import read_reflections, write_reflections

REPO = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parent / "data"
LCYST = REPO / "data" / "l_cysteine"
DIALS = shutil.which("dials.find_spots") is not None


def _run(tmp_path: Path, name: str, inputs: list, *extra: str) -> bytes:
    out = tmp_path / f"{name}.refl"
    argv = [*map(str, inputs), *extra, f"output.reflections={out}"]
    argv += [
        f"output.log={tmp_path / name}.log",
        f"output.debug_log={tmp_path / name}.debug.log",
        "output.report=None",
    ]
    assert run(argv) == 0
    return out.read_bytes()


def _same_spots(tmp_path: Path, expt: Path, files: list[Path]) -> int:
    """Run on the .expt and on its files: same columns; the .expt's identifiers are copied to its table."""
    _run(tmp_path, "expt", [expt])
    _run(tmp_path, "files", files)
    ours, theirs = read_reflections(tmp_path / "expt.refl"), read_reflections(tmp_path / "files.refl")
    write_reflections(tmp_path / "unnamed.refl", ours.columns)
    assert (tmp_path / "unnamed.refl").read_bytes() == (tmp_path / "files.refl").read_bytes()
    given = [e["identifier"] for e in json.loads(Path(expt).read_text())["experiment"]]
    assert list(ours.identifiers.values()) == given and theirs.identifiers == {}
    return len(ours.columns["bbox"])


def _sweep(n: int) -> list[Path]:
    return sorted(LCYST.glob(f"l-cyst_{n:02d}_*.cbf.bz2"))


def test_models_expt_gives_the_spots_of_its_images(tmp_path: Path) -> None:
    """dials.import 3.12 output (template relative to the .expt) == the 15 image files."""
    assert _same_spots(tmp_path, DATA / "lcyst01_imported.expt", _sweep(1)) == 53


def test_datablock_json_gives_the_spots_of_its_images(tmp_path: Path) -> None:
    """An old DataBlock file (made with dxtbx 3.11's DataBlock.to_dict) == the image files."""
    assert _run(tmp_path, "db", [DATA / "lcyst02_datablock.json"]) == _run(tmp_path, "files", _sweep(2))


def test_models_from_the_expt_override_headers() -> None:
    (seq,) = read_experiments(str(DATA / "lcyst01_imported.expt"))
    assert seq.image_numbers == list(range(1, 16)) and seq.scan.oscillation == (-145.0, 0.1)
    assert seq.goniometer.is_multi_axis and seq.goniometer.names == ["GON_PHI", "GON_OMEGA"]
    np.testing.assert_allclose(seq.goniometer.rotation_axis, (1.0, 0.0, 0.0))
    assert seq.detector[0].trusted_range == (0.0, 388705.0)  # written (-1, 388705) by dxtbx 3.11
    assert Path(seq.paths[0]).resolve() == _sweep(1)[0].resolve()


def test_image_range_subset_and_relative_paths(tmp_path: Path, monkeypatch) -> None:
    d = json.loads((DATA / "lcyst01_imported.expt").read_text())
    d["scan"][0]["image_range"] = [3, 12]
    d["scan"][0]["oscillation"] = [-144.8, 0.1]
    d["scan"][0]["exposure_time"] = d["scan"][0]["exposure_time"][2:12]
    d["scan"][0]["epochs"] = d["scan"][0]["epochs"][2:12]
    folder = tmp_path / "sub" / "dir"
    folder.mkdir(parents=True)
    d["imageset"][0]["template"] = os.path.relpath(LCYST / "l-cyst_01_#####.cbf.bz2", folder)
    (folder / "part.expt").write_text(json.dumps(d))
    monkeypatch.chdir(tmp_path)  # paths resolve from the .expt's folder, not the current one
    (seq,) = read_experiments("sub/dir/part.expt")
    assert seq.image_numbers == list(range(3, 13)) and seq.frame(0) == 2
    assert _same_spots(tmp_path, Path("sub/dir/part.expt"), _sweep(1)[2:12]) > 0


def test_external_masks(tmp_path: Path) -> None:
    d = json.loads((DATA / "lcyst01_imported.expt").read_text())
    d["imageset"][0]["template"] = str(LCYST / "l-cyst_01_#####.cbf.bz2")
    mask = np.ones((1679, 1475), bool)
    mask[100:200, 300:400] = False
    np.save(tmp_path / "mask.npy", mask)
    d["imageset"][0]["mask"] = "mask.npy"
    (tmp_path / "m.expt").write_text(json.dumps(d))
    (seq,) = read_experiments(str(tmp_path / "m.expt"))
    (m,) = seq.get_mask(0)
    assert not m[100:200, 300:400].any() and m[500:600, 500:600].any()
    with h5py.File(tmp_path / "mask.h5", "w") as fh:
        fh["mask_0"] = mask.astype(np.uint8)
    d["imageset"][0]["mask"] = str(tmp_path / "mask.h5")
    (tmp_path / "h.expt").write_text(json.dumps(d))
    np.testing.assert_array_equal(read_experiments(str(tmp_path / "h.expt"))[0].get_mask(0)[0], m)
    d["imageset"][0]["mask"] = "mask.pickle"
    (tmp_path / "mask.pickle").write_bytes(b"\x80\x04N.")
    (tmp_path / "p.expt").write_text(json.dumps(d))
    with pytest.raises(ImageError, match=r"mask.pickle: DIALS mask pickles are not read .*\.npy"):
        read_experiments(str(tmp_path / "p.expt"))


def test_bad_experiment_files(tmp_path: Path) -> None:
    (tmp_path / "a.expt").write_text('{"__id__": "Something"}')
    with pytest.raises(ImageError, match="a.expt: JSON is neither an ExperimentList nor a DataBlock"):
        load_inputs([str(tmp_path / "a.expt")])
    (tmp_path / "b.expt").write_text("{not json")
    with pytest.raises(ImageError, match="b.expt: not a readable JSON"):
        load_inputs([str(tmp_path / "b.expt")])
    d = json.loads((DATA / "lcyst01_imported.expt").read_text())
    d["imageset"][0]["template"] = "nowhere/x_#####.cbf"
    (tmp_path / "c.expt").write_text(json.dumps(d))
    with pytest.raises(ImageError, match="x_00001.cbf: image file named in the experiment file not found"):
        load_inputs([str(tmp_path / "c.expt")])


def test_write_and_read_back(tmp_path: Path) -> None:
    seqs = load_inputs(
        [str(p) for p in _sweep(1)] + [str(REPO / "data/thaumatin_grid/thau_3_2_0002.cbf.bz2")]
    )
    write_experiments(str(tmp_path / "out.expt"), seqs)
    d = json.loads((tmp_path / "out.expt").read_text())
    assert d["__id__"] == "ExperimentList" and len(d["imageset"]) == 2
    assert len(d["experiment"]) == 2 and d["scan"][1]["oscillation"][1] == 0.0  # rotation + one still
    assert d["detector"][0]["panels"][0]["trusted_range"] == [-0.5, 388704.5]  # 0..388704 in every DIALS
    back = read_experiments(str(tmp_path / "out.expt"))
    for a, b in zip(back, seqs, strict=True):
        assert a.detector.is_similar_to(b.detector) and a.image_numbers == b.image_numbers
        assert a.scan.oscillation == pytest.approx(b.scan.oscillation) and a.is_still == b.is_still
    assert _same_spots(tmp_path, tmp_path / "out.expt", [Path(s) for q in seqs for s in q.paths]) > 0


def test_write_nexus_sequence(tmp_path: Path) -> None:
    from images.nxmx_writer import Geometry, write_sweep

    rng = np.random.default_rng(3)
    master = write_sweep(tmp_path, "w", rng.poisson(3.0, (6, 30, 40)).astype(np.uint16), Geometry())
    seq = load_inputs([str(master)])[0].sub(2, 5)
    write_experiments(str(tmp_path / "w.expt"), [seq])
    iset = json.loads((tmp_path / "w.expt").read_text())["imageset"][0]
    assert iset["template"] == str(master) and iset["single_file_indices"] == [2, 3, 4]
    (back,) = read_experiments(str(tmp_path / "w.expt"))
    assert back.image_numbers == [3, 4, 5]
    for i in range(3):
        np.testing.assert_array_equal(back.get_raw(i)[0], seq.get_raw(i)[0])


@pytest.mark.skipif(not DIALS, reason="DIALS (dials.find_spots) not installed")
def test_dials_312_find_spots_accepts_written_experiments(tmp_path: Path) -> None:
    """DIALS 3.12 reads our file (trusted ranges in its exclusive convention) and finds our spots."""
    seqs = load_inputs([str(p) for p in _sweep(1)])
    write_experiments(str(tmp_path / "ours.expt"), seqs, legacy_trusted_range=True)
    cmd = ["dials.find_spots", "ours.expt", "threshold.algorithm=dispersion", "output.reflections=dials.refl"]
    done = subprocess.run(cmd + ["output.log=dials.log"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    _run(tmp_path, "ours", [tmp_path / "ours.expt"], "filter.max_spot_size=1000")
    ours, theirs = read_reflections(tmp_path / "ours.refl"), read_reflections(tmp_path / "dials.refl")
    assert assert_same_spots(ours, theirs) == 53
