"""The input loader: dispatch by file content, globs, errors, best-effort formats, Eiger miniCBF gaps."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from findspots.app.cli import run
from findspots.images import ImageError
from findspots.images.cbf_models import eiger_gap_rects
from findspots.images.inputs import SUPPORTED, kind_of, load_inputs

REPO = Path(__file__).resolve().parents[2]
LCYST = REPO / "data" / "l_cysteine"
DATA = Path(__file__).parent / "data"


def test_unrecognised_file_names_it_and_the_formats(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(ImageError) as err:
        load_inputs([str(path)])
    assert str(err.value).startswith(f"{path}: unrecognised file format; supported inputs:")
    assert SUPPORTED in str(err.value) and "NXmx" in SUPPORTED and "SMV" in SUPPORTED


def test_missing_file_directory_and_empty_glob(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="nothere.cbf: no such file"):
        load_inputs([str(tmp_path / "nothere.cbf")])
    with pytest.raises(ImageError, match="is a directory"):
        load_inputs([str(tmp_path)])
    with pytest.raises(ImageError, match=r"x_\*.cbf: no files match this pattern"):
        load_inputs([str(tmp_path / "x_*.cbf")])


def test_glob_and_mixed_inputs_in_argument_order() -> None:
    seqs = load_inputs([str(DATA / "lcyst02_datablock.json"), str(LCYST / "l-cyst_01_*.cbf.bz2")])
    assert [len(s) for s in seqs] == [15, 15]
    assert "l-cyst_02" in seqs[0].paths[0] and "l-cyst_01" in seqs[1].paths[0]


def test_kinds() -> None:
    assert kind_of(str(DATA / "lcyst01_imported.expt")) == "json"
    assert kind_of(str(next(LCYST.glob("*.bz2")))) == "image"


def test_cli_error_is_one_line(tmp_path: Path, capsys) -> None:
    path = tmp_path / "junk.dat"
    path.write_bytes(b"\x00\x01garbage")
    argv = [
        str(path),
        f"output.log={tmp_path / 'l'}",
        f"output.debug_log={tmp_path / 'd'}",
        "output.report=None",
    ]
    argv.append(f"output.reflections={tmp_path / 's.refl'}")
    assert run(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "junk.dat: unrecognised file format" in err[0]


def test_marccd_best_effort(tmp_path: Path, caplog) -> None:
    from fabio.marccdimage import marccdimage

    data = (np.arange(60 * 80).reshape(60, 80) % 300).astype(np.uint16)
    for k in (1, 2):
        marccdimage(data=data, header={}).write(str(tmp_path / f"m_{k:03d}.mccd"))
    with caplog.at_level(logging.WARNING, logger="findspots"):
        (seq,) = load_inputs([str(tmp_path / "m_001.mccd"), str(tmp_path / "m_002.mccd")])
    assert "placeholder detector geometry" in caplog.text
    assert seq.detector[0].type == "CCD" and seq.detector[0].trusted_range == (0.0, 65534.0)
    assert seq.is_still and len(seq) == 2 and "best effort" in seq.format_name
    np.testing.assert_array_equal(seq.get_raw(1)[0], data)


def test_eiger_minicbf_module_gaps() -> None:
    rects = eiger_gap_rects(4148, 4362)  # EIGER2 X 16M: 4 x 8 modules of 1028 x 512, gaps 12 and 38
    assert rects[:3] == [(1028, 0, 1040, 4362), (2068, 0, 2080, 4362), (3108, 0, 3120, 4362)]
    assert rects[3] == (0, 512, 4148, 550) and len(rects) == 3 + 7
    assert eiger_gap_rects(3110, 3269)[0] == (1030, 0, 1040, 3269)  # EIGER X 9M
    assert eiger_gap_rects(1000, 1000) == []


@pytest.mark.slow
def test_hdf5_sweep_on_two_worker_processes(tmp_path: Path) -> None:
    """The HDF5 reader travels to dask worker processes and reopens its files there."""
    from images.nxmx_writer import Geometry, write_sweep

    rng = np.random.default_rng(7)
    z, y, x = np.mgrid[0:12, 0:40, 0:50]
    blobs = sum(
        400 * np.exp(-(((z - zc) / 1.5) ** 2) - ((y - yc) ** 2 + (x - xc) ** 2) / 2.0)
        for zc, yc, xc in ((2, 10, 12), (5, 25, 30), (9, 30, 8))
    )
    frames = (rng.poisson(2.0, z.shape) + blobs).astype(np.uint16)
    master = write_sweep(tmp_path, "w", frames, Geometry(), per_file=5, chunk_frames=3)
    outs = []
    for name, extra in (("one", []), ("two", ["nproc=2", "chunksize=3", "min_chunksize=1"])):
        out = tmp_path / f"{name}.refl"
        argv = [str(master), *extra, "filter.max_spot_size=1000", f"output.reflections={out}"]
        assert (
            run(
                argv
                + [
                    f"output.log={tmp_path / name}",
                    f"output.debug_log={tmp_path / name}.d",
                    "output.report=None",
                ]
            )
            == 0
        )
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    assert "Saved 3 reflections" in (tmp_path / "two").read_text()
