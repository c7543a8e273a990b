"""CBF reading, header parsing and experiment models (checked against dials.import output)."""

from __future__ import annotations

import bz2
import json
import pickle
import re
from pathlib import Path

import numpy as np
import pytest

from findspots.app.parameters import parse_arguments
from findspots.images import Beam, ImageError, Panel, load_inputs, read_models, read_raw
from findspots.images.cbf import read_header
from findspots.images.cbf_header import parse_cif
from findspots.images.cbf_models import pilatus_gap_rects

THAU_1 = "real/thaumatin_grid_i24_pilatus3_6m/thau_3_2_0001.cbf.bz2"
LCYST_1 = "real/l_cysteine_i19_pilatus2m/l-cyst_01_00001.cbf.bz2"


def _panel_matches(panel: Panel, ref: dict, tol: float) -> None:
    np.testing.assert_allclose(panel.origin, ref["origin"], atol=tol)
    np.testing.assert_allclose(panel.fast_axis, ref["fast_axis"], atol=1e-6)
    np.testing.assert_allclose(panel.slow_axis, ref["slow_axis"], atol=1e-6)
    np.testing.assert_allclose(panel.pixel_size, ref["pixel_size"], rtol=1e-12)
    assert list(panel.image_size) == ref["image_size"]
    assert [list(r) for r in panel.mask_rects] == ref["mask"]
    assert panel.type == ref["type"] == "SENSOR_PAD"
    assert panel.thickness == pytest.approx(ref["thickness"])
    assert panel.material == ref["material"]
    assert panel.raw_offset == tuple(ref["raw_image_offset"])


# --------------------------------------------------------------------------------------- pixels


def test_read_raw_p300k_sum_and_overloads(p300k_files: list[str], shared_data: Path) -> None:
    raw = read_raw(p300k_files[0])
    assert raw.shape == (619, 487) and raw.dtype == np.int32
    assert int(raw.sum(dtype=np.int64)) == 1988888
    truth = json.loads((shared_data / "p300k_60/truth.json").read_text())
    for k in (0, 2, 3):
        above = int((read_raw(p300k_files[k]) > 1048500).sum())
        assert above == truth["images"][k]["n_pixels_above_cutoff"]


def test_read_raw_bz2_minicbf(shared_data: Path) -> None:
    raw = read_raw(str(shared_data / THAU_1))
    assert raw.shape == (2527, 2463) and raw.dtype == np.int32
    assert int(raw.sum(dtype=np.int64)) == 20608414
    assert int((raw == -1).sum()) == 526101  # module gaps
    assert int((raw == -2).sum()) == 625  # bad pixels
    assert raw.max() == 114000


def test_read_raw_full_cbf(shared_data: Path) -> None:
    raw = read_raw(str(shared_data / LCYST_1))
    assert raw.shape == (1679, 1475) and raw.dtype == np.int32
    assert int(raw.sum(dtype=np.int64)) == -142707
    assert raw.max() == 252


# ------------------------------------------------------------------------------------------ errors


def test_missing_file_raises(tmp_path: Path) -> None:
    path = tmp_path / "nope_0001.cbf"
    with pytest.raises(ImageError, match=r"nope_0001\.cbf: no such file"):
        read_raw(str(path))
    with pytest.raises(ImageError, match="nope_0001"):
        read_models(str(path))


def test_not_a_cbf_raises(tmp_path: Path) -> None:
    path = tmp_path / "notes_0001.cbf"
    path.write_text("hello world\n" * 50)
    with pytest.raises(ImageError, match=r"notes_0001\.cbf: not a CBF file"):
        read_raw(str(path))
    with pytest.raises(ImageError, match="not a CBF file"):
        read_models(str(path))


def test_truncated_plain_cbf_raises(p300k_files: list[str], tmp_path: Path) -> None:
    data = Path(p300k_files[0]).read_bytes()
    path = tmp_path / "cut_00001.cbf"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match=r"cut_00001\.cbf: truncated CBF"):
        read_raw(str(path))


def test_truncated_header_raises(p300k_files: list[str], tmp_path: Path) -> None:
    data = Path(p300k_files[0]).read_bytes()
    path = tmp_path / "cut_00002.cbf"
    path.write_bytes(data[:800])  # inside the text header: no binary section at all
    with pytest.raises(ImageError, match=r"cut_00002\.cbf: CBF has no binary data section"):
        read_raw(str(path))
    with pytest.raises(ImageError, match="cut_00002"):
        read_models(str(path))


def test_truncated_bz2_raises(shared_data: Path, tmp_path: Path) -> None:
    data = (shared_data / THAU_1).read_bytes()
    path = tmp_path / "cut_0001.cbf.bz2"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match=r"cut_0001\.cbf\.bz2: corrupt or truncated compressed file"):
        read_raw(str(path))


def test_corrupt_binary_raises(p300k_files: list[str], tmp_path: Path) -> None:
    data = bytearray(Path(p300k_files[0]).read_bytes())
    data[-20000:-19990] = b"\x01" * 10  # same pixel count, different values: only the MD5 tells
    path = tmp_path / "bad_00001.cbf"
    path.write_bytes(bytes(data))
    with pytest.raises(
        ImageError, match=r"bad_00001\.cbf: corrupt CBF: binary data does not match its Content-MD5"
    ):
        read_raw(str(path), verify_md5=True)


def _with_wrong_md5(source: str, path: Path) -> Path:
    """A copy of ``source`` whose Content-MD5 line names another checksum (the pixel data are intact)."""
    data = Path(source).read_bytes()
    wrong = re.sub(rb"Content-MD5: [^\r\n]*", b"Content-MD5: AAAAAAAAAAAAAAAAAAAAAA==", data, count=1)
    assert wrong != data
    path.write_bytes(wrong)
    return path


def test_md5_mismatch_reads_by_default_and_fails_when_verified(
    p300k_files: list[str], tmp_path: Path
) -> None:
    path = _with_wrong_md5(p300k_files[0], tmp_path / "sum_00001.cbf")
    np.testing.assert_array_equal(read_raw(str(path)), read_raw(p300k_files[0], verify_md5=True))
    with pytest.raises(ImageError) as err:
        read_raw(str(path), verify_md5=True)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: corrupt CBF: binary data does not match its Content-MD5; ")


def test_verify_md5_reaches_the_reader(p300k_files: list[str], tmp_path: Path) -> None:
    for k in (1, 2):
        _with_wrong_md5(p300k_files[k - 1], tmp_path / f"sum_{k:05d}.cbf")
    files = sorted(str(p) for p in tmp_path.glob("*.cbf"))
    (default,) = load_inputs(files)
    assert default.get_raw(0)[0].shape == (619, 487)
    (verified,) = load_inputs(files, verify_md5=True)
    with pytest.raises(ImageError, match=r"sum_00001\.cbf: corrupt CBF: binary data does not match"):
        verified.get_raw(0)
    assert pickle.loads(pickle.dumps(verified.reader)) is verified.reader  # workers get it by reference


def test_verify_md5_reaches_the_reader_through_an_experiment_file(
    p300k_files: list[str], tmp_path: Path
) -> None:
    from findspots.images.expt import write_experiments

    for k in (1, 2):
        _with_wrong_md5(p300k_files[k - 1], tmp_path / f"sum_{k:05d}.cbf")
    write_experiments(str(tmp_path / "sum.expt"), load_inputs(sorted(str(p) for p in tmp_path.glob("*.cbf"))))
    (default,) = load_inputs([str(tmp_path / "sum.expt")])
    assert int(default.get_raw(1)[0].sum(dtype=np.int64)) == int(read_raw(p300k_files[1]).sum(dtype=np.int64))
    (verified,) = load_inputs([str(tmp_path / "sum.expt")], verify_md5=True)
    with pytest.raises(ImageError, match=r"sum_00002\.cbf: corrupt CBF: binary data does not match"):
        verified.get_raw(1)


def test_verify_md5_parameter_defaults_off() -> None:
    assert parse_arguments(["x.cbf"]).params.input.verify_md5 is False
    assert parse_arguments(["x.cbf", "verify_md5=True"]).params.input.verify_md5 is True


def test_corrupt_binary_without_md5_raises(p300k_files: list[str], tmp_path: Path) -> None:
    data = Path(p300k_files[0]).read_bytes()
    data = re.sub(rb"Content-MD5: [^\r\n]*\r?\n", b"", data)
    head, body = data[:-5000], bytearray(data[-5000:])
    body[:1000] = b"\x80\x00\x80" * 333 + b"\x00"  # 16-bit escapes: fewer pixels than the header says
    path = tmp_path / "bad_00002.cbf"
    path.write_bytes(head + bytes(body))
    with pytest.raises(
        ImageError, match=r"bad_00002\.cbf: corrupt CBF: decoded \d+ pixels, header says 487 x 619"
    ):
        read_raw(str(path))


def test_dimension_mismatch_raises(p300k_files: list[str], tmp_path: Path) -> None:
    data = Path(p300k_files[0]).read_bytes()
    data = data.replace(b"X-Binary-Size-Second-Dimension: 619", b"X-Binary-Size-Second-Dimension: 618")
    path = tmp_path / "dims_00001.cbf"
    path.write_bytes(data)
    with pytest.raises(ImageError, match=r"dims_00001\.cbf: CBF header element count 301453"):
        read_raw(str(path))


def test_gz_and_bz2_read_like_plain(p300k_files: list[str], tmp_path: Path) -> None:
    import gzip

    data = Path(p300k_files[0]).read_bytes()
    (tmp_path / "a_00001.cbf.gz").write_bytes(gzip.compress(data))
    (tmp_path / "a_00001.cbf.bz2").write_bytes(bz2.compress(data))
    plain = read_raw(p300k_files[0])
    for name in ("a_00001.cbf.gz", "a_00001.cbf.bz2"):
        np.testing.assert_array_equal(read_raw(str(tmp_path / name)), plain)
        assert read_models(str(tmp_path / name))[0][0].is_similar_to(read_models(p300k_files[0])[0][0])


# ------------------------------------------------------------------------------------------ header


def test_header_only_read_bz2(shared_data: Path) -> None:
    h = read_header(str(shared_data / THAU_1))
    assert h.shape == (2527, 2463)
    assert h.mime["x-binary-number-of-elements"] == "6224001"
    assert h.mini["Count_cutoff"] == "115897 counts"
    assert h.mini["Detector"] == "PILATUS3 6M, S/N 60-0119"
    assert h.timestamp == "2019-09-11T13:20:28.989"


def test_parse_cif_loops_quotes_and_text_fields() -> None:
    text = (
        "data_x\n_a.b 'quoted value'\n_c.d\n;\nline one\nline two\n;\n"
        'loop_\n_t.id\n_t.v\nA 1\nB "two words" # comment\n_e.f 3\n'
    )
    cif = parse_cif(text)
    assert cif["_a.b"] == ["quoted value"]
    assert cif["_c.d"] == ["\nline one\nline two"]
    assert cif["_t.id"] == ["A", "B"]
    assert cif["_t.v"] == ["1", "two words"]
    assert cif["_e.f"] == ["3"]


def test_pilatus_gap_rects() -> None:
    assert pilatus_gap_rects(487, 619) == [(0, 195, 487, 212), (0, 407, 487, 424)]
    rects_6m = pilatus_gap_rects(2463, 2527)
    assert rects_6m[:4] == [
        (487, 0, 494, 2527),
        (981, 0, 988, 2527),
        (1475, 0, 1482, 2527),
        (1969, 0, 1976, 2527),
    ]
    assert len(rects_6m) == 4 + 11
    assert pilatus_gap_rects(1475, 1679)[2] == (0, 195, 1475, 212)
    assert pilatus_gap_rects(1000, 1000) == []


# ------------------------------------------------------------------------------------------ models


def test_models_p300k_match_current_dials_import(
    p300k_files: list[str], shared_data: Path, load_expt
) -> None:
    ref = load_expt(shared_data / "p300k_60/dials_reference/import/imported.expt")
    detector, beam, gonio, scan = read_models(p300k_files[0])
    assert len(detector) == 1
    rp = ref["detector"][0]["panels"][0]
    _panel_matches(detector[0], rp, 1e-9)
    assert detector[0].trusted_range == tuple(rp["trusted_range"]) == (0.0, 1048500.0)
    assert beam.wavelength == ref["beam"][0]["wavelength"] == 0.9795
    np.testing.assert_allclose(beam.direction, ref["beam"][0]["direction"])
    np.testing.assert_allclose(gonio.rotation_axis, ref["goniometer"][0]["rotation_axis"])
    props = ref["scan"][0]["properties"]
    assert scan.start_angle == props["oscillation"][0] == 0.0
    assert scan.angle_increment == pytest.approx(props["oscillation"][1] - props["oscillation"][0])
    assert scan.exposure_time == props["exposure_time"][0] == 0.1  # Exposure_period, not Exposure_time
    assert scan.epoch == pytest.approx(props["epochs"][0])


def test_models_thaumatin_match_dials_312(shared_data: Path, load_expt) -> None:
    ref = load_expt(shared_data / "real/dials_3.12_reference/thaumatin_grid/imported.expt")
    detector, beam, gonio, scan = read_models(str(shared_data / THAU_1))
    rp = ref["detector"][0]["panels"][0]
    _panel_matches(detector[0], rp, 1e-9)
    # DIALS 3.12 wrote (-1, cutoff) with exclusive ends; current dxtbx (0, cutoff) inclusive.
    assert rp["trusted_range"] == [-1.0, 115897.0]
    assert detector[0].trusted_range == (0.0, 115897.0)
    assert beam.wavelength == ref["beam"][0]["wavelength"]
    np.testing.assert_allclose(gonio.rotation_axis, ref["goniometer"][0]["rotation_axis"])  # I24: (0,1,0)
    assert (scan.start_angle, scan.angle_increment) == tuple(ref["scan"][0]["oscillation"])
    assert scan.exposure_time == pytest.approx(ref["scan"][0]["exposure_time"][0])
    assert scan.epoch == pytest.approx(ref["scan"][0]["epochs"][0], abs=1e-3)


def test_models_full_cbf_lcysteine_match_dials_312(shared_data: Path, load_expt) -> None:
    ref = load_expt(shared_data / "real/dials_3.12_reference/l_cysteine_sweep01/imported.expt")
    detector, beam, gonio, scan = read_models(str(shared_data / LCYST_1))
    rp = ref["detector"][0]["panels"][0]
    _panel_matches(detector[0], rp, 1e-4)  # 2theta = 30 deg geometry from the imgCIF axis loops
    assert detector[0].identifier == rp["identifier"]
    # current dxtbx: undefined value + 1 to overload - 1; 3.12's (-1, 388705) exclusive trusts the same
    assert detector[0].trusted_range == (0.0, 388704.0)
    assert beam.wavelength == ref["beam"][0]["wavelength"]
    np.testing.assert_allclose(beam.direction, ref["beam"][0]["direction"])
    g = ref["goniometer"][0]
    np.testing.assert_allclose(gonio.rotation_axis, g["axes"][g["scan_axis"]])  # omega is outermost
    assert (scan.start_angle, scan.angle_increment) == tuple(ref["scan"][0]["oscillation"])
    assert scan.exposure_time == pytest.approx(ref["scan"][0]["exposure_time"][0])  # integration_time
    assert scan.epoch == pytest.approx(ref["scan"][0]["epochs"][0], abs=1e-3)


# ----------------------------------------------------------------------------------- panel helpers


def test_trusted_mask_inclusive_both_ends(p300k_files: list[str]) -> None:
    panel = read_models(p300k_files[0])[0][0]
    raw = np.array([[-2, -1, 0, 1, 1048499, 1048500, 1048501]], dtype=np.int32)
    expect = [False, False, True, True, True, True, False]
    assert panel.trusted_mask(raw).tolist() == [expect]
    assert panel.trusted_mask(raw.astype(np.float64)).tolist() == [expect]
    assert panel.trusted_mask(np.array([[0, 65535]], dtype=np.uint16)).tolist() == [[True, True]]
    # DIALS 3.12 semantics (lo=-1, exclusive) select the same integers except raw == cutoff.
    old = (raw > -1) & (raw < 1048500)
    assert np.flatnonzero(old != panel.trusted_mask(raw)).tolist() == [5]


def test_static_mask_clears_gap_rectangles(p300k_files: list[str]) -> None:
    panel = read_models(p300k_files[0])[0][0]
    mask = panel.static_mask()
    assert mask.shape == (619, 487)
    assert int((~mask).sum()) == 2 * 17 * 487
    assert not mask[195:212].any() and mask[194].all() and mask[212].all()


def test_pixel_to_lab_and_resolution(p300k_files: list[str]) -> None:
    detector, beam, _, _ = read_models(p300k_files[0])
    panel = detector[0]
    np.testing.assert_allclose(panel.pixel_to_lab(250.3, 300.7), [0.0, 0.0, -100.0], atol=1e-9)
    np.testing.assert_allclose(panel.pixel_to_lab(0, 0), panel.origin)
    d = panel.resolution(beam.wavelength, beam.s0)
    assert d.shape == (619, 487)
    ys, xs = np.array([0, 300, 618, 100]), np.array([0, 250, 486, 400])
    lab = panel.pixel_to_lab(xs + 0.5, ys + 0.5)
    s1 = lab / np.linalg.norm(lab, axis=1)[:, None] / beam.wavelength
    np.testing.assert_allclose(d[ys, xs], 1 / np.linalg.norm(s1 - beam.s0, axis=1), rtol=1e-9)
    assert np.unravel_index(d.argmin(), d.shape) == (618, 0)  # the corner farthest from the beam
    assert d[300, 250] > 100  # next to the beam centre


def test_beam_s0() -> None:
    beam = Beam(0.5, (0.0, 0.0, 2.0))
    np.testing.assert_allclose(beam.s0, [0.0, 0.0, -2.0])


def test_header_timestamp_epoch_is_utc(p300k_files: list[str]) -> None:
    text = Path(p300k_files[0]).read_bytes()[:2000].decode("latin-1")
    assert re.search(r"# 2026-01-01T00:00:00\.000", text)
    assert read_models(p300k_files[0])[3].epoch == 1767225600.0
