"""SMV (ADSC) images: header, gain and pedestal, CCD sensor (min_spot_size Auto = 6), sweeps."""

from __future__ import annotations

import bz2
from pathlib import Path

import numpy as np
import pytest

from findspots.app.cli import run
from findspots.images import ImageError
from findspots.images.inputs import load_inputs
from findspots.images.smv import adsc_gain, read_models, read_raw
from findspots.output.refl import read_reflections


def smv_bytes(data: np.ndarray, start: float, extra: dict | None = None, big_endian: bool = False) -> bytes:
    """An ADSC-style SMV file: 512-byte header then uint16 pixels."""
    ny, nx = data.shape
    items = {
        "HEADER_BYTES": "512",
        "DIM": "2",
        "BYTE_ORDER": "big_endian" if big_endian else "little_endian",
        "TYPE": "unsigned_short",
        "SIZE1": str(nx),
        "SIZE2": str(ny),
        "PIXEL_SIZE": "0.1024",
        "BIN": "2x2",
        "TIME": "1.0",
        "DISTANCE": "150.0",
        "OSC_START": f"{start:.3f}",
        "OSC_RANGE": "1.000",
        "WAVELENGTH": "1.0",
        "BEAM_CENTER_X": "3.2",
        "BEAM_CENTER_Y": "4.1",
        "DETECTOR_SN": "999",
        "DATE": "Tue Jun 11 12:00:00 2002",
    } | (extra or {})
    text = "{\n" + "".join(f"{k}={v};\n" for k, v in items.items()) + "}\n"
    header = text.encode().ljust(512, b" ")
    return header + data.astype(">u2" if big_endian else "<u2").tobytes()


def _image(seed: int, shape=(48, 64), pair: bool = True) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = rng.poisson(20.0, shape).astype(np.uint16) + 72  # ~72 ADU offset, as on the ADSC test image
    img[20:24, 30:34] += 200  # a 16-pixel spot, peaked in its centre
    img[21:23, 31:33] += 300
    img[5, 5] += 300  # a 1-pixel hot spot
    if pair:
        img[40, 10:12] += 300  # 2 pixels: fewer than min_spot_size 6 for a CCD
    return img


def test_header_models_gain_and_pedestal(tmp_path: Path) -> None:
    img = _image(1)
    path = tmp_path / "a_001.img"
    path.write_bytes(smv_bytes(img, 10.0, {"GAIN": "1.25", "IMAGE_PEDESTAL": "72"}))
    detector, beam, gonio, scan = read_models(str(path))
    p = detector[0]
    assert p.type == "CCD" and p.image_size == (64, 48) and p.pixel_size == (0.1024, 0.1024)
    np.testing.assert_allclose(p.origin, (-4.1, 3.2, -150.0))  # Mosflm beam centre: x <-> y
    assert p.gain == 1.25 and p.pedestal == 72.0 and p.trusted_range == (1.0, 65534.0)
    assert beam.wavelength == 1.0 and (scan.start_angle, scan.angle_increment) == (10.0, 1.0)
    assert scan.epoch == 1023796800.0
    raw = read_raw(str(path))
    assert raw.dtype == np.int32
    np.testing.assert_array_equal(raw, img)
    (seq,) = load_inputs([str(path)])
    (corr,) = seq.get_corrected(0)
    np.testing.assert_allclose(corr, (img - 72.0) / 1.25)


def test_gain_from_module_type() -> None:
    q4 = {"SIZE1": "2304", "SIZE2": "2304", "PIXEL_SIZE": "0.0816"}
    assert adsc_gain(q4) == 1.25
    assert adsc_gain({"SIZE1": "4168", "SIZE2": "4168", "PIXEL_SIZE": "0.0648"}) == 2.8
    assert adsc_gain({"SIZE1": "3072", "SIZE2": "3072", "PIXEL_SIZE": "0.1024"}) == 2.4
    assert adsc_gain({"SIZE1": "100", "SIZE2": "100", "PIXEL_SIZE": "0.1"}) == 1.0
    assert adsc_gain(q4 | {"GAIN": "3.5"}) == 3.5


def test_negative_range_reverses_axis_and_big_endian(tmp_path: Path) -> None:
    img = _image(2)
    path = tmp_path / "b_001.img.bz2"
    path.write_bytes(bz2.compress(smv_bytes(img, 0.0, {"OSC_RANGE": "-0.5"}, big_endian=True)))
    _, _, gonio, scan = read_models(str(path))
    np.testing.assert_allclose(gonio.rotation_axis, (-1.0, 0.0, 0.0))
    assert scan.angle_increment == 0.5
    np.testing.assert_array_equal(read_raw(str(path)), img)


def test_sweep_and_ccd_min_spot_size(tmp_path: Path) -> None:
    paths = []
    for k in range(3):
        p = tmp_path / f"s_{k + 1:03d}.img"
        img = _image(10 + k, pair=k == 0)
        p.write_bytes(smv_bytes(img, 5.0 + k, {"GAIN": "1.25", "IMAGE_PEDESTAL": "72"}))
        paths.append(str(p))
    (seq,) = load_inputs(paths)
    assert len(seq) == 3 and not seq.is_still and seq.scan.oscillation == (5.0, 1.0)
    assert seq.format_name == "SMV (ADSC)"
    out = tmp_path / "strong.refl"
    argv = [
        *paths,
        f"output.reflections={out}",
        f"output.log={tmp_path / 'log'}",
        f"output.debug_log={tmp_path / 'd'}",
        "output.report=None",
    ]
    assert run(argv) == 0
    assert "Setting spotfinder.filter.min_spot_size=6" in (tmp_path / "log").read_text()
    table = read_reflections(out)
    # the 16-pixel spot through all 3 images (48 px); the hot pixel (3 px) and the pair (2 px) removed
    np.testing.assert_array_equal(table["bbox"], [[30, 34, 20, 24, 0, 3]])
    assert "Removed 2 spots with size < 6 pixels" in (tmp_path / "log").read_text()
    assert table["n_signal"][0] == 48


def test_incomplete_smv_header(tmp_path: Path) -> None:
    path = tmp_path / "x_001.img"
    path.write_bytes(b"{\nHEADER_BYTES=512;\nSIZE1=4;\nSIZE2=4;\n}".ljust(512, b" ") + bytes(32))
    with pytest.raises(ImageError, match="x_001.img: SMV header lacks BEAM_CENTER_X"):
        load_inputs([str(path)])


@pytest.mark.parametrize("pedestal", ["0", "40"])
def test_trusted_range_is_1_to_65534_whatever_the_pedestal(tmp_path: Path, pedestal: str) -> None:
    """Current dxtbx: 0 (module boundaries) and 65535 (truncated overloads) are untrusted, every value
    between trusted, the pedestal shifting nothing; DIALS 3.12 trusted 0 - pedestal .. 65534 - pedestal."""
    img = np.full((4, 4), 100, np.uint16)
    img[0, :4] = (0, 1, 65534, 65535)
    path = tmp_path / "t_001.img"
    path.write_bytes(smv_bytes(img, 0.0, {"IMAGE_PEDESTAL": pedestal}))
    (seq,) = load_inputs([str(path)])
    (mask,) = seq.get_mask(0)
    expected = np.ones((4, 4), bool)
    expected[0, 0] = expected[0, 3] = False
    np.testing.assert_array_equal(mask, expected)


@pytest.mark.parametrize(("gain", "found"), [("1.0", True), ("1.25", True), ("1.5", False)])
def test_gain_decides_a_faint_pixel_by_hand(tmp_path: Path, gain: str, found: bool) -> None:
    """One pixel 3 ADU above a flat field at the pedestal (72), classic dispersion, 7x7 window.

    Corrected values c = (raw - 72) / gain: 0 everywhere but c = 3 / gain at the pixel. Its window holds
    n = 49 valid pixels: mean m = c / 49, variance (c^2 - c^2 / 49) / 48 = c^2 / 49, so the index of
    dispersion is var / m = c. It is strong when c > 1 + 6 sqrt(2 / 48) = 2.2247 (dispersion test) and
    c > m + 3 sqrt(m) (true for any c > 0.19): with gain 1 (c = 3) and 1.25 (c = 2.4), not with 1.5 (c = 2).
    Its neighbours are at 0, below their means, never strong."""
    img = np.full((15, 15), 72, np.uint16)
    img[7, 7] = 75
    path = tmp_path / "g_001.img"
    path.write_bytes(smv_bytes(img, 0.0, {"GAIN": gain, "IMAGE_PEDESTAL": "72"}))
    out = tmp_path / "strong.refl"
    argv = [
        str(path),
        "spotfinder.threshold.algorithm=dispersion",
        "spotfinder.filter.min_spot_size=1",
        f"output.reflections={out}",
        f"output.log={tmp_path / 'log'}",
        f"output.debug_log={tmp_path / 'd'}",
        "output.report=None",
    ]
    assert run(argv) == 0
    if found:
        table = read_reflections(out)
        np.testing.assert_array_equal(table["bbox"], [[7, 8, 7, 8, 0, 1]])
        np.testing.assert_allclose(table["intensity.sum.value"], [3.0 / float(gain)])
    else:
        assert not out.exists() and "No reflections found" in (tmp_path / "log").read_text()
